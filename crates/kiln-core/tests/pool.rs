//! Pooling and batch normalization against direct loops written from the definitions (PyTorch's
//! semantics), the tie and NaN rules, the running statistics, and the errors for bad input.
//! Gradients against finite differences are in gradcheck.rs.
use kiln_core::autograd;
use kiln_core::ops::{self, BatchNorm, Pool2d, ReduceOp};
use kiln_core::Tensor;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn pool(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4], dilation: [usize; 2]) -> Pool2d {
    Pool2d { kernel, stride, padding, dilation }
}

/// The definition: for each output, the taps of its window inside the input.
fn reference(x: &Tensor, p: Pool2d, max: bool, count_include_pad: bool) -> (Vec<usize>, Vec<f32>) {
    let s = x.shape().to_vec();
    let v = x.to_vec::<f32>().unwrap();
    let out_dim = |a: usize| (s[2 + a] + p.padding[2 * a] + p.padding[2 * a + 1] - p.dilation[a] * (p.kernel[a] - 1) - 1) / p.stride[a] + 1;
    let (oh, ow) = (out_dim(0), out_dim(1));
    let mut out = Vec::new();
    for plane in 0..s[0] * s[1] {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut taps = Vec::new();
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize - p.padding[0] as isize;
                        let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize - p.padding[2] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < s[2] && (ix as usize) < s[3] {
                            taps.push(v[plane * s[2] * s[3] + iy as usize * s[3] + ix as usize]);
                        }
                    }
                }
                out.push(if max {
                    taps.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                } else {
                    let div = if count_include_pad { p.kernel[0] * p.kernel[1] } else { taps.len() };
                    taps.iter().sum::<f32>() / div as f32
                });
            }
        }
    }
    (vec![s[0], s[1], oh, ow], out)
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i}: got {g}, want {w}");
    }
}

const GEOMETRIES: &[([usize; 2], [usize; 2], [usize; 4], [usize; 2])] = &[
    ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ([3, 2], [1, 3], [1, 0, 0, 1], [1, 1]),
    ([2, 3], [3, 1], [0, 1, 1, 1], [1, 1]),
    ([3, 3], [1, 1], [2, 2, 2, 2], [2, 2]),
    ([1, 1], [2, 2], [0, 0, 0, 0], [1, 1]),
];

#[test]
fn max_and_avg_pool_match_the_definition() {
    // Large enough that the planes run in parallel (the threshold is 2^15 elements of work).
    for (i, &(k, s, p, d)) in GEOMETRIES.iter().enumerate() {
        // Shapes: small; large enough for parallel planes; rows wider than one group of lanes.
        for shape in [[2, 3, 7, 9], [4, 16, 23, 19], [1, 2, 5, 70]] {
            let x = rand(&shape, i as u64);
            let geo = pool(k, s, p, d);
            let what = format!("{geo:?} on {shape:?}");
            let (want_shape, want) = reference(&x, geo, true, false);
            let got = ops::max_pool2d(&x, geo).unwrap();
            assert_eq!(got.shape(), want_shape.as_slice(), "maxPool2d {what}");
            assert_close(&got.to_vec::<f32>().unwrap(), &want, 0.0, &format!("maxPool2d {what}"));
            for include in [true, false] {
                let (_, want) = reference(&x, geo, false, include);
                let got = ops::avg_pool2d(&x, geo, include).unwrap();
                assert_close(&got.to_vec::<f32>().unwrap(), &want, 1e-6, &format!("avgPool2d countIncludePad={include} {what}"));
            }
        }
    }
    // A strided view is read correctly (the kernel copies it to a contiguous layout first).
    let x = rand(&[3, 2, 6, 5], 9).permute(&[1, 0, 2, 3]).unwrap();
    let geo = pool([2, 2], [1, 2], [0, 0, 1, 0], [1, 1]);
    assert_close(&ops::max_pool2d(&x, geo).unwrap().to_vec::<f32>().unwrap(), &reference(&x, geo, true, false).1, 0.0, "maxPool2d of a view");
}

