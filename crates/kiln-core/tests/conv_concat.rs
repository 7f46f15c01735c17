//! conv2dConcat against what it means, concat([conv2d_fused(x, set) ...], channels): bit for bit,
//! since each set runs the kernel conv2d picks for it (tests/conv.rs checks those against the
//! definition); here the point is each kernel writing its channel slice of a wider output, over
//! batches of 1 to 3 (the image stride), on every forward path (pointwise, Winograd, direct,
//! im2col + GEMM, few-channel, depthwise: the last two copy into the slice). Also the recorded
//! path's gradients and the errors.
use kiln_core::ops::{self, Activation, ConvBranch, ConvParams, Epilogue};
use kiln_core::params::unary::UnaryOp;
use kiln_core::{autograd, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn pad(p: usize) -> ConvParams {
    ConvParams { padding: [p; 4], ..ConvParams::default() }
}

const RELU: Option<Activation> = Some(Activation { op: UnaryOp::Relu, alpha: 0.0 });

/// (what it exercises, input channels, height = width, filter sets as (out channels, kernel, padding, groups, bias, activation)).
type Case = (&'static str, usize, usize, Vec<(usize, usize, usize, usize, bool, Option<Activation>)>);

fn cases() -> Vec<Case> {
    vec![
        ("fire module at 27x27: pointwise + Winograd", 16, 27, vec![(20, 1, 0, 1, true, RELU), (24, 3, 1, 1, true, RELU)]),
        ("fire module at 13x13: pointwise + direct", 48, 13, vec![(40, 1, 0, 1, true, RELU), (48, 3, 1, 1, true, RELU)]),
        ("many channels: im2col + GEMM, three sets, no bias, mixed activations", 96, 9, vec![(10, 1, 0, 1, false, None), (17, 3, 1, 1, true, RELU), (5, 5, 2, 1, false, Some(Activation { op: UnaryOp::Tanh, alpha: 0.0 }))]),
        ("few channels and depthwise (copied into the slice)", 3, 15, vec![(7, 3, 1, 1, true, RELU), (3, 3, 1, 3, true, None), (4, 1, 0, 1, true, RELU)]),
    ]
}

fn branches<'a>(sets: &'a [(Tensor, Option<Tensor>, ConvParams, Option<Activation>)]) -> Vec<ConvBranch<'a>> {
    sets.iter().map(|(w, b, params, activation)| ConvBranch { weight: w, bias: b.as_ref(), params: *params, activation: *activation }).collect()
}

fn composed(x: &Tensor, branches: &[ConvBranch]) -> Tensor {
    let outs: Vec<Tensor> = branches
        .iter()
        .map(|b| ops::conv2d_fused(x, b.weight, b.bias, &b.params, Epilogue { residual: None, activation: b.activation }).unwrap())
        .collect();
    ops::concat(&outs, 1).unwrap()
}

fn build(c: usize, specs: &[(usize, usize, usize, usize, bool, Option<Activation>)], seed: u64) -> Vec<(Tensor, Option<Tensor>, ConvParams, Option<Activation>)> {
    specs
        .iter()
        .enumerate()
        .map(|(i, &(o, k, p, groups, bias, activation))| {
            let seed = seed + 10 * i as u64;
            let w = rand(&[o, c / groups, k, k], seed);
            let b = bias.then(|| rand(&[o], seed + 1));
            (w, b, ConvParams { groups, ..pad(p) }, activation)
        })
        .collect()
}

#[test]
fn conv2d_concat_is_the_concatenation_of_its_convolutions_on_every_kernel() {
    for (name, c, size, specs) in cases() {
        for batch in [1, 2, 3] {
            let x = rand(&[batch, c, size, size], 7 + batch as u64);
            let sets = build(c, &specs, 100);
            let branches = branches(&sets);
            let got = ops::conv2d_concat(&x, &branches).unwrap();
            let want = composed(&x, &branches);
            assert_eq!(got.shape(), want.shape(), "{name}, batch {batch}");
            assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap(), "{name}, batch {batch}");
        }
    }
}

#[test]
fn recorded_conv2d_concat_gives_each_convolutions_gradients() {
    let (c, size) = (16, 9);
    let specs = [(8, 1, 0, 1, true, RELU), (12, 3, 1, 1, true, RELU)];
    let grads = |fused: bool| {
        let x = rand(&[2, c, size, size], 3).set_requires_grad(true).unwrap();
        let sets: Vec<_> = build(c, &specs, 40).into_iter().map(|(w, b, p, a)| (w.set_requires_grad(true).unwrap(), b.map(|b| b.set_requires_grad(true).unwrap()), p, a)).collect();
        let branches = branches(&sets);
        let y = if fused { ops::conv2d_concat(&x, &branches).unwrap() } else { composed(&x, &branches) };
        let dy = rand(y.shape(), 5);
        let loss = ops::reduce(ops::ReduceOp::Sum, &ops::binary(ops::BinaryOp::Mul, &y, &dy).unwrap(), &[], false, 0).unwrap();
        autograd::backward(&loss, None).unwrap();
        let mut all = vec![x.grad().unwrap().to_vec::<f32>().unwrap()];
        for (w, b, _, _) in &sets {
            all.push(w.grad().unwrap().to_vec::<f32>().unwrap());
            all.push(b.as_ref().unwrap().grad().unwrap().to_vec::<f32>().unwrap());
        }
        all
    };
    assert_eq!(grads(true), grads(false));
}

#[test]
fn bad_filter_sets_are_errors_naming_the_op_and_the_shapes() {
    let x = rand(&[1, 8, 10, 10], 1);
    let (w1, w3) = (rand(&[4, 8, 1, 1], 2), rand(&[4, 8, 3, 3], 3));
    let e = ops::conv2d_concat(&x, &[]).unwrap_err().to_string();
    assert!(e.starts_with("conv2dConcat: needs at least one filter set"), "{e}");
    // A 3x3 without padding gives 8x8, the 1x1 10x10.
    let set = |w, params| ConvBranch { weight: w, bias: None, params, activation: None };
    let e = ops::conv2d_concat(&x, &[set(&w1, pad(0)), set(&w3, pad(0))]).unwrap_err().to_string();
    assert!(e.contains("same output height and width") && e.contains("10x10") && e.contains("8x8") && e.contains("[4, 8, 3, 3]"), "{e}");
    let wrong = rand(&[4, 5, 1, 1], 4);
    let e = ops::conv2d_concat(&x, &[set(&w1, pad(0)), set(&wrong, pad(0))]).unwrap_err().to_string();
    assert!(e.starts_with("conv2dConcat: filter set 1:") && e.contains("[4, 5, 1, 1]"), "{e}");
    // Each set's output fits the address space (2 x (2^31 + 1)^2 elements), their concatenation
    // (4 channels) does not: an error before any allocation, not a wrapped size.
    let (one, w2) = (rand(&[1, 1, 1, 1], 5), rand(&[2, 1, 1, 1], 6));
    let huge = pad(1 << 30);
    let e = ops::conv2d_concat(&one, &[set(&w2, huge), set(&w2, huge)]).unwrap_err().to_string();
    assert!(e.starts_with("conv2dConcat: the concatenated output") && e.contains("2 + 2 channels") && e.contains("too many elements"), "{e}");
}
