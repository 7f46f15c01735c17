//! The fused attention kernels against kiln-core's CPU attention: forward values and the
//! gradients of q, k and v (kiln-core autograd), over awkward shapes (sequence lengths and head
//! sizes that are not multiples of the 16-row blocks or the 64-feature chunks, Tq != Tk), the
//! causal mask (also with Tq > Tk, where early queries see nothing), bool and float padding masks
//! (with a fully masked batch row), dropout with a fixed seed, and heads split by permuted views.
//!
//! Tolerance: 2e-5 absolute + 1e-4 relative. Scores and block products sum in another order than
//! kiln-core's GEMMs (forward values differ by ~1e-6); gradients go through exp(s − lse) and Δ,
//! ~1e-5 at these sizes. A wrong scale, mask offset or dropout bit moves values by >1e-2.

use crate::common::{assert_close, cpu_grads, down, gpu, randn, up, vals};
use kiln_core::ops::{self, attention::Tiles, AttentionOptions, BinaryOp, ReduceOp};
use kiln_core::{autograd, Tensor};
use kiln_gpu::kernels::attention::{self as att, AttentionForward};
use kiln_gpu::{GpuDevice, GpuTensor};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

struct Case {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
    causal: bool,
    /// 0 none, 1 bool (batch 0 fully masked when `all_masked`), 2 float (0 / −inf / −1.5)
    mask: u8,
    dropout: f32,
    /// q, k, v as [B, H, T, D] views of [B, T, H, D] tensors (a projection split into heads).
    split_heads: bool,
}

fn make(shape: [usize; 4], split: bool, seed: u64) -> Tensor {
    let [b, h, t, d] = shape;
    if split {
        randn(&[b, t, h, d], seed).permute(&[0, 2, 1, 3]).unwrap()
    } else {
        randn(&shape, seed)
    }
}

fn mask_of(c: &Case) -> Option<Tensor> {
    let n = c.b * c.tk;
    match c.mask {
        1 => Some(Tensor::from_vec((0..n).map(|i| (i < c.tk || i % 3 == 1) as u8).collect::<Vec<u8>>(), &[c.b, c.tk]).unwrap()),
        2 => Some(Tensor::from_vec((0..n).map(|i| [0.0, f32::NEG_INFINITY, -1.5, 0.0][i % 4]).collect::<Vec<f32>>(), &[c.b, c.tk]).unwrap()),
        _ => None,
    }
}

/// A GPU copy with the same strides as `t` (uploads are contiguous; re-split the heads).
fn up_like(dev: &GpuDevice, t: &Tensor, split: bool) -> GpuTensor {
    if split {
        up(dev, &t.permute(&[0, 2, 1, 3]).unwrap().contiguous().unwrap()).permute(&[0, 2, 1, 3]).unwrap()
    } else {
        up(dev, t)
    }
}

fn check(dev: &GpuDevice, c: &Case, seed: u64) {
    let what = format!("B{} H{} Tq{} Tk{} D{} Dv{} causal {} mask {} dropout {} split {}", c.b, c.h, c.tq, c.tk, c.d, c.dv, c.causal, c.mask, c.dropout, c.split_heads);
    let q = make([c.b, c.h, c.tq, c.d], c.split_heads, seed);
    let k = make([c.b, c.h, c.tk, c.d], c.split_heads, seed + 1);
    let v = make([c.b, c.h, c.tk, c.dv], c.split_heads, seed + 2);
    let mask = mask_of(c);
    // Small CPU tiles so the CPU side also runs many blocks.
    let options = AttentionOptions { causal: c.causal, scale: None, dropout: c.dropout, seed: Some(77), tiles: Tiles { query: 8, key: 8 } };
    let cpu = ops::attention(&q, &k, &v, mask.as_ref(), &options).unwrap();

    let (gq, gk, gv) = (up_like(dev, &q, c.split_heads), up_like(dev, &k, c.split_heads), up_like(dev, &v, c.split_heads));
    let bias = mask.as_ref().map(|m| att::padding_bias(dev, &up(dev, m)).unwrap());
    let fwd = att::attention(dev, &gq, &gk, &gv, bias.as_ref(), &options).unwrap();
    assert_eq!(fwd.out.shape(), cpu.shape(), "{what}");
    assert_eq!(fwd.out.is_contiguous(), !c.split_heads, "{what}: the output follows q's layout");
    assert_close(&format!("{what}: forward"), &down(dev, &fwd.out), &vals(&cpu), ATOL, RTOL);

    // Gradients of sum(out ∘ seed) for a random seed.
    let g = randn(cpu.shape(), seed + 3);
    let want = cpu_grads(&[q.clone(), k.clone(), v.clone()], &g, |t| ops::attention(&t[0], &t[1], &t[2], mask.as_ref(), &options).unwrap());
    let grads = att::attention_backward(dev, &gq, &gk, &gv, bias.as_ref(), &fwd, &up(dev, &g), &options).unwrap();
    for (name, got, want, like) in [("dq", &grads.q, &want[0], &gq), ("dk", &grads.k, &want[1], &gk), ("dv", &grads.v, &want[2], &gv)] {
        assert_eq!(got.strides(), like.strides(), "{what}: {name} follows its input's layout");
        assert_close(&format!("{what}: {name}"), &down(dev, got), want, ATOL, RTOL);
    }
}

