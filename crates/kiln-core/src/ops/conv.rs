//! 2-D convolution and transposed convolution (NCHW, PyTorch's weight layouts), each one autograd
//! node. Both run on the three passes of conv/engine.rs: a conv-transpose's forward is a
//! convolution's input gradient and its input gradient is a convolution's forward, so each op's
//! backward is the other's forward and no kernel is written twice.

mod engine;
mod geometry;
mod im2col;

pub use geometry::Geometry;

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::ops::{reduce, ReduceOp};
use crate::tensor::Tensor;

/// Stride, padding, dilation and groups of a convolution. Padding is explicit per side (top,
/// bottom, left, right), so TensorFlow's asymmetric 'same' padding is expressible; the TypeScript
/// layer computes it from `'same' | 'valid' | number | [h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: [usize; 2],
    /// top, bottom, left, right
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams { stride: [1, 1], padding: [0; 4], dilation: [1, 1], groups: 1 }
    }
}

/// Cross-correlation as PyTorch's conv2d. input [N, C, H, W], weight [O, C/groups, KH, KW],
/// bias [O] -> [N, O, OH, OW] with OH = (H + top + bottom - dilation·(KH-1) - 1) / stride + 1.
pub fn conv2d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams) -> Result<Tensor> {
    crate::device::cpu_only("conv2d", &[Some(input), Some(weight), bias])?;
    const OP: &str = "conv2d";
    let geo = conv2d_geometry(OP, input, weight, bias, p)?;
    let (x, w) = (input.materialize()?, weight.materialize()?);
    let b = bias.map(|b| b.to_vec::<f32>().unwrap());
    let out = engine::forward(&geo, slice(&x), slice(&w), b.as_deref(), OP)?;
    let out = Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])?;
    Ok(record(OP, input, weight, bias, &x, &w, out, move |g, x, w, needs| {
        Ok([
            needs[0].then(|| engine::input_grad(&geo, g, w, None, OP)).transpose()?,
            needs[1].then(|| engine::weight_grad(&geo, x, g, OP)).transpose()?,
        ])
    }))
}

/// Transposed convolution as PyTorch's conv_transpose2d: the gradient of conv2d with respect to
/// its input. input [N, C, H, W], weight [C, O/groups, KH, KW], bias [O] -> [N, O, OH, OW] with
/// OH = (H - 1)·stride - top - bottom + dilation·(KH-1) + outputPadding + 1.
pub fn conv_transpose2d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, output_padding: [usize; 2]) -> Result<Tensor> {
    crate::device::cpu_only("convTranspose2d", &[Some(input), Some(weight), bias])?;
    const OP: &str = "convTranspose2d";
    let geo = conv_transpose2d_geometry(OP, input, weight, bias, p, output_padding)?;
    let (x, w) = (input.materialize()?, weight.materialize()?);
    let b = bias.map(|b| b.to_vec::<f32>().unwrap());
    let out = engine::input_grad(&geo, slice(&x), slice(&w), b.as_deref(), OP)?;
    let out = Tensor::from_vec(out, &[geo.batch, geo.channels, geo.height, geo.width])?;
    Ok(record(OP, input, weight, bias, &x, &w, out, move |g, x, w, needs| {
        Ok([
            needs[0].then(|| engine::forward(&geo, g, w, None, OP)).transpose()?,
            needs[1].then(|| engine::weight_grad(&geo, g, x, OP)).transpose()?,
        ])
    }))
}

fn slice(t: &Tensor) -> &[f32] {
    t.contiguous_slice::<f32>().expect("materialized float32")
}

