//! The Transformer and RNN family on the GPU against kiln-core's CPU kernels: fused attention
//! (forward, and forward + backward) and an LSTM layer over a sequence (forward + BPTT).
//! `cargo run --release -p kiln-gpu --example bench_sequence`
//!
//! On lavapipe (a CPU driver) the GPU column shows correctness plus dispatch overhead on the same
//! cores the CPU column uses, not GPU speed. The LSTM runs 2 dispatches per step forward and
//! backward, so at small sizes its GPU time is mostly launch overhead.

use kiln_core::ops::{self, AttentionOptions, Cell, Weights};
use kiln_core::params::recurrent::{Needs, Present};
use kiln_core::{autograd, Tensor};
use kiln_gpu::kernels::attention as att;
use kiln_gpu::kernels::recurrent::{self as rec, GpuWeights};
use kiln_gpu::{GpuDevice, GpuTensor};
use std::time::Instant;

/// Median seconds per call over `reps` timed calls, after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut s: Vec<f64> = (0..reps).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() }).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[reps / 2]
}

fn row(name: &str, cpu: f64, gpu: f64) {
    println!("{name:<44} cpu {:>9.3} ms   gpu {:>9.3} ms   gpu/cpu {:.2}", cpu * 1e3, gpu * 1e3, gpu / cpu);
}

fn main() -> kiln_core::Result<()> {
    let dev = GpuDevice::new()?;
    println!("adapter: '{}' (software: {})\n", dev.adapter_name(), dev.is_software());
    let rn = |shape: &[usize], s: u64| ops::randn(shape, 0.0, 1.0, Some(s)).unwrap();

    let (b, h, t, d) = (2, 4, 128, 32);
    let (q, k, v, g) = (rn(&[b, h, t, d], 1), rn(&[b, h, t, d], 2), rn(&[b, h, t, d], 3), rn(&[b, h, t, d], 4));
    let up = |x: &Tensor| GpuTensor::upload(&dev, x).unwrap();
    let (gq, gk, gv, gg) = (up(&q), up(&k), up(&v), up(&g));
    let o = AttentionOptions { causal: true, ..Default::default() };
    let cpu = time(10, || drop(ops::attention(&q, &k, &v, None, &o).unwrap()));
    let gpu = time(10, || { drop(att::attention(&dev, &gq, &gk, &gv, None, &o).unwrap()); dev.synchronize().unwrap(); });
    row(&format!("attention fwd B{b} H{h} T{t} D{d} causal"), cpu, gpu);
    let cpu = time(10, || {
        let l: Vec<Tensor> = [&q, &k, &v].iter().map(|x| x.set_requires_grad(true).unwrap()).collect();
        let out = ops::attention(&l[0], &l[1], &l[2], None, &o).unwrap();
        autograd::backward(&out, Some(&g)).unwrap();
    });
    let gpu = time(10, || {
        let f = att::attention(&dev, &gq, &gk, &gv, None, &o).unwrap();
        drop(att::attention_backward(&dev, &gq, &gk, &gv, None, &f, &gg, &o).unwrap());
        dev.synchronize().unwrap();
    });
    row(&format!("attention fwd+bwd B{b} H{h} T{t} D{d} causal"), cpu, gpu);

    let (b, t, i, hd) = (16, 32, 32, 64);
    let (x, h0, c0) = (rn(&[b, t, i], 5), rn(&[b, hd], 6), rn(&[b, hd], 7));
    let (w_ih, w_hh, b_ih, b_hh) = (rn(&[4 * hd, i], 8), rn(&[4 * hd, hd], 9), rn(&[4 * hd], 10), rn(&[4 * hd], 11));
    let gout = rn(&[b, t + 2, hd], 12);
    let cpu = time(10, || {
        let l: Vec<Tensor> = [&x, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh].iter().map(|x| x.set_requires_grad(true).unwrap()).collect();
        let w = Weights { w_ih: &l[3], w_hh: &l[4], b_ih: Some(&l[5]), b_hh: Some(&l[6]) };
        let out = ops::recurrent(Cell::Lstm, &l[0], &l[1], Some(&l[2]), &w, false).unwrap();
        autograd::backward(&out, Some(&gout)).unwrap();
    });
    let gx = [&x, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh].map(|x| up(x));
    let ggout = up(&gout);
    let gpu = time(10, || {
        let w = GpuWeights { w_ih: &gx[3], w_hh: &gx[4], b_ih: Some(&gx[5]), b_hh: Some(&gx[6]) };
        let (_, ws) = rec::recurrent(&dev, Cell::Lstm, &gx[0], &gx[1], Some(&gx[2]), &w, false).unwrap();
        let needs = Needs::all(Present { c0: true, b_ih: true, b_hh: true });
        drop(rec::recurrent_backward(&dev, Cell::Lstm, &gx[0], &w, &ws, &ggout, false, needs).unwrap());
        dev.synchronize().unwrap();
    });
    row(&format!("LSTM fwd+BPTT B{b} T{t} I{i} H{hd}"), cpu, gpu);
    Ok(())
}
