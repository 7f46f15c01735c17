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
//!
//! This file checks the arguments, draws the dropout seed, dispatches once and records the one
//! autograd node; the CPU's kernels are device/cpu/attention/.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::random;
use crate::tensor::Tensor;

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

fn describe(q: &Tensor, k: &Tensor, v: &Tensor) -> String {
    format!("q {} {}, k {} {}, v {} {}", q.dtype(), fmt_shape(q.shape()), k.dtype(), fmt_shape(k.shape()), v.dtype(), fmt_shape(v.shape()))
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<()> {
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
    let (batch, tk) = (qs[0], ks[2]);
    if let Some(m) = mask {
        if !matches!(m.dtype(), DType::Bool | DType::F32) || m.shape() != [batch, tk] {
            return fail(format!(
                "keyPaddingMask must be bool or float32 [batch, keys] = [{}, {}]; got {} {} (with {})",
                batch, tk, m.dtype(), fmt_shape(m.shape()), got()
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
    Ok(())
}

/// The fused attention with every option: see `scaled_dot_product_attention` for the shapes.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, key_padding_mask: Option<&Tensor>, options: &AttentionOptions) -> Result<Tensor> {
    check(q, k, v, key_padding_mask, options)?;
    let mut operands = vec![q, k, v];
    operands.extend(key_padding_mask);
    let dev = crate::device::dispatch(OP, &operands)?;
    // The dropout seed is drawn here, so forward and backward regenerate the same mask.
    let options = AttentionOptions { seed: if options.dropout > 0.0 { Some(seed_of(options)) } else { None }, ..*options };
    let (out, lse) = dev.attention(q, k, v, key_padding_mask, &options)?;
    let mut saved = vec![q, k, v, &out, &lse];
    saved.extend(key_padding_mask);
    Ok(autograd::record(OP, &[q, k, v], &saved, out.clone(), move |g, saved, needs| {
        let grads = dev.attention_backward(&saved[0], &saved[1], &saved[2], saved.get(5), &saved[3], &saved[4], g, &options)?;
        Ok(grads.into_iter().zip(needs).map(|(t, &need)| need.then_some(t)).collect())
    }))
}
