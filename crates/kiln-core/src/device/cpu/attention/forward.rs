//! The forward kernel: each task takes one block of queries of one head and streams the keys past
//! it in blocks, keeping a running row maximum m, a running normalizer l and an unnormalized
//! output (the online softmax), so no score matrix larger than one block ever exists.

use super::tile::{gemm_block, exp_shifted, row_max, run_tasks, scale_row, Mat, Problem, SharedOut};
use super::Layout;
use crate::error::Result;
use crate::storage::Scratch;

const OP: &str = "attention";

/// Fills `out` (laid out `layout`, [B, H, Tq, Dv] logically) and `lse` ([B, H, Tq], the log of
/// each row's softmax normalizer including its maximum; −inf for a row that sees no key).
pub(super) fn forward(p: &Problem, layout: Layout, out: &mut [f32], lse: &mut [f32]) -> Result<()> {
    let (bq, bk) = (p.tiles.query, p.tiles.key);
    let out_rows = SharedOut::new(out);
    let lse_rows = SharedOut::new(lse);
    run_tasks(p.block_tasks(p.tq, bq), |task| {
        let (b, h, i0, i1) = p.block_task(task, p.tq, bq);
        let rows = i1 - i0;
        // SAFETY: the scores of each key block are stored before they are read, and the first
        // block's product stores o without reading it (below); with no key at all, o is filled
        // with zeros at the end.
        let (mut s, mut o) = unsafe { (Scratch::unwritten(OP, rows * bk)?, Scratch::unwritten(OP, rows * p.dv)?) };
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let keys = p.key_limit(i1 - 1);
        for j0 in (0..keys).step_by(bk) {
            let j1 = (j0 + bk).min(keys);
            let w = j1 - j0;
            p.scores(b, h, i0, i1, j0, j1, &mut s[..rows * w]);
            for r in 0..rows {
                let row = &mut s[r * w..(r + 1) * w];
                let m_new = m[r].max(row_max(row));
                if m_new == f32::NEG_INFINITY {
                    // Nothing visible yet: no weight, except that NaN scores stay NaN.
                    row.iter_mut().for_each(|x| *x = if x.is_nan() { f32::NAN } else { 0.0 });
                    l[r] += row.iter().sum::<f32>();
                    continue;
                }
                // Rescale what was accumulated under the old maximum. Nothing was before the row's
                // first visible key: exp(−inf) would be 0 too, but on the way its scaling by 2ⁿ
                // makes a subnormal, which Intel cores fix up in microcode (~150 cycles: a tenth of
                // the kernel's time at T = 128, one per row).
                let alpha = if m[r] == f32::NEG_INFINITY { 0.0 } else { crate::math::exp(m[r] - m_new) };
                let sum = exp_shifted(row, m_new);
                l[r] = l[r] * alpha + sum;
                m[r] = m_new;
                // The first block's product overwrites o.
                if j0 > 0 && alpha != 1.0 {
                    scale_row(&mut o[r * p.dv..(r + 1) * p.dv], alpha);
                }
                if let Some(mask) = &p.dropout {
                    // The normalizer l keeps every weight; only the values they carry are dropped.
                    mask.apply(row, mask.row_key(p.row_id(b, h, i0 + r)), j0);
                }
            }
            gemm_block(&mut o, p.dv, rows, p.dv, w, Mat::dense(&s[..rows * w], w), p.v.rows(b, h, j0), 1.0, j0 > 0);
        }
        for r in 0..rows {
            let row = &mut o[r * p.dv..(r + 1) * p.dv];
            let lse_r = if l[r] > 0.0 {
                scale_row(row, 1.0 / l[r]);
                m[r] + l[r].ln()
            } else if l[r].is_nan() {
                row.fill(f32::NAN);
                f32::NAN
            } else {
                // A row that sees no key (fully masked): output 0 by definition, not 0/0.
                row.fill(0.0);
                f32::NEG_INFINITY
            };
            // SAFETY: row (b, h, i0 + r) belongs to this task alone.
            unsafe {
                out_rows.write(layout.row_offset(b, h, i0 + r), row);
                lse_rows.write((b * p.heads + h) * p.tq + i0 + r, &[lse_r]);
            }
        }
        Ok(())
    })
}
