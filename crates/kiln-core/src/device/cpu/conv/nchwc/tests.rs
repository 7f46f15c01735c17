//! The blocked functions against the definition of a convolution in NCHW (plain loops over the
//! unblocked tensors, written apart from both kernels), on many geometries.

use super::*;
use crate::params::conv::Activation;
use crate::params::unary::UnaryOp;

/// super::forward with the packed filters alone (Winograd transforms them per call).
fn forward(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    super::forward(g, x, Packed::taps(w), b, e, y)
}

/// super::forward_into with the packed filters alone.
fn forward_into(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, act: Option<Activation>, y: &mut [f32], out: OutBlocks) {
    super::forward_into(g, x, Packed::taps(w), b, act, y, out)
}

/// conv2d in NCHW by its definition, for the blocked functions to agree with.
fn conv_nchw(g: &Geometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; g.batch * g.out_image_len()];
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oh in 0..g.out_height {
                for ow in 0..g.out_width {
                    let mut s = bias[o];
                    for c in 0..g.channels {
                        for ki in 0..g.kernel[0] {
                            for kj in 0..g.kernel[1] {
                                let ih = (oh * g.stride[0] + ki * g.dilation[0]) as isize - g.pad[0] as isize;
                                let iw = (ow * g.stride[1] + kj * g.dilation[1]) as isize - g.pad[1] as isize;
                                if ih < 0 || iw < 0 || ih >= g.height as isize || iw >= g.width as isize {
                                    continue;
                                }
                                s += x[((n * g.channels + c) * g.height + ih as usize) * g.width + iw as usize] * w[((o * g.channels + c) * g.kernel[0] + ki) * g.kernel[1] + kj];
                            }
                        }
                    }
                    y[((n * g.out_channels + o) * g.out_height + oh) * g.out_width + ow] = s;
                }
            }
        }
    }
    y
}

/// The activations by their formulas (not the crate's unary kernels).
fn activate(a: Activation, v: f32) -> f32 {
    match a.op {
        UnaryOp::Relu => v.max(0.0),
        UnaryOp::LeakyRelu => if v > 0.0 { v } else { a.alpha * v },
        UnaryOp::Elu => if v > 0.0 { v } else { a.alpha * (v.exp() - 1.0) },
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        UnaryOp::Tanh => v.tanh(),
        op => unreachable!("not a fused activation: {op:?}"),
    }
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 16) % 1000) as f32 / 500.0 - 1.0).collect()
}

