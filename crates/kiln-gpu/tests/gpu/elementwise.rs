//! Unary ops (forward and backward) and binary ops, casts, where and strided copies. Binary
//! gradients are kiln-core compositions of these kernels (tests/gpu/backend.rs).
//! Tolerances: rtol 2e-6 plus a small atol for most ops (both sides are ~1 ulp; WGSL's exp/log
//! carry a few ulp); sin/cos 1e-3 absolute (WGSL promises 2^-11 on [-pi, pi] after our range
//! reduction); pow 2e-5 relative (WGSL pow is exp2(b log2 a)).

use crate::common::*;
use kiln_core::ops::{self, BinaryOp, UnaryOp};
use kiln_core::{DType, Tensor};
use kiln_gpu::kernels::{elementwise as ew, table};

#[test]
fn every_kiln_op_has_a_wgsl_row() {
    let missing_unary: Vec<&str> = UnaryOp::ALL.iter().filter(|&&op| table::unary(op).is_none()).map(|op| op.name()).collect();
    let missing_binary: Vec<&str> = BinaryOp::ALL.iter().filter(|&&op| table::binary(op).is_none()).map(|op| op.name()).collect();
    assert!(missing_unary.is_empty() && missing_binary.is_empty(), "no WGSL for {missing_unary:?} {missing_binary:?}");
}

/// Inputs in each op's domain, with values near the branch points (0) and far out.
fn unary_input(op: UnaryOp, seed: u64) -> Tensor {
    let shape = [3, 5, 7];
    let base = match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => randu(&shape, 0.05, 20.0, seed),
        UnaryOp::Sin | UnaryOp::Cos => randu(&shape, -60.0, 60.0, seed),
        _ => ops::binary(BinaryOp::Mul, &randn(&shape, seed), &Tensor::scalar_f32(4.0)).unwrap(),
    };
    let mut v = vals(&base);
    if !matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt) {
        v[..8].copy_from_slice(&[0.0, -0.0, 1e-5, -1e-5, 0.25, -30.0, 30.0, -0.29]);
    }
    Tensor::from_vec(v, &shape).unwrap()
}

fn unary_tolerance(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Sin | UnaryOp::Cos => (1e-3, 0.0),
        _ => (1e-6, 4e-6),
    }
}

fn alpha(op: UnaryOp) -> f32 {
    if op == UnaryOp::Elu { 1.3 } else { 0.2 }
}

#[test]
fn unary_forward_matches_cpu() {
    let dev = gpu!();
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let x = unary_input(op, 10 + i as u64);
        let want = vals(&ops::unary(op, &x, alpha(op)).unwrap());
        let got = down(dev, &ew::unary(dev, op, &up(dev, &x), alpha(op)).unwrap());
        let (atol, rtol) = unary_tolerance(op);
        assert_close(op.name(), &got, &want, atol, rtol);
    }
}

#[test]
fn unary_backward_matches_cpu_autograd() {
    let dev = gpu!();
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let x = unary_input(op, 40 + i as u64);
        let g = randn(x.shape(), 70 + i as u64);
        let want = &cpu_grads(std::slice::from_ref(&x), &g, |t| ops::unary(op, &t[0], alpha(op)).unwrap())[0];
        let (xg, gg) = (up(dev, &x), up(dev, &g));
        let y = ew::unary(dev, op, &xg, alpha(op)).unwrap();
        let got = down(dev, &ew::unary_backward(dev, op, &xg, &y, &gg, alpha(op)).unwrap());
        let (atol, rtol) = unary_tolerance(op);
        // Derivatives built from y (exp, sqrt, tanh...) inherit y's error, a little amplified.
        assert_close(&format!("{} backward", op.name()), &got, want, atol * 4.0, rtol * 4.0);
    }
}

/// Broadcast pairs, including scalars, size-1 dims and a missing leading dim.
const PAIRS: &[(&[usize], &[usize])] = &[(&[4, 6], &[4, 6]), (&[2, 3, 4], &[4]), (&[2, 1, 4], &[3, 1]), (&[], &[2, 3]), (&[5, 1], &[])];

fn binary_inputs(op: BinaryOp, a_shape: &[usize], b_shape: &[usize], seed: u64) -> (Tensor, Tensor) {
    match op {
        // Positive bases with any exponent; negative bases are checked separately.
        BinaryOp::Pow => (randu(a_shape, 0.1, 3.0, seed), randu(b_shape, -2.0, 3.0, seed + 1)),
        BinaryOp::Div => (randn(a_shape, seed), randu(b_shape, 0.5, 2.0, seed + 1)),
        // Few distinct values so comparisons and max/min meet ties.
        _ => {
            let round = |t: Tensor| {
                let v: Vec<f32> = vals(&t).iter().map(|x| (x * 2.0).round() / 2.0).collect();
                Tensor::from_vec(v, t.shape()).unwrap()
            };
            (round(randn(a_shape, seed)), round(randn(b_shape, seed + 1)))
        }
    }
}

#[test]
fn binary_forward_matches_cpu_with_broadcasting() {
    let dev = gpu!();
    for (i, &op) in BinaryOp::ALL.iter().enumerate() {
        for (j, &(sa, sb)) in PAIRS.iter().enumerate() {
            let (a, b) = binary_inputs(op, sa, sb, (i * 10 + j) as u64);
            let want = ops::binary(op, &a, &b).unwrap();
            let got = ew::binary(dev, op, &up(dev, &a), &up(dev, &b)).unwrap();
            assert_eq!(got.shape(), want.shape(), "{} {sa:?} {sb:?}", op.name());
            let got = got.download(dev).unwrap();
            if op.is_comparison() {
                assert_eq!(got.to_vec::<u8>().unwrap(), want.to_vec::<u8>().unwrap(), "{} {sa:?} {sb:?}", op.name());
            } else {
                let rtol = if op == BinaryOp::Pow { 2e-5 } else { 1e-6 };
                assert_close(&format!("{} {sa:?} {sb:?}", op.name()), &vals(&got), &vals(&want), 1e-7, rtol);
            }
        }
    }
}

