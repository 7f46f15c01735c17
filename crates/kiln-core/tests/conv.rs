//! conv2d and convTranspose2d against direct loops (the definitions, written independently of
//! the im2col + GEMM kernels), over strides, asymmetric padding, dilation, groups, the pointwise
//! shortcut, many-band images, both scheduling paths (batch < and >= threads) and strided views;
//! and one test per class of bad input.
use kiln_core::ops::{self, ConvParams};
use kiln_core::Tensor;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// The definition: out[n, o, oh, ow] = b[o] + Σ x[n, g·cg + c, oh·s + ki·d - pt, ow·s + kj·d - pl] · w[o, c, ki, kj].
fn naive_conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &ConvParams) -> (Vec<f32>, Vec<usize>) {
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let (xv, wv) = (values(x), values(w));
    let bv = b.map(values);
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let [pt, pb, pl, pr] = p.padding;
    let oh = (h + pt + pb - p.dilation[0] * (kh - 1) - 1) / p.stride[0] + 1;
    let ow = (wd + pl + pr - p.dilation[1] * (kw - 1) - 1) / p.stride[1] + 1;
    let og = o / p.groups;
    let mut out = vec![0.0f32; n * o * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            let g = oi / og;
            for y in 0..oh {
                for xq in 0..ow {
                    let mut s = bv.as_ref().map_or(0.0, |b| b[oi]) as f64;
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (y * p.stride[0] + ki * p.dilation[0]) as isize - pt as isize;
                                let ix = (xq * p.stride[1] + kj * p.dilation[1]) as isize - pl as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * c + g * cg + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oi * cg + ci) * kh + ki) * kw + kj;
                                s += xv[xi] as f64 * wv[wi] as f64;
                            }
                        }
                    }
                    out[((ni * o + oi) * oh + y) * ow + xq] = s as f32;
                }
            }
        }
    }
    (out, vec![n, o, oh, ow])
}