fn geometry(batch: usize, channels: usize, out_channels: usize, hw: [usize; 2], kernel: usize, stride: usize, pad: usize, dilation: usize) -> Geometry {
    let out = |size: usize| (size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
    Geometry {
        batch,
        channels,
        height: hw[0],
        width: hw[1],
        out_channels,
        out_height: out(hw[0]),
        out_width: out(hw[1]),
        kernel: [kernel, kernel],
        stride: [stride, stride],
        pad: [pad, pad],
        dilation: [dilation, dilation],
        groups: 1,
    }
}

/// Operands of `g` in both layouts, and what the blocked forward must give (in NCHW).
struct Case {
    g: Geometry,
    /// x as `forward` reads it: blocked (`case`), or plain NCHW (`plain_case`).
    xb: Vec<f32>,
    wb: Vec<f32>,
    bias: Option<Vec<f32>>,
    residual: Option<(Vec<f32>, Vec<f32>)>,
    activation: Option<Activation>,
    expected: Vec<f32>,
}

fn case(g: Geometry, with_bias: bool, with_residual: bool, activation: Option<Activation>) -> Case {
    let (x, w) = (values(g.batch * g.image_len(), 1), values(g.weight_len(), 2));
    let bias = if with_bias { values(g.out_channels, 3) } else { vec![0.0; g.out_channels] };
    let mut expected = conv_nchw(&g, &x, &w, &bias);
    let residual = with_residual.then(|| {
        let r = values(expected.len(), 4);
        expected.iter_mut().zip(&r).for_each(|(e, r)| *e += r);
        let mut rb = vec![0.0; blocked_len(g.batch, g.out_channels, g.out_plane())];
        to_blocked(&r, g.batch, g.out_channels, g.out_plane(), &mut rb);
        (r, rb)
    });
    if let Some(a) = activation {
        expected.iter_mut().for_each(|e| *e = activate(a, *e));
    }
    let mut xb = vec![f32::NAN; blocked_len(g.batch, g.channels, g.height * g.width)];
    to_blocked(&x, g.batch, g.channels, g.height * g.width, &mut xb);
    let mut wb = vec![f32::NAN; packed_filters_len(&g)];
    pack_filters(&g, &w, &mut wb);
    let bias = with_bias.then(|| {
        let mut bb = vec![0.0; blocks(g.out_channels) * BLOCK];
        bb[..g.out_channels].copy_from_slice(&bias);
        bb
    });
    Case { g, xb, wb, bias, residual, activation, expected }
}

type Forward = fn(&Geometry, &[f32], &[f32], Option<&[f32]>, SliceEpilogue, &mut [f32]);

/// Runs `forward` on the case and checks every output against the definition, and the padded
/// channels of the last block against what they must hold (zero filters: the epilogue of 0).
fn check(c: &Case, forward: Forward, what: &str) {
    check_within(c, forward, what, 1e-4)
}

/// `check` with outputs within `tol` (relative to 1 + |expected|) of the definition's.
fn check_within(c: &Case, forward: Forward, what: &str, tol: f32) {
    let g = &c.g;
    let epilogue = SliceEpilogue { residual: c.residual.as_ref().map(|(_, rb)| rb.as_slice()), activation: c.activation };
    let mut yb = vec![f32::NAN; blocked_len(g.batch, g.out_channels, g.out_plane())];
    forward(g, &c.xb, &c.wb, c.bias.as_deref(), epilogue, &mut yb);
    let mut y = vec![f32::NAN; c.expected.len()];
    from_blocked(&yb, g.batch, g.out_channels, g.out_plane(), &mut y);
    for (i, (a, b)) in y.iter().zip(&c.expected).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what} {g:?} act {:?} residual {}: element {i}: {a} vs {b}", c.activation.map(|a| a.op), c.residual.is_some());
    }
    let ob = blocks(g.out_channels);
    for n in 0..g.batch {
        for p in 0..g.out_plane() {
            for lane in g.out_channels % BLOCK..if g.out_channels % BLOCK == 0 { 0 } else { BLOCK } {
                let at = ((n * ob + ob - 1) * g.out_plane() + p) * BLOCK + lane;
                let r = c.residual.as_ref().map_or(0.0, |(_, rb)| rb[at]);
                let want = c.activation.map_or(r, |a| activate(a, r));
                assert!((yb[at] - want).abs() <= 1e-6, "{what} {g:?}: padded lane {lane} holds {} not {want}", yb[at]);
            }
        }
    }
}

fn activations() -> Vec<Activation> {
    [("relu", 0.0), ("leakyRelu", 0.1), ("elu", 1.0), ("sigmoid", 0.0), ("tanh", 0.0)].iter().map(|&(name, alpha)| Activation::new("test", name, alpha).unwrap()).collect()
}

#[test]
fn blocked_forward_matches_the_definition() {
    // 20 -> 35 channels (partial blocks both sides), 3x3 stride 2 pad 1 on 9x7, with bias.
    let c = case(geometry(2, 20, 35, [9, 7], 3, 2, 1, 1), true, false, None);
    check(&c, forward, "forward");
    check(&c, reference, "reference");
}

fn reference(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    reference::forward(g, Input::Blocked, x, w, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 })
}

