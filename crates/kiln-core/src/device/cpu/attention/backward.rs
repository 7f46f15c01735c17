//! The backward kernels. Nothing of the forward pass is stored but its output O and the row
//! log-normalizers (lse): each block of probabilities P = exp(S − lse) is recomputed from Q and K,
//! as FlashAttention does, so memory stays linear in the sequence length.
//!
//! With dS = P ∘ (dP − Δ), dP = dO·Vᵀ and Δ = rowsum(dO ∘ O):
//!   dV = Pᵀ·dO,  dK = scale·dSᵀ·Q,  dQ = scale·dS·K.
//! dK and dV sum over query blocks and dQ over key blocks, so two passes keep every sum inside one
//! task (no atomics, no per-task copies of a gradient): one task per key block for dK and dV, one
//! per query block for dQ. dQ's pass recomputes the scores once more; that costs 3 block products
//! on top of the 4 of the dK/dV pass.

use super::tile::{exp_shifted, gemm_block, run_tasks, softmax_grad_row, Mat, Operand, Problem, SharedOut};
use super::Layout;
use crate::error::Result;
use crate::storage::Scratch;

const OP: &str = "attention";

/// What the backward pass reads besides the problem: the forward output, its lse, and dO.
pub(super) struct Saved<'a> {
    pub out: Operand<'a>,
    pub lse: &'a [f32],
    pub grad: Operand<'a>,
}

/// Δ = rowsum(dO ∘ O), [B, H, Tq].
pub(super) fn row_deltas(p: &Problem, saved: &Saved) -> Result<Scratch> {
    let mut delta = Scratch::zeroed(OP, p.batch * p.heads * p.tq)?;
    let rows = SharedOut::new(&mut delta);
    let per_task = 256;
    let total = p.batch * p.heads * p.tq;
    run_tasks(total.div_ceil(per_task), |task| {
        let start = task * per_task;
        let end = (start + per_task).min(total);
        let mut values = Vec::with_capacity(end - start);
        for row in start..end {
            let (bh, i) = (row / p.tq, row % p.tq);
            let (b, h) = (bh / p.heads, bh % p.heads);
            let (o, g) = (saved.out.rows(b, h, i), saved.grad.rows(b, h, i));
            values.push((0..p.dv).map(|c| o.at(0, c) * g.at(0, c)).sum::<f32>());
        }
        // SAFETY: rows start..end belong to this task alone.
        unsafe { rows.write(start, &values) };
        Ok(())
    })?;
    Ok(delta)
}

/// Scratch of one block: P, dS and (with dropout) the dropped P that dV needs.
struct BlockScratch {
    p: Scratch,
    ds: Scratch,
    dropped: Option<Scratch>,
}

impl BlockScratch {
    fn new(p: &Problem) -> Result<BlockScratch> {
        let n = p.tiles.query * p.tiles.key;
        Ok(BlockScratch {
            p: Scratch::zeroed(OP, n)?,
            ds: Scratch::zeroed(OP, n)?,
            dropped: if p.dropout.is_some() { Some(Scratch::zeroed(OP, n)?) } else { None },
        })
    }

    /// Recomputes P and dS of block rows i0..i1 × keys j0..j1 of head (b, h) (both [rows × w]).
    #[allow(clippy::too_many_arguments)]
    fn compute(&mut self, p: &Problem, saved: &Saved, delta: &[f32], b: usize, h: usize, i0: usize, i1: usize, j0: usize, j1: usize) {
        let (rows, w) = (i1 - i0, j1 - j0);
        let bh = b * p.heads + h;
        let probs = &mut self.p[..rows * w];
        p.scores(b, h, i0, i1, j0, j1, probs);
        for r in 0..rows {
            let lse = saved.lse[bh * p.tq + i0 + r];
            let row = &mut probs[r * w..(r + 1) * w];
            if lse == f32::NEG_INFINITY {
                row.fill(0.0); // a row that saw no key: its output is the constant 0
            } else {
                exp_shifted(row, lse);
            }
        }
        let ds = &mut self.ds[..rows * w];
        gemm_block(ds, w, rows, w, p.dv, saved.grad.rows(b, h, i0), p.v.rows(b, h, j0).t(), 1.0, false);
        for r in 0..rows {
            let (prow, dsrow) = (&probs[r * w..(r + 1) * w], &mut ds[r * w..(r + 1) * w]);
            if let Some(mask) = &p.dropout {
                // O used the dropped weights: dV needs them, and dP flows back through the same mask.
                let key = mask.row_key(p.row_id(b, h, i0 + r));
                let dropped = &mut self.dropped.as_mut().expect("allocated with dropout")[r * w..(r + 1) * w];
                dropped.copy_from_slice(prow);
                mask.apply(dropped, key, j0);
                mask.apply(dsrow, key, j0);
            }
            softmax_grad_row(prow, dsrow, delta[bh * p.tq + i0 + r]);
        }
    }

