//! The three passes of a 2-D convolution, as kiln-core's conv/engine.rs, each im2col + the tiled
//! matmul of matmul.rs, all groups and a chunk of images in one batched product:
//!
//! - `forward`:      out[n]  = W · im2col(x[n])                (+ bias)
//! - `input_grad`:   dx[n]   = col2im(Wᵀ · dy[n])             (+ init: conv-transpose's forward)
//! - `weight_grad`:  dW      = dy · im2col(x)ᵀ, K running over images and positions together
//!
//! The weight viewed as [groups, out/groups, patch] multiplies each group's rows of the im2col
//! matrix [images, groups, patch, positions] by broadcasting over images. A conv-transpose is the
//! input gradient of the convolution it transposes (its Geometry says so), as on the CPU.
//!
//! col2im is a gather, not kiln-core's scatter-add: each input element sums the matrix entries
//! that read it (at most kh·kw), so no two invocations write one element and no float atomics
//! are needed. The im2col matrix is built per chunk of images of at most COL_BUDGET floats.

use super::{expect, kernel_1d, operand, outputs_reading};
use crate::device::GpuDevice;
use crate::kernels::elementwise;
use crate::kernels::matmul::matmul;
use crate::kernels::Params;
use crate::tensor::GpuTensor;
use kiln_core::ops::conv::Geometry;
use kiln_core::ops::BinaryOp;
use kiln_core::{DType, Result};

/// Floats of one chunk's im2col matrix (64 MiB); smaller if the device's bindings are.
const COL_BUDGET: usize = 1 << 24;

/// Tests set this (when nonzero, the budget in floats) to run the chunked path on small shapes.
#[doc(hidden)]
pub static COL_BUDGET_OVERRIDE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Output [batch, out_channels, out_height, out_width] of the convolution of `x`
/// [batch, channels, height, width] with `w` [out_channels, channels/groups, kh, kw], plus `bias`
/// [out_channels] when given.
pub fn forward(dev: &GpuDevice, geo: &Geometry, x: &GpuTensor, w: &GpuTensor, bias: Option<&GpuTensor>, op: &str) -> Result<GpuTensor> {
    let g = *geo;
    let (x, w) = (input(dev, op, &g, x)?, weight(dev, op, &g, w)?);
    let bias = bias.map(|b| expect(op, "bias", b, &[g.out_channels]).and_then(|_| operand(dev, op, b))).transpose()?;
    let out_shape = [g.batch, g.out_channels, g.out_height, g.out_width];
    let chunk = chunk_images(dev, &g);
    if chunk >= g.batch && bias.is_none() {
        // One chunk and nothing to add: the product is the output.
        let col = im2col(dev, op, &g, &x, 0, g.batch, false)?;
        return matmul(dev, &w, &col, false, false)?.reshape(dev, &out_shape.map(|d| d as isize));
    }
    let out = GpuTensor::empty(dev, op, &out_shape, DType::F32)?;
    for n0 in (0..g.batch).step_by(chunk) {
        let nc = chunk.min(g.batch - n0);
        let col = im2col(dev, op, &g, &x, n0, nc, false)?;
        let product = matmul(dev, &w, &col, false, false)?; // [nc, groups, out/groups, positions]
        add_bias_into(dev, op, &g, &product, bias.as_ref(), &out, n0, nc)?;
    }
    Ok(out)
}

/// Gradient [batch, channels, height, width] of the input from `dy` [batch, out_channels,
/// out_height, out_width]; `init` [channels] is added to every position, which makes this the
/// forward pass of a conv-transpose with bias.
pub fn input_grad(dev: &GpuDevice, geo: &Geometry, dy: &GpuTensor, w: &GpuTensor, init: Option<&GpuTensor>, op: &str) -> Result<GpuTensor> {
    let g = *geo;
    let (dy, w) = (output(dev, op, &g, dy)?, weight(dev, op, &g, w)?);
    let init = init.map(|b| expect(op, "bias", b, &[g.channels]).and_then(|_| operand(dev, op, b))).transpose()?;
    let dx = GpuTensor::empty(dev, op, &[g.batch, g.channels, g.height, g.width], DType::F32)?;
    let chunk = chunk_images(dev, &g);
    let (cout, plane) = (g.group_out_channels(), g.out_plane());
    for n0 in (0..g.batch).step_by(chunk) {
        let nc = chunk.min(g.batch - n0);
        let dy_chunk = dy.narrow(0, n0, nc)?.reshape(dev, &[nc as isize, g.groups as isize, cout as isize, plane as isize])?;
        let col = matmul(dev, &w, &dy_chunk, true, false)?; // [nc, groups, patch, positions]
        col2im(dev, op, &g, &col, init.as_ref(), &dx, n0, nc)?;
    }
    Ok(dx)
}

