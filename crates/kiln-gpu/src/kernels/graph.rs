//! The GNN message-passing ops of kiln-core's ops/graph.rs on the device, forward and backward:
//! - spmm: out[dst[e]] += w[e] x[src[e]], one invocation per (edge, feature) adding into the
//!   output with a compare-exchange float add; its x-gradient is spmm over the reversed edges,
//!   its weight-gradient one dot product per edge;
//! - segment_reduce: sum / mean / max of the rows of values grouped by id. Max runs three
//!   passes: a compare-exchange max per (segment, feature), then the lowest row holding it
//!   (atomicMin, so ties go to the first row, as on the CPU), then the values; that winning row
//!   is kept for the backward pass.
//!
//! The CPU sums each output row in edge order; here the adds land in any order, so results differ
//! from the CPU's by float rounding (the tests state the tolerance). Edge and segment indices are
//! checked on the device (checks.rs) and reported at the next readback.

use super::creation::{full, zeros};
use super::index::gather;
use super::launch::{atomic_add_f32, run_1d, Kernel};
use super::Params;
use crate::checks::OR_SECOND;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::layout::numel;
use kiln_core::ops::graph::{expect_index, list_index_out_of_range, segment_reduce_rows, spmm_edges};
use kiln_core::ops::SegmentReduce;
use kiln_core::{DType, Result};

/// Sparse-dense product over an edge list: x float32 [N, ...f], src/dst int32 [E] (src in
/// [0, N), dst in [0, num_out)), weight float32 [E] or None (1) -> [num_out, ...f].
pub fn spmm(dev: &GpuDevice, x: &GpuTensor, src: &GpuTensor, dst: &GpuTensor, weight: Option<&GpuTensor>, num_out: usize) -> Result<GpuTensor> {
    const OP: &str = "spmm";
    let edges = spmm_edges((x.shape(), x.dtype()), (src.shape(), src.dtype()), (dst.shape(), dst.dtype()), weight.map(|w| (w.shape(), w.dtype())))?;
    let mut out_shape = x.shape().to_vec();
    out_shape[0] = num_out;
    let out = zeros(dev, &out_shape, DType::F32)?;
    let n_in = x.shape()[0];
    let inner = numel(&x.shape()[1..]);
    let n = edges * inner;
    if n == 0 {
        return Ok(out);
    }
    let (xc, sc, dc) = (x.contiguous(dev)?, src.contiguous(dev)?, dst.contiguous(dev)?);
    let wc = weight.map(|w| w.contiguous(dev)).transpose()?;
    super::check_u32_range(OP, n.max(xc.end_index()).max(out.numel()))?;
    // params: [n, inner, x rows, out rows, x offset, src offset, dst offset, weight offset]
    let params = Params::default().u32(n).u32(inner).u32(n_in).u32(num_out).u32(xc.offset()).u32(sc.offset()).u32(dc.offset()).u32(wc.as_ref().map_or(0, |w| w.offset()));
    let (w_decl, w_expr) = if wc.is_some() {
        ("@group(0) @binding(5) var<storage, read> w: array<f32>;", "w[p(7u) + e]")
    } else {
        ("", "1.0")
    };
    let decls = format!(
        "@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<i32>;
@group(0) @binding(3) var<storage, read> dst: array<i32>;
@group(0) @binding(4) var<storage, read_write> out: array<atomic<u32>>;
{w_decl}
{}",
        atomic_add_f32("out")
    );
    let body = format!(
        "  let k = i % p(1u); let e = i / p(1u);
  let s = checked(src[p(5u) + e], p(2u), e);
  let d = checked(dst[p(6u) + e], p(3u), e | SECOND);
  add_out(d * p(1u) + k, {w_expr} * x[p(4u) + s * p(1u) + k]);"
    );
    let key = format!("spmm:{}", if wc.is_some() { "weighted" } else { "plain" });
    let check = Some(edge_check(x, n_in, num_out));
    let mut buffers = vec![xc.buffer(), sc.buffer(), dc.buffer(), out.buffer()];
    if let Some(w) = &wc {
        buffers.push(w.buffer());
    }
    run_1d(dev, Kernel { op: OP, key: &key, decls: &decls, body: &body, check }, n, params, &buffers)?;
    Ok(out)
}

/// spmm's messages for a bad src or dst index, as kiln-core words them.
fn edge_check(x: &GpuTensor, n_in: usize, num_out: usize) -> String {
    let src = list_index_out_of_range("src", "{value}", "{position}", n_in, &format!("x has {n_in} rows, x {} {}", x.dtype(), fmt_shape(x.shape())));
    let dst = list_index_out_of_range("dst", "{value}", "{position}", num_out, &format!("numOut is {num_out}"));
    format!("{src}{OR_SECOND}{dst}")
}

