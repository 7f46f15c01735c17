//! The recurrent op (RNN, LSTM, GRU over a whole sequence): forward against a plain f64
//! reference written from the equations, backward (full BPTT) against central finite
//! differences for every input, and its errors.
use kiln_core::autograd;
use kiln_core::ops::{self, Cell, Weights};
use kiln_core::Tensor;

fn rand(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    ops::randn(shape, 0.0, scale, Some(seed)).unwrap()
}

/// One layer's inputs: x [B, T, I], h0, c0 (LSTM), w_ih, w_hh, b_ih, b_hh.
struct Case {
    cell: Cell,
    tensors: Vec<Tensor>,
    reverse: bool,
}

fn case(cell: Cell, b: usize, t: usize, i: usize, h: usize, reverse: bool, seed: u64) -> Case {
    let gh = cell.gates() * h;
    let mut tensors = vec![rand(&[b, t, i], seed, 1.0), rand(&[b, h], seed + 1, 0.5)];
    if cell == Cell::Lstm {
        tensors.push(rand(&[b, h], seed + 2, 0.5));
    }
    tensors.extend([rand(&[gh, i], seed + 3, 0.6), rand(&[gh, h], seed + 4, 0.6), rand(&[gh], seed + 5, 0.3), rand(&[gh], seed + 6, 0.3)]);
    Case { cell, tensors, reverse }
}

/// Runs the op on `ts` laid out as in `case`.
fn run(cell: Cell, ts: &[Tensor], reverse: bool) -> kiln_core::Result<Tensor> {
    let (x, h0) = (&ts[0], &ts[1]);
    let (c0, rest) = if cell == Cell::Lstm { (Some(&ts[2]), &ts[3..]) } else { (None, &ts[2..]) };
    let w = Weights { w_ih: &rest[0], w_hh: &rest[1], b_ih: rest.get(2), b_hh: rest.get(3) };
    ops::recurrent(cell, x, h0, c0, &w, reverse)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// The packed output [B, T + states, H] computed in f64, straight from PyTorch's equations.
fn reference(c: &Case) -> Vec<f64> {
    let ts: Vec<Vec<f64>> = c.tensors.iter().map(values).collect();
    let shape = c.tensors[0].shape();
    let (b, t_len, i) = (shape[0], shape[1], shape[2]);
    let h = c.tensors[1].shape()[1];
    let lstm = c.cell == Cell::Lstm;
    let (x, h0) = (&ts[0], &ts[1]);
    let off = if lstm { 3 } else { 2 };
    let (w_ih, w_hh, b_ih, b_hh) = (&ts[off], &ts[off + 1], &ts[off + 2], &ts[off + 3]);
    let gh = c.cell.gates() * h;
    let states = if lstm { 2 } else { 1 };
    let mut out = vec![0.0; b * (t_len + states) * h];
    for bi in 0..b {
        let mut hv: Vec<f64> = h0[bi * h..(bi + 1) * h].to_vec();
        let mut cv: Vec<f64> = if lstm { ts[2][bi * h..(bi + 1) * h].to_vec() } else { vec![] };
        for s in 0..t_len {
            let t = if c.reverse { t_len - 1 - s } else { s };
            let xt = &x[(bi * t_len + t) * i..][..i];
            // Both projections with their biases, per gate row.
            let xp: Vec<f64> = (0..gh).map(|r| b_ih[r] + (0..i).map(|k| w_ih[r * i + k] * xt[k]).sum::<f64>()).collect();
            let hp: Vec<f64> = (0..gh).map(|r| b_hh[r] + (0..h).map(|k| w_hh[r * h + k] * hv[k]).sum::<f64>()).collect();
            let next: Vec<f64> = match c.cell {
                Cell::RnnTanh => (0..h).map(|j| (xp[j] + hp[j]).tanh()).collect(),
                Cell::RnnRelu => (0..h).map(|j| (xp[j] + hp[j]).max(0.0)).collect(),
                Cell::Lstm => (0..h)
                    .map(|j| {
                        let gate = |g: usize| xp[g * h + j] + hp[g * h + j];
                        let (ig, fg, gg, og) = (sigmoid(gate(0)), sigmoid(gate(1)), gate(2).tanh(), sigmoid(gate(3)));
                        cv[j] = fg * cv[j] + ig * gg;
                        og * cv[j].tanh()
                    })
                    .collect(),
                Cell::Gru => (0..h)
                    .map(|j| {
                        let r = sigmoid(xp[j] + hp[j]);
                        let z = sigmoid(xp[h + j] + hp[h + j]);
                        let n = (xp[2 * h + j] + r * hp[2 * h + j]).tanh();
                        (1.0 - z) * n + z * hv[j]
                    })
                    .collect(),
            };
            hv = next;
            out[(bi * (t_len + states) + t) * h..][..h].copy_from_slice(&hv);
        }
        out[(bi * (t_len + states) + t_len) * h..][..h].copy_from_slice(&hv);
        if lstm {
            out[(bi * (t_len + states) + t_len + 1) * h..][..h].copy_from_slice(&cv);
        }
    }
    out
}

const ALL_CELLS: [Cell; 4] = [Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru];

#[test]
fn forward_matches_the_equations() {
    for cell in ALL_CELLS {
        for reverse in [false, true] {
            // Sizes big enough that the per-step GEMMs are real matrices (and go parallel).
            for (b, t, i, h, seed) in [(2, 4, 3, 5, 10), (7, 6, 19, 33, 20), (33, 5, 64, 100, 30)] {
                let c = case(cell, b, t, i, h, reverse, seed);
                let got = values(&run(cell, &c.tensors, reverse).unwrap());
                let want = reference(&c);
                assert_eq!(got.len(), want.len());
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() < 5e-4 * (1.0 + w.abs()), "{} reverse={reverse} {b}x{t}x{i}->{h}: element {k} is {g}, want {w}", cell.name());
                }
            }
        }
    }
}

