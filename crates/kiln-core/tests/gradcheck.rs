//! Every differentiable op's backward against central finite differences. The loss is
//! sum(op(inputs) * w) with a fixed random w, so every output element's gradient path is used.
use kiln_core::autograd;
use kiln_core::ops::{self, BinaryOp, ReduceOp, Sections, UnaryOp};
use kiln_core::{DType, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

/// Values 0.1 apart in a scrambled order: no two within a finite-difference step (for max/min).
fn separated(shape: &[usize], offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 * 0.1 - 1.0 + offset).collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn loss(out: &Tensor, w: &Tensor) -> Tensor {
    ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, out, w).unwrap(), &[], false, 0).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_vec::<f32>().unwrap()[0] as f64
}

/// Checks d(sum(f(inputs) * w))/d(inputs) against finite differences, in f32 with eps 1e-2.
fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor) {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
    let out = f(&leaves);
    let w = rand(out.shape(), 99);
    autograd::backward(&loss(&out, &w), None).unwrap();
    let _guard = NoGrad::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let analytic = leaf.grad().unwrap_or_else(|| panic!("{name}: input {i} got no gradient")).to_vec::<f32>().unwrap();
        assert_eq!(analytic.len(), leaf.numel(), "{name}: gradient size of input {i}");
        let base = inputs[i].to_vec::<f32>().unwrap();
        for j in 0..base.len() {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[j] += delta;
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[i] = Tensor::from_vec(v, inputs[i].shape()).unwrap();
                scalar(&loss(&f(&args), &w))
            };
            let eps = 1e-2;
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            assert!((a - numeric).abs() <= 2e-2 * (1.0 + numeric.abs()), "{name}: input {i} element {j}: analytic {a} vs numeric {numeric}");
        }
    }
}

struct NoGrad(bool);
impl NoGrad {
    fn new() -> NoGrad {
        NoGrad(autograd::set_enabled(false))
    }
}
impl Drop for NoGrad {
    fn drop(&mut self) {
        autograd::set_enabled(self.0);
    }
}

#[test]
fn unary_gradients() {
    // Inputs kept away from kinks (0 for abs/relu) and domain edges (log, sqrt of positives).
    let x = rand(&[3, 4], 1);
    let positive = ops::unary(UnaryOp::Exp, &rand(&[3, 4], 2), 0.0).unwrap();
    let away_from_zero = ops::binary(BinaryOp::Add, &ops::unary(UnaryOp::Abs, &x, 0.0).unwrap(), &Tensor::scalar_f32(0.2)).unwrap();
    let signed = ops::binary(BinaryOp::Mul, &away_from_zero, &ops::unary(UnaryOp::Neg, &rand(&[3, 4], 3), 0.0).unwrap().clone()).unwrap();
    for &op in UnaryOp::ALL {
        let input = match op {
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => positive.clone(),
            UnaryOp::Abs | UnaryOp::Relu | UnaryOp::LeakyRelu | UnaryOp::Elu => signed.clone(),
            _ => x.clone(),
        };
        check(op.name(), &[input], |t| ops::unary(op, &t[0], 0.3).unwrap());
    }
}

#[test]
fn binary_gradients_with_broadcasting() {
    let a = rand(&[2, 3, 4], 4);
    let b = rand(&[3, 1], 5);
    for &op in BinaryOp::ALL.iter().filter(|op| !op.is_comparison()) {
        let (a, b) = match op {
            // pow: positive base; maximum/minimum: no near-ties.
            BinaryOp::Pow => (ops::unary(UnaryOp::Exp, &a, 0.0).unwrap(), b.clone()),
            BinaryOp::Maximum | BinaryOp::Minimum => (separated(&[2, 3, 4], 0.0), separated(&[3, 1], 0.05)),
            BinaryOp::Div => (a.clone(), ops::binary(BinaryOp::Add, &ops::unary(UnaryOp::Abs, &b, 0.0).unwrap(), &Tensor::scalar_f32(0.5)).unwrap()),
            _ => (a.clone(), b.clone()),
        };
        check(op.name(), &[a, b], |t| ops::binary(op, &t[0], &t[1]).unwrap());
    }
    let cond = ops::binary(BinaryOp::Greater, &rand(&[3, 4], 6), &Tensor::scalar_f32(0.0)).unwrap();
    check("where", &[rand(&[3, 1], 7), rand(&[4], 8)], |t| ops::where_(&cond, &t[0], &t[1]).unwrap());
}

