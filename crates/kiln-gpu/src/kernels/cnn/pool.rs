//! Max and average pooling over [batch, channels, height, width], forward and backward, from
//! kiln-core's checked pool Plan. Forward: one invocation per output window. Backward: one per
//! input element, gathering the outputs whose windows read it (at most kh·kw), so no two
//! invocations write one element and no float atomics are needed.
//!
//! Max pooling returns, with the maxima, each window's first argmax as an index into its input
//! plane (int32, row-major taps, strictly-greater replaces: PyTorch's tie rule), exactly what
//! kiln-core saves for its backward; padding never wins.

use super::{kernel_1d, operand, outputs_reading, window_taps};
use crate::device::GpuDevice;
use crate::kernels::{check_u32_range, Params};
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::pool::Plan;
use kiln_core::{DType, KilnError, Result};

/// Max pooling: (maxima [N, C, outH, outW], first argmax per window as int32 plane indices).
pub fn max_pool2d(dev: &GpuDevice, plan: &Plan, x: &GpuTensor) -> Result<(GpuTensor, GpuTensor)> {
    const OP: &str = "maxPool2d";
    let x = input(dev, OP, plan, x)?;
    let shape = out_shape(plan, &x);
    let out = GpuTensor::empty(dev, OP, &shape, DType::F32)?;
    let idx = GpuTensor::empty(dev, OP, &shape, DType::I32)?;
    let total = out.numel();
    let params = plan_params(plan, total).words([x.offset()]).upload(dev, OP)?;
    let source = || {
        let body = format!(
            "{GEOMETRY}{WINDOW}
  var m = 0.0;
  var best = -1;
{taps}
  // +0 for a window of zeros, whatever their signs (as on the CPU).
  out[i] = select(m, 0.0, m == 0.0);
  idx[i] = best;",
            // A NaN wins its window, as on the CPU: tested on the bits, since WGSL leaves float
            // comparisons with NaN to the implementation.
            taps = window_taps(
                "      let at = iy * i32(W) + ix;
      let v = x[p(13u) + plane * H * W + u32(at)];
      let v_nan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
      let m_nan = (bitcast<u32>(m) & 0x7fffffffu) > 0x7f800000u;
      if (best < 0 || (!m_nan && (v_nan || v > m))) { m = v; best = at; }"
            )
        );
        kernel_1d(&[("read", "x: array<f32>"), ("read_write", "out: array<f32>"), ("read_write", "idx: array<i32>")], &body)
    };
    dev.dispatch(OP, "pool:max", source, &[params.buffer(), x.buffer(), out.buffer(), idx.buffer()], dev.groups_1d(total))?;
    Ok((out, idx))
}

/// The input gradient of max pooling from the output gradient `g` and the argmaxes `idx`.
pub fn max_pool2d_backward(dev: &GpuDevice, plan: &Plan, g: &GpuTensor, idx: &GpuTensor, in_shape: &[usize]) -> Result<GpuTensor> {
    const OP: &str = "maxPool2d";
    let (g, idx) = (grad(dev, OP, plan, g)?, idx.contiguous(dev)?);
    if idx.dtype() != DType::I32 || idx.shape() != g.shape() {
        return Err(KilnError::new(OP, format!("indices must be int32 {}, got {} {}", fmt_shape(g.shape()), idx.dtype(), fmt_shape(idx.shape()))));
    }
    check_u32_range(OP, idx.offset() + idx.numel())?;
    let body = "
  if (idx[p(14u) + o] == i32(iy * W + ix)) { acc = acc + g[p(13u) + o]; }";
    gather_backward(dev, OP, "pool:max_backward", plan, &g, Some(&idx), in_shape, body, false)
}

/// Average pooling; with `count_include_pad` every window divides by kh·kw, else by its taps
/// inside the input (as kiln-core's `divisors`).
pub fn avg_pool2d(dev: &GpuDevice, plan: &Plan, x: &GpuTensor, count_include_pad: bool) -> Result<GpuTensor> {
    const OP: &str = "avgPool2d";
    let x = input(dev, OP, plan, x)?;
    let out = GpuTensor::empty(dev, OP, &out_shape(plan, &x), DType::F32)?;
    let total = out.numel();
    let params = plan_params(plan, total).words([x.offset(), count_include_pad as usize]).upload(dev, OP)?;
    let source = || {
        let body = format!(
            "{GEOMETRY}{WINDOW}
  var acc = 0.0;
{taps}
  out[i] = acc * scale(oy, ox, p(14u) != 0u);",
            taps = window_taps("      acc = acc + x[p(13u) + plane * H * W + u32(iy) * W + u32(ix)];")
        );
        kernel_1d(&[("read", "x: array<f32>"), ("read_write", "out: array<f32>")], &body) + SCALE
    };
    dev.dispatch(OP, "pool:avg", source, &[params.buffer(), x.buffer(), out.buffer()], dev.groups_1d(total))?;
    Ok(out)
}

/// The input gradient of average pooling: each output's gradient, scaled, spread over its window.
pub fn avg_pool2d_backward(dev: &GpuDevice, plan: &Plan, g: &GpuTensor, in_shape: &[usize], count_include_pad: bool) -> Result<GpuTensor> {
    const OP: &str = "avgPool2d";
    let g = grad(dev, OP, plan, g)?;
    let body = "
  acc = acc + g[p(13u) + o] * scale(oy, ox, p(14u) != 0u);";
    gather_backward(dev, OP, "pool:avg_backward", plan, &g, None, in_shape, body, count_include_pad)
}

