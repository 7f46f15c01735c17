//! The time loop of one layer and direction: forward (keeping what BPTT needs) and backward.
//!
//! Internally everything is step-major ([steps, batch, ...], in the order the steps run, so
//! reversed for the backward direction): one step's rows are then contiguous, each per-step GEMM
//! reads and writes plain matrices, and the weight gradients are single GEMMs over all steps
//! (dW_ih = dGatesᵀ · x, dW_hh = dGatesᵀ · h_prev). x is copied into that order once and dx back
//! out of it once; both copies are small next to the GEMMs.
//!
//! The fast path, and why:
//! - The input projection of all steps is one GEMM ([steps·batch, I] · W_ihᵀ), before the loop.
//! - Each step's recurrent product reads W_hh packed once per sequence (step_gemm.rs; forward
//!   W_hhᵀ, BPTT W_hh), where the general GEMM repacked it at every step.
//! - The time loop is split over the threads by batch rows, once per sequence (`batch_parts`):
//!   rows are independent through the whole recurrence, so each thread runs every step's product
//!   AND fused cell on its rows with no synchronization until the end. Threading each step's small
//!   product instead cost a fork/join per step (64 per LSTM training step) and left the cells on
//!   one thread. Small sequences stay on one thread.
//! - The weight gradients are single GEMMs over all steps after BPTT, not one per step.
//! - Per-step scratch (dh, dc, GRU's h projection) is allocated once per part, not per step.

use super::cells;
use super::step_gemm::PackedWeight;
use crate::error::Result;
use crate::params::recurrent::{Cell, Grads, Needs, Weights};
use crate::parallel::{self, SendPtr, MIN_PARALLEL_FLOPS};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use crate::device::cpu::gemm_call::Parallelism;


#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub input: usize,
    pub hidden: usize,
}

/// The weights as the kernels use them: contiguous, also transposed, and the biases folded into
/// one vector added to the input projection (b_ih + b_hh), except a GRU's n block of b_hh, which
/// r multiplies and so stays apart (`b_hn`).
pub struct Params {
    w_ih: Tensor,
    w_hh: Tensor,
    /// The forward per-step product's right operand W_hhᵀ [H, G·H], packed once for every step
    /// (step_gemm.rs) where the CPU runs the packed kernel.
    w_hh_packed: Option<PackedWeight>,
    /// Elsewhere W_hhᵀ row-major for the general GEMM, which packs its right operand on every
    /// call, and a row-major one packs faster: the per-step product measured 41 µs instead of
    /// 65 µs with W_hh read through transposed strides (32x128 @ 128x512, 1 thread).
    w_hh_t: Vec<f32>,
    bias: Vec<f32>,
    b_hn: Vec<f32>,
}

impl Params {
    pub fn new(cell: Cell, w: &Weights) -> Result<Params> {
        let hidden = w.w_hh.shape()[1];
        let gh = cell.gates() * hidden;
        let read = |t: Option<&Tensor>| t.map_or_else(|| Ok(vec![0.0; gh]), |t| t.elements::<f32>("recurrent"));
        let (b_ih, b_hh) = (read(w.b_ih)?, read(w.b_hh)?);
        let folded_until = if cell == Cell::Gru { 2 * hidden } else { gh };
        let bias = (0..gh).map(|k| b_ih[k] + if k < folded_until { b_hh[k] } else { 0.0 }).collect();
        let b_hn = if cell == Cell::Gru { b_hh[2 * hidden..].to_vec() } else { Vec::new() };
        let (w_ih, w_hh) = (w.w_ih.materialize()?, w.w_hh.materialize()?);
        let w_hh_data = w_hh.cpu_slice(cell.name())?;
        let w_hh_packed = PackedWeight::new(w_hh_data, hidden, gh, 1, hidden);
        let w_hh_t = if w_hh_packed.is_some() { Vec::new() } else { transposed(w_hh_data, gh) };
        Ok(Params { w_ih, w_hh, w_hh_packed, w_hh_t, bias, b_hn })
    }