/// Gradient [out_channels, channels/groups, kh, kw] of the weight, summed over the batch.
pub fn weight_grad(dev: &GpuDevice, geo: &Geometry, x: &GpuTensor, dy: &GpuTensor, op: &str) -> Result<GpuTensor> {
    let g = *geo;
    let (x, dy) = (input(dev, op, &g, x)?, output(dev, op, &g, dy)?);
    let (cout, plane) = (g.group_out_channels(), g.out_plane());
    let chunk = chunk_images(dev, &g);
    let mut total: Option<GpuTensor> = None;
    // At least one pass, so an empty batch still yields a (zero) gradient from the K = 0 product.
    for n0 in (0..g.batch.max(1)).step_by(chunk) {
        let nc = chunk.min(g.batch - n0);
        let col = im2col(dev, op, &g, &x, n0, nc, true)?; // [groups, patch, nc·positions]
        // dy's chunk as [groups, out/groups, images·positions]: a copy, as the images sit between.
        let dy_chunk = dy
            .narrow(0, n0, nc)?
            .reshape(dev, &[nc as isize, g.groups as isize, cout as isize, plane as isize])?
            .permute(&[1, 2, 0, 3])?
            .contiguous(dev)?
            .reshape(dev, &[g.groups as isize, cout as isize, (nc * plane) as isize])?;
        let part = matmul(dev, &dy_chunk, &col, false, true)?; // [groups, out/groups, patch]
        total = Some(match total {
            None => part,
            Some(t) => elementwise::binary(dev, BinaryOp::Add, &t, &part)?,
        });
    }
    let shape = [g.out_channels, g.group_channels(), g.kernel[0], g.kernel[1]].map(|d| d as isize);
    total.expect("at least one chunk").reshape(dev, &shape)
}

// ---- operands --------------------------------------------------------------------------------

fn input(dev: &GpuDevice, op: &str, g: &Geometry, x: &GpuTensor) -> Result<GpuTensor> {
    expect(op, "input", x, &[g.batch, g.channels, g.height, g.width])?;
    operand(dev, op, x)
}

fn output(dev: &GpuDevice, op: &str, g: &Geometry, dy: &GpuTensor) -> Result<GpuTensor> {
    expect(op, "output gradient", dy, &[g.batch, g.out_channels, g.out_height, g.out_width])?;
    operand(dev, op, dy)
}

/// The weight as [groups, out/groups, patch] (a view of the contiguous weight).
fn weight(dev: &GpuDevice, op: &str, g: &Geometry, w: &GpuTensor) -> Result<GpuTensor> {
    expect(op, "weight", w, &[g.out_channels, g.group_channels(), g.kernel[0], g.kernel[1]])?;
    operand(dev, op, w)?.reshape(dev, &[g.groups as isize, g.group_out_channels() as isize, g.patch() as isize])
}

/// Images per chunk: as many as keep the im2col matrix within budget (at least one), and the
/// batched product's images·groups within the device's workgroups per dimension.
fn chunk_images(dev: &GpuDevice, g: &Geometry) -> usize {
    let per_image = (g.channels * g.kernel[0] * g.kernel[1] * g.out_plane()).max(1);
    let budget = match COL_BUDGET_OVERRIDE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => COL_BUDGET,
        b => b,
    };
    let budget = budget.min(dev.limits().max_storage_buffer_binding_size as usize / 4);
    let max_batches = dev.limits().max_compute_workgroups_per_dimension as usize / g.groups.max(1);
    (budget / per_image).min(max_batches).clamp(1, g.batch.max(1))
}

/// The geometry's words shared by the kernels: [C, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl].
fn geometry_words(g: &Geometry) -> [usize; 13] {
    [g.channels, g.height, g.width, g.out_height, g.out_width, g.kernel[0], g.kernel[1], g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.pad[0], g.pad[1]]
}

/// WGSL reading geometry_words from parameter word 1 on.
const GEOMETRY: &str = "
  let C = p(1u); let H = p(2u); let W = p(3u); let OH = p(4u); let OW = p(5u);
  let KH = p(6u); let KW = p(7u); let SH = p(8u); let SW = p(9u); let DH = p(10u); let DW = p(11u);
  let PT = pi(12u); let PL = pi(13u);";

// ---- kernels ---------------------------------------------------------------------------------

