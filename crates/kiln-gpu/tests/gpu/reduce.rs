//! sum / mean / max / min over axes. Tolerance: max/min exact; sum/mean 1e-5 relative to the sum
//! of |x| (the GPU's tree order differs from the CPU's blocked f64 sum).

use crate::common::*;
use kiln_core::ops::{self, ReduceOp};
use kiln_core::Tensor;
use kiln_gpu::kernels::reduce::reduce;

const OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];

#[track_caller]
fn check(dev: &kiln_gpu::GpuDevice, x: &Tensor, xg: &kiln_gpu::GpuTensor, axes: &[isize], keep: bool) {
    for op in OPS {
        let want = ops::reduce(op, x, axes, keep, 0).unwrap();
        let got = reduce(dev, op, xg, axes, keep).unwrap();
        assert_eq!(got.shape(), want.shape(), "{} {axes:?}", op.name());
        let got = down(dev, &got);
        let what = format!("{} over {axes:?} of {:?}", op.name(), x.shape());
        if matches!(op, ReduceOp::Max | ReduceOp::Min) {
            assert_eq!(got, vals(&want), "{what}");
        } else {
            // Scale by the mean |x| of a row: cancellation makes a plain relative bound meaningless.
            let abs = ops::reduce(op, &ops::unary(ops::UnaryOp::Abs, x, 0.0).unwrap(), axes, keep, 0).unwrap();
            let bound: Vec<f32> = vals(&abs).iter().map(|a| 1e-5 * a + 1e-7).collect();
            for ((g, w), b) in got.iter().zip(vals(&want)).zip(bound) {
                assert!((g - w).abs() <= b, "{what}: GPU {g} vs CPU {w}");
            }
        }
    }
}

#[test]
fn reductions_match_cpu_over_any_axes() {
    let dev = gpu!();
    let x = randn(&[4, 5, 6], 1);
    let xg = up(dev, &x);
    for axes in [&[][..], &[0], &[1], &[2], &[-1], &[0, 2], &[1, 2], &[0, 1, 2]] {
        for keep in [false, true] {
            check(dev, &x, &xg, axes, keep);
        }
    }
}

#[test]
fn long_rows_take_the_two_pass_path() {
    let dev = gpu!();
    // One row of 300k (chunked, second pass over 74 partials) and 3 rows of 50k (chunked too).
    let x = randn(&[300_000], 2);
    check(dev, &x, &up(dev, &x), &[], false);
    let y = ops::binary(ops::BinaryOp::Add, &randn(&[3, 50_000], 3), &Tensor::scalar_f32(2.0)).unwrap();
    check(dev, &y, &up(dev, &y), &[1], true);
}

#[test]
fn strided_input_and_empty_axes() {
    let dev = gpu!();
    let x = randn(&[6, 4], 4);
    let xt = x.transpose(0, 1).unwrap();
    let xg = up(dev, &x).transpose_last().unwrap();
    check(dev, &xt, &xg, &[0], false);
    // An empty reduced dimension: sum 0, mean NaN, max an error naming the op and shape.
    let e = Tensor::from_vec(Vec::<f32>::new(), &[3, 0]).unwrap();
    let eg = up(dev, &e);
    assert_eq!(down(dev, &reduce(dev, ReduceOp::Sum, &eg, &[1], false).unwrap()), vec![0.0; 3]);
    assert!(down(dev, &reduce(dev, ReduceOp::Mean, &eg, &[1], false).unwrap()).iter().all(|v| v.is_nan()));
    let err = reduce(dev, ReduceOp::Max, &eg, &[1], false).unwrap_err().to_string();
    assert!(err.starts_with("max:") && err.contains("[3, 0]"), "{err}");
    let err = reduce(dev, ReduceOp::Sum, &eg, &[2], false).unwrap_err().to_string();
    assert!(err.starts_with("sum:") && err.contains("axis 2"), "{err}");
}