    fn w_ih(&self, op: &str) -> Result<&[f32]> {
        self.w_ih.cpu_slice(op)
    }

    fn w_hh(&self, op: &str) -> Result<&[f32]> {
        self.w_hh.cpu_slice(op)
    }

    /// One step's recurrent projection: dst [batch, G·H] (+)= h_prev [batch, H] · W_hhᵀ.
    fn project_hidden(&self, dst: &mut [f32], h_prev: &[f32], batch: usize, accumulate: bool) {
        let (h, gh) = (self.w_hh.shape()[1], self.w_hh.shape()[0]);
        match &self.w_hh_packed {
            Some(w) => w.mul(dst, gh, h_prev, h, batch, 0..h, accumulate),
            None => gemm_on(Parallelism::None, dst, Mat::rows(0, batch, gh), h_prev, Mat::rows(0, batch, h), &self.w_hh_t, Mat::rows(0, h, gh), accumulate),
        }
    }
}

/// BPTT's per-step product dh_prev (+)= dgates · W_hh[rows], with W_hh [G·H, H] packed once
/// for all steps where the CPU runs the packed kernel.
struct HiddenGradient<'a> {
    w_hh: &'a [f32],
    hidden: usize,
    packed: Option<PackedWeight>,
}

impl<'a> HiddenGradient<'a> {
    fn new(w_hh: &'a [f32], hidden: usize) -> Self {
        let gh = w_hh.len() / hidden;
        HiddenGradient { w_hh, hidden, packed: PackedWeight::new(w_hh, gh, hidden, hidden, 1) }
    }

    /// dst [batch, H] (+)= a · W_hh[rows, :], a being [batch, rows.len()] with row stride a_rs.
    fn mul(&self, dst: &mut [f32], a: &[f32], a_rs: usize, batch: usize, rows: std::ops::Range<usize>, accumulate: bool) {
        let h = self.hidden;
        match &self.packed {
            Some(w) => w.mul(dst, h, a, a_rs, batch, rows.clone(), accumulate),
            None => {
                let a_view = Mat { offset: 0, rows: batch, cols: rows.len(), rs: a_rs as isize, cs: 1 };
                gemm_on(Parallelism::None, dst, Mat::rows(0, batch, h), a, a_view, self.w_hh, Mat::rows(rows.start * h, rows.len(), h), accumulate)
            }
        }
    }
}

