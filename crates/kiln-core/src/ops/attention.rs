//! Scaled dot-product attention, fused and tiled (FlashAttention's scheme): softmax(QKᵀ·scale +
//! masks)·V computed block by block with an online softmax, so the working memory is linear in the
//! sequence length; the Tq×Tk score matrix is never materialized. The backward pass recomputes each
//! block from the saved row log-normalizers. One autograd node gives the gradients of q, k and v.
//!
//! Layout: the kernels read q, k and v through their strides (a [B, T, H, D] projection split into
//! heads by a permuted view is read in place). The output is written in [B, Tq, H, Dv] memory order
//! and returned as its [B, H, Tq, Dv] view when q is such a view, so merging the heads back
//! (permute + reshape) costs no copy; a contiguous q gives a contiguous output. Gradients follow
//! their input's layout the same way.

mod backward;
mod device;
mod forward;
mod layout;

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::random;
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use layout::Layout;
use crate::device::cpu::attention::tile::{DropoutMask, Operand, Problem};

pub use crate::params::attention::{AttentionOptions, Tiles};

const OP: &str = "attention";



/// softmax(q·kᵀ·scale + masks)·v. q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] float32 ->
/// [B, H, Tq, Dv]. `key_padding_mask` [B, Tk]: bool (true marks a padding key, which no query
/// sees, as PyTorch's key_padding_mask) or float32 (added to the scores: 0 keeps, −inf masks).
/// A query that sees no key at all (every key masked) gets output 0 and gradient 0, never NaN.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool, key_padding_mask: Option<&Tensor>, scale: Option<f32>) -> Result<Tensor> {
    attention(q, k, v, key_padding_mask, &AttentionOptions { causal, scale, ..Default::default() })
}

/// The dropout seed: the given one, else one drawn from the global generator.
fn seed_of(options: &AttentionOptions) -> u64 {
    options.seed.unwrap_or_else(|| random::with_rng(None, |r| ((r.next_u32() as u64) << 32) | r.next_u32() as u64))
}