/// segmentReduce's message for a bad segment id.
fn segment_check(segments: usize, bound_what: &str) -> String {
    list_index_out_of_range("segmentIds", "{value}", "{position}", segments, bound_what)
}

/// spmm's weight gradient: dw[e] = <g[dst[e]], x[src[e]]>, one invocation per edge.
pub fn spmm_weight_grad(dev: &GpuDevice, x: &GpuTensor, src: &GpuTensor, dst: &GpuTensor, g: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "spmm";
    let edges = src.numel();
    let inner = numel(&x.shape()[1..]);
    let dw = GpuTensor::empty(dev, OP, &[edges], DType::F32)?;
    let (xc, gc, sc, dc) = (x.contiguous(dev)?, g.contiguous(dev)?, src.contiguous(dev)?, dst.contiguous(dev)?);
    super::check_u32_range(OP, xc.end_index().max(gc.end_index()))?;
    let params = Params::default().u32(edges).u32(inner).u32(x.shape()[0]).u32(g.shape()[0]).u32(xc.offset()).u32(gc.offset()).u32(sc.offset()).u32(dc.offset());
    let decls = "@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<i32>;
@group(0) @binding(4) var<storage, read> dst: array<i32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;";
    // params: [edges, inner, x rows, g rows, x offset, g offset, src offset, dst offset]
    let body = "  let s = checked(src[p(6u) + i], p(2u), i);
  let d = checked(dst[p(7u) + i], p(3u), i | SECOND);
  var acc = 0.0;
  for (var k = 0u; k < p(1u); k = k + 1u) { acc = acc + g[p(5u) + d * p(1u) + k] * x[p(4u) + s * p(1u) + k]; }
  dw[i] = acc;";
    let check = Some(edge_check(x, x.shape()[0], g.shape()[0]));
    run_1d(dev, Kernel { op: OP, key: "spmm_weight_grad", decls, body, check }, edges, params, &[xc.buffer(), gc.buffer(), sc.buffer(), dc.buffer(), dw.buffer()])?;
    Ok(dw)
}

/// What segment_reduce keeps for its backward pass: the rows per segment (mean, float32
/// [num_segments]) or the winning row per (segment, feature) (max, int32, -1 when empty).
pub enum SegmentSaved {
    None,
    Counts(GpuTensor),
    Winners(GpuTensor),
}

