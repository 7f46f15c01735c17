//! The CPU's message-passing kernels (graph neural networks): spmm over an edge list and
//! segment_reduce. Both group the edges by their output row with a stable counting sort (O(E + N),
//! cheap next to the E·F arithmetic), so each output row is owned by one thread and summed in edge
//! order: the results are deterministic, and no [E, F] message tensor is ever materialized.
//! Shapes and dtypes are checked by ops/graph.rs; index values are checked here.

use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::numel;
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::params::graph::{expect_index, list_index_out_of_range, SegmentReduce};
use crate::tensor::Tensor;

/// Edges grouped by one endpoint: the edges of row r are `edge[offsets[r]..offsets[r + 1]]`, in
/// their original order (the counting sort is stable).
struct Grouped {
    offsets: Vec<usize>,
    edge: Vec<u32>,
}

impl Grouped {
    /// Fails (rather than aborting the process) if `rows` offsets cannot be allocated.
    fn new(op: &str, keys: &[i32], rows: usize) -> Result<Grouped> {
        let mut offsets: Vec<usize> = Vec::new();
        offsets.try_reserve_exact(rows + 1).map_err(|_| KilnError::new(op, format!("cannot allocate the offsets of {rows} output rows: out of memory")))?;
        offsets.resize(rows + 1, 0);
        for &k in keys {
            offsets[k as usize + 1] += 1;
        }
        for r in 0..rows {
            offsets[r + 1] += offsets[r];
        }
        // Place each edge at its row's cursor (offsets[r] walks from the start of row r to the
        // start of row r + 1), then shift the offsets back: no second array of `rows` entries.
        let mut edge = vec![0u32; keys.len()];
        for (e, &k) in keys.iter().enumerate() {
            edge[offsets[k as usize]] = e as u32;
            offsets[k as usize] += 1;
        }
        for r in (1..=rows).rev() {
            offsets[r] = offsets[r - 1];
        }
        offsets[0] = 0;
        Ok(Grouped { offsets, edge })
    }
}

/// An int32 [E] index tensor whose values all lie in [0, bound), as a Vec.
fn check_index(op: &str, what: &str, t: &Tensor, edges: usize, bound: usize, bound_what: &str) -> Result<Vec<i32>> {
    expect_index(op, what, (t.shape(), t.dtype()), edges)?;
    let v = t.elements::<i32>(op)?;
    if let Some((e, &bad)) = v.iter().enumerate().find(|(_, &i)| i < 0 || i as usize >= bound) {
        return Err(KilnError::new(op, list_index_out_of_range(what, &bad.to_string(), &e.to_string(), bound, bound_what)));
    }
    Ok(v)
}

/// Work (multiply-adds) below which a kernel stays on the calling thread.
fn chunks_for(rows: usize, work: usize) -> usize {
    if work < parallel::MIN_PARALLEL_ELEMENTS {
        1
    } else {
        parallel::chunk_count(work).min(rows.max(1))
    }
}

multiversion! {
    /// Rows [start, start + out.len() / inner) of out[r] = Σ_{e in group r} w[e] · x[other[e]].
    fn gather_rows_kernel(x: &[f32], inner: usize, grouped: &Grouped, other: &[i32], weight: Option<&[f32]>, start: usize, out: &mut [f32]) {
        for (i, row) in out.chunks_exact_mut(inner).enumerate() {
            let r = start + i;
            for &e in &grouped.edge[grouped.offsets[r]..grouped.offsets[r + 1]] {
                let e = e as usize;
                let w = weight.map_or(1.0, |w| w[e]);
                let src = &x[other[e] as usize * inner..][..inner];
                for (o, &v) in row.iter_mut().zip(src) {
                    *o += w * v;
                }
            }
        }
    }
}

/// out[r] = Σ_{e: key[e] = r} w[e] · x[other[e]] for r in 0..rows, x contiguous [_, inner].
fn gather_rows(op: &str, x: &[f32], inner: usize, key: &[i32], other: &[i32], weight: Option<&[f32]>, rows: usize) -> Result<Vec<f32>> {
    let mut out = crate::storage::try_zeroed::<f32>(op, rows.checked_mul(inner).ok_or_else(|| KilnError::new(op, "output is too large"))?)?;
    if inner == 0 || rows == 0 {
        return Ok(out);
    }
    let grouped = Grouped::new(op, key, rows)?;
    let dst = SendPtr(out.as_mut_ptr());
    parallel::for_each_chunk(rows, chunks_for(rows, key.len() * inner), |s, e| {
        // SAFETY: chunks cover disjoint row ranges of `out`.
        let part = unsafe { std::slice::from_raw_parts_mut(dst.get().add(s * inner), (e - s) * inner) };
        gather_rows_kernel(x, inner, &grouped, other, weight, s, part);
    });
    Ok(out)
}

