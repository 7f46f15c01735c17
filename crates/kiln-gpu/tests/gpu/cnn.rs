//! The CNN family (conv2d / convTranspose2d passes, pooling, batch normalization) against
//! kiln-core: forward values, and backward against kiln-core's autograd gradients.
//! Tolerances: conv 1e-4 absolute + 1e-4 relative (values of magnitude ~sqrt(K) with K <= 54,
//! summed in another order); pooling: max exact forward, 1e-6 backward (sums of the same terms
//! in another order); avg 1e-6 + 1e-5 relative; batch norm 1e-4 relative + 2e-5 absolute (f32
//! tree sums on the device against kiln-core's f64 per-channel totals).

use crate::common::*;
use kiln_core::ops::conv::{conv2d_geometry, conv_transpose2d_geometry};
use kiln_core::ops::pool::Plan;
use kiln_core::ops::{self, BatchNorm, ConvParams, Pool2d};
use kiln_core::Tensor;
use kiln_gpu::kernels::cnn::{batch_norm, conv, pool};
use kiln_gpu::kernels::reduce_more::reduce_any;
use kiln_gpu::{GpuDevice, GpuTensor};

const CONV_TOL: (f32, f32) = (1e-4, 1e-4);

/// The bias gradient as kiln-core builds it on the GPU: dy summed over batch and positions.
fn bias_grad(dev: &GpuDevice, dy: &GpuTensor) -> GpuTensor {
    reduce_any(dev, ops::ReduceOp::Sum, dy, &[0, 2, 3], false, 0).unwrap()
}

/// (input shape, weight shape, params, with bias)
fn conv_cases() -> Vec<([usize; 4], [usize; 4], ConvParams, bool)> {
    let p = |stride, padding, dilation, groups| ConvParams { stride, padding, dilation, groups };
    vec![
        ([2, 3, 7, 6], [4, 3, 3, 3], p([1, 1], [1, 1, 1, 1], [1, 1], 1), true),
        // Strides, asymmetric padding, dilation and groups together; odd sizes.
        ([1, 4, 9, 8], [6, 2, 3, 2], p([2, 3], [1, 0, 2, 1], [2, 1], 2), true),
        // Pointwise with groups, no bias.
        ([3, 6, 5, 5], [6, 2, 1, 1], p([1, 1], [0; 4], [1, 1], 3), false),
        // Depthwise, stride 2.
        ([2, 4, 6, 7], [4, 1, 3, 3], p([2, 2], [1, 1, 1, 1], [1, 1], 4), true),
        // A wide product: more output positions than one 64-column tile.
        ([1, 2, 12, 13], [3, 2, 2, 3], p([1, 1], [0, 1, 0, 0], [1, 2], 1), false),
    ]
}

#[track_caller]
fn close(what: &str, got: &GpuTensor, want: &[f32], dev: &GpuDevice, tol: (f32, f32)) {
    assert_close(what, &down(dev, got), want, tol.0, tol.1);
}

fn conv_check(dev: &GpuDevice, (xs, ws, p, with_bias): ([usize; 4], [usize; 4], ConvParams, bool), seed: u64) {
    let what = format!("conv2d {xs:?} {ws:?} {p:?}");
    let (x, w, b) = (randn(&xs, seed), randn(&ws, seed + 1), randn(&[ws[0]], seed + 2));
    let bias = with_bias.then_some(&b);
    let geo = conv2d_geometry("conv2d", &x, &w, bias, &p).unwrap();
    let want = ops::conv2d(&x, &w, bias, &p).unwrap();
    let (gx, gw, gb) = (up(dev, &x), up(dev, &w), up(dev, &b));
    let got = conv::forward(dev, &geo, &gx, &gw, with_bias.then_some(&gb), "conv2d").unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}");
    close(&format!("{what} forward"), &got, &vals(&want), dev, CONV_TOL);

    let g = randn(want.shape(), seed + 3);
    let inputs = if with_bias { vec![x.clone(), w.clone(), b.clone()] } else { vec![x.clone(), w.clone()] };
    let cpu = cpu_grads(&inputs, &g, |t| ops::conv2d(&t[0], &t[1], t.get(2), &p).unwrap());
    let gg = up(dev, &g);
    close(&format!("{what} input grad"), &conv::input_grad(dev, &geo, &gg, &gw, None, "conv2d").unwrap(), &cpu[0], dev, CONV_TOL);
    close(&format!("{what} weight grad"), &conv::weight_grad(dev, &geo, &gx, &gg, "conv2d").unwrap(), &cpu[1], dev, CONV_TOL);
    if with_bias {
        close(&format!("{what} bias grad"), &bias_grad(dev, &gg), &cpu[2], dev, CONV_TOL);
    }
}

