//! The time loop of one layer and direction: forward (keeping what BPTT needs) and backward.
//!
//! Internally everything is step-major ([steps, batch, ...], in the order the steps run, so
//! reversed for the backward direction): one step's rows are then contiguous, each per-step GEMM
//! reads and writes plain matrices, and the weight gradients are single GEMMs over all steps
//! (dW_ih = dGatesᵀ · x, dW_hh = dGatesᵀ · h_prev). x is copied into that order once and dx back
//! out of it once; both copies are small next to the GEMMs.

use crate::device::cpu::recurrent::cells;
use super::{Cell, Weights};
use crate::error::Result;
use crate::parallel;
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use crate::device::cpu::gemm_call::Parallelism;

/// Below this many multiply-adds a GEMM runs on one thread (the per-step GEMMs of small layers):
/// rayon's fork/join would cost more than the product.
const MIN_PARALLEL_FLOPS: usize = 96 * 96 * 96;

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
    /// [H, G·H]: the per-step GEMM's right operand row-major. The GEMM packs its right operand
    /// on every call, and a row-major one packs faster: the per-step product measured 41 µs
    /// instead of 65 µs with W_hh read through transposed strides (32x128 @ 128x512, 1 thread).
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
        let w_hh_t = transposed(w_hh.contiguous_slice().unwrap(), gh);
        Ok(Params { w_ih, w_hh, w_hh_t, bias, b_hn })
    }

    fn w_ih(&self) -> &[f32] {
        self.w_ih.contiguous_slice().unwrap()
    }

    fn w_hh(&self) -> &[f32] {
        self.w_hh.contiguous_slice().unwrap()
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

/// Which gradients the caller needs (an input that requires none is skipped; for the first
/// layer's x that saves a GEMM).
#[derive(Clone, Copy)]
pub struct Needs {
    x: bool,
    h0: bool,
    c0: bool,
    weights: bool,
    b_ih: bool,
    b_hh: bool,
}

impl Needs {
    /// From autograd's per-input flags, in the op's input order (x, h0, [c0], w_ih, w_hh, [b_ih], [b_hh]).
    pub fn from_inputs(flags: &[bool], has_c0: bool, has_b_ih: bool, has_b_hh: bool) -> Needs {
        let mut next = flags.iter().copied();
        let mut take = |present: bool| present && next.next().unwrap_or(false);
        let (x, h0, c0) = (take(true), take(true), take(has_c0));
        let (w_ih, w_hh) = (take(true), take(true));
        let (b_ih, b_hh) = (take(has_b_ih), take(has_b_hh));
        Needs { x, h0, c0, weights: w_ih || w_hh, b_ih, b_hh }
    }
}

/// One gradient per input (None where not needed; absent inputs get None and are dropped by the caller).
pub struct Grads {
    pub x: Option<Tensor>,
    pub h0: Option<Tensor>,
    pub c0: Option<Tensor>,
    pub w_ih: Option<Tensor>,
    pub w_hh: Option<Tensor>,
    pub b_ih: Option<Tensor>,
    pub b_hh: Option<Tensor>,
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
    reorder(x.contiguous_slice().unwrap(), &mut x_steps, d, i, reverse, true);
    let mut gates = try_zeroed::<f32>(op, t_len * b * gh)?;
    for row in gates.chunks_exact_mut(gh) {
        row.copy_from_slice(&p.bias);
    }
    gemm(&mut gates, Mat::rows(0, t_len * b, gh), &x_steps, Mat::rows(0, t_len * b, i), p.w_ih(), Mat::rows(0, gh, i).t(), true);

    let mut hs = try_zeroed::<f32>(op, (t_len + 1) * bh)?;
    hs[..bh].copy_from_slice(h0.contiguous_slice().unwrap());
    let mut cs = match c0 {
        Some(c0) => {
            let mut cs = try_zeroed::<f32>(op, (t_len + 1) * bh)?;
            cs[..bh].copy_from_slice(c0.contiguous_slice().unwrap());
            Some(cs)
        }
        None => None,
    };
    let mut hn = if cell == Cell::Gru { Some(try_zeroed::<f32>(op, t_len * bh)?) } else { None };
    let mut hproj = if cell == Cell::Gru { try_zeroed::<f32>(op, b * gh)? } else { Vec::new() };

    for s in 0..t_len {
        let (done, rest) = hs.split_at_mut((s + 1) * bh);
        let (h_prev, h_next) = (&done[s * bh..], &mut rest[..bh]);
        let g = &mut gates[s * b * gh..(s + 1) * b * gh];
        // The recurrent projection W_hh h_prev: added onto the gates (RNN, LSTM) or kept apart
        // (GRU, whose n block is multiplied by r).
        let h_mat = Mat::rows(0, b, h);
        let w_hh_t = Mat::rows(0, h, gh);
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => {
                gemm(g, Mat::rows(0, b, gh), h_prev, h_mat, &p.w_hh_t, w_hh_t, true);
                cells::rnn_forward(g, h_next, cell == Cell::RnnRelu);
            }
            Cell::Lstm => {
                gemm(g, Mat::rows(0, b, gh), h_prev, h_mat, &p.w_hh_t, w_hh_t, true);
                let cs = cs.as_mut().unwrap();
                let (done, rest) = cs.split_at_mut((s + 1) * bh);
                cells::lstm_forward(g, &done[s * bh..], &mut rest[..bh], h_next, h);
            }
            Cell::Gru => {
                gemm(&mut hproj, Mat::rows(0, b, gh), h_prev, h_mat, &p.w_hh_t, w_hh_t, false);
                let hn_s = &mut hn.as_mut().unwrap()[s * bh..(s + 1) * bh];
                cells::gru_forward(g, &hproj, &p.b_hn, h_prev, hn_s, h_next, h);
            }
        }
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
    let rows = t_len + cell.states();
    let g = g.contiguous_slice::<f32>().unwrap();
    let Workspace { x: x_steps, mut gates, hs, cs, mut hn } = ws;
    let hs = hs.contiguous_slice::<f32>().unwrap();
    let cs = cs.as_ref().map(|c| c.contiguous_slice::<f32>().unwrap());

    // dL/dh and dL/dc flowing into the current step, seeded by the final states' gradients.
    let mut dh = try_zeroed::<f32>(op, bh)?;
    let mut dh_prev = try_zeroed::<f32>(op, bh)?;
    let mut dc = if cell == Cell::Lstm { try_zeroed::<f32>(op, bh)? } else { Vec::new() };
    for bi in 0..b {
        dh[bi * h..(bi + 1) * h].copy_from_slice(&g[(bi * rows + t_len) * h..][..h]);
        if cell == Cell::Lstm {
            dc[bi * h..(bi + 1) * h].copy_from_slice(&g[(bi * rows + t_len + 1) * h..][..h]);
        }
    }

    let ga = gates.data_mut_f32(op)?;
    let mut hn_data = match hn.as_mut() {
        Some(t) => Some(t.data_mut_f32(op)?),
        None => None,
    };
    let w_hh = p.w_hh();
    for s in (0..t_len).rev() {
        let t = time_of(s, t_len, reverse);
        for bi in 0..b {
            let up = &g[(bi * rows + t) * h..][..h];
            for (a, &u) in dh[bi * h..(bi + 1) * h].iter_mut().zip(up) {
                *a += u;
            }
        }
        let a = &mut ga[s * b * gh..(s + 1) * b * gh];
        let a_mat = Mat::rows(0, b, gh);
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => {
                cells::rnn_backward(a, &dh, cell == Cell::RnnRelu);
                gemm(&mut dh_prev, Mat::rows(0, b, h), a, a_mat, w_hh, Mat::rows(0, gh, h), false);
            }
            Cell::Lstm => {
                let cs = cs.unwrap();
                cells::lstm_backward(a, &cs[s * bh..(s + 1) * bh], &cs[(s + 1) * bh..(s + 2) * bh], &dh, &mut dc, h);
                gemm(&mut dh_prev, Mat::rows(0, b, h), a, a_mat, w_hh, Mat::rows(0, gh, h), false);
            }
            Cell::Gru => {
                let hn_s = &mut hn_data.as_mut().unwrap()[s * bh..(s + 1) * bh];
                cells::gru_backward(a, hn_s, &hs[s * bh..(s + 1) * bh], &dh, &mut dh_prev, h);
                // dh_prev += [da_r | da_z] · W_hh[r, z blocks] + dhn · W_hh[n block]
                gemm(&mut dh_prev, Mat::rows(0, b, h), a, Mat { cols: 2 * h, ..a_mat }, w_hh, Mat::rows(0, 2 * h, h), true);
                gemm(&mut dh_prev, Mat::rows(0, b, h), &*hn_s, Mat::rows(0, b, h), w_hh, Mat::rows(2 * h * h, h, h), true);
            }
        }
        std::mem::swap(&mut dh, &mut dh_prev);
    }

    let ga: &[f32] = ga;
    let all = t_len * b;
    let x_steps = x_steps.contiguous_slice::<f32>().unwrap();
    let h_prevs = &hs[..all * h];
    let mut grads = Grads { x: None, h0: None, c0: None, w_ih: None, w_hh: None, b_ih: None, b_hh: None };
    if needs.h0 {
        grads.h0 = Some(Tensor::from_vec(dh, &[b, h])?);
    }
    if needs.c0 {
        grads.c0 = Some(Tensor::from_vec(dc, &[b, h])?);
    }
    if needs.x {
        let mut dx_steps = try_zeroed::<f32>(op, all * i)?;
        gemm(&mut dx_steps, Mat::rows(0, all, i), ga, Mat::rows(0, all, gh), p.w_ih(), Mat::rows(0, gh, i), false);
        let mut dx = try_zeroed::<f32>(op, all * i)?;
        reorder(&dx_steps, &mut dx, d, i, reverse, false);
        grads.x = Some(Tensor::from_vec(dx, &[b, t_len, i])?);
    }
    if needs.weights {
        let mut dw_ih = try_zeroed::<f32>(op, gh * i)?;
        gemm(&mut dw_ih, Mat::rows(0, gh, i), ga, Mat::rows(0, all, gh).t(), x_steps, Mat::rows(0, all, i), false);
        grads.w_ih = Some(Tensor::from_vec(dw_ih, &[gh, i])?);
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
fn gemm(dst: &mut [f32], dv: Mat, a: &[f32], av: Mat, b: &[f32], bv: Mat, accumulate: bool) {
    let (m, n, k) = (dv.rows, dv.cols, av.cols);
    // Shapes come from validated dimensions; a mismatch here is a bug in this module.
    assert!(av.rows == m && bv.rows == k && bv.cols == n && k > 0, "recurrent gemm: shape mismatch");
    assert!(dv.fits(dst.len()) && av.fits(a.len()) && bv.fits(b.len()), "recurrent gemm: view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if m * n * k >= MIN_PARALLEL_FLOPS && parallel::num_threads() > 1 { Parallelism::Threads } else { Parallelism::None };
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