/// Records the op's node: `grads(dy, x, w, needs)` gives the input and weight gradients as flat
/// vectors; the bias gradient (dy summed over batch and space) is the same for both ops.
#[allow(clippy::too_many_arguments)]
fn record(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    x: &Tensor,
    w: &Tensor,
    out: Tensor,
    grads: impl FnOnce(&[f32], &[f32], &[f32], &[bool]) -> Result<[Option<Vec<f32>>; 2]> + Send + 'static,
) -> Tensor {
    let mut inputs = vec![input, weight];
    inputs.extend(bias);
    autograd::record(op, &inputs, &[x, w], out, move |g, saved, needs| {
        let (x, w) = (&saved[0], &saved[1]);
        let dy = g.materialize()?;
        let [dx, dw] = grads(slice(&dy), slice(x), slice(w), needs)?;
        let mut result = vec![
            dx.map(|v| Tensor::from_vec(v, x.shape())).transpose()?,
            dw.map(|v| Tensor::from_vec(v, w.shape())).transpose()?,
        ];
        if needs.len() == 3 {
            result.push(needs[2].then(|| reduce(ReduceOp::Sum, &dy, &[0, 2, 3], false, 0)).transpose()?);
        }
        Ok(result)
    })
}

// ---- validation ------------------------------------------------------------------------------

fn describe(input: &Tensor, weight: &Tensor) -> String {
    format!("input {} {}, weight {} {}", input.dtype(), fmt_shape(input.shape()), weight.dtype(), fmt_shape(weight.shape()))
}

/// Checks what both ops share: float32 rank-4 input and weight, positive stride/dilation/groups,
/// a kernel of at least 1x1, and a float32 bias of `out_channels`.
fn check_common(op: &str, input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, out_channels: usize) -> Result<()> {
    for (name, t, layout) in [("input", input, "[batch, channels, height, width]"), ("weight", weight, "a 4-D weight")] {
        if t.dtype() != DType::F32 || t.rank() != 4 {
            return Err(KilnError::new(op, format!("{name} must be float32 {layout}, got {} {} ({})", t.dtype(), fmt_shape(t.shape()), describe(input, weight))));
        }
    }
    if p.stride.contains(&0) || p.dilation.contains(&0) || p.groups == 0 {
        return Err(KilnError::new(op, format!("stride, dilation and groups must be >= 1, got stride {:?}, dilation {:?}, groups {}", p.stride, p.dilation, p.groups)));
    }
    if weight.shape()[2] == 0 || weight.shape()[3] == 0 {
        return Err(KilnError::new(op, format!("the kernel must be at least 1x1, got weight {}", fmt_shape(weight.shape()))));
    }
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [out_channels] {
            return Err(KilnError::new(op, format!("bias must be float32 [{out_channels}] (one per output channel), got {} {} ({})", b.dtype(), fmt_shape(b.shape()), describe(input, weight))));
        }
    }
    Ok(())
}

/// dilation·(k - 1) + 1: the extent of a dilated kernel.
/// Saturates instead of overflowing: absurd sizes then fail the size checks with a message.
fn extent(kernel: usize, dilation: usize) -> usize {
    dilation.saturating_mul(kernel - 1).saturating_add(1)
}

/// Rejects a geometry whose output or im2col band would not fit in memory's address space, so
/// no size computed from it later can overflow (the kernels index with these products).
fn check_sizes(op: &str, g: Geometry) -> Result<Geometry> {
    layout::checked_numel(op, &[g.batch, g.out_channels, g.out_height, g.out_width])?;
    layout::checked_numel(op, &[g.batch, g.channels, g.height, g.width])?;
    layout::checked_numel(op, &[g.channels, g.kernel[0], g.kernel[1], g.out_height, g.out_width])?;
    Ok(g)
}