#[test]
fn conv2d_passes_match_cpu() {
    let dev = gpu!();
    for (k, case) in conv_cases().into_iter().enumerate() {
        conv_check(dev, case, 10 * k as u64);
    }
}

#[test]
fn conv2d_chunked_over_images_matches_cpu() {
    let dev = gpu!();
    // A budget of one image's im2col matrix (plus a little): every pass runs image by image
    // (other tests running meanwhile only change their chunking, not their results).
    let per_image = 3 * 3 * 3 * 7 * 6;
    conv::COL_BUDGET_OVERRIDE.store(per_image + 5, std::sync::atomic::Ordering::Relaxed);
    conv_check(dev, ([3, 3, 7, 6], [4, 3, 3, 3], ConvParams { padding: [1, 1, 1, 1], ..Default::default() }, true), 77);
    conv::COL_BUDGET_OVERRIDE.store(0, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn conv_transpose2d_runs_on_the_conv_passes() {
    let dev = gpu!();
    // (input, weight [in, out/groups, kh, kw], params, output padding)
    let cases = [
        ([2, 4, 5, 4], [4, 3, 3, 3], ConvParams { stride: [2, 2], padding: [1, 1, 1, 1], ..Default::default() }, [1, 0]),
        ([1, 4, 3, 5], [4, 1, 2, 3], ConvParams { stride: [1, 2], padding: [0, 1, 1, 0], dilation: [2, 1], groups: 2 }, [1, 1]),
    ];
    for (k, (xs, ws, p, op)) in cases.into_iter().enumerate() {
        let seed = 100 + 10 * k as u64;
        let what = format!("convTranspose2d {xs:?} {ws:?} {p:?} {op:?}");
        let (x, w, b) = (randn(&xs, seed), randn(&ws, seed + 1), randn(&[ws[1] * p.groups], seed + 2));
        let geo = conv_transpose2d_geometry("convTranspose2d", &x, &w, Some(&b), &p, op).unwrap();
        let want = ops::conv_transpose2d(&x, &w, Some(&b), &p, op).unwrap();
        let (gx, gw, gb) = (up(dev, &x), up(dev, &w), up(dev, &b));
        let got = conv::input_grad(dev, &geo, &gx, &gw, Some(&gb), "convTranspose2d").unwrap();
        assert_eq!(got.shape(), want.shape(), "{what}");
        close(&format!("{what} forward"), &got, &vals(&want), dev, CONV_TOL);

        let g = randn(want.shape(), seed + 3);
        let cpu = cpu_grads(&[x.clone(), w.clone(), b.clone()], &g, |t| ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), &p, op).unwrap());
        let gg = up(dev, &g);
        close(&format!("{what} input grad"), &conv::forward(dev, &geo, &gg, &gw, None, "convTranspose2d").unwrap(), &cpu[0], dev, CONV_TOL);
        close(&format!("{what} weight grad"), &conv::weight_grad(dev, &geo, &gg, &gx, "convTranspose2d").unwrap(), &cpu[1], dev, CONV_TOL);
        close(&format!("{what} bias grad"), &bias_grad(dev, &gg), &cpu[2], dev, CONV_TOL);
    }
}

