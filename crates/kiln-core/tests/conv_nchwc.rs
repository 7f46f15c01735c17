//! The NCHWc ops against conv2d: from_nchwc(conv2d_nchwc(to_nchwc(x), pack(w), ...), O) equals
//! conv2d_fused(x, w, ...) within float rounding (a different summation order) over geometries
//! with partial channel blocks on both sides, strides, asymmetric pads, dilation, residuals and
//! activations, conv2d_nchwc_concat equals conv2d_concat, max_pool2d_nchwc max_pool2d and avg_pool2d_nchwc avg_pool2d; the reorders are exact inverses with zero padding; bad input is an error naming
//! the op; a recorded gradient is refused.
use kiln_core::ops::{self, Activation, ConvParams, Epilogue};
use kiln_core::params::unary::UnaryOp;
use kiln_core::{autograd, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn act(op: UnaryOp, alpha: f32) -> Option<Activation> {
    Some(Activation { op, alpha })
}

/// (batch, in channels, out channels, height, width, kernel, stride, padding, dilation, bias, residual, activation).
type Case = (usize, usize, usize, usize, usize, usize, usize, [usize; 4], usize, bool, bool, Option<Activation>);

fn cases() -> Vec<Case> {
    vec![
        (1, 16, 16, 8, 8, 3, 1, [1; 4], 1, true, false, None),
        (2, 20, 35, 9, 7, 3, 2, [1; 4], 1, true, true, act(UnaryOp::Relu, 0.0)),
        (1, 64, 1000, 3, 3, 1, 1, [0; 4], 1, true, false, act(UnaryOp::Relu, 0.0)),
        (3, 17, 48, 11, 13, 5, 2, [2, 1, 0, 2], 1, false, true, act(UnaryOp::LeakyRelu, 0.2)),
        (1, 33, 24, 10, 10, 3, 1, [2; 4], 2, true, false, act(UnaryOp::Sigmoid, 0.0)),
        (2, 48, 40, 7, 6, 1, 2, [0; 4], 1, true, true, act(UnaryOp::Tanh, 0.0)),
        (1, 32, 16, 6, 6, 7, 1, [3; 4], 1, false, false, act(UnaryOp::Elu, 1.0)),
    ]
}

#[test]
fn blocked_convolution_equals_conv2d() {
    for (i, &(n, c, o, h, w, k, s, padding, d, with_bias, with_residual, activation)) in cases().iter().enumerate() {
        let seed = 10 * i as u64;
        let x = rand(&[n, c, h, w], seed);
        let weight = rand(&[o, c, k, k], seed + 1);
        let bias = with_bias.then(|| rand(&[o], seed + 2));
        let p = ConvParams { stride: [s, s], padding, dilation: [d, d], groups: 1 };
        let plain_out = ops::conv2d(&x, &weight, None, &p).unwrap();
        let residual = with_residual.then(|| rand(plain_out.shape(), seed + 3));
        let want = ops::conv2d_fused(&x, &weight, bias.as_ref(), &p, Epilogue { residual: residual.as_ref(), activation }).unwrap();

        let xb = ops::to_nchwc(&x).unwrap();
        let packed = ops::pack_nchwc_filters(&weight).unwrap();
        let rb = residual.as_ref().map(|r| ops::to_nchwc(r).unwrap());
        let yb = ops::conv2d_nchwc(&xb, &packed, bias.as_ref(), &p, Epilogue { residual: rb.as_ref(), activation }).unwrap();
        assert_eq!(yb.shape(), &[n, o.div_ceil(16), want.shape()[2], want.shape()[3], 16], "case {i}");
        let got = ops::from_nchwc(&yb, o).unwrap();
        assert_eq!(got.shape(), want.shape(), "case {i}");
        for (j, (a, b)) in values(&got).iter().zip(values(&want)).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "case {i}, element {j}: {a} vs {b}");
        }
    }
}

