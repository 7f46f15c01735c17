//! Matrix multiplication: 2-D, batched with broadcast batch dimensions, either operand transposed,
//! as kiln-core's matmul. Operands are read through their strides (a transpose is a stride swap),
//! so views and the backward pass's transposed products never copy.
//!
//! Tiling: a workgroup of 16x16 threads computes a 64x64 block of C; each thread a 4x4 sub-block.
//! Per step of 16 along K, the workgroup stages a 64x16 tile of A and a 16x64 tile of B in
//! workgroup memory (8 KiB, within WebGPU's 16 KiB minimum), so each element loaded from memory
//! is used 64 times from the tile, and each thread's 4+4 tile reads feed 16 multiply-adds.

use super::{check_u32_range, Params};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::layout::{self, numel};
use kiln_core::{DType, KilnError, Result};

const TILE: usize = 64;
/// Batch dimensions the kernel indexes (after broadcasting).
const MAX_BATCH_RANK: usize = 6;

/// `a @ b`. a: [...batchA, M, K] (or [K]), b: [...batchB, K, N] (or [K]) -> [...batch, M, N],
/// batch = batchA and batchB broadcast; `transpose_a` / `transpose_b` swap an operand's last two
/// dimensions first (a view).
pub fn matmul(dev: &GpuDevice, a: &GpuTensor, b: &GpuTensor, transpose_a: bool, transpose_b: bool) -> Result<GpuTensor> {
    const OP: &str = "matmul";
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return Err(KilnError::new(OP, format!("expected float32 tensors, got {} {} and {} {}", a.dtype(), fmt_shape(a.shape()), b.dtype(), fmt_shape(b.shape()))));
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err(KilnError::new(OP, format!("operands must have rank >= 1, got shapes {} and {}", fmt_shape(a.shape()), fmt_shape(b.shape()))));
    }
    // NumPy's rule for vectors: promote to a matrix, then drop that dimension from the result.
    let (a_vec, b_vec) = (a.rank() == 1, b.rank() == 1);
    let a2 = if a_vec { a.unsqueeze(0) } else if transpose_a { a.transpose_last()? } else { a.clone() };
    let b2 = if b_vec { b.unsqueeze(1) } else if transpose_b { b.transpose_last()? } else { b.clone() };
    let (ra, rb) = (a2.rank(), b2.rank());
    let (m, k) = (a2.shape()[ra - 2], a2.shape()[ra - 1]);
    let (k2, n) = (b2.shape()[rb - 2], b2.shape()[rb - 1]);
    if k != k2 {
        return Err(KilnError::new(OP, format!(
            "inner dimensions differ: {} (transposeA={transpose_a}) x {} (transposeB={transpose_b}) gives K={k} vs K={k2}",
            fmt_shape(a.shape()), fmt_shape(b.shape())
        )));
    }
    let (a_batch, b_batch) = (&a2.shape()[..ra - 2], &b2.shape()[..rb - 2]);
    let batch = layout::broadcast_shapes(OP, a_batch, b_batch).map_err(|_| {
        KilnError::new(OP, format!("batch dimensions of {} and {} cannot be broadcast together ({} vs {})",
            fmt_shape(a.shape()), fmt_shape(b.shape()), fmt_shape(a_batch), fmt_shape(b_batch)))
    })?;
    let a_bs = layout::broadcast_strides(a_batch, &a2.strides()[..ra - 2], &batch);
    let b_bs = layout::broadcast_strides(b_batch, &b2.strides()[..rb - 2], &batch);
    // Merge batch dimensions both operands and the output walk contiguously.
    let out_bs = layout::contiguous_strides(&batch);
    let (dims, [a_bs, b_bs, _]) = layout::coalesce(&batch, [&a_bs, &b_bs, &out_bs]);
    if dims.len() > MAX_BATCH_RANK {
        return Err(KilnError::new(OP, format!("{} batch dimensions exceed the GPU kernel's {MAX_BATCH_RANK}", dims.len())));
    }

    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let out = GpuTensor::empty(dev, OP, &out_shape, DType::F32)?;
    let batches = numel(&batch);
    check_u32_range(OP, out.numel())?;
    check_u32_range(OP, a.end_index().max(b.end_index()))?;

    let groups = [n.div_ceil(TILE), m.div_ceil(TILE), batches];
    if out.numel() > 0 {
        let max = dev.limits().max_compute_workgroups_per_dimension as usize;
        if groups.iter().any(|&g| g > max) {
            return Err(KilnError::new(OP, format!("output {} needs {groups:?} workgroups, above this GPU's {max} per dimension", fmt_shape(&out_shape))));
        }
        let st = |t: &GpuTensor, d: usize| t.strides()[t.rank() - d];
        let pad = |v: &[usize], fill: usize| (0..MAX_BATCH_RANK).map(move |d| v.get(d).copied().unwrap_or(fill)).collect::<Vec<_>>();
        let params = Params::default()
            .words([m, n, k, batches, dims.len()])
            .words([a2.offset(), st(&a2, 2), st(&a2, 1), b2.offset(), st(&b2, 2), st(&b2, 1)])
            .words(pad(&dims, 1))
            .words(pad(&a_bs, 0))
            .words(pad(&b_bs, 0))
            .upload(dev, OP)?;
        let groups = groups.map(|g| g as u32);
        dev.dispatch(OP, "matmul:64x64x16:4x4", source, &[params.buffer(), a2.buffer(), b2.buffer(), out.buffer()], groups)?;
    }
    let mut shape = out_shape;
    if a_vec {
        shape.remove(shape.len() - 2);
    }
    if b_vec {
        shape.pop();
    }
    out.reshape(dev, &shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
}