#[test]
fn reduction_and_softmax_gradients() {
    let x = separated(&[3, 4, 5], 0.0);
    for &op in &[ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Variance, ReduceOp::LogSumExp] {
        check(op.name(), &[x.clone()], |t| ops::reduce(op, &t[0], &[0, 2], false, 1).unwrap());
        check(op.name(), &[x.clone()], |t| ops::reduce(op, &t[0], &[-1], true, 0).unwrap());
    }
    for axis in [0, 1, -1] {
        check("softmax", &[x.clone()], |t| ops::softmax(&t[0], axis, false).unwrap());
        check("logSoftmax", &[x.clone()], |t| ops::softmax(&t[0], axis, true).unwrap());
    }
}

#[test]
fn matmul_gradients() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = rand(if ta { &[2, 5, 3] } else { &[2, 3, 5] }, 10);
        let b = rand(if tb { &[4, 5] } else { &[5, 4] }, 11);
        check("matmul", &[a, b], |t| ops::matmul(&t[0], &t[1], ta, tb).unwrap());
    }
    check("matmul batch-broadcast", &[rand(&[2, 1, 3, 4], 12), rand(&[3, 4, 2], 13)], |t| ops::matmul(&t[0], &t[1], false, false).unwrap());
    check("matmul vector", &[rand(&[4], 14), rand(&[4, 3], 15)], |t| ops::matmul(&t[0], &t[1], false, false).unwrap());
    check("matmul vector-vector", &[rand(&[4], 16), rand(&[4], 17)], |t| ops::matmul(&t[0], &t[1], false, false).unwrap());
}

#[test]
fn view_and_shape_op_gradients() {
    let x = rand(&[2, 3, 4], 18);
    check("reshape", &[x.clone()], |t| t[0].reshape(&[4, -1]).unwrap());
    check("permute", &[x.clone()], |t| t[0].permute(&[2, 0, 1]).unwrap());
    check("slice", &[x.clone()], |t| t[0].slice(&[1, 0, 1], &[1, 2, -1]).unwrap());
    check("expand", &[rand(&[3, 1], 19)], |t| t[0].expand(&[2, 3, 4]).unwrap());
    check("squeeze/unsqueeze", &[rand(&[3, 1], 20)], |t| t[0].squeeze(&[]).unwrap().unsqueeze(0).unwrap());
    check("contiguous", &[x.clone()], |t| t[0].permute(&[1, 0, 2]).unwrap().contiguous().unwrap());
    check("concat", &[rand(&[2, 3], 21), rand(&[2, 1], 22)], |t| ops::concat(&[t[0].clone(), t[1].clone()], 1).unwrap());
    check("stack", &[rand(&[2, 3], 23), rand(&[2, 3], 24)], |t| ops::stack(&[t[0].clone(), t[1].clone()], 1).unwrap());
    check("split", &[x.clone()], |t| {
        let parts = ops::split(&t[0], Sections::Sizes(vec![1, 3]), 2).unwrap();
        ops::binary(BinaryOp::Mul, &parts[0], &parts[1]).unwrap()
    });
    let idx = Tensor::from_vec(vec![2i32, 0, 2], &[3]).unwrap();
    check("gather", &[x.clone()], |t| ops::gather(&t[0], &idx, 1).unwrap());
    check("scatterAdd", &[rand(&[2, 5], 25), rand(&[2, 3], 26)], |t| ops::scatter_add(&t[0], &idx, &t[1], 1).unwrap());
    check("pad", &[rand(&[2, 3], 27)], |t| ops::pad(&t[0], &[(1, 0), (2, 1)], 0.5).unwrap());
}

