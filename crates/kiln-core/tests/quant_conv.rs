//! Quantized convolutions: conv2d_q8 / conv2d_q4 equal conv2d on the dequantized filters across
//! stride, padding, dilation, groups, odd row lengths, blocks that do not divide a row, more
//! filters than one tile, and batches split over threads; errors and gradient refusal.
use kiln_core::ops::{self, ConvParams};
use kiln_core::{autograd, KilnError, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in vals(got).iter().zip(vals(want)).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: element {i}: {g} vs {w}");
    }
}

struct Case {
    batch: usize,
    channels: usize,
    size: [usize; 2],
    out: usize,
    kernel: [usize; 2],
    p: ConvParams,
    block: usize,
}

/// Runs both quantized ops and compares each with conv2d on its own dequantized filters.
fn check(c: &Case, seed: u64) {
    let patch = c.channels / c.p.groups * c.kernel[0] * c.kernel[1];
    let x = rand(&[c.batch, c.channels, c.size[0], c.size[1]], seed);
    let w = rand(&[c.out, patch], seed + 1);
    let b = rand(&[c.out], seed + 2);
    let shape4 = [c.out as isize, (c.channels / c.p.groups) as isize, c.kernel[0] as isize, c.kernel[1] as isize];
    let what = format!("x {:?} out {} kernel {:?} {:?} block {}", x.shape(), c.out, c.kernel, c.p, c.block);

    let (q, s) = ops::quantize_int8(&w).unwrap();
    let d = ops::dequantize_int8(&q, &s).unwrap().reshape(&shape4).unwrap();
    let want = ops::conv2d(&x, &d, Some(&b), &c.p).unwrap();
    assert_close(&ops::conv2d_q8(&x, &q, &s, Some(&b), c.kernel, &c.p).unwrap(), &want, &format!("q8 {what}"));
    let want = ops::conv2d(&x, &d, None, &c.p).unwrap();
    assert_close(&ops::conv2d_q8(&x, &q, &s, None, c.kernel, &c.p).unwrap(), &want, &format!("q8 no bias {what}"));

    let (p4, s4) = ops::quantize_int4(&w, c.block).unwrap();
    let d = ops::dequantize_int4(&p4, &s4, patch, c.block).unwrap().reshape(&shape4).unwrap();
    let want = ops::conv2d(&x, &d, Some(&b), &c.p).unwrap();
    assert_close(&ops::conv2d_q4(&x, &p4, &s4, Some(&b), c.kernel, &c.p, c.block).unwrap(), &want, &format!("q4 {what}"));
}

fn params(stride: usize, padding: [usize; 4], dilation: usize, groups: usize) -> ConvParams {
    ConvParams { stride: [stride, stride], padding, dilation: [dilation, dilation], groups }
}

#[test]
fn equals_conv2d_on_dequantized_filters() {
    let cases = [
        // 3x3 'same' (rows of 27: odd, and block 32 longer than the row)
        Case { batch: 2, channels: 3, size: [9, 9], out: 5, kernel: [3, 3], p: params(1, [1, 1, 1, 1], 1, 1), block: 32 },
        // stride 2, asymmetric padding, block 5 not dividing the row of 36
        Case { batch: 1, channels: 4, size: [10, 7], out: 6, kernel: [3, 3], p: params(2, [0, 1, 1, 0], 1, 1), block: 5 },
        // dilation 2, groups 2, a 3x2 kernel (kh != kw), odd block 3
        Case { batch: 3, channels: 6, size: [11, 8], out: 4, kernel: [3, 2], p: params(1, [2, 2, 1, 1], 2, 2), block: 3 },
        // depthwise (groups = channels), 5x5, row of 25
        Case { batch: 2, channels: 8, size: [12, 12], out: 8, kernel: [5, 5], p: params(1, [2, 2, 2, 2], 1, 8), block: 8 },
        // pointwise 1x1 (the engine reads the image as its im2col matrix), rows of 7
        Case { batch: 2, channels: 7, size: [6, 5], out: 9, kernel: [1, 1], p: ConvParams::default(), block: 4 },
        // more filters per group than one tile (150 = 64 + 64 + 22), two groups
        Case { batch: 1, channels: 10, size: [6, 6], out: 300, kernel: [3, 3], p: params(1, [1, 1, 1, 1], 1, 2), block: 32 },
        // a batch of several units, so units run on parallel workers with their own tiles
        Case { batch: 9, channels: 16, size: [14, 14], out: 70, kernel: [3, 3], p: params(1, [1, 1, 1, 1], 1, 1), block: 32 },
        // an image big enough for several im2col bands
        Case { batch: 1, channels: 32, size: [48, 48], out: 80, kernel: [3, 3], p: params(1, [1, 1, 1, 1], 1, 1), block: 16 },
        // direct.rs's tiles (tile_filters.rs): an odd row of 81 taps (the last pair of taps half
        // used), 13 filters (a last block of 5), blocks of 7 that straddle the pairs of taps
        Case { batch: 2, channels: 9, size: [8, 10], out: 13, kernel: [3, 3], p: params(1, [1, 1, 0, 2], 1, 1), block: 7 },
        // fewer than 8 filters: blocks of 4 and 2 (the scalar expansion), a 1x3 kernel
        Case { batch: 1, channels: 9, size: [5, 19], out: 6, kernel: [1, 3], p: params(1, [0, 0, 1, 1], 1, 1), block: 4 },
        Case { batch: 3, channels: 12, size: [6, 6], out: 3, kernel: [2, 2], p: params(1, [0, 0, 0, 0], 1, 1), block: 32 },
    ];
    for (i, c) in cases.iter().enumerate() {
        check(c, 10 * i as u64 + 1);
    }
}

