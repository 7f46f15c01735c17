//! The three convolution passes on random data against a float64 reference, with a documented
//! error bound, on the three CPU paths: Winograd F(2x2, 3x3) where it applies (winograd.rs: 3x3
//! stride 1, >= 8 channels each way, rows of tiles that fill AVX-512's lanes), the direct kernels
//! (device/cpu/conv/direct.rs, unit stride, one group, >= 8 input channels, AVX-512;
//! few_channels.rs and few_channels_dx.rs for 1 to 7 input channels, the forward at strides > 1
//! too; `KILN_CONV_PATH=direct` skips Winograd and takes direct.rs on small images too, mod.rs
//! `direct_pays`) and im2col + GEMM (`KILN_CONV_PATH=im2col`).
//! Shapes: bench's conv2d-a and conv2d-b, shapes with 1 to 7 channels, and shapes that hit every
//! remainder of the direct kernels' blocking (output channels not a multiple of 8 or 16, fewer
//! than 8, 40 = 2.5 vectors, 70 = 4 vectors and one more; taps not a multiple of 6; rows not a
//! multiple of 16 positions, planes not a multiple of 16, a row wider than a weight-gradient
//! block; asymmetric padding, dilation, a kernel wider than the padded input; dx tiles of 8, 4,
//! 2 and 1 rows, 1 to 3 column strips).
//!
//! Bound: each output is a sum of n products in float32 (fused or not); in any order its error
//! is at most about n·u·Σ|products| with u = 2⁻²⁴ (Higham, "Accuracy and Stability of Numerical
//! Algorithms", §3.1; one more u for rounding the product when not fused, and one for the
//! comparison's own rounding). Asserted: |got - exact| <= (n + 2)·u·Σ|products|.
use kiln_core::ops::{self, ConvParams};
use kiln_core::Tensor;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// Exact (float64) value, Σ|products| and number of products of every element of y, dx and dw.
struct Reference {
    y: Vec<(f64, f64, usize)>,
    dx: Vec<(f64, f64, usize)>,
    dw: Vec<(f64, f64, usize)>,
}

/// The definition of the convolution (one group) and of its two gradients for upstream
/// gradient dy: every product x·w of the forward sum sends dy·w to x and dy·x to w.
fn reference(x: &[f32], xs: [usize; 4], w: &[f32], ws: [usize; 4], dy: &[f32], p: &ConvParams) -> Reference {
    let ([n, c, h, wd], [o, _, kh, kw]) = (xs, ws);
    let [pt, pb, pl, pr] = p.padding;
    let ([dh, dw_], [sh, sw]) = (p.dilation, p.stride);
    let oh = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
    let ow = (wd + pl + pr - dw_ * (kw - 1) - 1) / sw + 1;
    let zero = (0.0, 0.0, 0);
    let mut r = Reference { y: vec![zero; n * o * oh * ow], dx: vec![zero; x.len()], dw: vec![zero; w.len()] };
    let add = |e: &mut (f64, f64, usize), v: f64| {
        e.0 += v;
        e.1 += v.abs();
        e.2 += 1;
    };
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for q in 0..ow {
                    let yi = ((ni * o + oi) * oh + y) * ow + q;
                    for ci in 0..c {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (y * sh + ki * dh) as isize - pt as isize;
                                let ix = (q * sw + kj * dw_) as isize - pl as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * c + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oi * c + ci) * kh + ki) * kw + kj;
                                let (xv, wv, g) = (x[xi] as f64, w[wi] as f64, dy[yi] as f64);
                                add(&mut r.y[yi], xv * wv);
                                add(&mut r.dx[xi], g * wv);
                                add(&mut r.dw[wi], g * xv);
                            }
                        }
                    }
                }
            }
        }
    }
    r
}

