//! The CNN family on the device: 2-D convolution (forward, input and weight gradients, which
//! also make up convTranspose2d, as on the CPU), max and average pooling (forward and backward),
//! and fused batch normalization (forward with the running-statistics update, backward).
//! Every kernel takes kiln-core's own parameter types (conv's Geometry, the pool Plan,
//! BatchNorm), so the device and the CPU compute from one checked description.

pub mod batch_norm;
pub mod conv;
pub mod pool;

use super::{check_u32_range, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::{DType, KilnError, Result};

/// A 1-D kernel of one invocation per element `i < params[0]`: `bindings` (access, declaration)
/// after the parameter block (binding 0), `p(k)` / `pi(k)` read parameter word k as u32 / i32,
/// and `body` runs for each element.
pub(crate) fn kernel_1d(bindings: &[(&str, &str)], body: &str) -> String {
    let mut s = String::from("@group(0) @binding(0) var<storage, read> params: array<u32>;\n");
    for (k, (access, decl)) in bindings.iter().enumerate() {
        s.push_str(&format!("@group(0) @binding({}) var<storage, {access}> {decl};\n", k + 1));
    }
    s.push_str(&format!(
        "fn p(k: u32) -> u32 {{ return params[k]; }}
fn pi(k: u32) -> i32 {{ return i32(params[k]); }}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let i = {LINEAR_INDEX};
  if (i >= params[0]) {{ return; }}
{body}
}}
"
    ));
    s
}

/// WGSL: runs `body` for every tap (ky, kx) of the window of output (oy, ox) that lands inside
/// the H x W input, at input (iy, ix) (i32). Needs H, W, KH, KW, SH, SW, DH, DW, PT, PL in scope.
pub(crate) fn window_taps(body: &str) -> String {
    format!(
        "  for (var ky = 0u; ky < KH; ky = ky + 1u) {{
    let iy = i32(oy * SH + ky * DH) - PT;
    if (iy < 0 || iy >= i32(H)) {{ continue; }}
    for (var kx = 0u; kx < KW; kx = kx + 1u) {{
      let ix = i32(ox * SW + kx * DW) - PL;
      if (ix < 0 || ix >= i32(W)) {{ continue; }}
{body}
    }}
  }}"
    )
}

/// WGSL, the adjoint walk of window_taps: runs `body` for every tap (ky, kx) and output
/// (oy, ox) whose window reads input (iy, ix) (u32), at most KH·KW of them. Needs OH, OW, KH,
/// KW, SH, SW, DH, DW, PT, PL in scope.
pub(crate) fn outputs_reading(body: &str) -> String {
    format!(
        "  for (var ky = 0u; ky < KH; ky = ky + 1u) {{
    let a = i32(iy) + PT - i32(ky * DH);
    if (a < 0 || a % i32(SH) != 0 || u32(a) / SH >= OH) {{ continue; }}
    let oy = u32(a) / SH;
    for (var kx = 0u; kx < KW; kx = kx + 1u) {{
      let b = i32(ix) + PL - i32(kx * DW);
      if (b < 0 || b % i32(SW) != 0 || u32(b) / SW >= OW) {{ continue; }}
      let ox = u32(b) / SW;
{body}
    }}
  }}"
    )
}

/// Checks that `t` is float32 with `shape` (what kiln-core's validation produced), naming `what`.
pub(crate) fn expect(op: &str, what: &str, t: &GpuTensor, shape: &[usize]) -> Result<()> {
    if t.dtype() != DType::F32 || t.shape() != shape {
        return Err(KilnError::new(op, format!("{what} must be float32 {}, got {} {}", fmt_shape(shape), t.dtype(), fmt_shape(t.shape()))));
    }
    Ok(())
}

/// A contiguous float32 operand whose element indices fit the kernels' u32 arithmetic.
pub(crate) fn operand(dev: &GpuDevice, op: &str, t: &GpuTensor) -> Result<GpuTensor> {
    let t = t.contiguous(dev)?;
    check_u32_range(op, t.offset() + t.numel())?;
    Ok(t)
}