#[test]
fn gradients_accumulate_and_graphs_free() {
    let w = rand(&[3], 30).set_requires_grad(true).unwrap();
    for _ in 0..2 {
        let l = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &w, &Tensor::scalar_f32(2.0)).unwrap(), &[], false, 0).unwrap();
        autograd::backward(&l, None).unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![4.0, 4.0, 4.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    // A second backward through the same graph is an error, not a silent wrong answer.
    let l = ops::reduce(ReduceOp::Sum, &w, &[], false, 0).unwrap();
    autograd::backward(&l, None).unwrap();
    assert!(autograd::backward(&l, None).unwrap_err().to_string().contains("already used"));
    // Non-scalar roots need an explicit gradient; untracked tensors cannot backward.
    assert!(autograd::backward(&w.detach(), None).is_err());
    let v = ops::binary(BinaryOp::Mul, &w, &w).unwrap();
    assert!(autograd::backward(&v, None).unwrap_err().to_string().contains("non-scalar"));
    // Integer tensors cannot require gradients.
    assert!(Tensor::from_vec(vec![1i32], &[1]).unwrap().set_requires_grad(true).is_err());
    let _ = DType::F32;
}

#[test]
fn cross_entropy_gradients() {
    let targets = Tensor::from_vec(vec![2i32, 0, 1, 2], &[4]).unwrap();
    let weights = Tensor::from_vec(vec![0.5f32, 1.0, 2.0], &[3]).unwrap();
    for smoothing in [0.0, 0.1] {
        for weights in [None, Some(&weights)] {
            for reduction in [ops::Reduction::Mean, ops::Reduction::Sum, ops::Reduction::None] {
                check("crossEntropy", &[rand(&[4, 3], 50)], |t| ops::cross_entropy(&t[0], &targets, weights, smoothing, reduction).unwrap());
            }
        }
    }
}

#[test]
fn cross_entropy_matches_log_softmax_composition() {
    let x = rand(&[5, 4], 51);
    let y = Tensor::from_vec(vec![0i32, 3, 1, 1, 2], &[5]).unwrap();
    let fused = scalar(&ops::cross_entropy(&x, &y, None, 0.0, ops::Reduction::Mean).unwrap());
    let logp = ops::softmax(&x, -1, true).unwrap().to_vec::<f32>().unwrap();
    let want: f64 = -[0usize, 3, 1, 1, 2].iter().enumerate().map(|(i, &t)| logp[i * 4 + t] as f64).sum::<f64>() / 5.0;
    assert!((fused - want).abs() < 1e-5, "{fused} vs {want}");
    assert!(ops::cross_entropy(&x, &Tensor::from_vec(vec![0i32, 4, 1, 1, 2], &[5]).unwrap(), None, 0.0, ops::Reduction::Mean)
        .unwrap_err().to_string().contains("out of range"));
}

// ---- graph neural networks: message passing (ops/graph.rs) ----
#[test]
fn message_passing_gradients() {
    // Repeated sources and destinations, a node with no in-edges (3), and a self loop (2 -> 2).
    let src = Tensor::from_vec(vec![0i32, 1, 1, 2, 4, 0, 2], &[7]).unwrap();
    let dst = Tensor::from_vec(vec![1i32, 0, 2, 2, 0, 1, 4], &[7]).unwrap();
    check("spmm x and weight", &[rand(&[5, 3], 60), rand(&[7], 61)], |t| ops::spmm(&t[0], &src, &dst, Some(&t[1]), 5).unwrap());
    check("spmm unweighted, trailing dims", &[rand(&[5, 2, 2], 62)], |t| ops::spmm(&t[0], &src, &dst, None, 6).unwrap());
    check("spmm x only (weight constant)", &[rand(&[5, 3], 63)], |t| ops::spmm(&t[0], &src, &dst, Some(&rand(&[7], 64)), 5).unwrap());
    for &op in ops::SegmentReduce::ALL {
        // Values 0.1 apart, so no max is within a finite-difference step of another value.
        let values = if op == ops::SegmentReduce::Max { separated(&[7, 3], 0.03) } else { rand(&[7, 3], 65) };
        check(op.name(), &[values], |t| ops::segment_reduce(&t[0], &dst, 6, op).unwrap());
    }
}

// ---- convolution (CNN family) ----