#[test]
fn kernel_sizes_strides_pads_and_dilations_match_the_definition() {
    // (batch, channels, out_channels, [h, w], kernel, stride, pad, dilation)
    let shapes = [
        (1, 16, 16, [5, 5], 1, 1, 0, 1),
        (2, 7, 50, [6, 9], 1, 1, 0, 1),
        (1, 40, 70, [7, 7], 1, 2, 0, 1),
        (3, 33, 17, [8, 11], 1, 2, 1, 1),
        (1, 16, 64, [7, 7], 3, 1, 1, 1),
        (2, 24, 80, [9, 13], 3, 1, 0, 1),
        (1, 32, 48, [10, 10], 3, 2, 1, 1),
        (2, 5, 33, [11, 8], 3, 2, 2, 1),
        (1, 20, 20, [9, 9], 3, 1, 3, 1),
        (1, 18, 40, [12, 12], 3, 1, 2, 2),
        (2, 17, 21, [10, 9], 5, 1, 2, 1),
        (1, 16, 16, [13, 13], 5, 2, 0, 1),
        (1, 9, 70, [15, 14], 7, 2, 3, 1),
        (1, 35, 19, [9, 11], 7, 1, 3, 1),
        (1, 8, 8, [3, 3], 5, 1, 2, 1),
        (1, 8, 8, [2, 2], 3, 1, 3, 2),
        // Many input blocks (several chunks: `inputs_in_several_chunks_match_the_definition`).
        (1, 300, 40, [5, 6], 1, 1, 0, 1),
        (2, 150, 20, [7, 5], 1, 2, 1, 1),
        // Large enough to run on the thread pool (engine::parallel_pays_for).
        (2, 64, 72, [16, 16], 3, 1, 1, 1),
        (1, 128, 260, [7, 7], 1, 1, 0, 1),
    ];
    for (batch, c, o, hw, k, s, p, d) in shapes {
        let g = geometry(batch, c, o, hw, k, s, p, d);
        for with_bias in [true, false] {
            check(&case(g, with_bias, false, None), forward, "forward");
        }
        check(&case(g, true, false, None), reference, "reference");
    }
}

#[test]
fn strided_pointwise_convolutions_match_the_definition() {
    // 1x1 unpadded of stride > 1 (kernel.rs gathers the pixels they read, then runs them as
    // stride-1 pointwise): odd sizes, partial blocks, stride 3, one image large enough for the
    // thread pool, and strides that differ per axis; with a residual and relu as ResNet's
    // downsampling shortcuts are fused, and without.
    let mut shapes = vec![geometry(2, 40, 70, [9, 11], 1, 2, 0, 1), geometry(1, 33, 20, [10, 7], 1, 3, 0, 1), geometry(1, 130, 260, [14, 14], 1, 2, 0, 1)];
    shapes.push(Geometry { stride: [2, 1], out_height: 4, out_width: 5, ..geometry(2, 24, 40, [7, 5], 1, 1, 0, 1) });
    shapes.push(Geometry { stride: [1, 2], out_height: 5, out_width: 3, ..geometry(1, 24, 40, [5, 6], 1, 1, 0, 1) });
    for g in shapes {
        check(&case(g, true, true, activations().first().copied()), forward, "forward, residual and relu");
        check(&case(g, false, false, None), forward, "forward");
    }
}