#[test]
fn attention_matches_cpu() {
    let dev = gpu!();
    let base = Case { b: 2, h: 2, tq: 37, tk: 29, d: 20, dv: 70, causal: false, mask: 0, dropout: 0.0, split_heads: false };
    check(dev, &base, 10);
    check(dev, &Case { causal: true, ..base }, 20);
    check(dev, &Case { causal: true, tq: 29, tk: 41, mask: 1, ..base }, 30);
    check(dev, &Case { mask: 2, split_heads: true, d: 67, dv: 9, ..base }, 40);
    check(dev, &Case { dropout: 0.3, causal: true, tq: 17, tk: 17, ..base }, 50);
    check(dev, &Case { b: 1, h: 3, tq: 1, tk: 5, d: 4, dv: 3, causal: true, ..base }, 60);
}

/// A query that sees no key (every key masked) gives output 0 and gradient 0, as on the CPU.
#[test]
fn attention_fully_masked_rows_are_zero() {
    let dev = gpu!();
    // Causal with Tq > Tk: the first Tq − Tk queries see nothing.
    let c = Case { b: 1, h: 1, tq: 20, tk: 5, d: 8, dv: 8, causal: true, mask: 1, dropout: 0.0, split_heads: false };
    check(dev, &c, 70);
    let q = up(dev, &randn(&[1, 1, 20, 8], 1));
    let k = up(dev, &randn(&[1, 1, 5, 8], 2));
    let AttentionForward { out, lse: _ } = att::attention(dev, &q, &k, &k, None, &AttentionOptions { causal: true, ..Default::default() }).unwrap();
    let o = down(dev, &out);
    assert!(o[..15 * 8].iter().all(|&x| x == 0.0), "rows that see no key are 0");
    assert!(o[15 * 8..].iter().any(|&x| x != 0.0));
}

/// Composing the GPU kernel's output into a loss gives the same gradient as the CPU graph: a
/// check of the kernel through a second path (sum of squares of the output).
#[test]
fn attention_grad_of_squared_output() {
    let dev = gpu!();
    let (q, k, v) = (randn(&[1, 2, 9, 5], 80), randn(&[1, 2, 9, 5], 81), randn(&[1, 2, 9, 6], 82));
    let options = AttentionOptions { causal: true, ..Default::default() };
    let leaves: Vec<Tensor> = [&q, &k, &v].iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
    let out = ops::attention(&leaves[0], &leaves[1], &leaves[2], None, &options).unwrap();
    let loss = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &out, &out).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    let (gq, gk, gv) = (up(dev, &q), up(dev, &k), up(dev, &v));
    let fwd = att::attention(dev, &gq, &gk, &gv, None, &options).unwrap();
    let two_out = kiln_gpu::kernels::elementwise::binary(dev, BinaryOp::Add, &fwd.out, &fwd.out).unwrap();
    let grads = att::attention_backward(dev, &gq, &gk, &gv, None, &fwd, &two_out, &options).unwrap();
    for (got, leaf) in [(&grads.q, &leaves[0]), (&grads.k, &leaves[1]), (&grads.v, &leaves[2])] {
        assert_close("d(sum out²)", &down(dev, got), &vals(&leaf.grad().unwrap()), ATOL, RTOL);
    }
}