#[test]
fn pow_follows_powf_for_negative_bases_and_zero() {
    let dev = gpu!();
    let a = Tensor::from_vec(vec![-2.0f32, -2.0, -2.0, 0.0, 0.0, 0.0, 3.0, -1.5], &[8]).unwrap();
    let b = Tensor::from_vec(vec![2.0f32, 3.0, -1.0, 0.0, 2.0, -1.0, 0.0, 2.0], &[8]).unwrap();
    let want = vals(&ops::binary(BinaryOp::Pow, &a, &b).unwrap());
    let got = down(dev, &ew::binary(dev, BinaryOp::Pow, &up(dev, &a), &up(dev, &b)).unwrap());
    // Signs, zeros and infinities exactly; magnitudes within pow's tolerance.
    assert_eq!(got.iter().map(|v| (v.signum(), v.is_infinite())).collect::<Vec<_>>(), want.iter().map(|v| (v.signum(), v.is_infinite())).collect::<Vec<_>>());
    assert_close("pow of negative bases and zero", &got, &want, 0.0, 2e-5);
    // Non-integer exponent of a negative base: NaN on both.
    let nan = down(dev, &ew::binary(dev, BinaryOp::Pow, &up(dev, &Tensor::scalar_f32(-2.0)), &up(dev, &Tensor::scalar_f32(0.5))).unwrap());
    assert!(nan[0].is_nan());
}

#[test]
fn strided_and_broadcast_views_are_read_in_place() {
    let dev = gpu!();
    // A transposed view and an expanded column: the general (strided) path of the map kernel.
    let a = randn(&[5, 7], 1);
    let b = randn(&[7, 1], 2);
    let want = ops::binary(BinaryOp::Sub, &a.transpose(0, 1).unwrap(), &b.expand(&[7, 5]).unwrap()).unwrap();
    let ag = up(dev, &a).transpose_last().unwrap();
    let bg = up(dev, &b).expand(&[7, 5]).unwrap();
    assert!(!ag.is_contiguous());
    let got = ew::binary(dev, BinaryOp::Sub, &ag, &bg).unwrap();
    assert_eq!(down(dev, &got), vals(&want));
    // Rank 4 permuted view through a unary op and a plain copy.
    let x = randn(&[2, 3, 4, 5], 3);
    let perm = [3usize, 1, 0, 2];
    let xp = x.permute(&perm.map(|p| p as isize)).unwrap();
    let got = ew::unary(dev, UnaryOp::Neg, &up(dev, &x).permute(&perm).unwrap(), 0.0).unwrap();
    assert_eq!(down(dev, &got), vals(&ops::unary(UnaryOp::Neg, &xp, 0.0).unwrap()));
    assert_eq!(down(dev, &up(dev, &x).permute(&perm).unwrap().contiguous(dev).unwrap()), vals(&xp));
}

#[test]
fn casts_and_where_match_cpu() {
    let dev = gpu!();
    let f = Tensor::from_vec(vec![-2.7f32, -0.5, 0.0, 0.4, 3.9, 1e6], &[2, 3]).unwrap();
    let i = ops::cast(&f, DType::I32).unwrap();
    for (from, to) in [(&f, DType::I32), (&f, DType::Bool), (&i, DType::F32), (&i, DType::Bool)] {
        let want = ops::cast(from, to).unwrap();
        let got = ew::cast(dev, &up(dev, from), to).unwrap().download(dev).unwrap();
        assert_eq!(got.dtype(), to);
        assert_eq!(format!("{:?}", dump(&got)), format!("{:?}", dump(&want)), "{} -> {to}", from.dtype());
    }
    let cond = ops::binary(BinaryOp::Greater, &f, &Tensor::scalar_f32(0.0)).unwrap();
    let other = randn(&[3], 5);
    let want = ops::where_(&cond, &f, &other).unwrap();
    let got = ew::where_(dev, &up(dev, &cond), &up(dev, &f), &up(dev, &other)).unwrap();
    assert_eq!(down(dev, &got), vals(&want));
    // Comparisons accept int32 (labels against argmax), compared as float32.
    let got = ew::binary(dev, BinaryOp::Equal, &up(dev, &i), &up(dev, &f)).unwrap().download(dev).unwrap();
    assert_eq!(got.to_vec::<u8>().unwrap(), ops::binary(BinaryOp::Equal, &i, &f).unwrap().to_vec::<u8>().unwrap());
}

fn dump(t: &Tensor) -> Vec<f64> {
    match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect(),
        DType::I32 => t.to_vec::<i32>().unwrap().iter().map(|&v| v as f64).collect(),
        _ => t.to_vec::<u8>().unwrap().iter().map(|&v| v as f64).collect(),
    }
}

#[test]
fn bad_input_is_an_error_naming_op_and_shapes() {
    let dev = gpu!();
    let a = up(dev, &randn(&[2, 3], 1));
    let b = up(dev, &randn(&[4], 2));
    let e = ew::binary(dev, BinaryOp::Add, &a, &b).unwrap_err().to_string();
    assert!(e.starts_with("add:") && e.contains("[2, 3]") && e.contains("[4]"), "{e}");
    let i = up(dev, &ops::cast(&randn(&[3], 3), DType::I32).unwrap());
    let e = ew::unary(dev, UnaryOp::Exp, &i, 0.0).unwrap_err().to_string();
    assert!(e.starts_with("exp:") && e.contains("int32"), "{e}");
}