/// The transpose of a row-major matrix with `rows` rows.
fn transposed(m: &[f32], rows: usize) -> Vec<f32> {
    let cols = m.len() / rows;
    let mut out = vec![0.0; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// What the forward pass keeps for backward, step-major. Tensors (not Vecs) so that
/// `kiln.memory()` counts them while a graph holds them.
pub struct Workspace {
    /// x in step order: [steps * batch, input].
    x: Tensor,
    /// Gate activations [steps * batch, G·hidden]; backward overwrites them with their gradients.
    gates: Tensor,
    /// h_0 .. h_steps: [(steps + 1) * batch, hidden].
    hs: Tensor,
    /// LSTM: c_0 .. c_steps, like hs.
    cs: Option<Tensor>,
    /// GRU: W_hn h_prev + b_hn per step [steps * batch, hidden]; backward overwrites it with its
    /// gradient.
    hn: Option<Tensor>,
}

/// The time index of step s.
fn time_of(s: usize, steps: usize, reverse: bool) -> usize {
    if reverse { steps - 1 - s } else { s }
}

/// Forward over the sequence. x [batch, steps, input], h0 and c0 [batch, hidden], all contiguous.
/// Returns the packed output [batch, steps + states, hidden] and the workspace.
pub fn forward(cell: Cell, d: Dims, reverse: bool, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, p: &Params) -> Result<(Tensor, Workspace)> {
    let op = cell.name();
    let Dims { batch: b, steps: t_len, input: i, hidden: h } = d;
    let gh = cell.gates() * h;
    let bh = b * h;

    // x in step order, then the input projection of every step in one GEMM (biases pre-filled).
    let mut x_steps = try_zeroed::<f32>(op, t_len * b * i)?;
    reorder(x.cpu_slice(op)?, &mut x_steps, d, i, reverse, true);
    let mut gates = try_zeroed::<f32>(op, t_len * b * gh)?;
    for row in gates.chunks_exact_mut(gh) {
        row.copy_from_slice(&p.bias);
    }
    gemm(&mut gates, Mat::rows(0, t_len * b, gh), &x_steps, Mat::rows(0, t_len * b, i), p.w_ih(op)?, Mat::rows(0, gh, i).t(), true);

    let mut hs = try_zeroed::<f32>(op, (t_len + 1) * bh)?;
    hs[..bh].copy_from_slice(h0.cpu_slice(op)?);
    let mut cs = match c0 {
        Some(c0) => {
            let mut cs = try_zeroed::<f32>(op, (t_len + 1) * bh)?;
            cs[..bh].copy_from_slice(c0.cpu_slice(op)?);
            Some(cs)
        }
        None => None,
    };
    let mut hn = if cell == Cell::Gru { Some(try_zeroed::<f32>(op, t_len * bh)?) } else { None };

    // The recurrence, each thread on its own rows of the batch for the whole sequence.
    let bufs = StepBuffers { gates: SendPtr(gates.as_mut_ptr()), hs: SendPtr(hs.as_mut_ptr()), cs: cs.as_mut().map(|c| SendPtr(c.as_mut_ptr())), hn: hn.as_mut().map(|v| SendPtr(v.as_mut_ptr())) };
    let failed = std::sync::atomic::AtomicBool::new(false);
    parallel::for_each_chunk(b, batch_parts(cell, d), |b0, b1| {
        // SAFETY: the buffers have the sizes allocated above, and the row ranges of the parts
        // are disjoint, so no two threads touch the same element.
        if unsafe { forward_rows(cell, d, p, &bufs, b0, b1) }.is_err() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if failed.into_inner() {
        return Err(crate::error::KilnError::new(op, "out of memory for the recurrence's scratch buffer"));
    }

    let out = pack_output(cell, d, reverse, &hs, cs.as_deref())?;
    let ws = Workspace {
        x: Tensor::from_vec(x_steps, &[t_len * b, i])?,
        gates: Tensor::from_vec(gates, &[t_len * b, gh])?,
        hs: Tensor::from_vec(hs, &[(t_len + 1) * b, h])?,
        cs: cs.map(|c| Tensor::from_vec(c, &[(t_len + 1) * b, h])).transpose()?,
        hn: hn.map(|v| Tensor::from_vec(v, &[t_len * b, h])).transpose()?,
    };
    Ok((out, ws))
}

/// Raw views of the step-major buffers that the batch parts share (each part writes only its rows).
struct StepBuffers {
    gates: SendPtr<f32>,
    hs: SendPtr<f32>,
    cs: Option<SendPtr<f32>>,
    hn: Option<SendPtr<f32>>,
}

/// `len` elements at `start` of a shared buffer.
///
/// # Safety
/// The range is inside the buffer, and no other live reference covers it mutably.
unsafe fn part<'a>(buf: &SendPtr<f32>, start: usize, len: usize) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(buf.ptr().add(start), len)
}

/// How many parts of the batch run the recurrence at once. The steps of one sequence depend on
/// each other, but batch rows do not: splitting the batch once per sequence keeps every thread
/// busy for the whole loop with one fork/join, where threading each step's small product paid a
/// fork/join per step (64 per LSTM training step). A part keeps at least 8 rows (one AVX-512 row
/// block of the packed kernel), and a small sequence runs on one thread.
fn batch_parts(cell: Cell, d: Dims) -> usize {
    let macs = d.steps * d.batch * cell.gates() * d.hidden * d.hidden;
    if macs < MIN_PARALLEL_FLOPS { 1 } else { parallel::num_threads().min(d.batch / 8).max(1) }
}

/// The forward recurrence for batch rows b0..b1 (the input projection already in the gates).
///
/// # Safety
/// `bufs` point to the buffers `forward` allocated for `d`; no other part covers rows b0..b1.
unsafe fn forward_rows(cell: Cell, d: Dims, p: &Params, bufs: &StepBuffers, b0: usize, b1: usize) -> Result<()> {
    let Dims { batch: b, steps: t_len, hidden: h, .. } = d;
    let (gh, rows) = (cell.gates() * h, b1 - b0);
    let mut hproj = if cell == Cell::Gru { try_zeroed::<f32>(cell.name(), rows * gh)? } else { Vec::new() };
    // Element offsets of this part's rows at step s in a [*, width] step-major buffer.
    let at = |s: usize, width: usize| (s * b + b0) * width;
    for s in 0..t_len {
        let h_prev: &[f32] = part(&bufs.hs, at(s, h), rows * h);
        let h_next = part(&bufs.hs, at(s + 1, h), rows * h);
        let g = part(&bufs.gates, at(s, gh), rows * gh);
        // The recurrent projection W_hh h_prev: added onto the gates (RNN, LSTM) or kept apart
        // (GRU, whose n block is multiplied by r).
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => {
                p.project_hidden(g, h_prev, rows, true);
                cells::rnn_forward(g, h_next, cell == Cell::RnnRelu);
            }
            Cell::Lstm => {
                p.project_hidden(g, h_prev, rows, true);
                let cs = bufs.cs.as_ref().expect("an LSTM allocates cs");
                cells::lstm_forward(g, part(cs, at(s, h), rows * h), part(cs, at(s + 1, h), rows * h), h_next, h);
            }
            Cell::Gru => {
                p.project_hidden(&mut hproj, h_prev, rows, false);
                let hn_s = part(bufs.hn.as_ref().expect("a GRU keeps hn"), at(s, h), rows * h);
                cells::gru_forward(g, &hproj, &p.b_hn, h_prev, hn_s, h_next, h);
            }
        }
    }
    Ok(())
}

/// [batch, steps + states, hidden]: h at each time, then the final h (and c).
fn pack_output(cell: Cell, d: Dims, reverse: bool, hs: &[f32], cs: Option<&[f32]>) -> Result<Tensor> {
    let Dims { batch: b, steps: t_len, hidden: h, .. } = d;
    let rows = t_len + cell.states();
    let mut out = try_zeroed::<f32>(cell.name(), b * rows * h)?;
    for bi in 0..b {
        let dst = &mut out[bi * rows * h..(bi + 1) * rows * h];
        for t in 0..t_len {
            let s = time_of(t, t_len, reverse);
            dst[t * h..(t + 1) * h].copy_from_slice(&hs[((s + 1) * b + bi) * h..][..h]);
        }
        let last = (t_len * b + bi) * h;
        dst[t_len * h..(t_len + 1) * h].copy_from_slice(&hs[last..last + h]);
        if let Some(cs) = cs {
            dst[(t_len + 1) * h..(t_len + 2) * h].copy_from_slice(&cs[last..last + h]);
        }
    }
    Tensor::from_vec(out, &[b, rows, h])
}

/// Full BPTT. `g` is the gradient of the packed output, contiguous [batch, steps + states, hidden].
pub fn backward(cell: Cell, d: Dims, reverse: bool, ws: Workspace, g: &Tensor, p: &Params, needs: Needs) -> Result<Grads> {
    let op = cell.name();
    let Dims { batch: b, steps: t_len, input: i, hidden: h } = d;
    let (gh, bh) = (cell.gates() * h, b * h);
    let g = g.cpu_slice::<f32>(op)?;
    let Workspace { x: x_steps, mut gates, hs, cs, mut hn } = ws;
    let hs = hs.cpu_slice::<f32>(op)?;
    let cs = cs.as_ref().map(|c| c.cpu_slice::<f32>(op)).transpose()?;

    // dL/dh0 and dL/dc0, each part writing its rows.
    let mut dh0 = try_zeroed::<f32>(op, bh)?;
    let mut dc0 = if cell == Cell::Lstm { try_zeroed::<f32>(op, bh)? } else { Vec::new() };
    let ga_buf = gates.data_mut_f32(op)?;
    let mut hn_data = match hn.as_mut() {
        Some(t) => Some(t.data_mut_f32(op)?),
        None => None,
    };
    let hidden_gradient = HiddenGradient::new(p.w_hh(op)?, h);
    let bufs = BackwardBuffers {
        gates: SendPtr(ga_buf.as_mut_ptr()),
        hn: hn_data.as_mut().map(|v| SendPtr(v.as_mut_ptr())),
        dh0: SendPtr(dh0.as_mut_ptr()),
        dc0: SendPtr(dc0.as_mut_ptr()),
        hs,
        cs,
        g,
    };
    let failed = std::sync::atomic::AtomicBool::new(false);
    parallel::for_each_chunk(b, batch_parts(cell, d), |b0, b1| {
        // SAFETY: as in forward: buffers of the sizes above, disjoint row ranges per part.
        if unsafe { backward_rows(cell, d, reverse, &hidden_gradient, &bufs, b0, b1) }.is_err() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if failed.into_inner() {
        return Err(crate::error::KilnError::new(op, "out of memory for BPTT's scratch buffers"));
    }
    let (dh, dc) = (dh0, dc0);
    let ga = &mut *ga_buf;

    let ga: &[f32] = ga;
    let all = t_len * b;
    let x_steps = x_steps.cpu_slice::<f32>(op)?;
    let h_prevs = &hs[..all * h];
    let mut grads = Grads::default();
    if needs.h0 {
        grads.h0 = Some(Tensor::from_vec(dh, &[b, h])?);
    }
    if needs.c0 {
        grads.c0 = Some(Tensor::from_vec(dc, &[b, h])?);
    }
    if needs.x {
        let mut dx_steps = try_zeroed::<f32>(op, all * i)?;
        gemm(&mut dx_steps, Mat::rows(0, all, i), ga, Mat::rows(0, all, gh), p.w_ih(op)?, Mat::rows(0, gh, i), false);
        let mut dx = try_zeroed::<f32>(op, all * i)?;
        reorder(&dx_steps, &mut dx, d, i, reverse, false);
        grads.x = Some(Tensor::from_vec(dx, &[b, t_len, i])?);
    }
    if needs.w_ih {
        let mut dw_ih = try_zeroed::<f32>(op, gh * i)?;
        gemm(&mut dw_ih, Mat::rows(0, gh, i), ga, Mat::rows(0, all, gh).t(), x_steps, Mat::rows(0, all, i), false);
        grads.w_ih = Some(Tensor::from_vec(dw_ih, &[gh, i])?);
    }
    if needs.w_hh {
        let mut dw_hh = try_zeroed::<f32>(op, gh * h)?;
        match hn_data.as_deref() {
            // GRU: the hidden side's gradient is [da_r | da_z] from the gates and dhn apart.
            Some(dhn) => {
                gemm(&mut dw_hh, Mat::rows(0, 2 * h, h), ga, Mat { cols: 2 * h, ..Mat::rows(0, all, gh) }.t(), h_prevs, Mat::rows(0, all, h), false);
                gemm(&mut dw_hh, Mat::rows(2 * h * h, h, h), dhn, Mat::rows(0, all, h).t(), h_prevs, Mat::rows(0, all, h), false);
            }
            None => gemm(&mut dw_hh, Mat::rows(0, gh, h), ga, Mat::rows(0, all, gh).t(), h_prevs, Mat::rows(0, all, h), false),
        }
        grads.w_hh = Some(Tensor::from_vec(dw_hh, &[gh, h])?);
    }
    if needs.b_ih || needs.b_hh {
        let db_ih = column_sums(ga, gh);
        if needs.b_hh {
            let mut db_hh = db_ih.clone();
            if let Some(dhn) = hn_data.as_deref() {
                db_hh[2 * h..].copy_from_slice(&column_sums(dhn, h));
            }
            grads.b_hh = Some(Tensor::from_vec(db_hh, &[gh])?);
        }
        if needs.b_ih {
            grads.b_ih = Some(Tensor::from_vec(db_ih, &[gh])?);
        }
    }
    Ok(grads)
}

/// What the batch parts of BPTT share: the gates and GRU's hn (overwritten with their gradients,
/// each part its rows), dh0 and dc0 (written), and read-only views.
struct BackwardBuffers<'a> {
    gates: SendPtr<f32>,
    hn: Option<SendPtr<f32>>,
    dh0: SendPtr<f32>,
    dc0: SendPtr<f32>,
    hs: &'a [f32],
    cs: Option<&'a [f32]>,
    /// The packed output's gradient [batch, steps + states, hidden].
    g: &'a [f32],
}

/// BPTT for batch rows b0..b1: turns their gate activations into gate gradients step by step
/// and writes their dL/dh0 (and dL/dc0).
///
/// # Safety
/// `bufs` point to the buffers `backward` holds for `d`; no other part covers rows b0..b1.
#[allow(clippy::too_many_arguments)]
unsafe fn backward_rows(cell: Cell, d: Dims, reverse: bool, hidden_gradient: &HiddenGradient, bufs: &BackwardBuffers, b0: usize, b1: usize) -> Result<()> {
    let op = cell.name();
    let Dims { batch: b, steps: t_len, hidden: h, .. } = d;
    let (gh, rows, packed_rows) = (cell.gates() * h, b1 - b0, t_len + cell.states());
    let (g, hs) = (bufs.g, bufs.hs);
    let at = |s: usize, width: usize| (s * b + b0) * width;

    // dL/dh and dL/dc flowing into the current step, seeded by the final states' gradients.
    let mut dh = try_zeroed::<f32>(op, rows * h)?;
    let mut dh_prev = try_zeroed::<f32>(op, rows * h)?;
    let mut dc = if cell == Cell::Lstm { try_zeroed::<f32>(op, rows * h)? } else { Vec::new() };
    for r in 0..rows {
        let packed = (b0 + r) * packed_rows;
        dh[r * h..(r + 1) * h].copy_from_slice(&g[(packed + t_len) * h..][..h]);
        if cell == Cell::Lstm {
            dc[r * h..(r + 1) * h].copy_from_slice(&g[(packed + t_len + 1) * h..][..h]);
        }
    }
    for s in (0..t_len).rev() {
        let t = time_of(s, t_len, reverse);
        for r in 0..rows {
            let up = &g[((b0 + r) * packed_rows + t) * h..][..h];
            for (a, &u) in dh[r * h..(r + 1) * h].iter_mut().zip(up) {
                *a += u;
            }
        }
        let a = part(&bufs.gates, at(s, gh), rows * gh);
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => {
                cells::rnn_backward(a, &dh, cell == Cell::RnnRelu);
                hidden_gradient.mul(&mut dh_prev, a, gh, rows, 0..gh, false);
            }
            Cell::Lstm => {
                let cs = bufs.cs.expect("an LSTM keeps cs");
                cells::lstm_backward(a, &cs[at(s, h)..][..rows * h], &cs[at(s + 1, h)..][..rows * h], &dh, &mut dc, h);
                hidden_gradient.mul(&mut dh_prev, a, gh, rows, 0..gh, false);
            }
            Cell::Gru => {
                let hn_s = part(bufs.hn.as_ref().expect("a GRU keeps hn"), at(s, h), rows * h);
                cells::gru_backward(a, hn_s, &hs[at(s, h)..][..rows * h], &dh, &mut dh_prev, h);
                // dh_prev += [da_r | da_z] · W_hh[r, z blocks] + dhn · W_hh[n block]
                hidden_gradient.mul(&mut dh_prev, a, gh, rows, 0..2 * h, true);
                hidden_gradient.mul(&mut dh_prev, hn_s, h, rows, 2 * h..gh, true);
            }
        }
        std::mem::swap(&mut dh, &mut dh_prev);
    }
    part(&bufs.dh0, b0 * h, rows * h).copy_from_slice(&dh);
    if cell == Cell::Lstm {
        part(&bufs.dc0, b0 * h, rows * h).copy_from_slice(&dc);
    }
    Ok(())
}

/// Sums of each column of a row-major matrix with `cols` columns.
fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; cols];
    for row in m.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// Copies rows of `width` between batch-first [batch, steps, width] and step order
/// [steps, batch, width] (`to_steps` picks the direction).
fn reorder(src: &[f32], dst: &mut [f32], d: Dims, width: usize, reverse: bool, to_steps: bool) {
    for s in 0..d.steps {
        let t = time_of(s, d.steps, reverse);
        for bi in 0..d.batch {
            let step_row = (s * d.batch + bi) * width;
            let batch_row = (bi * d.steps + t) * width;
            let (from, to) = if to_steps { (batch_row, step_row) } else { (step_row, batch_row) };
            dst[to..to + width].copy_from_slice(&src[from..from + width]);
        }
    }
}

/// A matrix inside a slice: element (r, c) at offset + r·rs + c·cs.
#[derive(Clone, Copy)]
struct Mat {
    offset: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl Mat {
    /// A row-major rows x cols block starting at `offset` (row stride = cols).
    fn rows(offset: usize, rows: usize, cols: usize) -> Mat {
        Mat { offset, rows, cols, rs: cols as isize, cs: 1 }
    }

    /// The transpose, as a view (strides swapped).
    fn t(self) -> Mat {
        Mat { offset: self.offset, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// Whether every element lies inside a slice of `len`.
    fn fits(&self, len: usize) -> bool {
        let last = self.offset as isize + (self.rows as isize - 1) * self.rs + (self.cols as isize - 1) * self.cs;
        self.rows == 0 || self.cols == 0 || (last < len as isize && last >= 0)
    }
}

/// dst (+)= a · b, each a strided view; `accumulate` adds to dst instead of overwriting it.
/// Threaded when large (the whole-sequence GEMMs).
fn gemm(dst: &mut [f32], dv: Mat, a: &[f32], av: Mat, b: &[f32], bv: Mat, accumulate: bool) {
    gemm_on(Parallelism::Threads, dst, dv, a, av, b, bv, accumulate)
}

/// As `gemm`; `Parallelism::None` keeps it on the calling thread (the per-step products, which
/// already run inside one thread's part of the batch).
#[allow(clippy::too_many_arguments)]
fn gemm_on(allowed: Parallelism, dst: &mut [f32], dv: Mat, a: &[f32], av: Mat, b: &[f32], bv: Mat, accumulate: bool) {
    let (m, n, k) = (dv.rows, dv.cols, av.cols);
    // Shapes come from validated dimensions; a mismatch here is a bug in this module.
    assert!(av.rows == m && bv.rows == k && bv.cols == n && k > 0, "recurrent gemm: shape mismatch");
    assert!(dv.fits(dst.len()) && av.fits(a.len()) && bv.fits(b.len()), "recurrent gemm: view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if allowed == Parallelism::Threads && m * n * k >= MIN_PARALLEL_FLOPS && parallel::num_threads() > 1 { Parallelism::Threads } else { Parallelism::None };
    // SAFETY: the asserts above keep every strided access inside the three slices, and dst does
    // not alias a or b (distinct borrows).
    unsafe {
        crate::device::cpu::gemm_call::gemm(
            m, n, k,
            dst.as_mut_ptr().add(dv.offset), dv.rs, dv.cs, accumulate,
            a.as_ptr().add(av.offset), av.rs, av.cs,
            b.as_ptr().add(bv.offset), bv.rs, bv.cs,
            parallelism,
        );
    }
}