#[test]
fn strided_convolutions_of_few_columns_match_the_definition() {
    // Padded, strided, a sixteenth or more of the output columns on the border (kernel.rs runs
    // them on a zero-padded copy of x): ResNet-50's 3x3/s2 at 14x14 (7 columns, one on the
    // border) with partial blocks, batch 2, one large enough for the thread pool, pads of 2 and
    // per axis, a 5x5, a 28x28 input (14 columns); and a 56x56 input (28 columns) that stays on
    // the border tiles.
    let shapes = [
        geometry(2, 40, 36, [14, 14], 3, 2, 1, 1),
        geometry(1, 130, 140, [14, 14], 3, 2, 1, 1),
        geometry(1, 20, 24, [9, 12], 5, 2, 2, 1),
        Geometry { pad: [2, 1], out_height: 7, out_width: 6, ..geometry(1, 17, 33, [11, 11], 3, 2, 1, 1) },
        geometry(1, 32, 32, [28, 28], 3, 2, 1, 1),
        geometry(1, 20, 24, [56, 56], 3, 2, 1, 1),
    ];
    for g in shapes {
        check(&case(g, true, true, activations().first().copied()), forward, "forward, residual and relu");
        check(&case(g, false, false, None), forward, "forward");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn both_unit_orders_match_the_definition() {
    if crate::simd::level() != crate::simd::SimdLevel::Avx512 {
        return;
    }
    fn bands_outer(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
        kernel::forward_with(g, x, w, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 }, Some(true), false)
    }
    fn groups_outer(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
        kernel::forward_with(g, x, w, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 }, Some(false), false)
    }
    for g in [geometry(2, 40, 150, [12, 12], 3, 1, 1, 1), geometry(1, 64, 72, [16, 16], 3, 2, 1, 1), geometry(2, 130, 260, [9, 9], 1, 1, 0, 1)] {
        let c = case(g, true, true, activations().first().copied());
        check(&c, bands_outer, "bands outer");
        check(&c, groups_outer, "groups outer");
    }
}

/// kernel.rs's forward cut for T threads (its units cut into parts, claimed in pieces).
#[cfg(target_arch = "x86_64")]
fn cut_for<const T: usize>(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    kernel::forward_cut_for(g, x, w, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 }, T)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_cut_for_each_thread_count_matches_the_definition() {
    if crate::simd::level() != crate::simd::SimdLevel::Avx512 {
        return;
    }
    // ResNet-50's batch-1 kinds, small, with partial blocks (odd channel counts) and a last group
    // of fewer than 4 output blocks: 1x1 on 7x7 and 14x14 planes (one row each: parts are column
    // tiles), a 3x3 of 7 rows (parts are rows), a strided 3x3 of 7x7 output, batch 2, and a
    // plane of 9 rows whose units are bands.
    let shapes = [
        geometry(1, 40, 72, [7, 7], 1, 1, 0, 1),
        geometry(1, 33, 100, [14, 14], 1, 1, 0, 1),
        geometry(1, 24, 70, [7, 7], 3, 1, 1, 1),
        geometry(1, 36, 40, [14, 14], 3, 2, 1, 1),
        geometry(2, 20, 90, [5, 5], 1, 1, 0, 1),
        geometry(1, 17, 65, [9, 30], 3, 1, 1, 1),
    ];
    let cuts: [(Forward, &str); 5] = [(cut_for::<1>, "1 thread"), (cut_for::<2>, "2 threads"), (cut_for::<3>, "3 threads"), (cut_for::<4>, "4 threads"), (cut_for::<7>, "7 threads")];
    for g in shapes {
        let c = case(g, true, true, activations().first().copied());
        for (cut, what) in cuts {
            check(&c, cut, what);
        }
    }
}

