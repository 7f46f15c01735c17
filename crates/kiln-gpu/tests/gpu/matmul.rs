//! Tiled matmul: edge tiles, transposes, batches with broadcasting, vectors (its gradients are
//! transposed matmuls, composed by kiln-core).
//! Tolerance: 1e-6 + 2e-5 * sqrt(K) relative to sum |a||b| of each output (different summation
//! order from the CPU's GEMM).

use crate::common::*;
use kiln_core::ops;
use kiln_core::Tensor;
use kiln_gpu::kernels::matmul::matmul;

#[track_caller]
fn check(dev: &kiln_gpu::GpuDevice, a: &Tensor, b: &Tensor, ta: bool, tb: bool) {
    let want = ops::matmul(a, b, ta, tb).unwrap();
    let got = matmul(dev, &up(dev, a), &up(dev, b), ta, tb).unwrap();
    assert_eq!(got.shape(), want.shape(), "{:?} x {:?} ta={ta} tb={tb}", a.shape(), b.shape());
    // Bound each element by the same product over |a| and |b|.
    let abs = |t: &Tensor| ops::unary(ops::UnaryOp::Abs, t, 0.0).unwrap();
    let scale = vals(&ops::matmul(&abs(a), &abs(b), ta, tb).unwrap());
    let k = if ta { a.shape()[a.rank().saturating_sub(2)] } else { a.shape()[a.rank() - 1] };
    let tol = 2e-6 * (k as f32).sqrt().max(1.0);
    for (i, (g, w)) in down(dev, &got).iter().zip(vals(&want)).enumerate() {
        assert!((g - w).abs() <= 1e-6 + tol * scale[i], "{:?} x {:?} ta={ta} tb={tb} element {i}: GPU {g} vs CPU {w}", a.shape(), b.shape());
    }
}

#[test]
fn matmul_matches_cpu_on_edge_tiles_and_transposes() {
    let dev = gpu!();
    for (m, k, n) in [(1, 1, 1), (17, 33, 65), (64, 64, 64), (130, 70, 129), (3, 200, 2)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(&if ta { [k, m] } else { [m, k] }, (m * k) as u64);
            let b = randn(&if tb { [n, k] } else { [k, n] }, (k * n + 1) as u64);
            check(dev, &a, &b, ta, tb);
        }
    }
}

#[test]
fn batched_broadcast_and_vector_matmul() {
    let dev = gpu!();
    check(dev, &randn(&[3, 17, 9], 1), &randn(&[9, 5], 2), false, false);
    check(dev, &randn(&[2, 1, 5, 4], 3), &randn(&[3, 4, 6], 4), false, false);
    check(dev, &randn(&[2, 3, 4, 5], 5), &randn(&[2, 3, 6, 5], 6), false, true);
    check(dev, &randn(&[7], 7), &randn(&[7, 3], 8), false, false);
    check(dev, &randn(&[4, 7], 9), &randn(&[7], 10), false, false);
    check(dev, &randn(&[7], 11), &randn(&[7], 12), false, false);
    // K = 0 gives zeros.
    let z = matmul(dev, &up(dev, &randn(&[3, 0], 1)), &up(dev, &randn(&[0, 2], 2)), false, false).unwrap();
    assert_eq!(down(dev, &z), vec![0.0; 6]);
}

#[test]
fn matmul_errors_name_shapes() {
    let dev = gpu!();
    let e = matmul(dev, &up(dev, &randn(&[2, 3], 1)), &up(dev, &randn(&[4, 5], 2)), false, false).unwrap_err().to_string();
    assert!(e.starts_with("matmul:") && e.contains("[2, 3]") && e.contains("[4, 5]") && e.contains("K=3 vs K=4"), "{e}");
    let e = matmul(dev, &up(dev, &randn(&[2, 3, 4], 1)), &up(dev, &randn(&[5, 4, 2], 2)), false, false).unwrap_err().to_string();
    assert!(e.contains("batch dimensions"), "{e}");
}
