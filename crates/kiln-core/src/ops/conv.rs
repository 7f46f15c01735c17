//! 2-D convolution and transposed convolution (NCHW, PyTorch's weight layouts), each one autograd
//! node. Both run on the three passes of conv/engine.rs: a conv-transpose's forward is a
//! convolution's input gradient and its input gradient is a convolution's forward, so each op's
//! backward is the other's forward and no kernel is written twice.

pub use crate::params::conv::{Activation, Epilogue, Geometry};

use crate::autograd;
use crate::device;
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
    conv2d_fused(input, weight, bias, p, Epilogue::default())
}

/// conv2d, then `epilogue.residual` [N, O, OH, OW] added and `epilogue.activation` (relu, ...)
/// applied, by the device as the convolution writes its output (see params::conv::Epilogue). The
/// gradient is exact: the activation's derivative is read from the saved output; the residual's
/// gradient is the gradient before the activation, and the convolution's backward runs on it
/// as conv2d's.
pub fn conv2d_fused(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, epilogue: Epilogue) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let geo = conv2d_geometry(OP, input, weight, bias, p)?;
    if let Some(r) = epilogue.residual {
        check_residual(OP, &geo, input, weight, r)?;
    }
    let out = forward(OP, &geo, input, weight, bias, epilogue)?;
    Ok(record(OP, input, weight, bias, epilogue.residual, out, epilogue.activation, move |g, x, w, needs| {
        Ok([
            needs[0].then(|| input_grad(OP, &geo, g, w, None)).transpose()?,
            needs[1].then(|| weight_grad(OP, &geo, x, g)).transpose()?,
        ])
    }))
}

/// Transposed convolution as PyTorch's conv_transpose2d: the gradient of conv2d with respect to
/// its input. input [N, C, H, W], weight [C, O/groups, KH, KW], bias [O] -> [N, O, OH, OW] with
/// OH = (H - 1)·stride - top - bottom + dilation·(KH-1) + outputPadding + 1.
pub fn conv_transpose2d(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, output_padding: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "convTranspose2d";
    let geo = conv_transpose2d_geometry(OP, input, weight, bias, p, output_padding)?;
    let out = input_grad(OP, &geo, input, weight, bias)?;
    Ok(record(OP, input, weight, bias, None, out, None, move |g, x, w, needs| {
        Ok([
            needs[0].then(|| forward(OP, &geo, g, w, None, Epilogue::default())).transpose()?,
            needs[1].then(|| weight_grad(OP, &geo, g, x)).transpose()?,
        ])
    }))
}

// ---- the three passes, each run by the inputs' device (the CPU's: device/cpu/conv) ----------

/// [N, O, OH, OW], plus `bias` [O], then the epilogue (residual, activation).
fn forward(op: &str, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue) -> Result<Tensor> {
    let tensors: Vec<&Tensor> = with_bias(&[x, w], bias).into_iter().chain(epilogue.residual).collect();
    device::dispatch(op, &tensors)?.conv2d_forward(geo, x, w, bias, epilogue, op)
}

/// [N, C, H, W], plus `init` per channel.
fn input_grad(op: &str, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>) -> Result<Tensor> {
    device::dispatch(op, &with_bias(&[dy, w], init))?.conv2d_input_grad(geo, dy, w, init, op)
}

/// [O, C/groups, KH, KW].
fn weight_grad(op: &str, geo: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    device::dispatch(op, &[x, dy])?.conv2d_weight_grad(geo, x, dy, op)
}

fn with_bias<'a>(ts: &[&'a Tensor], bias: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    ts.iter().copied().chain(bias).collect()
}