/// Finite differences of L = sum(out · w) for every element of every input, against the gradient
/// backward() produces with seed w. L is summed in f64 on the host, so only the op's own f32
/// rounding enters the numeric derivative.
fn gradcheck(c: &Case) {
    let name = c.cell.name();
    let leaves: Vec<Tensor> = c.tensors.iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
    let out = run(c.cell, &leaves, c.reverse).unwrap();
    let w = rand(out.shape(), 77, 1.0);
    let wv = values(&w);
    autograd::backward(&out, Some(&w)).unwrap();
    let loss = |ts: &[Tensor]| -> f64 { values(&run(c.cell, ts, c.reverse).unwrap()).iter().zip(&wv).map(|(a, b)| a * b).sum() };
    for (k, leaf) in leaves.iter().enumerate() {
        let analytic = values(&leaf.grad().unwrap_or_else(|| panic!("{name}: input {k} got no gradient")));
        let base = c.tensors[k].to_vec::<f32>().unwrap();
        for j in 0..base.len() {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[j] += delta;
                let mut args = c.tensors.clone();
                args[k] = Tensor::from_vec(v, c.tensors[k].shape()).unwrap();
                loss(&args)
            };
            let eps = 1e-2;
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let a = analytic[j];
            assert!((a - numeric).abs() <= 1e-2 * (1.0 + numeric.abs()), "{name} reverse={}: input {k} element {j}: analytic {a} vs numeric {numeric}", c.reverse);
        }
    }
}

#[test]
fn bptt_matches_finite_differences() {
    for cell in ALL_CELLS {
        for reverse in [false, true] {
            let mut c = case(cell, 2, 4, 3, 3, reverse, 40);
            if cell == Cell::RnnRelu {
                // Keep pre-activations away from relu's kink, where finite differences straddle it.
                c.tensors[1] = ops::unary(ops::UnaryOp::Abs, &c.tensors[1], 0.0).unwrap();
            }
            gradcheck(&c);
        }
    }
}