/// The kernel's WGSL. The 4x4 register block is written out (16 named accumulators) rather than
/// as an indexed local array: shader compilers keep named scalars in registers, while an indexed
/// local array is only promoted to registers if every loop over it is unrolled.
fn source() -> String {
    let acc_decl: String = (0..16).map(|e| format!("  var acc{e} = 0.0;\n")).collect();
    let mut fmas = String::new();
    for i in 0..4 {
        fmas.push_str(&format!("      let a{i} = a_tile[kk * 64u + ty * 4u + {i}u];\n      let b{i} = b_tile[kk * 64u + tx * 4u + {i}u];\n"));
    }
    for i in 0..4 {
        for j in 0..4 {
            fmas.push_str(&format!("      acc{e} = fma(a{i}, b{j}, acc{e});\n", e = i * 4 + j));
        }
    }
    let mut writes = String::new();
    for i in 0..4 {
        for j in 0..4 {
            writes.push_str(&format!(
                "  if (row0 + ty * 4u + {i}u < M && col0 + tx * 4u + {j}u < N) {{ c[c_base + (row0 + ty * 4u + {i}u) * N + col0 + tx * 4u + {j}u] = acc{e}; }}\n",
                e = i * 4 + j
            ));
        }
    }
    format!(
        "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// params: [M, N, K, batches, batch rank, a offset, a row stride, a col stride,
//          b offset, b row stride, b col stride, batch shape[6], a batch strides[6], b batch strides[6]]
var<workgroup> a_tile: array<f32, 1024>; // [16 k][64 rows]
var<workgroup> b_tile: array<f32, 1024>; // [16 k][64 cols]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {{
  let M = params[0];
  let N = params[1];
  let K = params[2];
  let tx = lid3.x;
  let ty = lid3.y;
  let lid = ty * 16u + tx;
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  // Start of this batch's matrices: peel the batch index over the (broadcast) batch shape.
  var rem = wid.z;
  var a_base = params[5];
  var b_base = params[8];
  for (var d = params[4]; d > 0u; d = d - 1u) {{
    let size = params[10u + d];
    let idx = rem % size;
    rem = rem / size;
    a_base = a_base + idx * params[16u + d];
    b_base = b_base + idx * params[22u + d];
  }}
  let a_rs = params[6];
  let a_cs = params[7];
  let b_rs = params[9];
  let b_cs = params[10];
{acc_decl}  for (var k0 = 0u; k0 < K; k0 = k0 + 16u) {{
    // Each thread stages 4 elements of each tile; zeros past the matrix edges.
    for (var l = 0u; l < 4u; l = l + 1u) {{
      let e = lid + l * 256u;
      let r = e / 16u;
      let kk = e % 16u;
      var v = 0.0;
      if (row0 + r < M && k0 + kk < K) {{ v = a[a_base + (row0 + r) * a_rs + (k0 + kk) * a_cs]; }}
      a_tile[kk * 64u + r] = v;
      let kb = e / 64u;
      let cc = e % 64u;
      var w = 0.0;
      if (k0 + kb < K && col0 + cc < N) {{ w = b[b_base + (k0 + kb) * b_rs + (col0 + cc) * b_cs]; }}
      b_tile[kb * 64u + cc] = w;
    }}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) {{
{fmas}    }}
    workgroupBarrier();
  }}
  let c_base = wid.z * M * N;
{writes}}}
"
    )
}