/// The sizes of a checked problem.
struct Dims {
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

fn describe(q: &Tensor, k: &Tensor, v: &Tensor) -> String {
    format!("q {} {}, k {} {}, v {} {}", q.dtype(), fmt_shape(q.shape()), k.dtype(), fmt_shape(k.shape()), v.dtype(), fmt_shape(v.shape()))
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<Dims> {
    let got = || describe(q, k, v);
    let fail = |what: String| Err(KilnError::new(OP, what));
    if [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return fail(format!("q, k and v must be float32; got {}", got()));
    }
    if [q, k, v].iter().any(|t| t.rank() != 4) {
        return fail(format!("q, k and v must be 4-D [batch, heads, seq, dim]; got {}", got()));
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if ks[..2] != qs[..2] || vs[..2] != qs[..2] {
        return fail(format!("q, k and v must have the same batch and heads (dims 0 and 1); got {}", got()));
    }
    if vs[2] != ks[2] {
        return fail(format!("k and v must have the same number of keys (dim 2); got {}", got()));
    }
    if ks[3] != qs[3] {
        return fail(format!("q and k must have the same feature size (dim 3), their dot products are the scores; got {}", got()));
    }
    let dims = Dims { batch: qs[0], heads: qs[1], tq: qs[2], tk: ks[2], d: qs[3], dv: vs[3] };
    if let Some(m) = mask {
        if !matches!(m.dtype(), DType::Bool | DType::F32) || m.shape() != [dims.batch, dims.tk] {
            return fail(format!(
                "keyPaddingMask must be bool or float32 [batch, keys] = [{}, {}]; got {} {} (with {})",
                dims.batch, dims.tk, m.dtype(), fmt_shape(m.shape()), got()
            ));
        }
        if m.requires_grad() {
            return fail(format!("an additive keyPaddingMask ({} {}) that requires gradients is not supported: its gradient is not computed; detach it", m.dtype(), fmt_shape(m.shape())));
        }
    }
    if let Some(s) = options.scale {
        if !s.is_finite() {
            return fail(format!("scale must be a finite number, got {s}"));
        }
    }
    if !(0.0..1.0).contains(&options.dropout) {
        return fail(format!("dropout must be in [0, 1), got {}", options.dropout));
    }
    if options.tiles.query == 0 || options.tiles.key == 0 {
        return fail(format!("tile sizes must be positive, got {:?}", options.tiles));
    }
    Ok(dims)
}

/// The padding mask as one additive bias per key, [B, Tk]: bool true -> −inf, float32 as given
/// (NaN or +inf there would silently poison whole rows, so they are rejected).
fn padding_bias(mask: &Tensor) -> Result<Tensor> {
    let bias: Vec<f32> = match mask.dtype() {
        DType::Bool => mask.elements::<u8>(OP)?.into_iter().map(|pad| if pad != 0 { f32::NEG_INFINITY } else { 0.0 }).collect(),
        _ => {
            let values = mask.elements::<f32>(OP)?;
            if let Some(i) = values.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
                let tk = mask.shape()[1];
                return Err(KilnError::new(OP, format!(
                    "the additive keyPaddingMask {} holds {} at [{}, {}]; use 0 to keep a key and -inf to mask it",
                    fmt_shape(mask.shape()), values[i], i / tk, i % tk
                )));
            }
            values
        }
    };
    Tensor::from_vec(bias, mask.shape())
}

/// The fused attention with every option: see `scaled_dot_product_attention` for the shapes.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, key_padding_mask: Option<&Tensor>, options: &AttentionOptions) -> Result<Tensor> {
    let dims = check(q, k, v, key_padding_mask, options)?;
    let mut operands = vec![q, k, v];
    operands.extend(key_padding_mask);
    if let Some(dev) = crate::device::device_of(OP, &operands)? {
        // The dropout seed is drawn here, so forward and backward regenerate the same mask.
        let options = AttentionOptions { seed: if options.dropout > 0.0 { Some(seed_of(options)) } else { None }, ..*options };
        return device::attention(dev, q, k, v, key_padding_mask, &options);
    }
    let bias = key_padding_mask.map(padding_bias).transpose()?;
    let scale = options.scale.unwrap_or(if dims.d == 0 { 1.0 } else { 1.0 / (dims.d as f32).sqrt() });
    let dropout = if options.dropout > 0.0 { Some(DropoutMask::new(options.dropout, seed_of(options))) } else { None };
    let (causal, tiles) = (options.causal, options.tiles);

    let out_layout = Layout::like(q, dims.tq, dims.dv);
    let mut out = out_layout.allocate([dims.batch, dims.heads, dims.tq, dims.dv])?;
    let mut lse = Tensor::from_vec(try_zeroed::<f32>(OP, dims.batch * dims.heads * dims.tq)?, &[dims.batch, dims.heads, dims.tq])?;
    {
        let problem = make_problem(q, k, v, bias.as_ref(), &dims, causal, scale, dropout, tiles);
        forward::forward(&problem, out_layout, out.data_mut_f32(OP)?, lse.data_mut_f32(OP)?)?;
    }
    let out = out_layout.finish(out)?;

    let mut saved: Vec<&Tensor> = vec![q, k, v, &out, &lse];
    if let Some(b) = &bias {
        saved.push(b);
    }
    Ok(autograd::record(OP, &[q, k, v], &saved, out.clone(), move |g, saved, needs| {
        let (q, k, v, out, lse) = (&saved[0], &saved[1], &saved[2], &saved[3], &saved[4]);
        let problem = make_problem(q, k, v, saved.get(5), &dims, causal, scale, dropout, tiles);
        let lse = lse.contiguous_slice::<f32>().expect("lse is contiguous float32");
        let grads = backward_pass(&problem, &dims, out, lse, g, [q, k, v], needs)?;
        Ok(grads.to_vec())
    }))
}

#[allow(clippy::too_many_arguments)]
fn make_problem<'a>(q: &'a Tensor, k: &'a Tensor, v: &'a Tensor, bias: Option<&'a Tensor>, dims: &Dims, causal: bool, scale: f32, dropout: Option<DropoutMask>, tiles: Tiles) -> Problem<'a> {
    Problem {
        q: Operand::of(q),
        k: Operand::of(k),
        v: Operand::of(v),
        bias: bias.map(|b| b.contiguous_slice::<f32>().expect("the bias is made contiguous float32")),
        causal,
        dropout,
        scale,
        batch: dims.batch,
        heads: dims.heads,
        tq: dims.tq,
        tk: dims.tk,
        d: dims.d,
        dv: dims.dv,
        tiles,
    }
}

/// The gradients of q, k and v that `needs` asks for.
fn backward_pass(p: &Problem, dims: &Dims, out: &Tensor, lse: &[f32], g: &Tensor, inputs: [&Tensor; 3], needs: &[bool]) -> Result<[Option<Tensor>; 3]> {
    let saved = backward::Saved { out: Operand::of(out), lse, grad: Operand::of(g) };
    let delta = backward::row_deltas(p, &saved)?;
    let [q, k, v] = inputs;
    let mut grads: [Option<Tensor>; 3] = [None, None, None];
    if needs[0] {
        let layout = Layout::like(q, dims.tq, dims.d);
        let mut dq = layout.allocate([dims.batch, dims.heads, dims.tq, dims.d])?;
        backward::grad_q(p, &saved, &delta, layout, dq.data_mut_f32(OP)?)?;
        grads[0] = Some(layout.finish(dq)?);
    }
    if needs[1] || needs[2] {
        let (k_layout, v_layout) = (Layout::like(k, dims.tk, dims.d), Layout::like(v, dims.tk, dims.dv));
        let mut dk = k_layout.allocate([dims.batch, dims.heads, dims.tk, dims.d])?;
        let mut dv = v_layout.allocate([dims.batch, dims.heads, dims.tk, dims.dv])?;
        backward::grad_kv(p, &saved, &delta, k_layout, v_layout, dk.data_mut_f32(OP)?, dv.data_mut_f32(OP)?)?;
        grads[1] = if needs[1] { Some(k_layout.finish(dk)?) } else { None };
        grads[2] = if needs[2] { Some(v_layout.finish(dv)?) } else { None };
    }
    Ok(grads)
}