/// Records the op's node: `grads(dy, x, w, needs)` gives the input and weight gradients; the
/// bias gradient (dy summed over batch and space) is the same for both ops. With a fused
/// `activation`, dy is first taken back through it (its derivative read from the output); a
/// fused `residual`'s gradient is that dy itself.
#[allow(clippy::too_many_arguments)]
fn record(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: Tensor,
    activation: Option<Activation>,
    grads: impl FnOnce(&Tensor, &Tensor, &Tensor, &[bool]) -> Result<[Option<Tensor>; 2]> + Send + 'static,
) -> Tensor {
    let mut inputs = vec![input, weight];
    inputs.extend(bias);
    inputs.extend(residual);
    let (has_bias, has_residual) = (bias.is_some(), residual.is_some());
    // Saved detached: the passes materialize what they read (a no-op for contiguous tensors).
    let (x, w) = (input.detach(), weight.detach());
    let activated = activation.map(|a| (a, out.detach()));
    autograd::record(op, &inputs, &[&x, &w], out, move |g, saved, needs| {
        let pre = match &activated {
            Some((a, y)) => Some(device::dispatch(op, &[y, g])?.unary_backward(a.op, y, y, g, a.alpha)?),
            None => None,
        };
        let g = pre.as_ref().unwrap_or(g);
        let [dx, dw] = grads(g, &saved[0], &saved[1], needs)?;
        let mut result = vec![dx, dw];
        if has_bias {
            result.push(needs[2].then(|| reduce(ReduceOp::Sum, g, &[0, 2, 3], false, 0)).transpose()?);
        }
        if has_residual {
            result.push(needs[result.len()].then(|| g.clone()));
        }
        Ok(result)
    })
}

// ---- validation ------------------------------------------------------------------------------

/// The weight as messages name it: a tensor's dtype and shape, or what a quantized op holds.
pub(crate) fn describe_weight(weight: &Tensor) -> String {
    format!("weight {} {}", weight.dtype(), fmt_shape(weight.shape()))
}

fn describe(input: &Tensor, weight: &str) -> String {
    format!("input {} {}, {weight}", input.dtype(), fmt_shape(input.shape()))
}

/// A fused residual must be float32 of the output's shape: it is added element by element as
/// the output is written, with no broadcasting.
fn check_residual(op: &str, geo: &Geometry, input: &Tensor, weight: &Tensor, residual: &Tensor) -> Result<()> {
    let out = [geo.batch, geo.out_channels, geo.out_height, geo.out_width];
    if residual.dtype() != DType::F32 || residual.shape() != out {
        return Err(KilnError::new(op, format!(
            "residual must be float32 {} (the output's shape), got {} {} ({})",
            fmt_shape(&out), residual.dtype(), fmt_shape(residual.shape()), describe(input, &describe_weight(weight))
        )));
    }
    Ok(())
}

/// The input must be float32 [batch, channels, height, width].
pub(crate) fn check_input(op: &str, input: &Tensor, weight: &str) -> Result<()> {
    if input.dtype() != DType::F32 || input.rank() != 4 {
        return Err(KilnError::new(op, format!(
            "input must be float32 [batch, channels, height, width], got {} {} ({})",
            input.dtype(), fmt_shape(input.shape()), describe(input, weight)
        )));
    }
    Ok(())
}

/// Checks a float32 weight tensor is 4-D; returns its shape.
fn weight_shape(op: &str, input: &Tensor, weight: &Tensor) -> Result<[usize; 4]> {
    check_input(op, input, &describe_weight(weight))?;
    match (weight.dtype(), weight.shape()) {
        (DType::F32, &[a, b, c, d]) => Ok([a, b, c, d]),
        _ => Err(KilnError::new(op, format!(
            "weight must be float32 a 4-D weight, got {} {} ({})",
            weight.dtype(), fmt_shape(weight.shape()), describe(input, &describe_weight(weight))
        ))),
    }
}