// ---- shared parts ----------------------------------------------------------------------------

fn input(dev: &GpuDevice, op: &str, plan: &Plan, x: &GpuTensor) -> Result<GpuTensor> {
    let s = x.shape();
    if x.dtype() != DType::F32 || s.len() != 4 || s[0] * s[1] != plan.planes || s[2] != plan.rows.len || s[3] != plan.cols.len {
        return Err(KilnError::new(op, format!("input {} {} does not match the pooling plan ({} planes of {}x{})", x.dtype(), fmt_shape(s), plan.planes, plan.rows.len, plan.cols.len)));
    }
    operand(dev, op, x)
}

fn grad(dev: &GpuDevice, op: &str, plan: &Plan, g: &GpuTensor) -> Result<GpuTensor> {
    let s = g.shape();
    if g.dtype() != DType::F32 || s.len() != 4 || s[0] * s[1] != plan.planes || s[2] != plan.rows.out || s[3] != plan.cols.out {
        return Err(KilnError::new(op, format!("output gradient {} {} does not match the pooling plan ({} planes of {}x{})", g.dtype(), fmt_shape(s), plan.planes, plan.rows.out, plan.cols.out)));
    }
    operand(dev, op, g)
}

fn out_shape(plan: &Plan, x: &GpuTensor) -> [usize; 4] {
    [x.shape()[0], x.shape()[1], plan.rows.out, plan.cols.out]
}

/// [n, H, W, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL]: what WINDOW and GATHER read.
fn plan_params(plan: &Plan, n: usize) -> Params {
    let (r, c) = (&plan.rows, &plan.cols);
    Params::default().u32(n).words([r.len, c.len, r.out, c.out, r.kernel, c.kernel, r.stride, c.stride, r.dilation, c.dilation, r.pad_before, c.pad_before])
}

const GEOMETRY: &str = "
  let H = p(1u); let W = p(2u); let OH = p(3u); let OW = p(4u); let KH = p(5u); let KW = p(6u);
  let SH = p(7u); let SW = p(8u); let DH = p(9u); let DW = p(10u); let PT = pi(11u); let PL = pi(12u);";

/// The forward kernels' window: output (plane, oy, ox) of invocation i.
const WINDOW: &str = "
  let ox = i % OW;
  let oy = (i / OW) % OH;
  let plane = i / (OW * OH);";

/// `scale(oy, ox, include_pad)`: 1 / the divisor of output (oy, ox), as kiln-core's `divisors`.
const SCALE: &str = "
fn taps(o: u32, len: u32, s: u32, d: u32, pad: i32, k: u32) -> u32 {
  var n = 0u;
  for (var j = 0u; j < k; j = j + 1u) {
    let at = i32(o * s + j * d) - pad;
    if (at >= 0 && at < i32(len)) { n = n + 1u; }
  }
  return n;
}
fn scale(oy: u32, ox: u32, include_pad: bool) -> f32 {
  if (include_pad) { return 1.0 / f32(p(5u) * p(6u)); }
  let rows = taps(oy, p(1u), p(7u), p(9u), pi(11u), p(5u));
  let cols = taps(ox, p(2u), p(8u), p(10u), pi(12u), p(6u));
  return 1.0 / f32(rows * cols);
}
";

/// One invocation per input element (plane, iy, ix): runs `term` for every output (oy, ox) at
/// flat index `o` whose window reads it, adding into `acc`. Params: plan_params, then g's
/// offset (13), then idx's offset or count_include_pad (14).
#[allow(clippy::too_many_arguments)]
fn gather_backward(dev: &GpuDevice, op: &str, key: &str, plan: &Plan, g: &GpuTensor, idx: Option<&GpuTensor>, in_shape: &[usize], term: &str, include_pad: bool) -> Result<GpuTensor> {
    let gx = GpuTensor::empty(dev, op, in_shape, DType::F32)?;
    let total = gx.numel();
    let last = idx.map_or(include_pad as usize, |t| t.offset());
    let params = plan_params(plan, total).words([g.offset(), last]).upload(dev, op)?;
    let source = || {
        let body = format!(
            "{GEOMETRY}
  let ix = i % W;
  let iy = (i / W) % H;
  let plane = i / (W * H);
  var acc = 0.0;
{loops}
  gx[i] = acc;",
            loops = outputs_reading(&format!("      let o = (plane * OH + oy) * OW + ox;{term}"))
        );
        let mut bindings = vec![("read", "g: array<f32>"), ("read_write", "gx: array<f32>")];
        if idx.is_some() {
            bindings.push(("read", "idx: array<i32>"));
        }
        kernel_1d(&bindings, &body) + if idx.is_some() { "" } else { SCALE }
    };
    let mut buffers = vec![params.buffer(), g.buffer(), gx.buffer()];
    buffers.extend(idx.map(|t| t.buffer()));
    dev.dispatch(op, key, source, &buffers, dev.groups_1d(total))?;
    Ok(gx)
}
