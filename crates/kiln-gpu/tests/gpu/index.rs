//! gather / scatterAdd / oneHot, concat / pad and the device fills (full, zeros) against
//! kiln-core. Data movement is exact (compared bit for bit); scatterAdd adds in an unspecified
//! order, so it is compared to 1e-6 absolute + 1e-6 relative. Out-of-range indices are reported
//! at the next readback with kiln-core's message.

use crate::common::*;
use kiln_core::ops;
use kiln_core::{DType, Tensor};
use kiln_gpu::kernels::{creation, index, join};

fn idx(v: &[i32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

#[test]
fn gather_matches_cpu_any_axis_and_dtype() {
    let dev = gpu!();
    let x = randn(&[3, 5, 4], 1);
    let i = idx(&[4, 0, 2, 2, 1, 3], &[2, 3]);
    for axis in [0isize, 1, 2, -1] {
        let dim = x.shape()[axis.rem_euclid(3) as usize] as i32;
        let i = idx(&[dim - 1, 0, 1 % dim, 0, dim - 1, 1], &[3, 2]);
        let want = ops::gather(&x, &i, axis).unwrap();
        let got = index::gather(dev, &up(dev, &x), &up(dev, &i), axis).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert_eq!(down(dev, &got), vals(&want), "axis {axis}");
    }
    // A strided (transposed) source, and an int32 source.
    let xt = x.transpose(0, 2).unwrap();
    let got = index::gather(dev, &up(dev, &x).permute(&[2, 1, 0]).unwrap(), &up(dev, &i), 1).unwrap();
    assert_eq!(down(dev, &got), vals(&ops::gather(&xt, &i, 1).unwrap()));
    let xi = ops::cast(&ops::binary(ops::BinaryOp::Mul, &x, &Tensor::scalar_f32(10.0)).unwrap(), DType::I32).unwrap();
    let got = index::gather(dev, &up(dev, &xi), &up(dev, &i), 1).unwrap().download(dev).unwrap();
    assert_eq!(got.to_vec::<i32>(), ops::gather(&xi, &i, 1).unwrap().to_vec::<i32>());
}

#[test]
fn scatter_add_and_gather_gradients_match_cpu() {
    let dev = gpu!();
    let base = randn(&[4, 6, 3], 2);
    // Repeated indices: rows 1 and 5 receive several updates.
    let i = idx(&[1, 5, 1, 0, 5, 1, 2], &[7]);
    let upd = randn(&[4, 7, 3], 3);
    let want = ops::scatter_add(&base, &i, &upd, 1).unwrap();
    let got = index::scatter_add(dev, &up(dev, &base), &up(dev, &i), &up(dev, &upd), 1).unwrap();
    assert_close("scatterAdd", &down(dev, &got), &vals(&want), 1e-6, 1e-6);

    // gather's gradient is scatterAdd into zeros; scatterAdd's (for updates) is gather.
    let x = randn(&[4, 6, 3], 4);
    let seed = randn(&[4, 7, 3], 5);
    let cpu = cpu_grads(&[x.clone()], &seed, |t| ops::gather(&t[0], &i, 1).unwrap());
    let zeros = creation::zeros(dev, x.shape(), DType::F32).unwrap();
    let gx = index::scatter_add(dev, &zeros, &up(dev, &i), &up(dev, &seed), 1).unwrap();
    assert_close("gather backward", &down(dev, &gx), &cpu[0], 1e-6, 1e-6);
    let seed = randn(&[4, 6, 3], 6);
    let cpu = cpu_grads(&[base.clone(), upd.clone()], &seed, |t| ops::scatter_add(&t[0], &i, &t[1], 1).unwrap());
    assert_eq!(vals(&seed), cpu[0], "base's gradient is g itself");
    let gu = index::gather(dev, &up(dev, &seed), &up(dev, &i), 1).unwrap();
    assert_eq!(down(dev, &gu), cpu[1]);
}

#[test]
fn bad_indices_are_reported_at_the_next_read() {
    gpu!();
    // A device of its own: the error flag is per device, and a test running in parallel on the
    // shared one would pick up this test's report at its own next read.
    let own = kiln_gpu::GpuDevice::new().unwrap();
    let dev = &own;
    let x = up(dev, &randn(&[10, 3], 7));
    let bad = up(dev, &idx(&[2, 12, 3], &[3]));
    // The op itself returns (no readback); the download after it fails naming the op.
    let y = index::gather(dev, &x, &bad, 0).unwrap();
    let e = y.download(dev).unwrap_err().to_string();
    assert!(e.starts_with("gather: index 12 is out of range [0, 10) for axis 0 of shape [10, 3]"), "{e}");
    // Reported once: the next read succeeds, and a later bad index is reported in its turn.
    let good = index::gather(dev, &x, &up(dev, &idx(&[9, 0], &[2])), 0).unwrap();
    assert_eq!(down(dev, &good).len(), 6);
    let neg = up(dev, &idx(&[-1], &[1]));
    index::scatter_add(dev, &x, &neg, &up(dev, &randn(&[1, 3], 8)), 0).unwrap();
    let e = dev.synchronize().unwrap_err().to_string();
    assert!(e.starts_with("scatterAdd: index -1 is out of range [0, 10)"), "{e}");
    index::one_hot(dev, &up(dev, &idx(&[0, 3], &[2])), 3, 1.0, 0.0).unwrap();
    let e = dev.synchronize().unwrap_err().to_string();
    assert!(e.starts_with("oneHot: index 3 is out of range [0, 3) for depth [3]"), "{e}");
    dev.synchronize().unwrap();
}

#[test]
fn one_hot_matches_cpu() {
    let dev = gpu!();
    let i = idx(&[0, 4, 2, 2, 1, 3], &[2, 3]);
    let want = ops::one_hot(&i, 5, 0.9, 0.025).unwrap();
    let got = index::one_hot(dev, &up(dev, &i), 5, 0.9, 0.025).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_eq!(down(dev, &got), vals(&want));
}

#[test]
fn concat_and_pad_match_cpu() {
    let dev = gpu!();
    let a = randn(&[2, 3, 4], 10);
    let b = randn(&[2, 5, 4], 11);
    // A transposed third input exercises the strided copy.
    let c = randn(&[4, 1, 2], 12).permute(&[2, 1, 0]).unwrap();
    let cg = up(dev, &randn(&[4, 1, 2], 12)).permute(&[2, 1, 0]).unwrap();
    let want = ops::concat(&[a.clone(), b.clone(), c.clone()], 1).unwrap();
    let got = join::concat(dev, &[up(dev, &a), up(dev, &b), cg.clone()], 1).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_eq!(down(dev, &got), vals(&want));
    let e = join::concat(dev, &[up(dev, &a), up(dev, &randn(&[2, 3, 5], 1))], 1).unwrap_err().to_string();
    assert!(e.starts_with("concat: tensor 1 (float32 [2, 3, 5])"), "{e}");

    let pads = [(1, 0), (0, 2), (2, 1)];
    let want = ops::pad(&c, &pads, -1.5).unwrap();
    let got = join::pad(dev, &cg, &pads, -1.5).unwrap();
    assert_eq!((got.shape(), down(dev, &got)), (want.shape(), vals(&want)));
}

#[test]
fn creation_matches_cpu() {
    let dev = gpu!();
    for dtype in [DType::F32, DType::I32, DType::Bool] {
        let got = creation::full(dev, &[3, 7], 2.75, dtype).unwrap().download(dev).unwrap();
        let want = ops::full(&[3, 7], 2.75, dtype).unwrap();
        assert_eq!(format!("{:?}", got.to_vec::<u8>().or(None)), format!("{:?}", want.to_vec::<u8>().or(None)));
        assert_eq!(got.to_vec::<f32>(), want.to_vec::<f32>());
        assert_eq!(got.to_vec::<i32>(), want.to_vec::<i32>());
    }
    assert_eq!(down(dev, &creation::zeros(dev, &[5], DType::F32).unwrap()), vec![0.0; 5]);
}
