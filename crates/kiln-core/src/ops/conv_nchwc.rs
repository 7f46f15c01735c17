//! Convolution in the channel-blocked layout NCHWc (device/cpu/conv/nchwc/: an activation
//! [N, C, H, W] held as [N, ceil(C/16), H, W, 16]), the layout onnxruntime's CPU convolutions run
//! in. Four ops: `to_nchwc` and `from_nchwc` reorder an activation into and out of the layout,
//! `pack_nchwc_filters` lays a weight out once, and `conv2d_nchwc` convolves blocked input into
//! blocked output (`conv2d_nchwc_concat`: several of one input, written side by side on the block
//! axis; `max_pool2d_nchwc` and `avg_pool2d_nchwc` pool blocked), so a graph of convolutions (the ONNX layout pass, ts/onnx/layout/) reorders once at its
//! start and once where a plain op reads.
//!
//! The true channel count does not travel with a blocked tensor: channels past it in the last
//! block are padding whose values no result reads (packed filters are zero there), and
//! `from_nchwc` is told the count where the padding is dropped.
//!
//! The ops are for inference: with gradients recorded and an input that requires one they
//! refuse (conv2d is the differentiable op), rather than record a node with no backward.

use crate::autograd;
use crate::device;
use crate::device::cpu::conv::nchwc::{blocks, BLOCK};
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::ops::conv::{check_common, conv2d_geometry_of_dims, ConvParams, Epilogue, Geometry};
use crate::ops::conv_concat::{self, filter_sets, ConvBranch};
use crate::params::pool::{Plan, Pool2d};
pub use crate::params::conv::Reorder;
use crate::tensor::Tensor;

/// NCHW [N, C, H, W] -> NCHWc [N, ceil(C/16), H, W, 16], padded channels zero.
pub fn to_nchwc(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "toNchwc";
    inference_only(OP, &[x])?;
    let &[n, c, h, w] = x.shape() else {
        return Err(KilnError::new(OP, format!("input must be float32 [batch, channels, height, width], got {} {}", x.dtype(), fmt_shape(x.shape()))));
    };
    check_f32(OP, "input", x)?;
    device::dispatch(OP, &[x])?.nchwc_reorder(x, Reorder::ToBlocked, [n, c, h, w], OP)
}

/// NCHWc [N, ceil(C/16), H, W, 16] -> NCHW [N, C, H, W] with C = `channels` (the padding dropped).
pub fn from_nchwc(x: &Tensor, channels: usize) -> Result<Tensor> {
    const OP: &str = "fromNchwc";
    inference_only(OP, &[x])?;
    let &[n, cb, h, w, lanes] = x.shape() else {
        return Err(KilnError::new(OP, format!("input must be float32 NCHWc [batch, channel blocks, height, width, {BLOCK}], got {} {}", x.dtype(), fmt_shape(x.shape()))));
    };
    check_f32(OP, "input", x)?;
    if lanes != BLOCK || channels == 0 || blocks(channels) != cb {
        return Err(KilnError::new(OP, format!(
            "{channels} channels are held in {} blocks of {BLOCK}, the input {} has {cb} blocks of {lanes}",
            blocks(channels), fmt_shape(x.shape())
        )));
    }
    device::dispatch(OP, &[x])?.nchwc_reorder(x, Reorder::FromBlocked, [n, channels, h, w], OP)
}

/// Weight [O, C, KH, KW] (one group) -> packed [ceil(O/16), ceil(C/16), KH, KW, 16 (c), 16 (o)],
/// zero past O and C: conv2d_nchwc's filters, computed once per weight.
pub fn pack_nchwc_filters(weight: &Tensor) -> Result<Tensor> {
    const OP: &str = "packNchwcFilters";
    inference_only(OP, &[weight])?;
    check_f32(OP, "weight", weight)?;
    let &[o, c, kh, kw] = weight.shape() else {
        return Err(KilnError::new(OP, format!("weight must be float32 [outChannels, inChannels, kh, kw] (groups 1), got {} {}", weight.dtype(), fmt_shape(weight.shape()))));
    };
    if [o, c, kh, kw].contains(&0) {
        return Err(KilnError::new(OP, format!("weight must have at least one output channel, input channel and tap, got {}", fmt_shape(weight.shape()))));
    }
    let geo = Geometry { batch: 1, channels: c, height: kh, width: kw, out_channels: o, out_height: 1, out_width: 1, kernel: [kh, kw], stride: [1, 1], pad: [0, 0], dilation: [1, 1], groups: 1 };
    device::dispatch(OP, &[weight])?.nchwc_pack_filters(&geo, weight, OP)
}