/// Reduces the rows of values [E, ...f] sharing an id (ids int32 [E] in [0, num_segments)) ->
/// [num_segments, ...f]; an empty segment gives 0. Also returns what the backward pass needs.
pub fn segment_reduce(dev: &GpuDevice, values: &GpuTensor, ids: &GpuTensor, num_segments: usize, op: SegmentReduce) -> Result<(GpuTensor, SegmentSaved)> {
    const OP: &str = "segmentReduce";
    let rows = segment_reduce_rows(values.shape(), values.dtype())?;
    expect_index(OP, "segmentIds", (ids.shape(), ids.dtype()), rows)?;
    let inner = numel(&values.shape()[1..]);
    let mut out_shape = values.shape().to_vec();
    out_shape[0] = num_segments;
    let (vc, ic) = (values.contiguous(dev)?, ids.contiguous(dev)?);
    super::check_u32_range(OP, vc.end_index().max(num_segments.saturating_mul(inner)))?;
    let check = || Some(segment_check(num_segments, &format!("numSegments is {num_segments}; values {} {}", values.dtype(), fmt_shape(values.shape()))));
    let n = rows * inner;
    // params: [n, inner, segments, values offset, ids offset]
    let params = || Params::default().u32(n).u32(inner).u32(num_segments).u32(vc.offset()).u32(ic.offset());
    let head = "@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
";
    let locate = "  let k = i % p(1u); let e = i / p(1u);
  let s = checked(ids[p(4u) + e], p(2u), e);
  let at = s * p(1u) + k;
";
    match op {
        SegmentReduce::Sum | SegmentReduce::Mean => {
            let out = zeros(dev, &out_shape, DType::F32)?;
            let mean = op == SegmentReduce::Mean;
            let counts = zeros(dev, &[if mean { num_segments } else { 0 }], DType::F32)?;
            let count_decls = if mean {
                format!("@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;\n{}", atomic_add_f32("counts"))
            } else {
                String::new()
            };
            let decls = format!("{head}@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;\n{}{count_decls}", atomic_add_f32("out"));
            let count = if mean { "  if (k == 0u) { add_counts(s, 1.0); }" } else { "" };
            let body = format!("{locate}  add_out(at, v[p(3u) + i]);\n{count}");
            let key = format!("segment_sum:{}", if mean { "count" } else { "plain" });
            let mut buffers = vec![vc.buffer(), ic.buffer(), out.buffer()];
            if mean {
                buffers.push(counts.buffer());
            }
            run_1d(dev, Kernel { op: OP, key: &key, decls: &decls, body: &body, check: check() }, n, params(), &buffers)?;
            if !mean {
                return Ok((out, SegmentSaved::None));
            }
            // Divide as the CPU does: only segments of more than one row, by multiplying with 1/count.
            let decls = "@group(0) @binding(1) var<storage, read> counts: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;";
            let body = "  let c = counts[i / p(1u)];\n  if (c > 1.0) { out[i] = out[i] * (1.0 / c); }";
            let total = out.numel();
            run_1d(dev, Kernel { op: OP, key: "segment_mean_scale", decls, body, check: None }, total, Params::default().u32(total).u32(inner), &[counts.buffer(), out.buffer()])?;
            Ok((out, SegmentSaved::Counts(counts)))
        }
        SegmentReduce::Max => {
            let best = full(dev, &out_shape, f64::NEG_INFINITY, DType::F32)?;
            let decls = format!("{head}@group(0) @binding(3) var<storage, read_write> best: array<atomic<u32>>;");
            let body = format!(
                "{locate}  let val = v[p(3u) + i];
  var old = atomicLoad(&best[at]);
  loop {{
    if (!(val > bitcast<f32>(old))) {{ break; }}
    let r = atomicCompareExchangeWeak(&best[at], old, bitcast<u32>(val));
    if (r.exchanged) {{ break; }}
    old = r.old_value;
  }}"
            );
            run_1d(dev, Kernel { op: OP, key: "segment_max", decls: &decls, body: &body, check: check() }, n, params(), &[vc.buffer(), ic.buffer(), best.buffer()])?;
            // The first row holding the maximum; all-ones bits (-1 as int32) marks an empty segment.
            let winners = full(dev, &out_shape, -1.0, DType::I32)?;
            let decls = format!(
                "{head}@group(0) @binding(3) var<storage, read> best: array<f32>;
@group(0) @binding(4) var<storage, read_write> winner: array<atomic<u32>>;"
            );
            let body = format!("{locate}  if (v[p(3u) + i] == best[at]) {{ atomicMin(&winner[at], e); }}");
            run_1d(dev, Kernel { op: OP, key: "segment_argmax", decls: &decls, body: &body, check: check() }, n, params(), &[vc.buffer(), ic.buffer(), best.buffer(), winners.buffer()])?;
            let out = GpuTensor::empty(dev, OP, &out_shape, DType::F32)?;
            let decls = "@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> winner: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;";
            let body = "  let e = winner[i];\n  out[i] = select(v[p(2u) + u32(e) * p(1u) + i % p(1u)], 0.0, e < 0);";
            let total = out.numel();
            run_1d(dev, Kernel { op: OP, key: "segment_max_values", decls, body, check: None }, total, Params::default().u32(total).u32(inner).u32(vc.offset()), &[vc.buffer(), winners.buffer(), out.buffer()])?;
            Ok((out, SegmentSaved::Winners(winners)))
        }
    }
}

/// The gradient of segment_reduce for values [rows, ...f] from g [num_segments, ...f].
pub fn segment_reduce_backward(dev: &GpuDevice, g: &GpuTensor, ids: &GpuTensor, saved: &SegmentSaved, values_shape: &[usize]) -> Result<GpuTensor> {
    const OP: &str = "segmentReduce";
    let (gc, ic) = (g.contiguous(dev)?, ids.contiguous(dev)?);
    let aux = match saved {
        // Sum: every row gets its segment's gradient.
        SegmentSaved::None => return gather(dev, &gc, &ic, 0),
        SegmentSaved::Counts(c) | SegmentSaved::Winners(c) => c,
    };
    let out = GpuTensor::empty(dev, OP, values_shape, DType::F32)?;
    let inner = numel(&values_shape[1..]);
    let n = out.numel();
    let segments = g.shape()[0];
    // params: [n, inner, segments, g offset, ids offset]
    let params = Params::default().u32(n).u32(inner).u32(segments).u32(gc.offset()).u32(ic.offset());
    let (key, aux_ty, expr) = match saved {
        SegmentSaved::Counts(_) => ("segment_mean_backward", "f32", "g[p(3u) + at] * (1.0 / aux[s])"),
        _ => ("segment_max_backward", "i32", "select(0.0, g[p(3u) + at], aux[at] == i32(e))"),
    };
    let decls = format!(
        "@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read> aux: array<{aux_ty}>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;"
    );
    let body = format!("  let k = i % p(1u); let e = i / p(1u);\n  let s = checked(ids[p(4u) + e], p(2u), e);\n  let at = s * p(1u) + k;\n  out[i] = {expr};");
    let check = Some(segment_check(segments, &format!("numSegments is {segments}")));
    run_1d(dev, Kernel { op: OP, key, decls: &decls, body: &body, check }, n, params, &[gc.buffer(), ic.buffer(), aux.buffer(), out.buffer()])?;
    Ok(out)
}