multiversion! {
    /// dw[e] = <g[dst[e]], x[src[e]]> for edges [start, start + dw.len()).
    fn edge_dot_kernel(g: &[f32], x: &[f32], inner: usize, src: &[i32], dst: &[i32], start: usize, dw: &mut [f32]) {
        for (i, out) in dw.iter_mut().enumerate() {
            let e = start + i;
            let a = &g[dst[e] as usize * inner..][..inner];
            let b = &x[src[e] as usize * inner..][..inner];
            *out = dot(a, b);
        }
    }
}

/// <a, b> with 16 independent accumulators, so the loop vectorizes (a single running f32 sum
/// cannot be reordered by the compiler). Inlined into the multiversioned kernel that calls it.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(p, q)| p * q).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn edge_dot(g: &[f32], x: &[f32], inner: usize, src: &[i32], dst: &[i32]) -> Vec<f32> {
    let edges = src.len();
    let mut dw = vec![0.0f32; edges];
    let ptr = SendPtr(dw.as_mut_ptr());
    parallel::for_each_chunk(edges, chunks_for(edges, edges * inner), |s, e| {
        // SAFETY: chunks cover disjoint edge ranges of `dw`.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(s), e - s) };
        edge_dot_kernel(g, x, inner, src, dst, s, part);
    });
    dw
}

/// out[dst[e]] += weight[e] · x[src[e]] -> [num_out, ...f] (see ops::spmm).
pub(crate) fn spmm(x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
    const OP: &str = "spmm";
    let (src_v, dst_v) = edge_lists(x, src, dst, num_out)?;
    let inner = numel(&x.shape()[1..]);
    let xc = x.materialize()?;
    let wc = weight.map(|w| w.materialize()).transpose()?;
    let w_slice = wc.as_ref().map(|w| w.cpu_slice::<f32>(OP)).transpose()?;
    let out = gather_rows(OP, xc.cpu_slice::<f32>(OP)?, inner, &dst_v, &src_v, w_slice, num_out)?;
    let mut out_shape = x.shape().to_vec();
    out_shape[0] = num_out;
    Tensor::from_vec(out, &out_shape)
}

/// src and dst as checked index lists: src into x's rows, dst into the `num_out` output rows.
fn edge_lists(x: &Tensor, src: &Tensor, dst: &Tensor, num_out: usize) -> Result<(Vec<i32>, Vec<i32>)> {
    const OP: &str = "spmm";
    let (n_in, edges) = (x.shape()[0], src.shape()[0]);
    let what = format!("x has {n_in} rows, x {} {}", x.dtype(), fmt_shape(x.shape()));
    let src_v = check_index(OP, "src", src, edges, n_in, &what)?;
    let dst_v = check_index(OP, "dst", dst, edges, num_out, &format!("numOut is {num_out}"))?;
    Ok((src_v, dst_v))
}

/// spmm's weight gradient: dw[e] = <g[dst[e]], x[src[e]]>.
pub(crate) fn spmm_weight_grad(x: &Tensor, src: &Tensor, dst: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "spmm";
    let (src_v, dst_v) = edge_lists(x, src, dst, g.shape()[0])?;
    let inner = numel(&x.shape()[1..]);
    let (xc, gc) = (x.materialize()?, g.materialize()?);
    let dw = edge_dot(gc.cpu_slice::<f32>(OP)?, xc.cpu_slice::<f32>(OP)?, inner, &src_v, &dst_v);
    Tensor::from_vec(dw, &[src_v.len()])
}