/// conv2d (groups 1) in NCHWc: x [N, Cb, H, W, 16], `packed` [Ob, Cb, KH, KW, 16, 16] from
/// pack_nchwc_filters, `bias` [O] with ceil(O/16) = Ob (or none) -> y [N, Ob, OH, OW, 16], then
/// `epilogue.residual` (y's shape) added and `epilogue.activation` applied as y is written.
/// Every channel of y's last block is written; those past O are padding.
/// x may also be plain NCHW [N, C, H, W] with C <= 16 (packed filters of one input block): a
/// network's first convolution (an image's colours) writing the blocked layout.
pub fn conv2d_nchwc(x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, p: &ConvParams, epilogue: Epilogue) -> Result<Tensor> {
    const OP: &str = "conv2dNchwc";
    let geo = match x.rank() {
        4 => conv2d_nchwc_plain_input_geometry(OP, x, packed, bias, p, epilogue.residual)?,
        _ => conv2d_nchwc_geometry(OP, x, packed, bias, p, epilogue.residual)?,
    };
    let tensors: Vec<&Tensor> = [x, packed].into_iter().chain(bias).chain(epilogue.residual).collect();
    inference_only(OP, &tensors)?;
    device::dispatch(OP, &tensors)?.conv2d_nchwc_forward(&geo, x, packed, bias, epilogue, OP)
}

/// max_pool2d of a blocked x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16], each of a pixel's 16
/// channels pooled as max_pool2d pools a plane (NaN wins, -0 gives +0): pooling between blocked
/// convolutions without a reorder to NCHW and back (SqueezeNet's three MaxPools).
pub fn max_pool2d_nchwc(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    const OP: &str = "maxPool2dNchwc";
    let plan = blocked_pool_plan(OP, x, &pool)?;
    device::dispatch(OP, &[x])?.max_pool2d_nchwc(&plan, x)
}

/// avg_pool2d of a blocked x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16], each of a pixel's 16
/// channels averaged as avg_pool2d averages a plane (`count_include_pad` likewise): AveragePool
/// and GlobalAveragePool (the window of the whole plane) after blocked convolutions without a
/// reorder of their input to NCHW (ResNet-50's and SqueezeNet's heads).
pub fn avg_pool2d_nchwc(x: &Tensor, pool: Pool2d, count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2dNchwc";
    let plan = blocked_pool_plan(OP, x, &pool)?;
    device::dispatch(OP, &[x])?.avg_pool2d_nchwc(&plan, x, count_include_pad)
}

/// The plan of a pooling of blocked x (Cb planes of 16-value pixels per image), for inference.
fn blocked_pool_plan(op: &str, x: &Tensor, pool: &Pool2d) -> Result<Plan> {
    let describe = || format!("{} {}", x.dtype(), fmt_shape(x.shape()));
    let (&[n, cb, h, w, BLOCK], DType::F32) = (x.shape(), x.dtype()) else {
        return Err(KilnError::new(op, format!("input must be float32 NCHWc [batch, channel blocks, height, width, {BLOCK}], got {}", describe())));
    };
    let plan = Plan::for_dims(op, [n, cb, h, w], &describe, pool)?;
    inference_only(op, &[x])?;
    Ok(plan)
}

/// Several blocked convolutions of one x, their outputs concatenated on the block axis:
/// [N, ΣOb_i, OH, OW, 16], each set's blocks written straight into the result (no concat pass),
/// as conv2dConcat does in NCHW. That is the channel concatenation when every set but the last
/// has whole blocks (the layout pass asks nothing else). Set i: `packed` from
/// pack_nchwc_filters, bias [O_i], its own geometry and activation; every set gives one OH x OW.
pub fn conv2d_nchwc_concat(x: &Tensor, branches: &[ConvBranch]) -> Result<Tensor> {
    const OP: &str = "conv2dNchwcConcat";
    let sets = filter_sets(OP, x, branches, |b| conv2d_nchwc_geometry(OP, x, b.weight, b.bias, &b.params, None))?;
    let tensors: Vec<&Tensor> = conv_concat::tensors(x, branches).collect();
    inference_only(OP, &tensors)?;
    device::dispatch(OP, &tensors)?.conv2d_nchwc_concat_forward(x, &sets, OP)
}