/// Values on a coarse grid, so windows hold ties (the first maximum must win).
fn tied(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f32> = vals(&randu(shape, -3.0, 3.0, seed)).iter().map(|v| v.round()).collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn pool_cases() -> Vec<([usize; 4], Pool2d)> {
    let p = |kernel, stride, padding, dilation| Pool2d { kernel, stride, padding, dilation };
    vec![
        ([2, 3, 7, 8], p([3, 3], [2, 2], [1, 1, 1, 1], [1, 1])),
        // Overlapping windows, dilation, asymmetric padding.
        ([1, 2, 9, 6], p([2, 3], [1, 2], [0, 1, 1, 0], [2, 1])),
        ([3, 1, 4, 4], p([2, 2], [2, 2], [0; 4], [1, 1])),
    ]
}

#[test]
fn max_pool2d_matches_cpu_with_ties() {
    let dev = gpu!();
    for (k, (xs, p)) in pool_cases().into_iter().enumerate() {
        let what = format!("maxPool2d {xs:?} {p:?}");
        let x = tied(&xs, k as u64);
        let want = ops::max_pool2d(&x, p).unwrap();
        let plan = Plan::new("maxPool2d", &x, &p).unwrap();
        let (got, idx) = pool::max_pool2d(dev, &plan, &up(dev, &x)).unwrap();
        assert_eq!(got.shape(), want.shape(), "{what}");
        assert_eq!(down(dev, &got), vals(&want), "{what} forward");
        let g = randn(want.shape(), 50 + k as u64);
        let cpu = cpu_grads(std::slice::from_ref(&x), &g, |t| ops::max_pool2d(&t[0], p).unwrap());
        let gx = pool::max_pool2d_backward(dev, &plan, &up(dev, &g), &idx, &xs).unwrap();
        close(&format!("{what} backward"), &gx, &cpu[0], dev, (1e-6, 1e-6));
    }
}

#[test]
fn avg_pool2d_matches_cpu_both_divisors() {
    let dev = gpu!();
    for (k, (xs, p)) in pool_cases().into_iter().enumerate() {
        for include in [true, false] {
            let what = format!("avgPool2d {xs:?} {p:?} countIncludePad={include}");
            let x = randn(&xs, 20 + k as u64);
            let want = ops::avg_pool2d(&x, p, include).unwrap();
            let plan = Plan::new("avgPool2d", &x, &p).unwrap();
            let got = pool::avg_pool2d(dev, &plan, &up(dev, &x), include).unwrap();
            close(&format!("{what} forward"), &got, &vals(&want), dev, (1e-6, 1e-5));
            let g = randn(want.shape(), 60 + k as u64);
            let cpu = cpu_grads(std::slice::from_ref(&x), &g, |t| ops::avg_pool2d(&t[0], p, include).unwrap());
            let gx = pool::avg_pool2d_backward(dev, &plan, &up(dev, &g), &xs, include).unwrap();
            close(&format!("{what} backward"), &gx, &cpu[0], dev, (1e-6, 1e-5));
        }
    }
}

const BN_TOL: (f32, f32) = (2e-5, 1e-4);

/// One batch-norm case: forward values, the running statistics after it, and every gradient.
fn bn_check(dev: &GpuDevice, shape: &[usize], affine: bool, running: bool, training: bool, seed: u64) {
    let what = format!("batchNorm {shape:?} affine={affine} running={running} training={training}");
    let c = shape[1];
    // An offset mean: the centered second pass matters.
    let x = ops::binary(ops::BinaryOp::Add, &randn(shape, seed), &Tensor::scalar_f32(3.0)).unwrap();
    let (w, b) = (randu(&[c], 0.5, 1.5, seed + 1), randn(&[c], seed + 2));
    let (rm0, rv0) = (randn(&[c], seed + 3), randu(&[c], 0.5, 2.0, seed + 4));
    let options = BatchNorm { training, momentum: 0.1, eps: 1e-5 };
    let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
    let want = ops::batch_norm(&x, affine.then_some(&w), affine.then_some(&b), running.then_some((&mut rm, &mut rv)), options).unwrap();

    let (gw, gb) = (up(dev, &w), up(dev, &b));
    // Fresh uploads own their buffers, as the in-place update requires.
    let (grm, grv) = (up(dev, &rm0), up(dev, &rv0));
    let gx = up(dev, &x);
    let (y, stats) = batch_norm::batch_norm_in_place(dev, &gx, affine.then_some(&gw), affine.then_some(&gb), running.then_some((&grm, &grv)), options).unwrap();
    close(&format!("{what} forward"), &y, &vals(&want), dev, BN_TOL);
    if running {
        close(&format!("{what} running mean"), &grm, &vals(&rm), dev, BN_TOL);
        close(&format!("{what} running var"), &grv, &vals(&rv), dev, BN_TOL);
    }

    let g = randn(shape, seed + 5);
    let mut inputs = vec![x.clone()];
    if affine {
        inputs.extend([w.clone(), b.clone()]);
    }
    let cpu = cpu_grads(&inputs, &g, |t| {
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        ops::batch_norm(&t[0], t.get(1), t.get(2), running.then_some((&mut rm, &mut rv)), options).unwrap()
    });
    let batch_stats = training || !running;
    let (dx, dw, db) = batch_norm::batch_norm_backward(dev, &up(dev, &g), &gx, &stats, affine.then_some(&gw), batch_stats, true).unwrap();
    // dx is a difference of terms of the size of g: bound it by g's scale, not its own.
    close(&format!("{what} input grad"), &dx.unwrap(), &cpu[0], dev, (1e-4, 1e-4));
    if affine {
        close(&format!("{what} weight grad"), &dw, &cpu[1], dev, (1e-4, 1e-4));
        close(&format!("{what} bias grad"), &db, &cpu[2], dev, (1e-4, 1e-4));
    }
}

#[test]
fn batch_norm_matches_cpu_in_every_mode() {
    let dev = gpu!();
    bn_check(dev, &[4, 3, 5, 6], true, true, true, 1);
    bn_check(dev, &[4, 3, 5, 6], true, true, false, 2);
    bn_check(dev, &[9, 5], false, false, true, 3);
    bn_check(dev, &[2, 3, 17, 19], true, false, false, 4);
    bn_check(dev, &[3, 2, 4, 5, 3], false, true, true, 5);
}
