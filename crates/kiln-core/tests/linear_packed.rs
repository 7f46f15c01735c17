//! `linear` under inference packs its weight once for Kiln's AVX-512 GEMM (device/cpu/linear.rs):
//! the packed path matches the definition in float64 (weight given as [N, K] or as the
//! transposed view of a [K, N] matrix, as the ONNX importer hands a MatMul weight over; with and
//! without a bias and a residual, the residual also as a non-contiguous view), an
//! in-place write of the weight (an optimizer step, `assign`) is seen by the next call, and
//! recording autograd never packs (no extra memory for training).
use kiln_core::{autograd, ops, storage, Tensor};
use std::sync::Mutex;

/// The tests of this file run one at a time: one of them reads the process's live bytes.
static SERIAL: Mutex<()> = Mutex::new(());

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 9) % 2001) as f32 / 1000.0 - 1.0).collect()
}

/// x [rows, k] · wᵀ + bias with w [n, k], in float64.
fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, rows: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| x[r * k + p] as f64 * w[j * k + p] as f64).sum();
            out[r * n + j] = dot + bias.map_or(0.0, |b| b[j] as f64);
        }
    }
    out
}

/// `want` plus a residual of the same length.
fn plus(want: &[f64], residual: Option<&[f32]>) -> Vec<f64> {
    want.iter().enumerate().map(|(i, &w)| w + residual.map_or(0.0, |r| r[i] as f64)).collect()
}

fn assert_close(got: &Tensor, want: &[f64], k: usize, what: &str) {
    let got = got.to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()), "{what}: element {i}: {g} vs {w}");
    }
}

/// Runs `f` with autograd recording off (what `noGrad` does), restoring it after.
fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let previous = autograd::set_enabled(false);
    let out = f();
    autograd::set_enabled(previous);
    out
}

#[test]
fn packed_weights_match_the_definition() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Transformer shapes, edges of the 14 x 32 tiles, a product too thin for the packed path,
    // and 3-D input (rows stacked from the leading dims).
    for &(lead, k, n) in &[(&[128usize][..], 256usize, 256usize), (&[128][..], 1024, 256), (&[2, 15][..], 70, 33), (&[3][..], 40, 50), (&[29][..], 600, 100)] {
        let rows: usize = lead.iter().product();
        let (xv, wv, bv) = (values(rows * k, 1), values(n * k, 2), values(n, 3));
        let mut x_shape = lead.to_vec();
        x_shape.push(k);
        let x = Tensor::from_vec(xv.clone(), &x_shape).unwrap();
        let w = Tensor::from_vec(wv.clone(), &[n, k]).unwrap().set_requires_grad(true).unwrap();
        let b = Tensor::from_vec(bv.clone(), &[n]).unwrap();
        // The same weight as a [k, n] matrix, handed over as its transposed view.
        let w_kn: Vec<f32> = (0..k * n).map(|i| wv[(i % n) * k + i / n]).collect();
        let w_view = Tensor::from_vec(w_kn, &[k, n]).unwrap().transpose(0, 1).unwrap();
        let what = format!("{lead:?} x {k} -> {n}");
        // A residual [..lead, n], contiguous and as the transposed view of an [n, rows] matrix.
        let rv = values(rows * n, 5);
        let mut out_shape = lead.to_vec();
        out_shape.push(n);
        let r = Tensor::from_vec(rv.clone(), &out_shape).unwrap();
        let r_nt: Vec<f32> = (0..rows * n).map(|i| rv[(i % rows) * n + i / rows]).collect();
        let r_view = Tensor::from_vec(r_nt, &[n, rows]).unwrap().transpose(0, 1).unwrap().reshape(&out_shape.iter().map(|&d| d as isize).collect::<Vec<_>>()).unwrap();
        for bias in [None, Some(&b)] {
            for residual in [None, Some(&r), Some(&r_view)] {
                let want = plus(&reference(&xv, &wv, bias.map(|_| &bv[..]), rows, k, n), residual.map(|_| &rv[..]));
                let what = format!("{what}, bias {}, residual {}", bias.is_some(), residual.map_or("none", |t| if t.is_contiguous() { "contiguous" } else { "view" }));
                let tracked = ops::linear(&x, &w, bias, residual).unwrap();
                assert_close(&tracked, &want, k, &format!("{what}, recording"));
                for round in 0..2 {
                    let packed = no_grad(|| ops::linear(&x, &w, bias, residual).unwrap());
                    assert_close(&packed, &want, k, &format!("{what}, inference {round}"));
                    let viewed = no_grad(|| ops::linear(&x, &w_view, bias, residual).unwrap());
                    assert_close(&viewed, &want, k, &format!("{what}, transposed view {round}"));
                }
            }
        }
    }
}