/// Input blocks in several chunks (kernel.rs `chunk_blocks`: the tiles store their sums after a
/// chunk and load them for the next), the last one short and its last block partial, on the
/// small planes of ResNet-50's last stages (1x1, 2x3, 7x7; the 1x1 convolutions run a plane as
/// one row of tiles), batch 1 and 3, odd output channels (a partial last group), with bias or
/// none, the residual and relu: the 1x1s, a 3x3 on the direct tiles (kernel.rs's cut for one
/// thread, not Winograd), a 3x3 of stride 2 on 14x14, Winograd's 1x1 products, and the
/// two-thread cut (a unit's parts on either thread).
#[cfg(target_arch = "x86_64")]
#[test]
fn inputs_in_several_chunks_match_the_definition() {
    if !winograd_runs_here() {
        return;
    }
    // Channels of `chunks` full chunks and a last one of a block and 11 channels.
    let channels = |taps: usize, chunks: usize| (kernel::chunk_blocks(taps) * chunks + 1) * BLOCK - 5;
    let relu = activations().first().copied();
    let mut shapes = Vec::new();
    for batch in [1, 3] {
        for hw in [[1, 1], [2, 3], [7, 7]] {
            shapes.push(geometry(batch, channels(1, 1), 37, hw, 1, 1, 0, 1));
        }
        shapes.push(geometry(batch, channels(9, 2), 40, [7, 7], 3, 1, 1, 1));
        shapes.push(geometry(batch, channels(9, 1), 33, [14, 14], 3, 2, 1, 1));
    }
    shapes.push(geometry(1, channels(1, 2), 70, [7, 7], 1, 1, 0, 1));
    for g in shapes {
        check(&case(g, true, true, relu), cut_for::<1>, "several chunks, residual and relu");
        check(&case(g, false, false, None), cut_for::<1>, "several chunks");
        check(&case(g, true, true, relu), cut_for::<2>, "several chunks, two threads");
    }
    // Winograd's products: 1x1 convolutions of as many input blocks as the 3x3 has.
    let g = geometry(1, channels(1, 1), 20, [7, 7], 3, 1, 1, 1);
    check_within(&case(g, true, true, relu), winograd_forward, "winograd, several chunks", 1e-6 * (9 * blocks(g.channels) * BLOCK) as f32);
}

/// `case` with x left in plain NCHW, for forward_plain_input.
fn plain_case(g: Geometry, with_bias: bool, with_residual: bool, activation: Option<Activation>) -> Case {
    Case { xb: values(g.batch * g.image_len(), 1), ..case(g, with_bias, with_residual, activation) }
}

fn reference_plain(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    reference::forward(g, Input::Plain, x, w, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 })
}

#[test]
fn a_plain_input_matches_the_definition() {
    // (batch, channels, out_channels, [h, w], kernel, stride, pad): stems (3 colours: SqueezeNet's
    // 3x3/s2, ResNet's 7x7/s2 pad 3), one channel, a whole block, a 1x1 (run as one row), and
    // one large enough for the thread pool.
    let shapes = [
        (1, 3, 64, [23, 23], 3, 2, 0),
        (2, 3, 64, [19, 21], 7, 2, 3),
        (1, 1, 20, [9, 9], 3, 1, 1),
        (1, 16, 33, [10, 10], 3, 1, 1),
        (2, 5, 70, [12, 12], 1, 1, 0),
        (1, 3, 64, [64, 64], 3, 2, 0),
    ];
    for (batch, c, o, hw, k, s, p) in shapes {
        let g = geometry(batch, c, o, hw, k, s, p, 1);
        for with_bias in [true, false] {
            check(&plain_case(g, with_bias, false, None), forward_plain_input, "plain input");
        }
        check(&plain_case(g, true, false, None), reference_plain, "plain input reference");
    }
    let g = geometry(1, 3, 40, [15, 14], 3, 2, 1, 1);
    for a in activations().into_iter().map(Some).chain([None]) {
        check(&plain_case(g, true, true, a), forward_plain_input, "plain input");
    }
}

#[test]
fn ragged_widths_match_the_definition() {
    for width in 1..=17 {
        for (k, s, p) in [(1, 1, 0), (3, 1, 1), (3, 2, 1), (1, 2, 0)] {
            check(&case(geometry(1, 19, 36, [3, width], k, s, p, 1), true, false, None), forward, "forward");
        }
    }
}

