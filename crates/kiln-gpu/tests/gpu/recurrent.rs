//! The recurrent kernels (RNN tanh/relu, LSTM, GRU; forward and BPTT backward) against kiln-core's
//! `recurrent` op: the packed output, and the gradients of every input (x, h0, c0, both weights,
//! both biases) from kiln-core's autograd, in both directions, with and without biases, at odd
//! sizes (hidden and input sizes that fill no workgroup or matmul tile evenly).
//!
//! Tolerance: 1e-5 absolute + 1e-4 relative. The GPU adds the biases in another order and its
//! matmuls sum in another order than kiln-core's GEMMs; over 7 steps of BPTT the differences stay
//! ~1e-6. A wrong gate derivative (e.g. σ' written as σ(1 + σ)) moves gradients by >1e-2.

use crate::common::{assert_close, cpu_grads, down, gpu, randn, up, vals};
use kiln_core::ops::{self, Cell, Weights};
use kiln_core::params::recurrent::{Needs, Present};
use kiln_core::Tensor;
use kiln_gpu::kernels::recurrent::{self as rec, GpuWeights};
use kiln_gpu::GpuDevice;

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

#[allow(clippy::too_many_arguments)]
fn check(dev: &GpuDevice, cell: Cell, batch: usize, steps: usize, input: usize, hidden: usize, biases: bool, reverse: bool, seed: u64) {
    let what = format!("{} B{batch} T{steps} I{input} H{hidden} biases {biases} reverse {reverse}", cell.name());
    let gh = cell.gates() * hidden;
    let scaled = |t: Tensor| ops::binary(ops::BinaryOp::Mul, &t, &Tensor::scalar_f32(0.4)).unwrap();
    let mut inputs = vec![randn(&[batch, steps, input], seed), scaled(randn(&[batch, hidden], seed + 1))];
    let lstm = cell == Cell::Lstm;
    if lstm {
        inputs.push(scaled(randn(&[batch, hidden], seed + 2)));
    }
    inputs.push(scaled(randn(&[gh, input], seed + 3)));
    inputs.push(scaled(randn(&[gh, hidden], seed + 4)));
    if biases {
        inputs.push(scaled(randn(&[gh], seed + 5)));
        inputs.push(scaled(randn(&[gh], seed + 6)));
    }
    let run_cpu = |t: &[Tensor]| {
        let c0 = if lstm { Some(&t[2]) } else { None };
        let w0 = if lstm { 3 } else { 2 };
        let w = Weights { w_ih: &t[w0], w_hh: &t[w0 + 1], b_ih: t.get(w0 + 2), b_hh: t.get(w0 + 3) };
        ops::recurrent(cell, &t[0], &t[1], c0, &w, reverse).unwrap()
    };
    let cpu = run_cpu(&inputs);

    let g: Vec<_> = inputs.iter().map(|t| up(dev, t)).collect();
    let w0 = if lstm { 3 } else { 2 };
    let weights = GpuWeights { w_ih: &g[w0], w_hh: &g[w0 + 1], b_ih: g.get(w0 + 2), b_hh: g.get(w0 + 3) };
    let c0 = if lstm { Some(&g[2]) } else { None };
    let (out, ws) = rec::recurrent(dev, cell, &g[0], &g[1], c0, &weights, reverse).unwrap();
    assert_eq!(out.shape(), cpu.shape(), "{what}");
    assert_close(&format!("{what}: forward"), &down(dev, &out), &vals(&cpu), ATOL, RTOL);

    let seed_grad = randn(cpu.shape(), seed + 7);
    let want = cpu_grads(&inputs, &seed_grad, run_cpu);
    let needs = Needs::all(Present { c0: lstm, b_ih: biases, b_hh: biases });
    let grads = rec::recurrent_backward(dev, cell, &g[0], &weights, &ws, &up(dev, &seed_grad), reverse, needs).unwrap();
    let got: Vec<_> = [("x", grads.x), ("h0", grads.h0), ("c0", grads.c0), ("wIh", grads.w_ih), ("wHh", grads.w_hh), ("bIh", grads.b_ih), ("bHh", grads.b_hh)]
        .into_iter()
        .filter_map(|(name, t)| Some((name, t?)))
        .collect();
    assert_eq!(got.len(), want.len(), "{what}: one gradient per input");
    for ((name, t), w) in got.iter().zip(&want) {
        assert_close(&format!("{what}: d{name}"), &down(dev, t), w, ATOL, RTOL);
    }
}

#[test]
fn rnn_matches_cpu() {
    let dev = gpu!();
    check(dev, Cell::RnnTanh, 3, 7, 5, 9, true, false, 1);
    check(dev, Cell::RnnRelu, 2, 6, 4, 17, true, true, 2);
    check(dev, Cell::RnnTanh, 1, 1, 3, 2, false, false, 3);
}

#[test]
fn lstm_matches_cpu() {
    let dev = gpu!();
    check(dev, Cell::Lstm, 3, 7, 5, 9, true, false, 10);
    check(dev, Cell::Lstm, 2, 5, 6, 13, false, true, 11);
}

#[test]
fn gru_matches_cpu() {
    let dev = gpu!();
    check(dev, Cell::Gru, 3, 7, 5, 9, true, false, 20);
    check(dev, Cell::Gru, 2, 5, 6, 13, true, true, 21);
    check(dev, Cell::Gru, 2, 3, 4, 5, false, false, 22);
}