/// The im2col matrix of images n0..n0+nc of contiguous `x`: row r = (channel, ki, kj), column =
/// output position. `channel_major` lays it out [rows, images, positions] (the weight
/// gradient's K runs over images and positions), else [images, rows, positions].
fn im2col(dev: &GpuDevice, op: &str, g: &Geometry, x: &GpuTensor, n0: usize, nc: usize, channel_major: bool) -> Result<GpuTensor> {
    let (rows, plane) = (g.channels * g.kernel[0] * g.kernel[1], g.out_plane());
    let (shape, image_stride, row_stride) = if channel_major {
        (vec![g.groups, g.patch(), nc * plane], plane, nc * plane)
    } else {
        (vec![nc, g.groups, g.patch(), plane], rows * plane, plane)
    };
    let col = GpuTensor::empty(dev, op, &shape, DType::F32)?;
    let total = nc * rows * plane;
    super::super::check_u32_range(op, total)?;
    let params = Params::default()
        .u32(total)
        .words(geometry_words(g))
        .words([x.offset() + n0 * g.image_len(), image_stride, row_stride])
        .upload(dev, op)?;
    let source = || {
        let body = format!(
            "{GEOMETRY}
  // params 14..16: x offset of the chunk, the matrix's image stride and row stride.
  let plane = OH * OW;
  let rows = C * KH * KW;
  let pos = i % plane;
  let r = (i / plane) % rows;
  let n = i / (plane * rows);
  let kj = r % KW;
  let ki = (r / KW) % KH;
  let c = r / (KW * KH);
  let ih = i32((pos / OW) * SH + ki * DH) - PT;
  let iw = i32((pos % OW) * SW + kj * DW) - PL;
  var v = 0.0;
  if (ih >= 0 && ih < i32(H) && iw >= 0 && iw < i32(W)) {{
    v = x[p(14u) + ((n * C + c) * H + u32(ih)) * W + u32(iw)];
  }}
  col[n * p(15u) + r * p(16u) + pos] = v;"
        );
        kernel_1d(&[("read", "x: array<f32>"), ("read_write", "col: array<f32>")], &body)
    };
    dev.dispatch(op, "conv:im2col", source, &[params.buffer(), x.buffer(), col.buffer()], dev.groups_1d(total))?;
    Ok(col)
}

/// dx[n0 + n] = col2im(col[n]) (+ init per channel) for the chunk's images: col is the
/// [images, rows, positions] matrix of the product Wᵀ·dy.
#[allow(clippy::too_many_arguments)]
fn col2im(dev: &GpuDevice, op: &str, g: &Geometry, col: &GpuTensor, init: Option<&GpuTensor>, dx: &GpuTensor, n0: usize, nc: usize) -> Result<()> {
    let total = nc * g.image_len();
    super::super::check_u32_range(op, (n0 + nc) * g.image_len())?;
    let params = Params::default()
        .u32(total)
        .words(geometry_words(g))
        .words([n0 * g.image_len(), col.offset(), init.map_or(0, |t| t.offset())])
        .upload(dev, op)?;
    let start = if init.is_some() { "init[p(16u) + c]" } else { "0.0" };
    let source = || {
        let body = format!(
            "{GEOMETRY}
  // params 14..16: dx offset of the chunk, col offset, init offset.
  let ix = i % W;
  let iy = (i / W) % H;
  let c = (i / (W * H)) % C;
  let n = i / (W * H * C);
  let rows = C * KH * KW;
  let plane = OH * OW;
  var acc = {start};
{loops}
  dx[p(14u) + i] = acc;",
            loops = outputs_reading("      acc = acc + col[p(15u) + (n * rows + (c * KH + ky) * KW + kx) * plane + oy * OW + ox];")
        );
        let mut bindings = vec![("read", "col: array<f32>"), ("read_write", "dx: array<f32>")];
        if init.is_some() {
            bindings.push(("read", "init: array<f32>"));
        }
        kernel_1d(&bindings, &body)
    };
    let key = if init.is_some() { "conv:col2im:init" } else { "conv:col2im" };
    let mut buffers = vec![params.buffer(), col.buffer(), dx.buffer()];
    buffers.extend(init.map(|t| t.buffer()));
    dev.dispatch(op, key, source, &buffers, dev.groups_1d(total))
}

/// out[n0 + n] = product[n] (+ bias per output channel): the chunk's result into the output.
#[allow(clippy::too_many_arguments)]
fn add_bias_into(dev: &GpuDevice, op: &str, g: &Geometry, product: &GpuTensor, bias: Option<&GpuTensor>, out: &GpuTensor, n0: usize, nc: usize) -> Result<()> {
    let total = nc * g.out_image_len();
    super::super::check_u32_range(op, (n0 + nc) * g.out_image_len())?;
    let params = Params::default()
        .u32(total)
        .words([g.out_channels, g.out_plane(), n0 * g.out_image_len(), product.offset(), bias.map_or(0, |b| b.offset())])
        .upload(dev, op)?;
    let add = if bias.is_some() { " + bias[p(5u) + (i / p(2u)) % p(1u)]" } else { "" };
    let source = || {
        // params: [n, out channels, positions, out offset, product offset, bias offset]
        let body = format!("  out[p(3u) + i] = product[p(4u) + i]{add};");
        let mut bindings = vec![("read", "product: array<f32>"), ("read_write", "out: array<f32>")];
        if bias.is_some() {
            bindings.push(("read", "bias: array<f32>"));
        }
        kernel_1d(&bindings, &body)
    };
    let key = if bias.is_some() { "conv:bias" } else { "conv:place" };
    let mut buffers = vec![params.buffer(), product.buffer(), out.buffer()];
    buffers.extend(bias.map(|t| t.buffer()));
    dev.dispatch(op, key, source, &buffers, dev.groups_1d(total))
}