#[test]
fn residual_and_each_activation_match_the_definition() {
    let shapes = [geometry(2, 20, 70, [9, 8], 3, 1, 1, 1), geometry(1, 48, 33, [7, 7], 1, 1, 0, 1), geometry(1, 24, 40, [11, 10], 3, 2, 1, 1)];
    for g in shapes {
        for with_residual in [false, true] {
            for a in activations().into_iter().map(Some).chain([None]) {
                check(&case(g, true, with_residual, a), forward, "forward");
            }
            check(&case(g, true, with_residual, activations().first().copied()), reference, "reference");
        }
    }
}

#[test]
fn a_nan_input_reaches_the_output_through_relu() {
    let g = geometry(1, 16, 16, [4, 4], 3, 1, 1, 1);
    let mut c = case(g, true, false, activations().first().copied());
    c.xb[5 * BLOCK + 3] = f32::NAN;
    let mut yb = vec![0.0; blocked_len(1, 16, g.out_plane())];
    forward(&g, &c.xb, &c.wb, c.bias.as_deref(), SliceEpilogue { residual: None, activation: c.activation }, &mut yb);
    // Pixel (1, 1) reaches outputs (0..3, 0..3): all NaN, as the scalar relu keeps NaN.
    for (oh, ow) in [(0, 0), (1, 1), (2, 2), (0, 2)] {
        assert!(yb[(oh * 4 + ow) * BLOCK..][..BLOCK].iter().all(|v| v.is_nan()), "output ({oh}, {ow}) lost the NaN");
    }
    assert!(yb[(3 * 4 + 3) * BLOCK..][..BLOCK].iter().all(|v| !v.is_nan()), "output (3, 3) is outside the NaN's reach");
}

#[test]
fn reorders_round_trip_and_zero_the_padded_channels() {
    for (batch, channels, plane) in [(1, 1, 1), (2, 3, 50_176), (1, 16, 17), (3, 20, 33), (1, 64, 3136), (2, 35, 1), (1, 200, 49), (1, 2048, 49)] {
        let x = values(batch * channels * plane, 9);
        let mut xb = vec![f32::NAN; blocked_len(batch, channels, plane)];
        to_blocked(&x, batch, channels, plane, &mut xb);
        let cb = blocks(channels);
        for n in 0..batch {
            for c in 0..cb * BLOCK {
                for p in [0, plane / 2, plane - 1] {
                    let got = xb[((n * cb + c / BLOCK) * plane + p) * BLOCK + c % BLOCK];
                    let want = if c < channels { x[(n * channels + c) * plane + p] } else { 0.0 };
                    assert_eq!(got.to_bits(), want.to_bits(), "to_blocked [{batch}, {channels}, {plane}]: image {n} channel {c} pixel {p}");
                }
            }
        }
        let mut back = vec![f32::NAN; x.len()];
        from_blocked(&xb, batch, channels, plane, &mut back);
        assert!(back.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()), "from_blocked(to_blocked(x)) != x for [{batch}, {channels}, {plane}]");
    }
}