#[test]
fn max_pool_ties_go_to_the_first_maximum_and_nan_propagates() {
    // One 2x2 window of equal values: the whole gradient lands on the first (top-left).
    let x = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 1.0], &[1, 1, 2, 2]).unwrap().set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, pool([2, 2], [2, 2], [0; 4], [1, 1])).unwrap();
    autograd::backward(&y.reshape(&[]).unwrap(), None).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    // Overlapping windows (stride 1) accumulate on a shared maximum.
    let x = Tensor::from_vec(vec![0.0f32, 5.0, 0.0, 1.0, 2.0, 3.0], &[1, 1, 2, 3]).unwrap().set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, pool([2, 2], [1, 1], [0; 4], [1, 1])).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 5.0]);
    autograd::backward(&ops::reduce(ReduceOp::Sum, &y, &[], false, 0).unwrap(), None).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    // Windows of -inf (and padding): the index of each window's first in-input tap, as PyTorch.
    let x = Tensor::from_vec(vec![f32::NEG_INFINITY; 9], &[1, 1, 3, 3]).unwrap().set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, pool([2, 2], [2, 2], [1, 1, 1, 1], [1, 1])).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![f32::NEG_INFINITY; 4]);
    autograd::backward(&y, Some(&Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap())).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    // -0 and +0 tie (the first wins, whatever its sign); +inf wins over finite values.
    let x = Tensor::from_vec(vec![-0.0f32, 0.0, 1.0, f32::INFINITY], &[1, 1, 1, 4]).unwrap().set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, pool([1, 2], [1, 2], [0; 4], [1, 1])).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0, f32::INFINITY]);
    autograd::backward(&ops::reduce(ReduceOp::Sum, &y, &[], false, 0).unwrap(), None).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
    // NaN wins its window and no other; the gradient goes to the first NaN.
    let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 4.0, f32::NAN, 1.0, 2.0, 9.0], &[1, 1, 2, 4]).unwrap().set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, pool([2, 2], [2, 2], [0; 4], [1, 1])).unwrap();
    let values = y.to_vec::<f32>().unwrap();
    assert!(values[0].is_nan() && values[1] == 9.0, "{values:?}");
    autograd::backward(&y, Some(&Tensor::from_vec(vec![1.0f32, 1.0], &[1, 1, 1, 2]).unwrap())).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn pooling_rejects_bad_input() {
    let x = rand(&[1, 2, 4, 4], 1);
    let err = |r: kiln_core::Result<Tensor>| r.unwrap_err().to_string();
    let ok = pool([2, 2], [2, 2], [0; 4], [1, 1]);
    assert_eq!(err(ops::max_pool2d(&rand(&[2, 4, 4], 1), ok)), "maxPool2d: expected a float32 [batch, channels, height, width] tensor, got float32 [2, 4, 4]");
    let ints = Tensor::from_vec(vec![0i32; 16], &[1, 1, 4, 4]).unwrap();
    assert!(err(ops::avg_pool2d(&ints, ok, true)).starts_with("avgPool2d: expected a float32 [batch, channels, height, width] tensor, got int32 [1, 1, 4, 4]"));
    assert!(err(ops::max_pool2d(&x, pool([0, 2], [2, 2], [0; 4], [1, 1]))).contains("kernel, stride and dilation must be >= 1"));
    assert!(err(ops::max_pool2d(&x, pool([2, 2], [2, 0], [0; 4], [1, 1]))).contains("must be >= 1"));
    let too_big = err(ops::avg_pool2d(&x, pool([5, 2], [1, 1], [0; 4], [1, 1]), true));
    assert!(too_big.contains("spans 5 rows but the padded input float32 [1, 2, 4, 4] has only 4"), "{too_big}");
    let dilated = err(ops::max_pool2d(&x, pool([3, 3], [1, 1], [0; 4], [2, 2])));
    assert!(dilated.contains("spans 5 rows"), "{dilated}");
    let only_padding = err(ops::max_pool2d(&x, pool([2, 2], [2, 2], [0, 0, 2, 0], [1, 1])));
    assert!(only_padding.contains("output column 0 of input float32 [1, 2, 4, 4] covers only padding"), "{only_padding}");
}

// ---- batch normalization ----------------------------------------------------------------------

/// Per-channel mean and biased variance over every axis but 1, in f64.
fn channel_stats(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let s = x.shape();
    let (n, c) = (s[0], s[1]);
    let sp: usize = s[2..].iter().product();
    let v = x.to_vec::<f32>().unwrap();
    let vals = |ch: usize| (0..n).flat_map(move |b| (0..sp).map(move |i| (b * c + ch) * sp + i));
    let mean: Vec<f64> = (0..c).map(|ch| vals(ch).map(|i| v[i] as f64).sum::<f64>() / (n * sp) as f64).collect();
    let var = (0..c).map(|ch| vals(ch).map(|i| (v[i] as f64 - mean[ch]).powi(2)).sum::<f64>() / (n * sp) as f64).collect();
    (mean, var)
}

fn normalize(x: &Tensor, mean: &[f64], var: &[f64], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
    let s = x.shape();
    let sp: usize = s[2..].iter().product();
    x.to_vec::<f32>().unwrap().iter().enumerate().map(|(i, &v)| {
        let ch = (i / sp) % s[1];
        (((v as f64 - mean[ch]) / (var[ch] + eps).sqrt()) * gamma[ch] as f64 + beta[ch] as f64) as f32
    }).collect()
}