fn conv2d_geometry(op: &str, input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams) -> Result<Geometry> {
    let out_channels = weight.shape().first().copied().unwrap_or(0);
    check_common(op, input, weight, bias, p, out_channels)?;
    let &[n, c, h, w] = input.shape() else { unreachable!() };
    let &[o, cg, kh, kw] = weight.shape() else { unreachable!() };
    let groups = p.groups;
    if c % groups != 0 || o % groups != 0 {
        return Err(KilnError::new(op, format!(
            "input channels ({c}) and output channels ({o}) must both be divisible by groups ({groups}) ({})",
            describe(input, weight)
        )));
    }
    if cg * groups != c {
        return Err(KilnError::new(op, format!(
            "weight [out, in/groups, kh, kw] expects {} input channels ({cg} x groups {groups}), the input has {c} ({})",
            cg * groups, describe(input, weight)
        )));
    }
    let [top, bottom, left, right] = p.padding;
    let (eh, ew) = (extent(kh, p.dilation[0]), extent(kw, p.dilation[1]));
    // Checked: on wasm32 (32-bit sizes) a padding near u32::MAX would otherwise wrap around.
    let (Some(ph), Some(pw)) = (h.checked_add(top).and_then(|v| v.checked_add(bottom)), w.checked_add(left).and_then(|v| v.checked_add(right))) else {
        return Err(KilnError::new(op, format!("padding {:?} (top, bottom, left, right) is too large for input {}", p.padding, fmt_shape(input.shape()))));
    };
    if eh > ph || ew > pw {
        return Err(KilnError::new(op, format!(
            "the kernel ({kh}x{kw}, dilation {:?}: {eh}x{ew}) is larger than the padded input ({ph}x{pw}: {h}x{w} with padding top {top}, bottom {bottom}, left {left}, right {right}) ({})",
            p.dilation, describe(input, weight)
        )));
    }
    check_sizes(op, Geometry {
        batch: n,
        channels: c,
        height: h,
        width: w,
        out_channels: o,
        out_height: (ph - eh) / p.stride[0] + 1,
        out_width: (pw - ew) / p.stride[1] + 1,
        kernel: [kh, kw],
        stride: p.stride,
        pad: [top, left],
        dilation: p.dilation,
        groups,
    })
}

/// The geometry of the convolution this conv-transpose is the input gradient of: its input is the
/// conv-transpose's output and vice versa.
fn conv_transpose2d_geometry(op: &str, input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, output_padding: [usize; 2]) -> Result<Geometry> {
    let groups = p.groups.max(1);
    let out_channels = weight.shape().get(1).map_or(0, |&d| d.saturating_mul(groups));
    check_common(op, input, weight, bias, p, out_channels)?;
    let &[n, c, h, w] = input.shape() else { unreachable!() };
    let &[wc, og, kh, kw] = weight.shape() else { unreachable!() };
    if wc != c {
        return Err(KilnError::new(op, format!(
            "weight [in, out/groups, kh, kw] has {wc} input channels, the input has {c} ({})",
            describe(input, weight)
        )));
    }
    if c % groups != 0 {
        return Err(KilnError::new(op, format!("input channels ({c}) must be divisible by groups ({groups}) ({})", describe(input, weight))));
    }
    for axis in 0..2 {
        if output_padding[axis] >= p.stride[axis].max(p.dilation[axis]) {
            return Err(KilnError::new(op, format!(
                "outputPadding {:?} must be smaller than the stride {:?} or the dilation {:?} in each dimension",
                output_padding, p.stride, p.dilation
            )));
        }
    }
    let [top, bottom, left, right] = p.padding;
    let size = |len: usize, axis: usize, k: usize, before: usize, after: usize| -> Option<usize> {
        let full = len.checked_sub(1)?.saturating_mul(p.stride[axis]).saturating_add(extent(k, p.dilation[axis])).saturating_add(output_padding[axis]);
        full.checked_sub(before + after).filter(|&s| s > 0)
    };
    let (Some(oh), Some(ow)) = (size(h, 0, kh, top, bottom), size(w, 1, kw, left, right)) else {
        return Err(KilnError::new(op, format!(
            "the output would be empty: input {h}x{w}, kernel {kh}x{kw}, stride {:?}, dilation {:?}, padding top {top}, bottom {bottom}, left {left}, right {right}, outputPadding {:?} ({})",
            p.stride, p.dilation, output_padding, describe(input, weight)
        )));
    };
    check_sizes(op, Geometry {
        batch: n,
        channels: og.saturating_mul(groups),
        height: oh,
        width: ow,
        out_channels: c,
        out_height: h,
        out_width: w,
        kernel: [kh, kw],
        stride: p.stride,
        pad: [top, left],
        dilation: p.dilation,
        groups,
    })
}