#[test]
fn errors_name_op_shapes_and_dtypes() {
    let x = rand(&[1, 4, 6, 6], 1);
    let w = rand(&[5, 4 * 9], 2);
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let p = ConvParams::default();
    let msg = |r: Result<Tensor, KilnError>| r.err().expect("should fail").to_string();
    // A kernel that does not match the row length.
    let m = msg(ops::conv2d_q8(&x, &q, &s, None, [2, 2], &p));
    assert!(m.starts_with("conv2dQ8") && m.contains("[5, 36]") && m.contains("[1, 4, 6, 6]") && m.contains("2x2"), "{m}");
    // A float weight where int8 rows belong.
    let m = msg(ops::conv2d_q8(&x, &w, &s, None, [3, 3], &p));
    assert!(m.contains("int8") && m.contains("float32 [5, 36]"), "{m}");
    // A rank-3 input.
    let m = msg(ops::conv2d_q8(&rand(&[4, 6, 6], 3), &q, &s, None, [3, 3], &p));
    assert!(m.contains("input must be float32 [batch, channels, height, width]") && m.contains("[4, 6, 6]"), "{m}");
    // Bias of the wrong length.
    let m = msg(ops::conv2d_q8(&x, &q, &s, Some(&rand(&[4], 4)), [3, 3], &p));
    assert!(m.contains("bias must be float32 [5]") && m.contains("[4]"), "{m}");
    // Kernel larger than the padded input.
    let m = msg(ops::conv2d_q8(&rand(&[1, 1, 2, 2], 5), &ops::quantize_int8(&rand(&[2, 9], 6)).unwrap().0, &ops::quantize_int8(&rand(&[2, 9], 6)).unwrap().1, None, [3, 3], &p));
    assert!(m.contains("larger than the padded input"), "{m}");
    // Groups that do not divide the channels; a zero block; a block that does not match.
    let m = msg(ops::conv2d_q8(&x, &q, &s, None, [3, 3], &ConvParams { groups: 3, ..p }));
    assert!(m.starts_with("conv2dQ8") && m.contains("groups 3"), "{m}");
    let (p4, s4) = ops::quantize_int4(&w, 32).unwrap();
    assert!(msg(ops::conv2d_q4(&x, &p4, &s4, None, [3, 3], &p, 0)).contains("block must be at least 1"));
    let m = msg(ops::conv2d_q4(&x, &p4, &s4, None, [3, 3], &p, 8));
    assert!(m.starts_with("conv2dQ4") && m.contains("block 8"), "{m}");
    assert!(msg(ops::conv2d_q8(&x, &q, &s, None, [3, 3], &ConvParams { stride: [0, 1], ..p })).contains("stride"));
}

#[test]
fn gradients_are_refused_not_dropped() {
    let w = rand(&[3, 2 * 9], 7);
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let x = rand(&[1, 2, 5, 5], 8).set_requires_grad(true).unwrap();
    let m = ops::conv2d_q8(&x, &q, &s, None, [3, 3], &ConvParams::default()).err().expect("needs an error").to_string();
    assert!(m.starts_with("conv2dQ8") && m.contains("inference-only") && m.contains("noGrad"), "{m}");
    let previous = autograd::set_enabled(false);
    let y = ops::conv2d_q8(&x, &q, &s, None, [3, 3], &ConvParams::default());
    autograd::set_enabled(previous);
    assert!(!y.unwrap().requires_grad());
}
