//! The fused attention kernel against a plain float64 implementation (the whole score matrix,
//! softmax, and the textbook gradients), with many tile sizes so every block boundary case
//! (partial blocks, causal diagonal blocks, fully masked rows) is crossed; against finite
//! differences; and on bad input.
use kiln_core::autograd;
use kiln_core::ops::attention::{attention, AttentionOptions, Tiles};
use kiln_core::ops::{self, BinaryOp, ReduceOp};
use kiln_core::{DType, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mask {
    None,
    Bool,
    Additive,
}

/// A padding mask that pads the last `b + 1` keys of batch b (bool), or the same as an additive
/// bias with an extra finite offset on key 0 (float32).
fn padding(case: Case, kind: Mask) -> Option<Tensor> {
    let pads = |b: usize, j: usize| j + b + 1 >= case.tk && j > 0;
    match kind {
        Mask::None => None,
        Mask::Bool => {
            let v: Vec<u8> = (0..case.b * case.tk).map(|i| pads(i / case.tk, i % case.tk) as u8).collect();
            Some(Tensor::from_vec(v, &[case.b, case.tk]).unwrap())
        }
        Mask::Additive => {
            let v: Vec<f32> = (0..case.b * case.tk)
                .map(|i| if pads(i / case.tk, i % case.tk) { f32::NEG_INFINITY } else if i % case.tk == 0 { -0.7 } else { 0.0 })
                .collect();
            Some(Tensor::from_vec(v, &[case.b, case.tk]).unwrap())
        }
    }
}

fn to64(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// The bias per (batch, key) a mask stands for.
fn bias64(mask: Option<&Tensor>, case: Case) -> Vec<f64> {
    match mask {
        None => vec![0.0; case.b * case.tk],
        Some(m) if m.dtype() == DType::Bool => m.to_vec::<u8>().unwrap().iter().map(|&p| if p != 0 { f64::NEG_INFINITY } else { 0.0 }).collect(),
        Some(m) => to64(m),
    }
}

/// Reference forward and backward in float64 over the whole score matrix. Returns (out, dq, dk, dv).
#[allow(clippy::too_many_arguments)]
fn reference(case: Case, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, causal: bool, scale: f64, dout: &[f64]) -> [Vec<f64>; 4] {
    let Case { b: nb, h: nh, tq, tk, d, dv } = case;
    let (q, k, v, bias) = (to64(q), to64(k), to64(v), bias64(mask, case));
    let mut out = vec![0.0; nb * nh * tq * dv];
    let (mut dq, mut dk, mut dvv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    for b in 0..nb {
        for h in 0..nh {
            let (qo, ko, vo, oo) = (((b * nh + h) * tq) * d, ((b * nh + h) * tk) * d, ((b * nh + h) * tk) * dv, ((b * nh + h) * tq) * dv);
            for i in 0..tq {
                let s: Vec<f64> = (0..tk)
                    .map(|j| {
                        let visible = !causal || (j as isize) <= i as isize + tk as isize - tq as isize;
                        let dot: f64 = (0..d).map(|c| q[qo + i * d + c] * k[ko + j * d + c]).sum();
                        if visible { dot * scale + bias[b * tk + j] } else { f64::NEG_INFINITY }
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    continue; // sees no key: output 0, gradient 0
                }
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / z).collect();
                let go = &dout[oo + i * dv..oo + (i + 1) * dv];
                let dp: Vec<f64> = (0..tk).map(|j| (0..dv).map(|c| go[c] * v[vo + j * dv + c]).sum()).collect();
                let delta: f64 = (0..tk).map(|j| p[j] * dp[j]).sum();
                for j in 0..tk {
                    for c in 0..dv {
                        out[oo + i * dv + c] += p[j] * v[vo + j * dv + c];
                        dvv[vo + j * dv + c] += p[j] * go[c];
                    }
                    let ds = p[j] * (dp[j] - delta) * scale;
                    for c in 0..d {
                        dq[qo + i * d + c] += ds * k[ko + j * d + c];
                        dk[ko + j * d + c] += ds * q[qo + i * d + c];
                    }
                }
            }
        }
    }
    [out, dq, dk, dvv]
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        assert!((g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i} is {g}, want {w}");
    }
}

/// Runs the fused op with gradients and compares output and gradients with the reference.
fn compare(case: Case, causal: bool, mask: Mask, tiles: Tiles, seed: u64) {
    let Case { b, h, tq, tk, d, dv } = case;
    let q = rand(&[b, h, tq, d], seed).set_requires_grad(true).unwrap();
    let k = rand(&[b, h, tk, d], seed + 1).set_requires_grad(true).unwrap();
    let v = rand(&[b, h, tk, dv], seed + 2).set_requires_grad(true).unwrap();
    let m = padding(case, mask);
    let options = AttentionOptions { causal, tiles, ..Default::default() };
    let out = attention(&q, &k, &v, m.as_ref(), &options).unwrap();
    assert_eq!(out.shape(), &[b, h, tq, dv]);
    let dout = rand(&[b, h, tq, dv], seed + 3);
    autograd::backward(&out, Some(&dout)).unwrap();
    let want = reference(case, &q, &k, &v, m.as_ref(), causal, 1.0 / (d as f64).sqrt(), &to64(&dout));
    let label = format!("{case:?} causal={causal} mask={mask:?} tiles={tiles:?}");
    assert_close(&format!("out {label}"), &out.to_vec::<f32>().unwrap(), &want[0], 2e-5);
    for (name, t, w) in [("dq", &q, &want[1]), ("dk", &k, &want[2]), ("dv", &v, &want[3])] {
        assert_close(&format!("{name} {label}"), &t.grad().unwrap().to_vec::<f32>().unwrap(), w, 5e-5);
    }
}

#[test]
fn matches_the_reference_over_masks_and_tile_sizes() {
    let cases = [
        Case { b: 2, h: 3, tq: 5, tk: 7, d: 4, dv: 6 },
        Case { b: 1, h: 2, tq: 9, tk: 4, d: 3, dv: 2 }, // Tq > Tk: causal rows with no key
        Case { b: 2, h: 1, tq: 11, tk: 11, d: 5, dv: 5 },
    ];
    let tiles = [Tiles::default(), Tiles { query: 4, key: 3 }, Tiles { query: 1, key: 1 }, Tiles { query: 3, key: 8 }];
    let mut seed = 10;
    for case in cases {
        for causal in [false, true] {
            for mask in [Mask::None, Mask::Bool, Mask::Additive] {
                for t in tiles {
                    compare(case, causal, mask, t, seed);
                    seed += 4;
                }
            }
        }
    }
}

#[test]
fn matches_the_reference_across_default_blocks() {
    // Longer than one default block in both directions, with partial last blocks.
    for (causal, mask) in [(false, Mask::None), (true, Mask::Bool), (true, Mask::Additive)] {
        compare(Case { b: 1, h: 2, tq: 150, tk: 133, d: 16, dv: 24 }, causal, mask, Tiles::default(), 7);
    }
    compare(Case { b: 2, h: 2, tq: 70, tk: 200, d: 8, dv: 8 }, true, Mask::None, Tiles::default(), 9);
    // The ONNX bench's encoder at batch 1: one 128 x 128 block of heads of 64 (the score and
    // Vᵀ products on Kiln's AVX-512 GEMM where the CPU has it, tile.rs).
    compare(Case { b: 1, h: 4, tq: 128, tk: 128, d: 64, dv: 64 }, false, Mask::Additive, Tiles::default(), 11);
}

#[test]
fn reads_strided_views_in_place() {
    // q as a projection [B, T, H, D] split into heads by a permuted view; k shared by every head
    // through an expand (stride 0); v a slice of a wider tensor.
    let (b, h, t, d) = (2, 3, 10, 4);
    let q_bthd = rand(&[b, t, h, d], 1);
    let q = q_bthd.permute(&[0, 2, 1, 3]).unwrap();
    let k = rand(&[b, 1, t, d], 2).expand(&[b, h, t, d]).unwrap();
    let v = rand(&[b, h, t, d + 3], 3).slice(&[0, 0, 0, 1], &[-1, -1, -1, d as isize]).unwrap();
    let options = AttentionOptions { causal: true, tiles: Tiles { query: 3, key: 4 }, ..Default::default() };
    let strided = attention(&q, &k, &v, None, &options).unwrap();
    let dense = attention(&q.contiguous().unwrap(), &k.contiguous().unwrap(), &v.contiguous().unwrap(), None, &options).unwrap();
    assert_eq!(strided.to_vec::<f32>().unwrap(), dense.to_vec::<f32>().unwrap());
    // The output of a permuted q comes back in [B, T, H, D] memory order: merging heads is free.
    assert!(!strided.is_contiguous() && strided.permute(&[0, 2, 1, 3]).unwrap().is_contiguous());
    assert!(dense.is_contiguous());
}

/// The loss sum(out · w) in float64.
fn weighted(out: &Tensor, w: &[f32]) -> f64 {
    out.to_vec::<f32>().unwrap().iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central differences of sum(f(q, k, v) · w) against autograd, for every input element.
fn finite_difference_check(name: &str, inputs: [Tensor; 3], f: impl Fn(&[Tensor; 3]) -> Tensor) {
    let leaves = inputs.clone().map(|t| t.set_requires_grad(true).unwrap());
    let out = f(&leaves);
    let w = rand(out.shape(), 99).to_vec::<f32>().unwrap();
    let loss = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &out, &Tensor::from_vec(w.clone(), out.shape()).unwrap()).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    let previous = autograd::set_enabled(false);
    for (i, leaf) in leaves.iter().enumerate() {
        let analytic = leaf.grad().unwrap().to_vec::<f32>().unwrap();
        let base = inputs[i].to_vec::<f32>().unwrap();
        for j in 0..base.len() {
            let at = |delta: f32| {
                let mut values = base.clone();
                values[j] += delta;
                let mut args = inputs.clone();
                args[i] = Tensor::from_vec(values, inputs[i].shape()).unwrap();
                weighted(&f(&args), &w)
            };
            let eps = 1e-2;
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            assert!((a - numeric).abs() <= 5e-3 * (1.0 + numeric.abs()), "{name}: input {i} element {j}: analytic {a} vs numeric {numeric}");
        }
    }
    autograd::set_enabled(previous);
}

#[test]
fn gradients_match_finite_differences_with_causal_and_padding_masks() {
    let case = Case { b: 2, h: 2, tq: 4, tk: 6, d: 3, dv: 2 };
    for mask in [Mask::Bool, Mask::Additive] {
        let m = padding(case, mask);
        let inputs = [rand(&[2, 2, 4, 3], 21), rand(&[2, 2, 6, 3], 22), rand(&[2, 2, 6, 2], 23)];
        let options = AttentionOptions { causal: true, tiles: Tiles { query: 3, key: 4 }, ..Default::default() };
        finite_difference_check(&format!("attention causal {mask:?}"), inputs, |t| attention(&t[0], &t[1], &t[2], m.as_ref(), &options).unwrap());
    }
    // An explicit scale and dropout with a fixed seed (the mask is then a fixed function).
    let inputs = [rand(&[1, 2, 5, 3], 24), rand(&[1, 2, 5, 3], 25), rand(&[1, 2, 5, 4], 26)];
    let options = AttentionOptions { scale: Some(0.8), dropout: 0.3, seed: Some(5), tiles: Tiles { query: 2, key: 3 }, ..Default::default() };
    finite_difference_check("attention dropout", inputs, |t| attention(&t[0], &t[1], &t[2], None, &options).unwrap());
}

#[test]
fn rows_that_see_no_key_give_zero_output_and_gradient() {
    // Batch 1 pads every key; causal with Tq > Tk leaves the first queries without keys.
    let (b, h, tq, tk, d) = (2, 2, 6, 4, 3);
    let mask = Tensor::from_vec((0..b * tk).map(|i| (i >= tk) as u8).collect::<Vec<u8>>(), &[b, tk]).unwrap();
    let q = rand(&[b, h, tq, d], 31).set_requires_grad(true).unwrap();
    let k = rand(&[b, h, tk, d], 32).set_requires_grad(true).unwrap();
    let v = rand(&[b, h, tk, d], 33).set_requires_grad(true).unwrap();
    let options = AttentionOptions { causal: true, tiles: Tiles { query: 4, key: 2 }, ..Default::default() };
    let out = attention(&q, &k, &v, Some(&mask), &options).unwrap();
    autograd::backward(&out, Some(&rand(out.shape(), 34))).unwrap();
    let o = out.to_vec::<f32>().unwrap();
    let dq = q.grad().unwrap().to_vec::<f32>().unwrap();
    let dk = k.grad().unwrap().to_vec::<f32>().unwrap();
    assert!(o.iter().chain(&dq).chain(&dk).all(|x| x.is_finite()), "no NaN or inf anywhere");
    let row = tq * d;
    for hh in 0..h {
        // Batch 1: everything masked.
        assert!(o[(h + hh) * row..(h + hh + 1) * row].iter().all(|&x| x == 0.0));
        assert!(dq[(h + hh) * row..(h + hh + 1) * row].iter().all(|&x| x == 0.0));
        // Batch 0: queries 0 and 1 see no key (query i sees keys j <= i - 2).
        assert!(o[hh * row..hh * row + 2 * d].iter().all(|&x| x == 0.0));
        assert!(o[hh * row + 2 * d..(hh + 1) * row].iter().all(|&x| x != 0.0));
    }
    assert!(dk[h * tk * d..].iter().all(|&x| x == 0.0), "keys nobody sees get no gradient");
}

#[test]
fn dropout_is_seeded_unbiased_and_independent_of_tiles() {
    let (q, k) = (rand(&[1, 2, 40, 8], 41), rand(&[1, 2, 40, 8], 42));
    // v = identity: the output rows are the attention weights themselves.
    let eye = ops::eye(40, 40).unwrap().reshape(&[1, 1, 40, 40]).unwrap().expand(&[1, 2, 40, 40]).unwrap();
    let plain = attention(&q, &k, &eye, None, &AttentionOptions::default()).unwrap().to_vec::<f32>().unwrap();
    let with = |seed: u64, tiles: Tiles| {
        attention(&q, &k, &eye, None, &AttentionOptions { dropout: 0.25, seed: Some(seed), tiles, ..Default::default() }).unwrap().to_vec::<f32>().unwrap()
    };
    let a = with(1, Tiles::default());
    let zeros = |v: &[f32]| v.iter().map(|&x| x == 0.0).collect::<Vec<bool>>();
    let other_tiles = with(1, Tiles { query: 7, key: 5 });
    assert!(zeros(&a) == zeros(&other_tiles), "the mask depends on positions, not tiles");
    assert!(a.iter().zip(&other_tiles).all(|(x, y)| (x - y).abs() <= 1e-6), "same weights up to rounding");
    assert!(zeros(&a) != zeros(&with(2, Tiles::default())), "another seed, another mask");
    let dropped = a.iter().filter(|&&x| x == 0.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.25).abs() < 0.02, "dropped fraction {dropped}");
    for (x, p) in a.iter().zip(&plain) {
        assert!(*x == 0.0 || (x - p / 0.75).abs() <= 1e-5 * (1.0 + p.abs()), "a kept weight is scaled by 1/(1 - p)");
    }
    // Averaged over seeds the output approaches the undropped one.
    let runs = 200;
    let mut mean = vec![0.0f64; plain.len()];
    for seed in 0..runs {
        for (m, x) in mean.iter_mut().zip(with(100 + seed, Tiles::default())) {
            *m += x as f64 / runs as f64;
        }
    }
    let err = mean.iter().zip(&plain).map(|(m, &p)| (m - p as f64).abs()).fold(0.0, f64::max);
    let largest = plain.iter().cloned().fold(0.0f32, f32::max) as f64;
    assert!(err < 0.25 * largest, "mean over seeds is off by {err} (largest weight {largest})");
}

#[test]
fn bad_input_is_an_error_naming_the_op_and_shapes() {
    let q = rand(&[2, 2, 3, 4], 1);
    let k = rand(&[2, 2, 5, 4], 2);
    let v = rand(&[2, 2, 5, 6], 3);
    let run = |q: &Tensor, k: &Tensor, v: &Tensor, m: Option<&Tensor>, o: AttentionOptions| attention(q, k, v, m, &o).unwrap_err().to_string();
    let d = AttentionOptions::default();
    let e = run(&rand(&[2, 3, 4], 1), &k, &v, None, d);
    assert!(e.starts_with("attention:") && e.contains("4-D") && e.contains("[2, 3, 4]"), "{e}");
    let e = run(&q, &rand(&[2, 2, 5, 3], 1), &v, None, d);
    assert!(e.contains("feature size") && e.contains("k float32 [2, 2, 5, 3]"), "{e}");
    let e = run(&q, &k, &rand(&[2, 2, 4, 6], 1), None, d);
    assert!(e.contains("number of keys"), "{e}");
    let e = run(&q, &rand(&[2, 3, 5, 4], 1), &v, None, d);
    assert!(e.contains("batch and heads"), "{e}");
    let e = run(&ops::cast(&q, DType::I32).unwrap(), &k, &v, None, d);
    assert!(e.contains("float32") && e.contains("q int32 [2, 2, 3, 4]"), "{e}");
    let e = run(&q, &k, &v, Some(&ops::zeros(&[2, 4], DType::Bool).unwrap()), d);
    assert!(e.contains("keyPaddingMask") && e.contains("[2, 5]") && e.contains("bool [2, 4]"), "{e}");
    let e = run(&q, &k, &v, Some(&ops::zeros(&[2, 5], DType::I32).unwrap()), d);
    assert!(e.contains("int32 [2, 5]"), "{e}");
    let nan = Tensor::from_vec(vec![0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[2, 5]).unwrap();
    let e = run(&q, &k, &v, Some(&nan), d);
    assert!(e.contains("NaN at [0, 1]"), "{e}");
    let trainable = ops::zeros(&[2, 5], DType::F32).unwrap().set_requires_grad(true).unwrap();
    assert!(run(&q, &k, &v, Some(&trainable), d).contains("requires gradients"));
    assert!(run(&q, &k, &v, None, AttentionOptions { scale: Some(f32::NAN), ..d }).contains("scale"));
    assert!(run(&q, &k, &v, None, AttentionOptions { dropout: 1.0, ..d }).contains("dropout must be in [0, 1)"));
}

#[test]
fn empty_sizes_are_handled() {
    // No keys: every row sees nothing, so the output is 0; no queries or no features: empty or uniform.
    let out = attention(&rand(&[1, 2, 3, 4], 1), &rand(&[1, 2, 0, 4], 2), &rand(&[1, 2, 0, 5], 3), None, &AttentionOptions::default()).unwrap();
    assert_eq!(out.shape(), &[1, 2, 3, 5]);
    assert!(out.to_vec::<f32>().unwrap().iter().all(|&x| x == 0.0));
    let out = attention(&rand(&[1, 2, 0, 4], 1), &rand(&[1, 2, 3, 4], 2), &rand(&[1, 2, 3, 5], 3), None, &AttentionOptions::default()).unwrap();
    assert_eq!(out.shape(), &[1, 2, 0, 5]);
    let v = rand(&[1, 1, 3, 2], 3);
    let out = attention(&rand(&[1, 1, 2, 0], 1), &rand(&[1, 1, 3, 0], 2), &v, None, &AttentionOptions::default()).unwrap();
    let vs = v.to_vec::<f32>().unwrap();
    let mean = [(vs[0] + vs[2] + vs[4]) / 3.0, (vs[1] + vs[3] + vs[5]) / 3.0];
    for (i, x) in out.to_vec::<f32>().unwrap().iter().enumerate() {
        assert!((x - mean[i % 2]).abs() < 1e-6, "zero features: uniform weights");
    }
}