fn assert_within_bound(what: &str, got: &[f32], want: &[(f64, f64, usize)]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let u = (2.0f64).powi(-24);
    for (i, (&g, &(exact, magnitude, terms))) in got.iter().zip(want).enumerate() {
        let bound = (terms + 2) as f64 * u * magnitude;
        let err = (g as f64 - exact).abs();
        assert!(err <= bound, "{what}: element {i}: {g} vs exact {exact}: error {err:e} > bound {bound:e}");
    }
}

/// Forward, dx and dw of one case through autograd, on the current path.
fn passes(x: &Tensor, w: &Tensor, dy: &Tensor, p: &ConvParams) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = x.detach().set_requires_grad(true).unwrap();
    let w = w.detach().set_requires_grad(true).unwrap();
    let y = ops::conv2d(&x, &w, None, p).unwrap();
    assert_eq!(y.shape(), dy.shape());
    let loss = ops::reduce(ops::ReduceOp::Sum, &ops::binary(ops::BinaryOp::Mul, &y, dy).unwrap(), &[], false, 0).unwrap();
    kiln_core::autograd::backward(&loss, None).unwrap();
    (values(&y), values(&x.grad().unwrap()), values(&w.grad().unwrap()))
}

#[test]
fn both_cpu_paths_stay_within_the_float32_summation_bound() {
    let same = |k: usize| ConvParams { stride: [1, 1], padding: [k / 2; 4], dilation: [1, 1], groups: 1 };
    let strided = |stride: [usize; 2], padding: [usize; 4], dilation: usize| ConvParams { stride, padding, dilation: [dilation; 2], groups: 1 };
    let cases: Vec<(&str, [usize; 4], [usize; 4], ConvParams)> = vec![
        ("conv2d-a", [32, 1, 28, 28], [32, 1, 3, 3], same(3)),
        ("conv2d-b", [8, 64, 32, 32], [64, 64, 3, 3], same(3)),
        // winograd.rs (forward and dx): odd sizes (partial 2x2 tiles, a partial last lane group),
        // padding 0, 1 and 2 (dx's flipped padding 2, 1, 0).
        ("Winograd: 12 channels, 20 filters, 27x29 'same'", [2, 12, 27, 29], [20, 12, 3, 3], same(3)),
        ("Winograd: valid padding, batch 1, 30 wide", [1, 9, 11, 30], [8, 9, 3, 3], strided([1, 1], [0; 4], 1)),
        ("Winograd: padding 2, 28 wide", [2, 8, 9, 28], [16, 8, 3, 3], strided([1, 1], [2; 4], 1)),
        ("13 filters, 9 channels, 5x3 kernel, asymmetric padding", [3, 9, 17, 37], [13, 9, 5, 3], ConvParams {
            stride: [1, 1],
            padding: [2, 1, 0, 2],
            dilation: [1, 1],
            groups: 1,
        }),
        ("dilation 2, valid padding, batch 1, 3 filters", [1, 8, 19, 21], [3, 8, 3, 3], ConvParams {
            stride: [1, 1],
            padding: [0; 4],
            dilation: [2, 2],
            groups: 1,
        }),
        ("kernel wider than the padded input, 40 filters", [2, 10, 3, 4], [40, 10, 5, 5], ConvParams {
            stride: [1, 1],
            padding: [1, 1, 2, 1],
            dilation: [1, 1],
            groups: 1,
        }),
        // direct.rs's weight gradient (blocks of whole output rows, dy transposed 16 x 16):
        // a plane of 63 positions (a partial transpose block), 70 filters (a last block of one
        // vector); a row wider than a block of rows; dilation with padding 2 and channel counts
        // not multiples of 16; stride 2, which leaves it to im2col + GEMM.
        ("dW: 17 channels, 70 filters, 7x9, batch 1", [1, 17, 7, 9], [70, 17, 3, 3], same(3)),
        ("dW: 8 channels, 24 filters, 3x131, padding 2", [2, 8, 3, 131], [24, 8, 3, 3], strided([1, 1], [2; 4], 1)),
        ("dW: 11 channels, 18 filters, dilation 2, padding 2", [3, 11, 10, 21], [18, 11, 3, 3], strided([1, 1], [2; 4], 2)),
        ("dW: 20 channels, 33 filters, stride 2", [2, 20, 15, 17], [33, 20, 3, 3], strided([2, 2], [1; 4], 1)),
        // few_channels.rs: 1 to 7 input channels.
        ("3 channels, 5 filters, 5x3 kernel, asymmetric padding, rows of 2.4 vectors", [2, 3, 17, 37], [5, 3, 5, 3], ConvParams {
            stride: [1, 1],
            padding: [2, 1, 0, 2],
            dilation: [1, 1],
            groups: 1,
        }),
        ("2 channels, 11 filters, dilation 2, valid padding, batch 1", [1, 2, 19, 21], [11, 2, 3, 3], ConvParams {
            stride: [1, 1],
            padding: [0; 4],
            dilation: [2, 2],
            groups: 1,
        }),
        ("one channel, one filter, 7x7 'same', 40 wide", [3, 1, 9, 40], [1, 1, 7, 7], same(7)),
        ("7 channels, 17 filters, 3x3 'same', 16 wide", [2, 7, 5, 16], [17, 7, 3, 3], same(3)),
        // few_channels_dx.rs's tiles of 2 and 1 rows (batch 1 is cut into bands of rows), a kernel
        // one row high with width dilation, three 32-column strips.
        ("one channel, 32 filters, batch 1, 15 rows", [1, 1, 15, 28], [32, 1, 3, 3], same(3)),
        ("2 channels, 1x5 kernel, width dilation 2, 70 wide", [2, 2, 6, 70], [3, 2, 1, 5], ConvParams {
            stride: [1, 1],
            padding: [0, 0, 4, 3],
            dilation: [1, 2],
            groups: 1,
        }),
        // few_channels.rs's forward at stride 2 and 3 (direct.rs's phase planes): the
        // stems of SqueezeNet (3x3, valid) and ResNet-50 (7x7, padding 3), smaller; a stride
        // that differs per axis with dilation and asymmetric padding.
        ("SqueezeNet's stem: 3 channels, 3x3 stride 2, valid, 64 filters", [2, 3, 23, 23], [64, 3, 3, 3], strided([2, 2], [0; 4], 1)),
        ("ResNet-50's stem: 3 channels, 7x7 stride 2, padding 3, batch 1", [1, 3, 38, 35], [12, 3, 7, 7], strided([2, 2], [3; 4], 1)),
        ("2 channels, stride 3 x 2, dilation 2, asymmetric padding, 5 filters", [2, 2, 25, 41], [5, 2, 3, 4], strided([3, 2], [1, 2, 0, 3], 2)),
    ];
    for (i, (name, xs, ws, p)) in cases.into_iter().enumerate() {
        let seed = 1000 + 10 * i as u64;
        let (x, w) = (rand(&xs, seed), rand(&ws, seed + 1));
        let y_shape = ops::conv2d(&x, &w, None, &p).unwrap().shape().to_vec();
        let dy = rand(&y_shape, seed + 2);
        let want = reference(&values(&x), xs, &values(&w), ws, &values(&dy), &p);
        for path in ["default", "direct", "im2col"] {
            // Read per call by the CPU backend: "im2col" forces the GEMM path, "direct" lets the
            // direct kernels run where they apply but not Winograd (winograd.rs: conv2d-b's
            // forward and dx), anything else lets all of them run. Every path is correct, so
            // other tests running meanwhile are unaffected by the switch.
            std::env::set_var("KILN_CONV_PATH", path);
            let (y, dx, dw) = passes(&x, &w, &dy, &p);
            assert_within_bound(&format!("{name} ({path}) forward"), &y, &want.y);
            assert_within_bound(&format!("{name} ({path}) dx"), &dx, &want.dx);
            assert_within_bound(&format!("{name} ({path}) dw"), &dw, &want.dw);
        }
        std::env::remove_var("KILN_CONV_PATH");
    }
}