#[test]
fn an_in_place_write_reaches_the_next_inference_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (rows, k, n) = (64, 96, 80);
    let xv = values(rows * k, 4);
    let x = Tensor::from_vec(xv.clone(), &[rows, k]).unwrap();
    let (w1, w2) = (values(n * k, 5), values(n * k, 6));
    let mut w = Tensor::from_vec(w1.clone(), &[n, k]).unwrap();
    assert_close(&no_grad(|| ops::linear(&x, &w, None, None).unwrap()), &reference(&xv, &w1, None, rows, k, n), k, "before");
    w.assign(&Tensor::from_vec(w2.clone(), &[n, k]).unwrap()).unwrap();
    assert_close(&no_grad(|| ops::linear(&x, &w, None, None).unwrap()), &reference(&xv, &w2, None, rows, k, n), k, "after assign");
    w.data_mut_f32("test").unwrap().iter_mut().for_each(|v| *v = -*v);
    let negated: Vec<f32> = w2.iter().map(|v| -v).collect();
    assert_close(&no_grad(|| ops::linear(&x, &w, None, None).unwrap()), &reference(&xv, &negated, None, rows, k, n), k, "after an optimizer-style write");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn only_inference_keeps_a_packed_copy() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !kiln_core::device::cpu::gemm_avx512::cpu_supports() {
        return;
    }
    let (rows, k, n) = (128, 256, 512);
    let x = Tensor::from_vec(values(rows * k, 7), &[rows, k]).unwrap();
    let w = Tensor::from_vec(values(n * k, 8), &[n, k]).unwrap().set_requires_grad(true).unwrap();
    // Compare the live bytes each call leaves behind with the packed weight's size (n·k floats).
    let weight_bytes = (n * k * 4) as isize;
    let live = || storage::live_memory().1 as isize;
    let before = live();
    drop(ops::linear(&x, &w, None, None).unwrap());
    let after_training_call = live();
    assert!(after_training_call - before < weight_bytes / 2, "a recorded call keeps no packed copy: {} bytes", after_training_call - before);
    let y = no_grad(|| ops::linear(&x, &w, None, None).unwrap());
    drop(y);
    let after_inference = live();
    assert!(after_inference - after_training_call >= weight_bytes, "an inference call keeps the packed weight: {} bytes", after_inference - after_training_call);
    drop(w);
    assert!(live() - after_inference <= -weight_bytes, "freed with the weight");
}

/// GELU by its definition, 0.5·x·(1 + erf(x/√2)), erf in float64: its Taylor series below
/// |z| = 3, 1 − erfc(|z|) from erfc's continued fraction above (the series cancels there).
fn gelu64(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let a = z.abs();
    let erf_abs = if a < 3.0 {
        let (mut sum, mut term, mut n) = (0.0f64, a, 0.0f64);
        while term.abs() > 1e-18 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -a * a / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut f = a;
        for k in (1..=80).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    0.5 * x * (1.0 + erf_abs.copysign(z))
}

#[test]
fn activated_linear_matches_the_definition_and_the_composed_gradient() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let gelu = ops::Activation { op: ops::UnaryOp::Gelu, alpha: 0.0 };
    // The feed-forward's packed product at batch 1 (the activation per block, both threads), a
    // product too thin for the packed path (the activation after the product), and k = 0.
    for &(rows, k, n) in &[(128usize, 256usize, 1024usize), (3, 40, 50), (5, 0, 7)] {
        let (xv, wv, bv, rv) = (values(rows * k, 11), values(n * k, 12), values(n, 13), values(rows * n, 14));
        let x = Tensor::from_vec(xv.clone(), &[rows, k]).unwrap();
        let w = Tensor::from_vec(wv.clone(), &[n, k]).unwrap();
        let b = Tensor::from_vec(bv.clone(), &[n]).unwrap();
        let r = Tensor::from_vec(rv.clone(), &[rows, n]).unwrap();
        for (bias, residual) in [(None, None), (Some(&b), None), (Some(&b), Some(&r))] {
            let before = plus(&reference(&xv, &wv, bias.map(|_| &bv[..]), rows, k, n), residual.map(|_| &rv[..]));
            let want: Vec<f64> = before.iter().map(|&v| gelu64(v)).collect();
            let fused = no_grad(|| ops::linear_activated(&x, &w, bias, residual, Some(gelu)).unwrap());
            assert_close(&fused, &want, k.max(1), &format!("gelu({rows} x {k} -> {n}), bias {}, residual {}", bias.is_some(), residual.is_some()));
        }
    }
    // Recording autograd: linear then the unary op, so the gradient reaches x, W and the bias as
    // if the GELU were called after.
    let (rows, k, n) = (16, 64, 48);
    let x = Tensor::from_vec(values(rows * k, 21), &[rows, k]).unwrap().set_requires_grad(true).unwrap();
    let w = Tensor::from_vec(values(n * k, 22), &[n, k]).unwrap().set_requires_grad(true).unwrap();
    let b = Tensor::from_vec(values(n, 23), &[n]).unwrap().set_requires_grad(true).unwrap();
    let grads = |y: Tensor| {
        let loss = ops::reduce(ops::ReduceOp::Sum, &y, &[0, 1], false, 0).unwrap();
        autograd::backward(&loss, None).unwrap();
        let g = [&x, &w, &b].map(|t| t.grad().unwrap().to_vec::<f32>().unwrap());
        [&x, &w, &b].iter().for_each(|t| t.zero_grad());
        g
    };
    let fused = grads(ops::linear_activated(&x, &w, Some(&b), None, Some(gelu)).unwrap());
    let composed = grads(ops::unary(ops::UnaryOp::Gelu, &ops::linear(&x, &w, Some(&b), None).unwrap(), 0.0).unwrap());
    for (f, c) in fused.iter().zip(&composed) {
        assert!(f.iter().zip(c).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())), "gradients differ");
    }
}
