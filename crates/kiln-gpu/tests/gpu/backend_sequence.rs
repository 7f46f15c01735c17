//! The Transformer and RNN family through kiln-core's ops on tensors that live on the GPU:
//! attention (causal, padding mask, heads split by a permuted view, dropout) and the recurrent
//! layers, forward and backward through kiln-core's autograd, compared with the same calls on the
//! CPU, and with no readback until a value is asked for.

use crate::backend::gpu_backend;
use crate::common::{assert_close, randn, vals};
use kiln_core::device::{to_device, Device};
use kiln_core::ops::{self, AttentionOptions, BinaryOp, Cell, ReduceOp, Weights};
use kiln_core::{autograd, Tensor};
use std::sync::Arc;

fn down(t: &Tensor) -> Vec<f32> {
    vals(&to_device(t, None).unwrap())
}

/// sum(f(leaves) ∘ seed) on `on` (None: CPU): the value of f and every leaf's gradient, read back
/// only after backward; asserts that the device run read nothing back before that.
fn run(dev: &Arc<dyn Device>, on: Option<&Arc<dyn Device>>, inputs: &[Tensor], seed: &Tensor, f: &dyn Fn(&[Tensor]) -> Tensor) -> (Vec<f32>, Vec<Vec<f32>>) {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| to_device(t, on).unwrap().set_requires_grad(true).unwrap()).collect();
    let seed = to_device(seed, on).unwrap();
    let before = dev.readbacks();
    let out = f(&leaves);
    let loss = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &out, &seed).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    if on.is_some() {
        assert_eq!(dev.readbacks(), before, "forward and backward on the GPU read something back");
        assert!(out.device().is_some() && leaves.iter().all(|l| l.grad().unwrap().device().is_some()));
    }
    (down(&out), leaves.iter().map(|l| down(&l.grad().unwrap())).collect())
}

fn compare(dev: &Arc<dyn Device>, what: &str, inputs: &[Tensor], out_shape: &[usize], f: &dyn Fn(&[Tensor]) -> Tensor) {
    let seed = randn(out_shape, 99);
    let (cpu_out, cpu_grads) = run(dev, None, inputs, &seed, f);
    let (gpu_out, gpu_grads) = run(dev, Some(dev), inputs, &seed, f);
    assert_close(&format!("{what}: value"), &gpu_out, &cpu_out, 2e-5, 1e-4);
    for (i, (g, c)) in gpu_grads.iter().zip(&cpu_grads).enumerate() {
        assert_close(&format!("{what}: gradient of input {i}"), g, c, 2e-5, 1e-4);
    }
}

#[test]
fn attention_on_device_matches_cpu() {
    gpu_backend!(dev);
    let (b, t, h, d) = (2, 19, 3, 8);
    // q, k, v as a [B, T, H·D] projection split into heads (a permuted view), as MultiHeadAttention does.
    let heads = |x: &Tensor| x.reshape(&[b as isize, t as isize, h as isize, d as isize]).unwrap().permute(&[0, 2, 1, 3]).unwrap();
    let inputs = vec![randn(&[b, t, h * d], 1), randn(&[b, t, h * d], 2), randn(&[b, t, h * d], 3)];
    let mask_values: Vec<u8> = (0..b * t).map(|i| (i % t >= t - 4 && i >= t) as u8).collect();
    let mask = Tensor::from_vec(mask_values, &[b, t]).unwrap();
    for (causal, masked, dropout) in [(false, false, 0.0), (true, true, 0.0), (true, false, 0.25)] {
        let options = AttentionOptions { causal, dropout, seed: Some(5), ..Default::default() };
        let mask = mask.clone();
        let f = move |x: &[Tensor]| {
            let m = masked.then(|| to_device(&mask, x[0].device().as_ref()).unwrap());
            ops::attention(&heads(&x[0]), &heads(&x[1]), &heads(&x[2]), m.as_ref(), &options).unwrap()
        };
        compare(&dev, &format!("attention causal {causal} mask {masked} dropout {dropout}"), &inputs, &[b, h, t, d], &f);
    }
}