#[test]
fn gradients_only_where_needed_and_without_biases() {
    // x and the biases absent or frozen: the op must still give correct gradients to the rest.
    for cell in ALL_CELLS {
        let c = case(cell, 3, 5, 2, 4, false, 50);
        let lstm = cell == Cell::Lstm;
        let off = if lstm { 3 } else { 2 };
        let params: Vec<Tensor> = c.tensors[off..off + 2].iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
        let x = c.tensors[0].clone();
        let c0 = if lstm { Some(&c.tensors[2]) } else { None };
        let w = Weights { w_ih: &params[0], w_hh: &params[1], b_ih: None, b_hh: None };
        let out = ops::recurrent(cell, &x, &c.tensors[1], c0, &w, false).unwrap();
        let seed = rand(out.shape(), 3, 1.0);
        autograd::backward(&out, Some(&seed)).unwrap();
        assert!(x.grad().is_none() && params.iter().all(|p| p.grad().is_some()), "{}", cell.name());
        // Same weights with zero biases give the same gradients.
        let gh = params[0].shape()[0];
        let zeros = ops::zeros(&[gh], kiln_core::DType::F32).unwrap();
        let again: Vec<Tensor> = c.tensors[off..off + 2].iter().map(|t| t.detach().set_requires_grad(true).unwrap()).collect();
        let w2 = Weights { w_ih: &again[0], w_hh: &again[1], b_ih: Some(&zeros), b_hh: Some(&zeros) };
        let out2 = ops::recurrent(cell, &x, &c.tensors[1], c0, &w2, false).unwrap();
        autograd::backward(&out2, Some(&seed)).unwrap();
        for (p, q) in params.iter().zip(&again) {
            assert_eq!(values(&p.grad().unwrap()), values(&q.grad().unwrap()), "{}", cell.name());
        }
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_op_and_shapes() {
    let c = case(Cell::Lstm, 2, 3, 4, 5, false, 60);
    let t = &c.tensors;
    let err = |r: kiln_core::Result<Tensor>| r.expect_err("expected an error").to_string();
    let w = Weights { w_ih: &t[3], w_hh: &t[4], b_ih: Some(&t[5]), b_hh: Some(&t[6]) };
    // x of the wrong rank.
    let flat = t[0].reshape(&[6, 4]).unwrap();
    let m = err(ops::recurrent(Cell::Lstm, &flat, &t[1], Some(&t[2]), &w, false));
    assert!(m.starts_with("lstm:") && m.contains("[6, 4]") && m.contains("[batch, steps, inputSize]"), "{m}");
    // input size that disagrees with w_ih.
    let wide = rand(&[2, 3, 7], 1, 1.0);
    let m = err(ops::recurrent(Cell::Lstm, &wide, &t[1], Some(&t[2]), &w, false));
    assert!(m.contains("wIh must be [20, 7]") && m.contains("[20, 4]"), "{m}");
    // missing c0, c0 given to a GRU, a bad h0, int32 input, a w_hh of the wrong gate count.
    let m = err(ops::recurrent(Cell::Lstm, &t[0], &t[1], None, &w, false));
    assert!(m.contains("c0"), "{m}");
    let g = case(Cell::Gru, 2, 3, 4, 5, false, 61);
    let gw = Weights { w_ih: &g.tensors[2], w_hh: &g.tensors[3], b_ih: None, b_hh: None };
    let m = err(ops::recurrent(Cell::Gru, &g.tensors[0], &g.tensors[1], Some(&t[2]), &gw, false));
    assert!(m.starts_with("gru:") && m.contains("only an LSTM"), "{m}");
    let bad_h0 = rand(&[3, 5], 2, 1.0);
    let m = err(ops::recurrent(Cell::Gru, &g.tensors[0], &bad_h0, None, &gw, false));
    assert!(m.contains("h0 must be [2, 5]") && m.contains("[3, 5]"), "{m}");
    let ints = ops::cast(&g.tensors[0], kiln_core::DType::I32).unwrap();
    let m = err(ops::recurrent(Cell::Gru, &ints, &g.tensors[1], None, &gw, false));
    assert!(m.contains("x must be float32") && m.contains("int32"), "{m}");
    let m = err(ops::recurrent(Cell::Gru, &g.tensors[0], &g.tensors[1], None, &w, false));
    assert!(m.contains("wHh must be [3 * hiddenSize, hiddenSize]") && m.contains("[20, 5]"), "{m}");
    let empty = rand(&[2, 0, 4], 3, 1.0);
    let m = err(ops::recurrent(Cell::Gru, &empty, &g.tensors[1], None, &gw, false));
    assert!(m.contains("no zero dimension"), "{m}");
}

#[test]
fn long_sequences_backpropagate() {
    // 300 steps in one node: nothing deep in the graph, gradients stay finite.
    {
        let c = case(Cell::Lstm, 4, 300, 8, 16, false, 70);
        let leaves: Vec<Tensor> = c.tensors.iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
        let out = run(Cell::Lstm, &leaves, false).unwrap();
        let seed = rand(out.shape(), 4, 1.0);
        autograd::backward(&out, Some(&seed)).unwrap();
        assert!(leaves.iter().all(|l| l.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite())));
    }
}

#[test]
fn the_cpu_device_keeps_a_workspace_only_when_asked_and_refuses_a_foreign_one() {
    use kiln_core::device::cpu;
    use kiln_core::params::recurrent::{Needs, Present};
    let c = case(Cell::Gru, 2, 3, 4, 5, false, 70);
    let t = &c.tensors;
    let w = Weights { w_ih: &t[2], w_hh: &t[3], b_ih: None, b_hh: None };
    let dev = cpu::device();
    let (inference, none) = dev.recurrent(Cell::Gru, &t[0], &t[1], None, &w, false, false).unwrap();
    let (training, kept) = dev.recurrent(Cell::Gru, &t[0], &t[1], None, &w, false, true).unwrap();
    assert!(none.is_none() && kept.is_some());
    assert_eq!(values(&inference), values(&training), "keeping the workspace changes no value");
    // BPTT given a value its forward did not make is an Error naming the cell, not a panic.
    let g = rand(training.shape(), 1, 1.0);
    let needs = Needs::all(Present { c0: false, b_ih: false, b_hh: false });
    let m = dev.recurrent_backward(Cell::Gru, Box::new(7u32), &g, false, needs).err().expect("an error").to_string();
    assert!(m.starts_with("gru:") && m.contains("workspace"), "{m}");
}