/// The definition as a scatter: every input value spreads w[c, o, ki, kj]-weighted copies to
/// out[n, g·og + o, ih·s + ki·d - pt, iw·s + kj·d - pl].
fn naive_conv_transpose2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &ConvParams, op: [usize; 2]) -> (Vec<f32>, Vec<usize>) {
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let (xv, wv) = (values(x), values(w));
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (og, kh, kw) = (ws[1], ws[2], ws[3]);
    let o = og * p.groups;
    let cg = c / p.groups;
    let [pt, pb, pl, pr] = p.padding;
    let oh = (h - 1) * p.stride[0] + p.dilation[0] * (kh - 1) + 1 + op[0] - pt - pb;
    let ow = (wd - 1) * p.stride[1] + p.dilation[1] * (kw - 1) + 1 + op[1] - pl - pr;
    let mut out = vec![0.0f64; n * o * oh * ow];
    for ni in 0..n {
        for ci in 0..c {
            let g = ci / cg;
            for iy in 0..h {
                for ix in 0..wd {
                    let v = xv[((ni * c + ci) * h + iy) * wd + ix] as f64;
                    for oi in 0..og {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let y = (iy * p.stride[0] + ki * p.dilation[0]) as isize - pt as isize;
                                let xq = (ix * p.stride[1] + kj * p.dilation[1]) as isize - pl as isize;
                                if y < 0 || xq < 0 || y >= oh as isize || xq >= ow as isize {
                                    continue;
                                }
                                let wi = ((ci * og + oi) * kh + ki) * kw + kj;
                                out[((ni * o + g * og + oi) * oh + y as usize) * ow + xq as usize] += v * wv[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        let bv = values(b);
        for (i, v) in out.iter_mut().enumerate() {
            *v += bv[(i / (oh * ow)) % o] as f64;
        }
    }
    (out.into_iter().map(|v| v as f32).collect(), vec![n, o, oh, ow])
}

/// The definition of conv2d's input and weight gradients for upstream gradient `dy`: each
/// product x·w of the forward sum sends dy·w to x and dy·x to w.
fn naive_conv2d_grads(x: &Tensor, w: &Tensor, dy: &Tensor, p: &ConvParams) -> (Vec<f32>, Vec<f32>) {
    let (xs, ws, ys) = (x.shape().to_vec(), w.shape().to_vec(), dy.shape().to_vec());
    let (xv, wv, yv) = (values(x), values(w), values(dy));
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let (oh, ow) = (ys[2], ys[3]);
    let og = o / p.groups;
    let (mut dx, mut dw) = (vec![0.0f64; xv.len()], vec![0.0f64; wv.len()]);
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xq in 0..ow {
                    let g = yv[((ni * o + oi) * oh + y) * ow + xq] as f64;
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (y * p.stride[0] + ki * p.dilation[0]) as isize - p.padding[0] as isize;
                                let ix = (xq * p.stride[1] + kj * p.dilation[1]) as isize - p.padding[2] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * c + (oi / og) * cg + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oi * cg + ci) * kh + ki) * kw + kj;
                                dx[xi] += g * wv[wi] as f64;
                                dw[wi] += g * xv[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(dx), f(dw))
}

fn assert_close(name: &str, got: &Tensor, want: &(Vec<f32>, Vec<usize>)) {
    assert_eq!(got.shape(), want.1.as_slice(), "{name}: shape");
    for (i, (a, b)) in values(got).iter().zip(&want.0).enumerate() {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{name}: element {i}: {a} vs {b}");
    }
}

fn params(stride: usize, padding: [usize; 4], dilation: usize, groups: usize) -> ConvParams {
    ConvParams { stride: [stride, stride], padding, dilation: [dilation, dilation], groups }
}

/// (name, input shape, weight shape for conv2d, params)
fn cases() -> Vec<(&'static str, [usize; 4], [usize; 4], ConvParams)> {
    vec![
        ("plain 3x3", [2, 3, 7, 6], [4, 3, 3, 3], params(1, [0; 4], 1, 1)),
        ("same padding", [3, 2, 8, 8], [5, 2, 3, 3], params(1, [1; 4], 1, 1)),
        ("asymmetric padding, stride 2", [2, 3, 9, 7], [4, 3, 3, 2], params(2, [0, 1, 1, 0], 1, 1)),
        ("dilation 2", [2, 2, 9, 9], [3, 2, 3, 3], params(1, [2, 2, 1, 1], 2, 1)),
        ("groups 2", [2, 4, 6, 6], [6, 2, 3, 3], params(1, [1; 4], 1, 2)),
        ("depthwise, multiplier 2", [2, 3, 6, 5], [6, 1, 3, 3], params(1, [1; 4], 1, 3)),
        ("depthwise, stride 2, dilation 2, asymmetric padding", [2, 4, 11, 10], [4, 1, 3, 2], params(2, [2, 1, 0, 3], 2, 4)),
        ("one input channel, stride 3, wide right padding", [3, 1, 8, 5], [5, 1, 3, 3], params(3, [1, 0, 0, 4], 2, 1)),
        ("depthwise, batch 1, many channels", [1, 24, 9, 9], [48, 1, 3, 3], params(1, [1; 4], 1, 24)),
        ("pointwise 1x1", [3, 8, 5, 4], [6, 8, 1, 1], params(1, [0; 4], 1, 1)),
        ("pointwise, groups 2", [2, 4, 3, 3], [6, 2, 1, 1], params(1, [0; 4], 1, 2)),
        ("1x1 stride 2", [2, 3, 6, 6], [4, 3, 1, 1], params(2, [0; 4], 1, 1)),
        ("stride 3 > kernel", [2, 2, 10, 8], [3, 2, 2, 2], params(3, [1, 0, 0, 2], 1, 1)),
        ("kernel = padded input", [2, 1, 3, 3], [2, 1, 5, 5], params(1, [1; 4], 1, 1)),
        ("batch 1 (GEMM-parallel path)", [1, 16, 20, 20], [32, 16, 3, 3], params(1, [1; 4], 1, 1)),
        ("many bands per image", [3, 16, 64, 64], [8, 16, 3, 3], params(1, [1; 4], 1, 1)),
        ("many bands, stride 2, dilation 2, groups 2", [2, 16, 66, 70], [8, 8, 3, 3], params(2, [2, 1, 2, 3], 2, 2)),
        // 5 output rows of 64·9·300 im2col floats make 4 bands by size: the rows must be cut
        // into 3 bands of 2 (4 bands of 2 would leave the last one empty, past the image).
        ("one output channel, 5 rows in uneven bands", [1, 64, 5, 300], [1, 64, 3, 3], params(1, [1; 4], 1, 1)),
        ("empty batch", [0, 3, 5, 5], [2, 3, 3, 3], params(1, [1; 4], 1, 1)),
        // One unit of positions per image: the direct kernels split the output channels (70: not
        // a whole number of tiles of 8 or 6 channels) into blocks for the threads.
        ("batch 1, 7x7, output channels split", [1, 32, 7, 7], [70, 32, 3, 3], params(1, [1; 4], 1, 1)),
        ("batch 2, 14x14, output channels split", [2, 16, 14, 14], [40, 16, 3, 3], params(1, [1; 4], 1, 1)),
        // pointwise.rs (1x1, 8 to 64 channels): two units of 384 positions and a last tile of
        // 3 vectors with a masked end (483 positions), 2 blocks of 8 filters and 4 tail rows;
        // a 13x13 image at batch 1 (one unit: the filter blocks split for the threads).
        ("pointwise, 16 channels, 20 filters, uneven positions", [2, 16, 21, 23], [20, 16, 1, 1], params(1, [0; 4], 1, 1)),
        ("pointwise, 64 channels, batch 1, 13x13, blocks split", [1, 64, 13, 13], [48, 64, 1, 1], params(1, [0; 4], 1, 1)),
        // Pointwise on the GEMM at batch 1 with one band (engine.rs): the filters cut in ranges
        // for the threads, 64 + 36 (96 channels); per group 32 + 18 (groups 2).
        ("batch 1, one band, 1x1 of 96 channels, filters split", [1, 96, 12, 10], [100, 96, 1, 1], params(1, [0; 4], 1, 1)),
        ("batch 1, one band, 1x1, groups 2, filters split", [1, 192, 12, 10], [100, 96, 1, 1], params(1, [0; 4], 1, 2)),
    ]
}

#[test]
fn conv2d_matches_the_definition() {
    for (i, (name, xs, ws, p)) in cases().into_iter().enumerate() {
        let (x, w, b) = (rand(&xs, 10 + i as u64), rand(&ws, 40 + i as u64), rand(&[ws[0]], 70 + i as u64));
        assert_close(name, &ops::conv2d(&x, &w, Some(&b), &p).unwrap(), &naive_conv2d(&x, &w, Some(&b), &p));
        assert_close(name, &ops::conv2d(&x, &w, None, &p).unwrap(), &naive_conv2d(&x, &w, None, &p));
    }
}

/// The fused epilogue (device/cpu/conv/epilogue.rs, applied band by band or tile by tile in every
/// case's scheduling path, many-band images, the direct and the depthwise kernels included) is
/// the activation of the definition's output, plus the residual when there is one.
#[test]
fn conv2d_fused_is_the_activation_of_the_definition_plus_the_residual() {
    let relu = ops::Activation::new("conv2d", "relu", 0.0).unwrap();
    let leaky = ops::Activation::new("conv2d", "leakyRelu", 0.3).unwrap();
    for (i, (name, xs, ws, p)) in cases().into_iter().enumerate() {
        let (x, w, b) = (rand(&xs, 10 + i as u64), rand(&ws, 40 + i as u64), rand(&[ws[0]], 70 + i as u64));
        let (want, shape) = naive_conv2d(&x, &w, Some(&b), &p);
        let residual = rand(&shape, 100 + i as u64);
        let with_residual: Vec<f32> = want.iter().zip(values(&residual)).map(|(a, r)| a + r).collect();
        let acts = [(Some(relu), (|v: f32| v.max(0.0)) as fn(f32) -> f32), (Some(leaky), |v: f32| if v > 0.0 { v } else { 0.3 * v }), (None, |v: f32| v)];
        for (activation, f) in acts {
            let label = format!("{name} {}", activation.map_or("none", |a| a.op.name()));
            let got = ops::conv2d_fused(&x, &w, Some(&b), &p, ops::Epilogue { residual: None, activation }).unwrap();
            assert_close(&label, &got, &(want.iter().map(|&v| f(v)).collect(), shape.clone()));
            let got = ops::conv2d_fused(&x, &w, Some(&b), &p, ops::Epilogue { residual: Some(&residual), activation }).unwrap();
            assert_close(&format!("{label} + residual"), &got, &(with_residual.iter().map(|&v| f(v)).collect(), shape.clone()));
        }
    }
    let e = ops::Activation::new("conv2d", "gelu", 0.0).unwrap_err().to_string();
    assert!(e.starts_with("conv2d: activation must be one of relu, leakyRelu, elu, sigmoid, tanh"), "{e}");
    let (x, w) = (rand(&[2, 3, 5, 5], 1), rand(&[4, 3, 3, 3], 2));
    let e = ops::conv2d_fused(&x, &w, None, &params(1, [0; 4], 1, 1), ops::Epilogue { residual: Some(&rand(&[2, 4, 5, 5], 3)), activation: None }).unwrap_err().to_string();
    assert!(e.starts_with("conv2d: residual must be float32 [2, 4, 3, 3] (the output's shape), got float32 [2, 4, 5, 5]"), "{e}");
}

#[test]
fn conv_transpose2d_matches_the_definition() {
    for (i, (name, xs, ws, p)) in cases().into_iter().enumerate() {
        // The transpose of each case's convolution: input has the conv's output channels, weight
        // [in, out/groups, kh, kw] is the conv weight read the other way.
        let conv_out = naive_conv2d(&rand(&xs, 1), &rand(&ws, 2), None, &p).1;
        let x = rand(&[xs[0], ws[0], conv_out[2], conv_out[3]], 100 + i as u64);
        let w = rand(&[ws[0], ws[1], ws[2], ws[3]], 130 + i as u64);
        let b = rand(&[ws[1] * p.groups], 160 + i as u64);
        for op in [[0, 0], [p.stride[0].max(p.dilation[0]) - 1, 0]] {
            let got = ops::conv_transpose2d(&x, &w, Some(&b), &p, op);
            let want = naive_conv_transpose2d(&x, &w, Some(&b), &p, op);
            assert_close(name, &got.unwrap(), &want);
        }
    }
}

#[test]
fn conv2d_gradients_match_the_definition_on_every_case() {
    // The finite-difference checks (gradcheck.rs) use tiny shapes; this covers the scheduling
    // paths of the backward passes (several images or bands per worker, batch 1, pointwise).
    for (i, (name, xs, ws, p)) in cases().into_iter().enumerate() {
        let x = rand(&xs, 200 + i as u64).set_requires_grad(true).unwrap();
        let w = rand(&ws, 230 + i as u64).set_requires_grad(true).unwrap();
        let b = rand(&[ws[0]], 260 + i as u64).set_requires_grad(true).unwrap();
        let out = ops::conv2d(&x, &w, Some(&b), &p).unwrap();
        let dy = rand(out.shape(), 290 + i as u64);
        let loss = ops::reduce(ops::ReduceOp::Sum, &ops::binary(ops::BinaryOp::Mul, &out, &dy).unwrap(), &[], false, 0).unwrap();
        kiln_core::autograd::backward(&loss, None).unwrap();
        let (dx, dw) = naive_conv2d_grads(&x, &w, &dy, &p);
        assert_close(&format!("{name} dx"), &x.grad().unwrap(), &(dx, xs.to_vec()));
        assert_close(&format!("{name} dw"), &w.grad().unwrap(), &(dw, ws.to_vec()));
        let db = ops::reduce(ops::ReduceOp::Sum, &dy, &[0, 2, 3], false, 0).unwrap();
        assert_close(&format!("{name} db"), &b.grad().unwrap(), &(values(&db), vec![ws[0]]));
    }
}

#[test]
fn conv_transpose_is_the_adjoint_of_conv() {
    // <conv(x), y> = <x, convT(y)> for the same weight: the identity that makes one the other's
    // gradient, checked on a case with stride, padding, dilation and groups together.
    let p = params(2, [1, 2, 2, 1], 2, 2);
    let (x, w) = (rand(&[2, 4, 11, 10], 1), rand(&[6, 2, 3, 2], 2));
    let y_shape = ops::conv2d(&x, &w, None, &p).unwrap().shape().to_vec();
    let y = rand(&y_shape, 3);
    let op = [(11 + 3 - 5) % 2, (10 + 3 - 3) % 2];
    let xt = ops::conv_transpose2d(&y, &w, None, &p, op).unwrap();
    assert_eq!(xt.shape(), x.shape());
    let dot = |a: &Tensor, b: &Tensor| values(a).iter().zip(values(b)).map(|(u, v)| *u as f64 * v as f64).sum::<f64>();
    let (left, right) = (dot(&ops::conv2d(&x, &w, None, &p).unwrap(), &y), dot(&x, &xt));
    assert!((left - right).abs() < 1e-3 * left.abs().max(1.0), "{left} vs {right}");
}

#[test]
fn strided_views_are_read_correctly() {
    // An NHWC tensor permuted to NCHW, and a weight sliced out of a bigger one: both non-contiguous.
    let nhwc = rand(&[2, 6, 5, 3], 5);
    let x = nhwc.permute(&[0, 3, 1, 2]).unwrap();
    let big = rand(&[4, 3, 3, 5], 6);
    let w = big.slice(&[0, 0, 0, 1], &[4, 3, 3, 3]).unwrap();
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let p = params(1, [1; 4], 1, 1);
    let want = naive_conv2d(&x.contiguous().unwrap(), &w.contiguous().unwrap(), None, &p);
    assert_close("views", &ops::conv2d(&x, &w, None, &p).unwrap(), &want);
}

fn error(r: kiln_core::Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor of shape {:?}", t.shape()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_gives_errors_naming_op_and_shapes() {
    let p = ConvParams::default();
    let x = rand(&[2, 4, 5, 5], 1);
    let w = rand(&[6, 4, 3, 3], 2);
    let ints = ops::full(&[2, 4, 5, 5], 1.0, kiln_core::DType::I32).unwrap();

    let e = error(ops::conv2d(&rand(&[4, 5, 5], 1), &w, None, &p));
    assert!(e.starts_with("conv2d: input must be float32 [batch, channels, height, width], got float32 [4, 5, 5]"), "{e}");
    let e = error(ops::conv2d(&ints, &w, None, &p));
    assert!(e.contains("int32 [2, 4, 5, 5]"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 4, 3], 2), None, &p));
    assert!(e.contains("weight must be float32") && e.contains("[6, 4, 3]"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 3, 3, 3], 2), None, &p));
    assert!(e.contains("expects 3 input channels") && e.contains("[2, 4, 5, 5]") && e.contains("[6, 3, 3, 3]"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 1, 3, 3], 2), None, &ConvParams { groups: 3, ..p }));
    assert!(e.contains("divisible by groups (3)"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 4, 7, 3], 2), None, &p));
    assert!(e.contains("larger than the padded input") && e.contains("7x3"), "{e}");
    let e = error(ops::conv2d(&x, &w, None, &ConvParams { dilation: [3, 1], ..p }));
    assert!(e.contains("larger than the padded input"), "{e}");
    let e = error(ops::conv2d(&x, &w, None, &ConvParams { stride: [0, 1], ..p }));
    assert!(e.contains("stride, dilation and groups must be >= 1"), "{e}");
    let e = error(ops::conv2d(&x, &w, Some(&rand(&[5], 3)), &p));
    assert!(e.contains("bias must be float32 [6]") && e.contains("[5]"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 4, 0, 3], 2), None, &p));
    assert!(e.contains("at least 1x1"), "{e}");

    // Sizes that overflow: an error, never a wrapped size.
    let huge = 4_000_000_000;
    let e = error(ops::conv2d(&x, &rand(&[6, 4, 1, 1], 2), None, &ConvParams { padding: [huge; 4], ..p }));
    assert!(e.contains("too many elements"), "{e}");
    let e = error(ops::conv_transpose2d(&x, &rand(&[4, 2, 1, 1], 2), None, &ConvParams { stride: [huge, huge], ..p }, [0, 0]));
    assert!(e.contains("too many elements") || e.contains("cannot allocate"), "{e}");
    let e = error(ops::conv2d(&x, &rand(&[6, 4, 3, 3], 2), None, &ConvParams { dilation: [usize::MAX / 2, 1], ..p }));
    assert!(e.contains("larger than the padded input"), "{e}");

    let e = error(ops::conv_transpose2d(&x, &rand(&[3, 2, 3, 3], 2), None, &p, [0, 0]));
    assert!(e.starts_with("convTranspose2d: weight [in, out/groups, kh, kw] has 3 input channels, the input has 4"), "{e}");
    let e = error(ops::conv_transpose2d(&x, &rand(&[4, 2, 3, 3], 2), None, &ConvParams { stride: [2, 2], ..p }, [2, 0]));
    assert!(e.contains("outputPadding [2, 0] must be smaller"), "{e}");
    let e = error(ops::conv_transpose2d(&x, &rand(&[4, 2, 1, 1], 2), None, &ConvParams { padding: [3, 3, 0, 0], ..p }, [0, 0]));
    assert!(e.contains("the output would be empty"), "{e}");
    let e = error(ops::conv_transpose2d(&x, &rand(&[4, 2, 3, 3], 2), Some(&rand(&[3], 3)), &ConvParams { groups: 2, ..p }, [0, 0]));
    assert!(e.contains("bias must be float32 [4]") && e.contains("[3]"), "{e}");
    let e = error(ops::conv_transpose2d(&x, &rand(&[4, 2, 3, 3], 2), None, &ConvParams { groups: 3, ..p }, [0, 0]));
    assert!(e.contains("divisible by groups (3)"), "{e}");
}