    /// The weights O was built from: P, or P after dropout.
    fn weights(&self, n: usize) -> &[f32] {
        match &self.dropped {
            Some(d) => &d[..n],
            None => &self.p[..n],
        }
    }
}

/// dQ, written into `dq` (laid out `layout`).
pub(super) fn grad_q(p: &Problem, saved: &Saved, delta: &[f32], layout: Layout, dq: &mut [f32]) -> Result<()> {
    let (bq, bk) = (p.tiles.query, p.tiles.key);
    let dq_rows = SharedOut::new(dq);
    run_tasks(p.block_tasks(p.tq, bq), |task| {
        let (b, h, i0, i1) = p.block_task(task, p.tq, bq);
        let rows = i1 - i0;
        let mut block = BlockScratch::new(p)?;
        let mut acc = Scratch::zeroed(OP, rows * p.d)?;
        let keys = p.key_limit(i1 - 1);
        for j0 in (0..keys).step_by(bk) {
            let j1 = (j0 + bk).min(keys);
            let w = j1 - j0;
            block.compute(p, saved, delta, b, h, i0, i1, j0, j1);
            gemm_block(&mut acc, p.d, rows, p.d, w, Mat::dense(&block.ds[..rows * w], w), p.k.rows(b, h, j0), p.scale, true);
        }
        for r in 0..rows {
            // SAFETY: row (b, h, i0 + r) of dQ belongs to this task alone.
            unsafe { dq_rows.write(layout.row_offset(b, h, i0 + r), &acc[r * p.d..(r + 1) * p.d]) };
        }
        Ok(())
    })
}

/// dK and dV, written into `dk` and `dv` (laid out `k_layout` and `v_layout`).
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_kv(p: &Problem, saved: &Saved, delta: &[f32], k_layout: Layout, v_layout: Layout, dk: &mut [f32], dv: &mut [f32]) -> Result<()> {
    let (bq, bk) = (p.tiles.query, p.tiles.key);
    let (dk_rows, dv_rows) = (SharedOut::new(dk), SharedOut::new(dv));
    run_tasks(p.block_tasks(p.tk, bk), |task| {
        let (b, h, j0, j1) = p.block_task(task, p.tk, bk);
        let w = j1 - j0;
        let mut block = BlockScratch::new(p)?;
        let mut dk_acc = Scratch::zeroed(OP, w * p.d)?;
        let mut dv_acc = Scratch::zeroed(OP, w * p.dv)?;
        for i0 in (p.first_query(j0)..p.tq).step_by(bq) {
            let i1 = (i0 + bq).min(p.tq);
            let rows = i1 - i0;
            block.compute(p, saved, delta, b, h, i0, i1, j0, j1);
            let weights = Mat::dense(block.weights(rows * w), w);
            gemm_block(&mut dv_acc, p.dv, w, p.dv, rows, weights.t(), saved.grad.rows(b, h, i0), 1.0, true);
            let ds = Mat::dense(&block.ds[..rows * w], w);
            gemm_block(&mut dk_acc, p.d, w, p.d, rows, ds.t(), p.q.rows(b, h, i0), p.scale, true);
        }
        for r in 0..w {
            // SAFETY: key row (b, h, j0 + r) of dK and dV belongs to this task alone.
            unsafe {
                dk_rows.write(k_layout.row_offset(b, h, j0 + r), &dk_acc[r * p.d..(r + 1) * p.d]);
                dv_rows.write(v_layout.row_offset(b, h, j0 + r), &dv_acc[r * p.dv..(r + 1) * p.dv]);
            }
        }
        Ok(())
    })
}