/// Two convolutions of one input written into their blocks of one output (a fire module's
/// expands): each equals its own forward, and the blocks around them keep what they held.
#[test]
fn forward_into_writes_its_blocks_of_a_concatenation_only() {
    let relu = activations().first().copied();
    let (expand1, expand3) = (geometry(2, 20, 32, [7, 9], 1, 1, 0, 1), geometry(2, 20, 40, [7, 9], 3, 1, 1, 1));
    let (a, b) = (case(expand1, true, false, relu), case(expand3, true, false, relu));
    let plane = expand1.out_plane();
    // Blocks per image: 1 untouched, 2 of expand1, 3 of expand3, 1 untouched.
    let out = |first| OutBlocks { per_image: 7, first };
    let mut y = vec![-7.0; 2 * 7 * plane * BLOCK];
    type Into = fn(&Geometry, &[f32], &[f32], Option<&[f32]>, Option<Activation>, &mut [f32], OutBlocks);
    let reference_into: Into = |g, x, w, b, act, y, o| reference::forward(g, Input::Blocked, x, w, b, SliceEpilogue { residual: None, activation: act }, y, o);
    for (into, what) in [(forward_into as Into, "forward_into"), (reference_into, "reference")] {
        y.fill(-7.0);
        into(&expand1, &a.xb, &a.wb, a.bias.as_deref(), relu, &mut y, out(1));
        into(&expand3, &b.xb, &b.wb, b.bias.as_deref(), relu, &mut y, out(3));
        for (c, first) in [(&a, 1), (&b, 3)] {
            let ob = blocks(c.g.out_channels);
            let mut own = vec![0.0; blocked_len(2, c.g.out_channels, plane)];
            forward(&c.g, &c.xb, &c.wb, c.bias.as_deref(), SliceEpilogue { residual: None, activation: relu }, &mut own);
            for n in 0..2 {
                let slice = &y[(n * 7 + first) * plane * BLOCK..][..ob * plane * BLOCK];
                for (i, (a, b)) in slice.iter().zip(&own[n * ob * plane * BLOCK..]).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{what}: image {n}, blocks from {first}, float {i}: {a} vs {b}");
                }
            }
        }
        for n in 0..2 {
            for block in [0, 6] {
                assert!(y[(n * 7 + block) * plane * BLOCK..][..plane * BLOCK].iter().all(|&v| v == -7.0), "{what}: image {n} block {block} was written");
            }
        }
    }
}

/// winograd.rs's forward on its own (not through `applies`), on a case, its filters
/// transformed per call.
#[cfg(target_arch = "x86_64")]
fn winograd_forward(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    winograd::forward(g, x, w, None, b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 }).unwrap()
}

/// `winograd_forward` with the filters' transform made beforehand, as a caller keeps it
/// (winograd_filters, `Packed::winograd`).
#[cfg(target_arch = "x86_64")]
fn winograd_forward_kept(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>, e: SliceEpilogue, y: &mut [f32]) {
    let u = winograd_filters(g, w, "test").unwrap();
    winograd::forward(g, x, w, Some(&u), b, e, y, OutBlocks { per_image: blocks(g.out_channels), first: 0 }).unwrap()
}

/// Whether this CPU runs winograd.rs (AVX-512); the tests below skip otherwise.
#[cfg(target_arch = "x86_64")]
fn winograd_runs_here() -> bool {
    let here = crate::simd::level() == crate::simd::SimdLevel::Avx512;
    if !here {
        eprintln!("skipped: no AVX-512 on this CPU");
    }
    here
}

/// Winograd F(2x2, 3x3) in NCHWc against the definition, at the tolerance ../winograd.rs's tests
/// allow (1e-6 per term of the sum, relative): odd sizes (partial tiles), padding 0, 1 and 2,
/// partial blocks both sides, several images per unit and several bands per image, bias or none,
/// the residual and every activation.
#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_matches_the_definition() {
    if !winograd_runs_here() {
        return;
    }
    // (batch, channels, out_channels, [h, w], pad)
    let shapes = [
        (1, 16, 16, [7, 7], 1),
        (8, 20, 35, [14, 14], 1),  // several whole images per unit, partial blocks
        (5, 16, 24, [7, 7], 1),    // the last unit short of images
        (2, 33, 17, [9, 21], 1),
        (1, 16, 16, [7, 7], 0),
        (3, 17, 19, [5, 6], 2),
        (1, 24, 40, [40, 37], 1),  // several bands per image
        (2, 64, 72, [28, 28], 1),  // large enough for the threads
        (1, 16, 16, [1, 1], 1),
        (1, 16, 16, [2, 9], 2),
        (1, 300, 40, [6, 6], 1),   // many input blocks (several chunks: below)
        (1, 48, 200, [13, 13], 1), // batch 1, one band: units of output blocks (a partial last)
        (1, 16, 64, [55, 55], 1),  // batch 1, bands of uneven tile rows (28 in 8)
    ];
    for (batch, c, o, hw, pad) in shapes {
        let g = geometry(batch, c, o, hw, 3, 1, pad, 1);
        let tol = 1e-6 * (9 * blocks(c) * BLOCK) as f32;
        for with_bias in [true, false] {
            check_within(&case(g, with_bias, false, None), winograd_forward, "winograd", tol);
        }
        check_within(&case(g, true, false, None), winograd_forward_kept, "winograd (filters kept)", tol);
    }
    let g = geometry(2, 20, 70, [9, 8], 3, 1, 1, 1);
    for with_residual in [false, true] {
        for a in activations().into_iter().map(Some).chain([None]) {
            check_within(&case(g, true, with_residual, a), winograd_forward, "winograd", 1e-6 * (9 * 32) as f32);
        }
    }
}

