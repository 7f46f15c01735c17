//! crossEntropy forward and backward (weights, label smoothing, every reduction) and the
//! reductions beyond sum/mean/max/min (variance with a correction, logSumExp, argmax, argmin)
//! against kiln-core. Tolerances: loss and gradients 2e-6 absolute + 2e-5 relative; variance
//! 1e-5 relative (the CPU accumulates in f64); logSumExp 2e-6 relative; arg reductions exact.

use crate::common::*;
use kiln_core::ops::{self, ReduceOp, Reduction};
use kiln_core::Tensor;
use kiln_gpu::kernels::loss::{cross_entropy, cross_entropy_backward};
use kiln_gpu::kernels::reduce_more::reduce_any;

#[test]
fn cross_entropy_matches_cpu_forward_and_backward() {
    let dev = gpu!();
    // 300 classes: more than one element per thread in a row.
    for (n, c) in [(7usize, 5usize), (3, 300)] {
        let logits = ops::binary(ops::BinaryOp::Mul, &randn(&[n, c], 1), &Tensor::scalar_f32(3.0)).unwrap();
        let targets = Tensor::from_vec((0..n).map(|i| ((i * 7 + 3) % c) as i32).collect::<Vec<_>>(), &[n]).unwrap();
        let weights = randu(&[c], 0.2, 2.0, 2);
        for w in [None, Some(&weights)] {
            for smoothing in [0.0, 0.1] {
                for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    let what = format!("[{n}, {c}] weights {} smoothing {smoothing} {reduction:?}", w.is_some());
                    let want = ops::cross_entropy(&logits, &targets, w, smoothing, reduction).unwrap();
                    let (lg, tg, wg) = (up(dev, &logits), up(dev, &targets), w.map(|w| up(dev, w)));
                    let got = cross_entropy(dev, &lg, &tg, wg.as_ref(), smoothing, reduction).unwrap();
                    assert_eq!(got.shape(), want.shape(), "{what}");
                    assert_close(&what, &down(dev, &got), &vals(&want), 2e-6, 2e-5);
                    let seed = randn(want.shape(), 3);
                    let cpu = cpu_grads(&[logits.clone()], &seed, |t| ops::cross_entropy(&t[0], &targets, w, smoothing, reduction).unwrap());
                    let gx = cross_entropy_backward(dev, &lg, &tg, wg.as_ref(), smoothing, reduction, &up(dev, &seed)).unwrap();
                    assert_close(&format!("{what} backward"), &down(dev, &gx), &cpu[0], 2e-6, 2e-5);
                }
            }
        }
    }
}

#[test]
fn cross_entropy_bad_targets_are_reported() {
    gpu!();
    // Its own device: the error flag is per device (see index.rs).
    let own = kiln_gpu::GpuDevice::new().unwrap();
    let dev = &own;
    let logits = up(dev, &randn(&[3, 4], 1));
    let targets = up(dev, &Tensor::from_vec(vec![0i32, 4, 1], &[3]).unwrap());
    let loss = cross_entropy(dev, &logits, &targets, None, 0.0, Reduction::Mean).unwrap();
    let e = loss.download(dev).unwrap_err().to_string();
    assert!(e.starts_with("crossEntropy: target 4 at row 1 is out of range for 4 classes"), "{e}");
    let e = cross_entropy(dev, &logits, &up(dev, &Tensor::from_vec(vec![0.0f32; 3], &[3]).unwrap()), None, 0.0, Reduction::Mean).unwrap_err().to_string();
    assert!(e.starts_with("crossEntropy: targets must be int32 [3]"), "{e}");
}

#[test]
fn variance_log_sum_exp_and_arg_reductions_match_cpu() {
    let dev = gpu!();
    // Offset by 5 so the variance's cancellation is exercised; 600-long rows span threads.
    let x = ops::binary(ops::BinaryOp::Add, &randn(&[3, 4, 600], 4), &Tensor::scalar_f32(5.0)).unwrap();
    let xg = up(dev, &x);
    for axes in [&[][..], &[0], &[2], &[-1], &[0, 2], &[1, 2]] {
        for keep in [false, true] {
            for (op, correction) in [(ReduceOp::Variance, 0), (ReduceOp::Variance, 1), (ReduceOp::LogSumExp, 0)] {
                let want = ops::reduce(op, &x, axes, keep, correction).unwrap();
                let got = reduce_any(dev, op, &xg, axes, keep, correction).unwrap();
                assert_eq!(got.shape(), want.shape());
                let rtol = if op == ReduceOp::Variance { 1e-5 } else { 2e-6 };
                assert_close(&format!("{} {axes:?} keep {keep} correction {correction}", op.name()), &down(dev, &got), &vals(&want), 1e-7, rtol);
            }
        }
    }
    // Ties: the first extreme index wins, as on the CPU.
    let tied = Tensor::from_vec(vec![1.0f32, 3.0, 3.0, -2.0, -2.0, 0.0, 5.0, 5.0, 5.0], &[3, 3]).unwrap();
    for (t, axes) in [(&x, &[][..]), (&x, &[1]), (&x, &[-1]), (&tied, &[1]), (&tied, &[0]), (&tied, &[])] {
        for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
            let want = ops::reduce(op, t, axes, false, 0).unwrap();
            let got = reduce_any(dev, op, &up(dev, t), axes, false, 0).unwrap().download(dev).unwrap();
            assert_eq!((got.shape(), got.to_vec::<i32>()), (want.shape(), want.to_vec::<i32>()), "{} {axes:?}", op.name());
        }
    }
    let e = reduce_any(dev, ReduceOp::ArgMax, &xg, &[0, 1], false, 0).unwrap_err().to_string();
    assert!(e.starts_with("argmax: takes one axis"), "{e}");
}