#[test]
fn blocked_concatenation_equals_conv2d_concat() {
    // A fire module's expands (whole blocks) and a last set with a partial block, batches 1 and 3.
    for batch in [1, 3] {
        let (c, size) = (24, 9);
        let x = rand(&[batch, c, size, size], 1);
        let specs: [(usize, usize, usize, bool, Option<Activation>); 3] = [(32, 1, 0, true, act(UnaryOp::Relu, 0.0)), (16, 3, 1, false, act(UnaryOp::Relu, 0.0)), (20, 3, 1, true, None)];
        let sets: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, &(o, k, pad, bias, activation))| (rand(&[o, c, k, k], 10 + i as u64), bias.then(|| rand(&[o], 20 + i as u64)), ConvParams { padding: [pad; 4], ..ConvParams::default() }, activation))
            .collect();
        let plain: Vec<_> = sets.iter().map(|(w, b, p, a)| ops::ConvBranch { weight: w, bias: b.as_ref(), params: *p, activation: *a }).collect();
        let want = ops::conv2d_concat(&x, &plain).unwrap();
        let packed: Vec<Tensor> = sets.iter().map(|(w, ..)| ops::pack_nchwc_filters(w).unwrap()).collect();
        let blocked: Vec<_> = sets.iter().zip(&packed).map(|((_, b, p, a), w)| ops::ConvBranch { weight: w, bias: b.as_ref(), params: *p, activation: *a }).collect();
        let got = ops::conv2d_nchwc_concat(&ops::to_nchwc(&x).unwrap(), &blocked).unwrap();
        assert_eq!(got.shape(), &[batch, 2 + 1 + 2, size, size, 16]);
        let got = ops::from_nchwc(&got, 68).unwrap();
        for (j, (a, b)) in values(&got).iter().zip(values(&want)).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "batch {batch}, element {j}: {a} vs {b}");
        }
    }
    let x = ops::to_nchwc(&rand(&[1, 16, 8, 8], 2)).unwrap();
    let (w1, w3) = (ops::pack_nchwc_filters(&rand(&[16, 16, 1, 1], 3)).unwrap(), ops::pack_nchwc_filters(&rand(&[16, 16, 3, 3], 4)).unwrap());
    let branch = |w| ops::ConvBranch { weight: w, bias: None, params: ConvParams::default(), activation: None };
    let e = ops::conv2d_nchwc_concat(&x, &[branch(&w1), branch(&w3)]).unwrap_err().to_string();
    assert!(e.contains("conv2dNchwcConcat") && e.contains("8x8") && e.contains("6x6"), "{e}");
    let e = ops::conv2d_nchwc_concat(&x, &[]).unwrap_err().to_string();
    assert!(e.contains("at least one filter set"), "{e}");
}

#[test]
fn blocked_max_pooling_equals_max_pool2d() {
    use kiln_core::ops::Pool2d;
    let pools = [
        Pool2d { kernel: [3, 3], stride: [2, 2], padding: [0; 4], dilation: [1, 1] },
        Pool2d { kernel: [2, 3], stride: [1, 2], padding: [1, 0, 1, 2], dilation: [1, 1] },
        Pool2d { kernel: [3, 2], stride: [2, 1], padding: [2, 2, 0, 1], dilation: [2, 1] },
        // 3x3 undilated: the unrolled full windows beside the generic border ones.
        Pool2d { kernel: [3, 3], stride: [1, 1], padding: [1; 4], dilation: [1, 1] },
        Pool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 0, 0, 1], dilation: [1, 1] },
    ];
    for (i, pool) in pools.into_iter().enumerate() {
        let x = rand(&[2, 35, 11, 9], 30 + i as u64);
        let mut data = values(&x);
        data[7] = f32::NAN; // NaN wins, as in max_pool2d
        // A NaN in some channel at each of the first rows' pixels (so at every tap of some
        // window), -0 beside +0 and infinities.
        for (c, at) in (0..27).enumerate() {
            data[(c + 1) * 99 + at] = f32::NAN;
        }
        for (c, v) in [(30, -0.0), (31, 0.0), (32, f32::INFINITY), (33, f32::NEG_INFINITY)] {
            data[c * 99..][..99].iter_mut().step_by(2).for_each(|d| *d = v);
        }
        data[34 * 99..][..99].fill(-0.0);
        let x = Tensor::from_vec(data, &[2, 35, 11, 9]).unwrap();
        let want = ops::max_pool2d(&x, pool).unwrap();
        let got = ops::from_nchwc(&ops::max_pool2d_nchwc(&ops::to_nchwc(&x).unwrap(), pool).unwrap(), 35).unwrap();
        assert_eq!(got.shape(), want.shape(), "pool {i}");
        for (j, (a, b)) in values(&got).iter().zip(values(&want)).enumerate() {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "pool {i}, element {j}: {a} vs {b}");
        }
    }
    let e = ops::max_pool2d_nchwc(&rand(&[1, 16, 4, 4], 1), Pool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], dilation: [1, 1] }).unwrap_err().to_string();
    assert!(e.contains("maxPool2dNchwc") && e.contains("[1, 16, 4, 4]"), "{e}");
}