/// The blocked convolution's geometry as a plain convolution of Cb·16 channels into Ob·16: the
/// same floats, since packed filters are zero on the padded channels.
fn conv2d_nchwc_geometry(op: &str, x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, p: &ConvParams, residual: Option<&Tensor>) -> Result<Geometry> {
    let context = || format!("input {} {}, packed filters {} {}", x.dtype(), fmt_shape(x.shape()), packed.dtype(), fmt_shape(packed.shape()));
    check_f32(op, "input", x)?;
    check_f32(op, "packed filters", packed)?;
    let (&[n, cb, h, w, lanes], &[ob, wcb, kh, kw, ci, co]) = (x.shape(), packed.shape()) else {
        return Err(KilnError::new(op, format!(
            "takes input [batch, channel blocks, height, width, {BLOCK}] and packed filters [out blocks, in blocks, kh, kw, {BLOCK}, {BLOCK}] (packNchwcFilters), got {}",
            context()
        )));
    };
    if lanes != BLOCK || ci != BLOCK || co != BLOCK || wcb != cb {
        return Err(KilnError::new(op, format!("the input's channel blocks ({cb} of {lanes}) must be the packed filters' ({wcb} of {ci}x{co}; blocks of {BLOCK}) ({})", context())));
    }
    checked_geometry(op, x, [n, cb * BLOCK, h, w], [ob, kh, kw], packed, bias, p, residual, &context)
}

/// The geometry of a plain x [N, C, H, W] (C <= 16) with packed filters of one input block: C
/// channels into Ob·16.
fn conv2d_nchwc_plain_input_geometry(op: &str, x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, p: &ConvParams, residual: Option<&Tensor>) -> Result<Geometry> {
    let context = || format!("input {} {}, packed filters {} {}", x.dtype(), fmt_shape(x.shape()), packed.dtype(), fmt_shape(packed.shape()));
    check_f32(op, "input", x)?;
    check_f32(op, "packed filters", packed)?;
    let (&[n, c, h, w], &[ob, 1, kh, kw, BLOCK, BLOCK]) = (x.shape(), packed.shape()) else {
        return Err(KilnError::new(op, format!(
            "a plain input [batch, channels, height, width] takes packed filters of one input block [out blocks, 1, kh, kw, {BLOCK}, {BLOCK}] (packNchwcFilters of at most {BLOCK} input channels), got {}",
            context()
        )));
    };
    if c == 0 || c > BLOCK {
        return Err(KilnError::new(op, format!("a plain input must have 1 to {BLOCK} channels (more run blocked: toNchwc), got {c} ({})", context())));
    }
    checked_geometry(op, x, [n, c, h, w], [ob, kh, kw], packed, bias, p, residual, &context)
}

/// conv2d's geometry of input `dims` with packed filters of `ob` output blocks and a kh x kw
/// kernel (their padded input channels counted as the input's: `dims`' C for a plain input),
/// groups 1, and the bias and residual checked.
#[allow(clippy::too_many_arguments)]
fn checked_geometry(op: &str, x: &Tensor, dims: [usize; 4], [ob, kh, kw]: [usize; 3], packed: &Tensor, bias: Option<&Tensor>, p: &ConvParams, residual: Option<&Tensor>, context: &dyn Fn() -> String) -> Result<Geometry> {
    let n = dims[0];
    if p.groups != 1 {
        return Err(KilnError::new(op, format!("runs groups 1 only, got groups {} ({})", p.groups, context())));
    }
    let shape = [ob * BLOCK, dims[1], kh, kw];
    check_common(op, x, shape, &format!("packed filters {}", fmt_shape(packed.shape())), None, p, shape[0])?;
    let geo = conv2d_geometry_of_dims(op, dims, shape, context, p)?;
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.rank() != 1 || b.shape()[0] == 0 || blocks(b.shape()[0]) != ob {
            return Err(KilnError::new(op, format!("bias must be float32 [outChannels] with {ob} blocks of {BLOCK} channels, got {} {} ({})", b.dtype(), fmt_shape(b.shape()), context())));
        }
    }
    if let Some(r) = residual {
        let out = [n, ob, geo.out_height, geo.out_width, BLOCK];
        if r.dtype() != DType::F32 || r.shape() != out {
            return Err(KilnError::new(op, format!("residual must be float32 {} (the output's shape), got {} {} ({})", fmt_shape(&out), r.dtype(), fmt_shape(r.shape()), context())));
        }
    }
    Ok(geo)
}

fn check_f32(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(KilnError::new(op, format!("{what} must be float32, got {} {}", t.dtype(), fmt_shape(t.shape()))));
    }
    Ok(())
}

/// These ops record no gradient: refuse when one is wanted rather than cut the graph silently.
fn inference_only(op: &str, tensors: &[&Tensor]) -> Result<()> {
    if autograd::is_enabled() && tensors.iter().any(|t| t.requires_grad()) {
        return Err(KilnError::new(op, "is for inference and records no gradient, but an input requires one: run it inside noGrad, or use conv2d (NCHW), which trains"));
    }
    Ok(())
}