/// The rule and the switches: 3x3 stride-1 calls of many tiles take Winograd, others the direct
/// tiles; KILN_CONV_PATH forces either (read per call).
#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_takes_the_shapes_it_pays_on() {
    if !winograd_runs_here() {
        return;
    }
    let g = |batch, c, size, k, stride| geometry(batch, c, c, [size, size], k, stride, k / 2, 1);
    assert!(winograd::applies(&g(1, 64, 56, 3, 1)));
    assert!(winograd::applies(&g(8, 256, 14, 3, 1)));
    assert!(winograd::applies(&g(1, 256, 14, 3, 1)));
    assert!(winograd::applies(&g(1, 512, 7, 3, 1)));
    assert!(!winograd::applies(&g(1, 512, 6, 3, 1)));
    assert!(!winograd::applies(&g(8, 64, 56, 3, 2)));
    assert!(!winograd::applies(&g(8, 64, 56, 1, 1)));
    assert!(!winograd::applies(&geometry(8, 64, 64, [56, 56], 3, 1, 1, 2)));
    // Rows of more than a unit's tiles (outputs wider than 256) stay on the direct tiles.
    assert!(winograd::applies(&geometry(1, 16, 16, [8, 256], 3, 1, 1, 1)));
    assert!(!winograd::applies(&geometry(1, 16, 16, [8, 258], 3, 1, 1, 1)));
}

/// A fire module's 3x3 expand by Winograd into its blocks of a concatenation: equal to its own
/// forward, the blocks around it untouched; at batch 2 (units of whole images) and batch 1 (units
/// of output blocks).
#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_writes_its_blocks_of_a_concatenation_only() {
    if !winograd_runs_here() {
        return;
    }
    let relu = activations().first().copied();
    for batch in [2, 1] {
        let c = case(geometry(batch, 20, 40, [13, 13], 3, 1, 1, 1), true, false, relu);
        let (g, plane, ob) = (c.g, c.g.out_plane(), 3);
        let mut y = vec![-7.0; batch * 6 * plane * BLOCK];
        winograd::forward(&g, &c.xb, &c.wb, None, c.bias.as_deref(), SliceEpilogue { residual: None, activation: relu }, &mut y, OutBlocks { per_image: 6, first: 2 }).unwrap();
        let mut own = vec![0.0; blocked_len(batch, g.out_channels, plane)];
        kernel::forward(&g, &c.xb, &c.wb, c.bias.as_deref(), SliceEpilogue { residual: None, activation: relu }, &mut own, OutBlocks { per_image: ob, first: 0 });
        for n in 0..batch {
            let slice = &y[(n * 6 + 2) * plane * BLOCK..][..ob * plane * BLOCK];
            for (i, (a, b)) in slice.iter().zip(&own[n * ob * plane * BLOCK..]).enumerate() {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "batch {batch} image {n}, float {i}: {a} vs {b}");
            }
            for block in [0, 1, 5] {
                assert!(y[(n * 6 + block) * plane * BLOCK..][..plane * BLOCK].iter().all(|&v| v == -7.0), "batch {batch} image {n} block {block} was written");
            }
        }
    }
}