/// Average pooling blocked equals avg_pool2d channel by channel (the same divisors; the sums in
/// the same order, so within a rounding of the final product): padding counted or not, a
/// window of the whole plane (GlobalAveragePool), partial blocks.
#[test]
fn blocked_average_pooling_equals_avg_pool2d() {
    use kiln_core::ops::Pool2d;
    let pools = [
        (Pool2d { kernel: [3, 3], stride: [2, 2], padding: [0; 4], dilation: [1, 1] }, false),
        (Pool2d { kernel: [2, 3], stride: [1, 2], padding: [1, 0, 1, 2], dilation: [1, 1] }, false),
        (Pool2d { kernel: [3, 2], stride: [2, 1], padding: [1, 1, 0, 1], dilation: [1, 1] }, true),
        (Pool2d { kernel: [11, 9], stride: [1, 1], padding: [0; 4], dilation: [1, 1] }, false),
    ];
    for (i, (pool, count_include_pad)) in pools.into_iter().enumerate() {
        let x = rand(&[2, 35, 11, 9], 40 + i as u64);
        let want = ops::avg_pool2d(&x, pool, count_include_pad).unwrap();
        let got = ops::from_nchwc(&ops::avg_pool2d_nchwc(&ops::to_nchwc(&x).unwrap(), pool, count_include_pad).unwrap(), 35).unwrap();
        assert_eq!(got.shape(), want.shape(), "pool {i}");
        for (j, (a, b)) in values(&got).iter().zip(values(&want)).enumerate() {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "pool {i}, element {j}: {a} vs {b}");
        }
    }
    let e = ops::avg_pool2d_nchwc(&rand(&[1, 16, 4, 4], 1), Pool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], dilation: [1, 1] }, false).unwrap_err().to_string();
    assert!(e.contains("avgPool2dNchwc") && e.contains("[1, 16, 4, 4]"), "{e}");
}

#[test]
fn reorders_are_inverse_and_pad_with_zeros() {
    let x = rand(&[2, 19, 3, 5], 1);
    let xb = ops::to_nchwc(&x).unwrap();
    assert_eq!(xb.shape(), &[2, 2, 3, 5, 16]);
    let blocked = values(&xb);
    // Channel 19 + lane l of block 1 is padding for l >= 3.
    for n in 0..2 {
        for p in 0..15 {
            for lane in 3..16 {
                assert_eq!(blocked[((n * 2 + 1) * 15 + p) * 16 + lane], 0.0);
            }
        }
    }
    // Channel 17 (block 1, lane 1) at pixel (2, 4) of image 1.
    assert_eq!(blocked[((2 + 1) * 15 + 2 * 5 + 4) * 16 + 1], values(&x)[((19 + 17) * 3 + 2) * 5 + 4]);
    assert_eq!(values(&ops::from_nchwc(&xb, 19).unwrap()), values(&x));
}

#[test]
fn bad_input_is_an_error_naming_the_op() {
    let message = |r: kiln_core::error::Result<Tensor>| r.unwrap_err().to_string();
    let x = rand(&[1, 32, 6, 6], 1);
    let xb = ops::to_nchwc(&x).unwrap();
    let packed = ops::pack_nchwc_filters(&rand(&[20, 32, 3, 3], 2)).unwrap();
    let p = ConvParams::default();
    let e = message(ops::conv2d_nchwc(&x, &packed, None, &p, Epilogue::default()));
    assert!(e.contains("conv2dNchwc") && e.contains("[1, 32, 6, 6]"), "{e}");
    let other = ops::pack_nchwc_filters(&rand(&[20, 48, 3, 3], 2)).unwrap();
    let e = message(ops::conv2d_nchwc(&xb, &other, None, &p, Epilogue::default()));
    assert!(e.contains("conv2dNchwc") && e.contains("channel blocks"), "{e}");
    let e = message(ops::conv2d_nchwc(&xb, &packed, Some(&rand(&[40], 3)), &p, Epilogue::default()));
    assert!(e.contains("bias") && e.contains("[40]"), "{e}");
    let wrong = rand(&[1, 2, 6, 6, 16], 4);
    let e = message(ops::conv2d_nchwc(&xb, &packed, None, &p, Epilogue { residual: Some(&wrong), activation: None }));
    assert!(e.contains("residual") && e.contains("[1, 2, 4, 4, 16]"), "{e}");
    let e = message(ops::conv2d_nchwc(&xb, &packed, None, &ConvParams { groups: 2, ..p }, Epilogue::default()));
    assert!(e.contains("groups 1"), "{e}");
    let e = message(ops::from_nchwc(&xb, 40));
    assert!(e.contains("fromNchwc") && e.contains("40 channels"), "{e}");
    let e = message(ops::to_nchwc(&xb));
    assert!(e.contains("toNchwc") && e.contains("[1, 2, 6, 6, 16]"), "{e}");
    let e = message(ops::pack_nchwc_filters(&rand(&[3, 3], 5)));
    assert!(e.contains("packNchwcFilters"), "{e}");
}

#[test]
fn a_recorded_gradient_is_refused() {
    let x = rand(&[1, 16, 4, 4], 1).set_requires_grad(true).unwrap();
    assert!(autograd::is_enabled());
    let e = ops::to_nchwc(&x).unwrap_err().to_string();
    assert!(e.contains("toNchwc") && e.contains("noGrad"), "{e}");
    let previous = autograd::set_enabled(false);
    assert!(ops::to_nchwc(&x).is_ok());
    autograd::set_enabled(previous);
}