/// Checks what both ops share: positive stride/dilation/groups, a kernel of at least 1x1, and a
/// float32 bias of `out_channels` (the input and weight dtypes and ranks are checked already).
pub(crate) fn check_common(op: &str, input: &Tensor, weight: [usize; 4], what: &str, bias: Option<&Tensor>, p: &ConvParams, out_channels: usize) -> Result<()> {
    if p.stride.contains(&0) || p.dilation.contains(&0) || p.groups == 0 {
        return Err(KilnError::new(op, format!("stride, dilation and groups must be >= 1, got stride {:?}, dilation {:?}, groups {}", p.stride, p.dilation, p.groups)));
    }
    if weight[2] == 0 || weight[3] == 0 {
        return Err(KilnError::new(op, format!("the kernel must be at least 1x1, got {what}")));
    }
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [out_channels] {
            return Err(KilnError::new(op, format!("bias must be float32 [{out_channels}] (one per output channel), got {} {} ({})", b.dtype(), fmt_shape(b.shape()), describe(input, what))));
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

/// The checked geometry of `conv2d(input, weight, bias, p)` (shared with device kernels).
pub fn conv2d_geometry(op: &str, input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams) -> Result<Geometry> {
    let shape = weight_shape(op, input, weight)?;
    conv2d_geometry_of(op, input, shape, &describe_weight(weight), bias, p)
}

/// conv2d's geometry for a checked float32 input and a weight of `shape` [out, in/groups, kh,
/// kw] that `what` names in messages (the quantized convolutions hold no 4-D weight tensor).
pub(crate) fn conv2d_geometry_of(op: &str, input: &Tensor, shape: [usize; 4], what: &str, bias: Option<&Tensor>, p: &ConvParams) -> Result<Geometry> {
    check_common(op, input, shape, what, bias, p, shape[0])?;
    let &[n, c, h, w] = input.shape() else { unreachable!() };
    conv2d_geometry_of_dims(op, [n, c, h, w], shape, &|| describe(input, what), p)
}

/// conv2d's geometry for an input of `dims` [N, C, H, W] and a weight of `shape` [out,
/// in/groups, kh, kw] (stride, dilation, groups and kernel checked already); `context` names
/// the input and weight in messages. Also the geometry of conv2dNchwc (ops/conv_nchwc.rs),
/// whose input is not a 4-D tensor.
pub(crate) fn conv2d_geometry_of_dims(op: &str, dims: [usize; 4], shape: [usize; 4], context: &dyn Fn() -> String, p: &ConvParams) -> Result<Geometry> {
    let [n, c, h, w] = dims;
    let [o, cg, kh, kw] = shape;
    let groups = p.groups;
    if c % groups != 0 || o % groups != 0 {
        return Err(KilnError::new(op, format!(
            "input channels ({c}) and output channels ({o}) must both be divisible by groups ({groups}) ({})",
            context()
        )));
    }
    if cg * groups != c {
        return Err(KilnError::new(op, format!(
            "weight [out, in/groups, kh, kw] expects {} input channels ({cg} x groups {groups}), the input has {c} ({})",
            cg * groups, context()
        )));
    }
    let [top, bottom, left, right] = p.padding;
    let (eh, ew) = (extent(kh, p.dilation[0]), extent(kw, p.dilation[1]));
    // Checked: on wasm32 (32-bit sizes) a padding near u32::MAX would otherwise wrap around.
    let (Some(ph), Some(pw)) = (h.checked_add(top).and_then(|v| v.checked_add(bottom)), w.checked_add(left).and_then(|v| v.checked_add(right))) else {
        return Err(KilnError::new(op, format!("padding {:?} (top, bottom, left, right) is too large for input {}", p.padding, fmt_shape(&dims))));
    };
    if eh > ph || ew > pw {
        return Err(KilnError::new(op, format!(
            "the kernel ({kh}x{kw}, dilation {:?}: {eh}x{ew}) is larger than the padded input ({ph}x{pw}: {h}x{w} with padding top {top}, bottom {bottom}, left {left}, right {right}) ({})",
            p.dilation, context()
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
pub fn conv_transpose2d_geometry(op: &str, input: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: &ConvParams, output_padding: [usize; 2]) -> Result<Geometry> {
    let groups = p.groups.max(1);
    let shape = weight_shape(op, input, weight)?;
    let weight = &describe_weight(weight);
    check_common(op, input, shape, weight, bias, p, shape[1].saturating_mul(groups))?;
    let &[n, c, h, w] = input.shape() else { unreachable!() };
    let [wc, og, kh, kw] = shape;
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