#[test]
fn batch_norm_training_eval_and_running_statistics() {
    let gamma = vec![1.5f32, -0.5, 2.0];
    let beta = vec![0.1f32, 0.0, -1.0];
    let (w, b) = (Tensor::from_vec(gamma.clone(), &[3]).unwrap(), Tensor::from_vec(beta.clone(), &[3]).unwrap());
    let mut rm = Tensor::from_vec(vec![0.0f32; 3], &[3]).unwrap();
    let mut rv = Tensor::from_vec(vec![1.0f32; 3], &[3]).unwrap();
    let opts = BatchNorm { training: true, momentum: 0.2, eps: 1e-5 };
    let (mut want_rm, mut want_rv) = (vec![0.0f64; 3], vec![1.0f64; 3]);
    // Two steps on [N, C, H, W] inputs with a large mean (tests the centered variance), the
    // second large enough to run in parallel.
    for (step, shape) in [[4, 3, 5, 6], [16, 3, 30, 31]].iter().enumerate() {
        let x = ops::binary(ops::BinaryOp::Add, &rand(shape, 40 + step as u64), &Tensor::scalar_f32(100.0)).unwrap();
        let y = ops::batch_norm(&x, Some(&w), Some(&b), Some((&mut rm, &mut rv)), opts).unwrap();
        let (mean, var) = channel_stats(&x);
        assert_close(&y.to_vec::<f32>().unwrap(), &normalize(&x, &mean, &var, &gamma, &beta, 1e-5), 2e-4, "training output");
        let count = (x.numel() / 3) as f64;
        for ch in 0..3 {
            want_rm[ch] = 0.8 * want_rm[ch] + 0.2 * mean[ch];
            want_rv[ch] = 0.8 * want_rv[ch] + 0.2 * var[ch] * count / (count - 1.0);
        }
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(&rm.to_vec::<f32>().unwrap(), &f32s(&want_rm), 1e-5, "running mean");
        assert_close(&rv.to_vec::<f32>().unwrap(), &f32s(&want_rv), 1e-5, "running variance (unbiased)");
    }
    // Eval: the running statistics, untouched.
    let x = rand(&[2, 3, 4], 50);
    let eval = BatchNorm { training: false, ..opts };
    let y = ops::batch_norm(&x, Some(&w), Some(&b), Some((&mut rm, &mut rv)), eval).unwrap();
    assert_close(&y.to_vec::<f32>().unwrap(), &normalize(&x, &want_rm, &want_rv, &gamma, &beta, 1e-5), 1e-4, "eval output");
    assert_close(&rm.to_vec::<f32>().unwrap(), &want_rm.iter().map(|&v| v as f32).collect::<Vec<_>>(), 1e-5, "eval leaves the running mean");
    // No running statistics: batch statistics in both modes; no affine: γ = 1, β = 0.
    let y = ops::batch_norm(&x, None, None, None, eval).unwrap();
    let (mean, var) = channel_stats(&x);
    assert_close(&y.to_vec::<f32>().unwrap(), &normalize(&x, &mean, &var, &[1.0; 3], &[0.0; 3], 1e-5), 1e-4, "no running stats, no affine");
}

#[test]
fn batch_norm_rejects_bad_input() {
    let x = rand(&[4, 3, 2, 2], 1);
    let w3 = Tensor::from_vec(vec![1.0f32; 3], &[3]).unwrap();
    let w2 = Tensor::from_vec(vec![1.0f32; 2], &[2]).unwrap();
    let opts = BatchNorm { training: true, momentum: 0.1, eps: 1e-5 };
    let err = |r: kiln_core::Result<Tensor>| r.unwrap_err().to_string();
    assert_eq!(err(ops::batch_norm(&rand(&[4], 1), None, None, None, opts)), "batchNorm: expected a float32 [batch, channels, ...] tensor, got float32 [4]");
    assert_eq!(
        err(ops::batch_norm(&x, Some(&w2), None, None, opts)),
        "batchNorm: weight must be float32 [3] (one value per channel of input [4, 3, 2, 2]), got float32 [2]"
    );
    let (mut m, mut v) = (w3.clone(), w2.clone());
    assert!(err(ops::batch_norm(&x, Some(&w3), Some(&w3), Some((&mut m, &mut v)), opts)).starts_with("batchNorm: runningVar must be float32 [3]"));
    assert!(err(ops::batch_norm(&rand(&[1, 3, 1], 2), None, None, None, opts)).contains("training needs more than one value per channel, got input [1, 3, 1]"));
    assert!(err(ops::batch_norm(&x, None, None, None, BatchNorm { eps: 0.0, ..opts })).contains("eps must be a positive number"));
    assert!(err(ops::batch_norm(&x, None, None, None, BatchNorm { momentum: 1.5, ..opts })).contains("momentum must be in [0, 1]"));
}