#[test]
fn conv2d_gradients() {
    use kiln_core::ops::ConvParams;
    // stride 2, asymmetric padding, dilation 2 and groups 2 at once; then the pointwise shortcut.
    let p = ConvParams { stride: [2, 2], padding: [1, 2, 2, 1], dilation: [2, 2], groups: 2 };
    check("conv2d", &[rand(&[2, 4, 6, 5], 30), rand(&[4, 2, 3, 2], 31), rand(&[4], 32)], |t| ops::conv2d(&t[0], &t[1], Some(&t[2]), &p).unwrap());
    // Depthwise: one input channel per group, multiplier 2.
    let p = ConvParams { stride: [2, 1], padding: [0, 1, 2, 0], dilation: [1, 2], groups: 3 };
    check("conv2d depthwise", &[rand(&[2, 3, 5, 6], 38), rand(&[6, 1, 2, 3], 39), rand(&[6], 40)], |t| ops::conv2d(&t[0], &t[1], Some(&t[2]), &p).unwrap());
    let p = ConvParams::default();
    check("conv2d 1x1", &[rand(&[2, 3, 3, 2], 33), rand(&[2, 3, 1, 1], 34)], |t| ops::conv2d(&t[0], &t[1], None, &p).unwrap());
}

#[test]
fn conv_transpose2d_gradients() {
    use kiln_core::ops::ConvParams;
    let p = ConvParams { stride: [2, 2], padding: [1, 0, 0, 2], dilation: [2, 2], groups: 2 };
    check("convTranspose2d", &[rand(&[2, 4, 3, 4], 35), rand(&[4, 2, 3, 2], 36), rand(&[4], 37)], |t| {
        ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), &p, [1, 0]).unwrap()
    });
    let p = ConvParams { stride: [2, 2], padding: [1, 1, 0, 1], dilation: [1, 1], groups: 2 };
    check("convTranspose2d depthwise", &[rand(&[2, 2, 3, 3], 41), rand(&[2, 1, 3, 2], 42)], |t| ops::conv_transpose2d(&t[0], &t[1], None, &p, [0, 1]).unwrap());
}

// ---- CNN pooling and batch normalization (pool.rs, batch_norm.rs) ----

#[test]
fn pooling_gradients() {
    use ops::Pool2d;
    // Distinct values (0.1 apart): no window's maximum changes under a 1e-2 perturbation.
    let x = separated(&[2, 2, 5, 6], 0.0);
    for (kernel, stride, padding, dilation) in [
        ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
        ([3, 3], [2, 1], [1, 1, 1, 0], [1, 1]),
        ([2, 3], [1, 2], [0, 1, 1, 1], [2, 1]),
    ] {
        let p = Pool2d { kernel, stride, padding, dilation };
        check("maxPool2d", &[x.clone()], |t| ops::max_pool2d(&t[0], p).unwrap());
        for include in [true, false] {
            check("avgPool2d", &[rand(&[2, 2, 5, 6], 60)], |t| ops::avg_pool2d(&t[0], p, include).unwrap());
        }
    }
}

#[test]
fn batch_norm_gradients() {
    use ops::BatchNorm;
    let x = rand(&[3, 2, 2, 3], 70);
    let gamma = Tensor::from_vec(vec![1.5f32, -0.7], &[2]).unwrap();
    let beta = Tensor::from_vec(vec![0.2f32, -0.1], &[2]).unwrap();
    let train = BatchNorm { training: true, momentum: 0.1, eps: 1e-5 };
    let eval = BatchNorm { training: false, ..train };
    check("batchNorm train", &[x.clone(), gamma.clone(), beta.clone()], |t| ops::batch_norm(&t[0], Some(&t[1]), Some(&t[2]), None, train).unwrap());
    check("batchNorm train, no affine", &[x.clone()], |t| ops::batch_norm(&t[0], None, None, None, train).unwrap());
    check("batchNorm [N, C]", &[rand(&[5, 3], 71)], |t| ops::batch_norm(&t[0], None, None, None, train).unwrap());
    // Eval with running statistics: they are constants.
    let stats = || (Tensor::from_vec(vec![0.3f32, -0.2], &[2]).unwrap(), Tensor::from_vec(vec![0.5f32, 2.0], &[2]).unwrap());
    check("batchNorm eval", &[x, gamma, beta], |t| {
        let (mut m, mut v) = stats();
        ops::batch_norm(&t[0], Some(&t[1]), Some(&t[2]), Some((&mut m, &mut v)), eval).unwrap()
    });
}