#[test]
fn recurrent_on_device_matches_cpu() {
    gpu_backend!(dev);
    let (b, t, i, h) = (3, 6, 5, 7);
    for (cell, reverse) in [(Cell::RnnTanh, false), (Cell::Lstm, true), (Cell::Gru, false)] {
        let gh = cell.gates() * h;
        let small = |shape: &[usize], s: u64| ops::binary(BinaryOp::Mul, &randn(shape, s), &Tensor::scalar_f32(0.3)).unwrap();
        let mut inputs = vec![randn(&[b, t, i], 10), small(&[b, h], 11)];
        let lstm = cell == Cell::Lstm;
        if lstm {
            inputs.push(small(&[b, h], 12));
        }
        inputs.extend([small(&[gh, i], 13), small(&[gh, h], 14), small(&[gh], 15), small(&[gh], 16)]);
        let f = move |x: &[Tensor]| {
            let w0 = if lstm { 3 } else { 2 };
            let w = Weights { w_ih: &x[w0], w_hh: &x[w0 + 1], b_ih: Some(&x[w0 + 2]), b_hh: Some(&x[w0 + 3]) };
            ops::recurrent(cell, &x[0], &x[1], lstm.then(|| &x[2]), &w, reverse).unwrap()
        };
        compare(&dev, &format!("{} reverse {reverse}", cell.name()), &inputs, &[b, t + cell.states(), h], &f);
    }
}

/// With x, h0 and the biases frozen, BPTT on the GPU computes only the weights' gradients (the
/// op passes autograd's flags to the device): the weights' gradients match the CPU's, and the
/// frozen inputs get none.
#[test]
fn recurrent_on_device_gives_only_the_gradients_asked_for() {
    gpu_backend!(dev);
    let (b, t, i, h) = (2, 5, 3, 6);
    for (cell, reverse) in [(Cell::Lstm, false), (Cell::Gru, true)] {
        let gh = cell.gates() * h;
        let lstm = cell == Cell::Lstm;
        let small = |shape: &[usize], s: u64| ops::binary(BinaryOp::Mul, &randn(shape, s), &Tensor::scalar_f32(0.3)).unwrap();
        let frozen = [randn(&[b, t, i], 20), small(&[b, h], 21), small(&[b, h], 22), small(&[gh], 23), small(&[gh], 24)];
        let weights = [small(&[gh, i], 25), small(&[gh, h], 26)];
        let seed = randn(&[b, t + cell.states(), h], 27);
        let grads_on = |on: Option<&Arc<dyn Device>>| {
            let [x, h0, c0, b_ih, b_hh] = frozen.clone().map(|f| to_device(&f, on).unwrap());
            let [w_ih, w_hh] = weights.clone().map(|w| to_device(&w, on).unwrap().set_requires_grad(true).unwrap());
            let w = Weights { w_ih: &w_ih, w_hh: &w_hh, b_ih: Some(&b_ih), b_hh: Some(&b_hh) };
            let out = ops::recurrent(cell, &x, &h0, lstm.then_some(&c0), &w, reverse).unwrap();
            autograd::backward(&out, Some(&to_device(&seed, on).unwrap())).unwrap();
            assert!(x.grad().is_none() && h0.grad().is_none() && b_ih.grad().is_none(), "{}: a frozen input got a gradient", cell.name());
            [down(&w_ih.grad().unwrap()), down(&w_hh.grad().unwrap())]
        };
        let (cpu, gpu) = (grads_on(None), grads_on(Some(&dev)));
        for (name, (g, c)) in ["wIh", "wHh"].iter().zip(gpu.iter().zip(&cpu)) {
            assert_close(&format!("{} reverse {reverse}: d{name}", cell.name()), g, c, 2e-5, 1e-4);
        }
    }
}
