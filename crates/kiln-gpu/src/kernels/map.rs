//! The one elementwise kernel family: N inputs broadcast together (NumPy rules, any strides),
//! one output, and a WGSL expression for the output element. Unary and binary ops, their
//! backward passes, casts, `where` and plain copies are all instances of it (elementwise.rs);
//! only the expression differs, and it comes from the op table (table.rs).
//!
//! Each input is read one of three ways, chosen on the host and baked into the kernel:
//! `f` flat (contiguous, full size: element i), `s` scalar (one element), `g` general (strided or
//! broadcast: the index is rebuilt dimension by dimension from the parameter block). Most calls
//! are all-flat, and skip the per-dimension divisions entirely.

use super::{check_u32_range, Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::{wgsl_type, GpuTensor};
use kiln_core::error::fmt_shape;
use kiln_core::layout::{self, contiguous_strides};
use kiln_core::{DType, KilnError, Result};
use std::fmt::Write;

/// Dimensions the general path indexes after merging (layout::coalesce); views rarely need more.
const MAX_RANK: usize = 8;

pub(crate) struct Map<'a> {
    /// The user-facing op, for error messages.
    pub op: &'a str,
    /// Names the expression uniquely: part of the kernel cache key.
    pub kernel: &'a str,
    /// WGSL variable name of each input, and the tensor.
    pub inputs: &'a [(&'a str, &'a GpuTensor)],
    pub out_dtype: DType,
    /// WGSL statements run before the output expression (may define `let`s it uses).
    pub body: &'a str,
    /// The output element; may use the inputs' names, `alpha`, and the prelude's functions.
    pub expr: &'a str,
    pub alpha: f32,
}

pub(crate) fn run(dev: &GpuDevice, m: Map) -> Result<GpuTensor> {
    let mut shape: Vec<usize> = Vec::new();
    for (_, t) in m.inputs {
        shape = layout::broadcast_shapes(m.op, &shape, t.shape()).map_err(|_| {
            let shapes: Vec<String> = m.inputs.iter().map(|(_, t)| format!("{} {}", t.dtype(), fmt_shape(t.shape()))).collect();
            KilnError::new(m.op, format!("shapes cannot be broadcast together: {}", shapes.join(", ")))
        })?;
    }
    let out = GpuTensor::empty(dev, m.op, &shape, m.out_dtype)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    check_u32_range(m.op, n)?;
    let out_strides = contiguous_strides(&shape);

    // Per input: access pattern and the strides it is read with in the broadcast shape.
    let mut pattern = String::new();
    let mut strides: Vec<Vec<usize>> = Vec::new();
    for (_, t) in m.inputs {
        check_u32_range(m.op, t.end_index())?;
        let s = layout::broadcast_strides(t.shape(), t.strides(), &shape);
        pattern.push(if t.numel() == 1 { 's' } else if t.is_contiguous() && t.shape() == shape.as_slice() { 'f' } else { 'g' });
        strides.push(s);
    }
    // Merge dimensions every operand walks contiguously; four slots, unused ones mirror the output.
    let slot = |k: usize| strides.get(k).unwrap_or(&out_strides).as_slice();
    let (dims, merged) = layout::coalesce(&shape, [slot(0), slot(1), slot(2), &out_strides]);
    if pattern.contains('g') && dims.len() > MAX_RANK {
        return Err(KilnError::new(m.op, format!("strided inputs of rank {} (after merging) exceed the GPU kernel's {MAX_RANK}", dims.len())));
    }

    let mut params = Params::default().u32(n).u32(dims.len()).f32(m.alpha);
    params = params.words((0..MAX_RANK).map(|d| dims.get(d).copied().unwrap_or(1)));
    for (k, (_, t)) in m.inputs.iter().enumerate() {
        params = params.u32(t.offset()).words((0..MAX_RANK).map(|d| merged[k].get(d).copied().unwrap_or(0)));
    }
    let params = params.upload(dev, m.op)?;

    let types: Vec<&str> = m.inputs.iter().map(|(_, t)| wgsl_type(t.dtype())).collect();
    let key = format!("map:{}:{}:{}->{}", m.kernel, pattern, types.join(","), wgsl_type(m.out_dtype));
    let source = || source(&m, &pattern, &types);
    let mut buffers: Vec<&wgpu::Buffer> = vec![params.buffer()];
    buffers.extend(m.inputs.iter().map(|(_, t)| t.buffer()));
    buffers.push(out.buffer());
    dev.dispatch(m.op, &key, source, &buffers, dev.groups_1d(n))?;
    Ok(out)
}

fn source(m: &Map, pattern: &str, types: &[&str]) -> String {
    let k_out = m.inputs.len() + 1;
    let mut s = String::from("@group(0) @binding(0) var<storage, read> params: array<u32>;\n");
    for (k, ty) in types.iter().enumerate() {
        writeln!(s, "@group(0) @binding({}) var<storage, read> in{k}: array<{ty}>;", k + 1).unwrap();
    }
    writeln!(s, "@group(0) @binding({k_out}) var<storage, read_write> out: array<{}>;", wgsl_type(m.out_dtype)).unwrap();
    s.push_str(super::table::PRELUDE);
    writeln!(s, "@compute @workgroup_size(256)\nfn main({ENTRY_ARGS_1D}) {{").unwrap();
    writeln!(s, "  let i = {LINEAR_INDEX};\n  if (i >= params[0]) {{ return; }}\n  let alpha = bitcast<f32>(params[2]);").unwrap();
    // Parameter block: [n, rank, alpha, shape[MAX_RANK], then per input: offset, strides[MAX_RANK]].
    let base = |k: usize| 3 + MAX_RANK + k * (MAX_RANK + 1);
    if pattern.contains('g') {
        s.push_str("  var rem = i;\n");
        for (k, p) in pattern.chars().enumerate() {
            if p == 'g' {
                writeln!(s, "  var o{k} = params[{}u];", base(k)).unwrap();
            }
        }
        // Innermost dimension first: peel the index digit by digit.
        s.push_str("  for (var d = params[1]; d > 0u; d = d - 1u) {\n    let size = params[2u + d];\n    let idx = rem % size;\n    rem = rem / size;\n");
        for (k, p) in pattern.chars().enumerate() {
            if p == 'g' {
                writeln!(s, "    o{k} = o{k} + idx * params[{}u + d];", base(k)).unwrap();
            }
        }
        s.push_str("  }\n");
    }
    for (k, p) in pattern.chars().enumerate() {
        let index = match p {
            'f' => format!("params[{}u] + i", base(k)),
            's' => format!("params[{}u]", base(k)),
            _ => format!("o{k}"),
        };
        writeln!(s, "  let {} = in{k}[{index}];", m.inputs[k].0).unwrap();
    }
    writeln!(s, "  {}\n  out[i] = {};\n}}", m.body, m.expr).unwrap();
    s
}