multiversion! {
    /// Segments [start, ..) of a sum / mean / max over the grouped rows of `values`; for max, the
    /// winning row per element goes to `arg` (-1 for an empty segment).
    fn segment_kernel(values: &[f32], inner: usize, grouped: &Grouped, op: SegmentReduce, start: usize, out: &mut [f32], arg: &mut [i32]) {
        for (i, row) in out.chunks_exact_mut(inner).enumerate() {
            let s = start + i;
            let members = &grouped.edge[grouped.offsets[s]..grouped.offsets[s + 1]];
            match op {
                SegmentReduce::Sum | SegmentReduce::Mean => {
                    for &e in members {
                        for (o, &v) in row.iter_mut().zip(&values[e as usize * inner..][..inner]) {
                            *o += v;
                        }
                    }
                    if op == SegmentReduce::Mean && members.len() > 1 {
                        let scale = 1.0 / members.len() as f32;
                        row.iter_mut().for_each(|o| *o *= scale);
                    }
                }
                SegmentReduce::Max => {
                    let arg = &mut arg[i * inner..][..inner];
                    let Some((&first, rest)) = members.split_first() else {
                        arg.fill(-1);
                        continue;
                    };
                    row.copy_from_slice(&values[first as usize * inner..][..inner]);
                    arg.fill(first as i32);
                    for &e in rest {
                        for ((o, a), &v) in row.iter_mut().zip(arg.iter_mut()).zip(&values[e as usize * inner..][..inner]) {
                            // NaN wins, so a NaN in a segment shows in its maximum.
                            if v > *o || (v.is_nan() && !o.is_nan()) {
                                *o = v;
                                *a = e as i32;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// segment_reduce -> (the result, for max the winning row per element as int32).
pub(crate) fn segment_reduce(values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "segmentReduce";
    let rows = values.shape()[0];
    let id_v = check_index(OP, "segmentIds", ids, rows, num_segments, &format!("numSegments is {num_segments}; values {} {}", values.dtype(), fmt_shape(values.shape())))?;
    let inner = numel(&values.shape()[1..]);
    let mut out_shape = values.shape().to_vec();
    out_shape[0] = num_segments;
    if inner == 0 {
        // No elements per row: nothing to reduce, nor to group (numSegments alone may be huge).
        return Ok((Tensor::from_vec(Vec::<f32>::new(), &out_shape)?, None));
    }
    let total = num_segments.checked_mul(inner).ok_or_else(|| KilnError::new(OP, "output is too large"))?;
    let mut out = crate::storage::try_zeroed::<f32>(OP, total)?;
    let mut arg = if op == SegmentReduce::Max { crate::storage::try_zeroed::<i32>(OP, total)? } else { Vec::new() };
    // Allocated after the output, which is at least as large, so an impossible size fails there.
    let grouped = Grouped::new(OP, &id_v, num_segments)?;
    if num_segments > 0 {
        let vc = values.materialize()?;
        let vs = vc.cpu_slice::<f32>(OP)?;
        let (out_ptr, arg_ptr) = (SendPtr(out.as_mut_ptr()), SendPtr(arg.as_mut_ptr()));
        let has_arg = !arg.is_empty();
        parallel::for_each_chunk(num_segments, chunks_for(num_segments, rows * inner), |s, e| {
            // SAFETY: chunks cover disjoint segment ranges of `out` and `arg`.
            let part = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(s * inner), (e - s) * inner) };
            let arg_part: &mut [i32] = if has_arg { unsafe { std::slice::from_raw_parts_mut(arg_ptr.get().add(s * inner), (e - s) * inner) } } else { &mut [] };
            segment_kernel(vs, inner, &grouped, op, s, part, arg_part);
        });
    }
    let arg = if op == SegmentReduce::Max { Some(Tensor::from_vec(arg, &out_shape)?) } else { None };
    Ok((Tensor::from_vec(out, &out_shape)?, arg))
}

/// segment_reduce's gradient: each row of values gets its segment's gradient (scaled by 1/count
/// for mean; for max only where the row won).
pub(crate) fn segment_reduce_backward(g: &Tensor, ids: &Tensor, arg: Option<&Tensor>, op: SegmentReduce, values_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "segmentReduce";
    let (rows, inner, num_segments) = (values_shape[0], numel(&values_shape[1..]), g.shape()[0]);
    if inner == 0 {
        return Tensor::from_vec(Vec::<f32>::new(), values_shape);
    }
    let id_v = ids.elements::<i32>(OP)?;
    let mut count = vec![0usize; if op == SegmentReduce::Mean { num_segments } else { 0 }];
    if op == SegmentReduce::Mean {
        id_v.iter().for_each(|&s| count[s as usize] += 1);
    }
    let arg = match (op, arg) {
        (SegmentReduce::Max, Some(a)) => a.elements::<i32>(OP)?,
        (SegmentReduce::Max, None) => return Err(KilnError::new(OP, "internal error: max lost its winning rows")),
        _ => Vec::new(),
    };
    let gc = g.materialize()?;
    let gs = gc.cpu_slice::<f32>(OP)?;
    let mut dv = crate::storage::try_zeroed::<f32>(OP, rows * inner)?;
    for (e, row) in dv.chunks_exact_mut(inner).enumerate() {
        let s = id_v[e] as usize;
        let gr = &gs[s * inner..][..inner];
        match op {
            SegmentReduce::Sum => row.copy_from_slice(gr),
            SegmentReduce::Mean => {
                let scale = 1.0 / count[s] as f32;
                row.iter_mut().zip(gr).for_each(|(d, &v)| *d = v * scale);
            }
            SegmentReduce::Max => {
                let a = &arg[s * inner..][..inner];
                for ((d, &v), &winner) in row.iter_mut().zip(gr).zip(a) {
                    if winner == e as i32 {
                        *d = v;
                    }
                }
            }
        }
    }
    Tensor::from_vec(dv, values_shape)
}
