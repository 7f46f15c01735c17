//! spmm and segment_reduce forward and backward against kiln-core. The device adds in any
//! order, so sums are compared to 1e-5 absolute + 1e-5 relative; max values and winners exactly.

use crate::common::*;
use kiln_core::ops::{self, SegmentReduce};
use kiln_core::Tensor;
use kiln_gpu::kernels::graph::{segment_reduce, segment_reduce_backward, spmm, spmm_weight_grad};

fn ints(v: Vec<i32>) -> Tensor {
    let n = v.len();
    Tensor::from_vec(v, &[n]).unwrap()
}

#[test]
fn spmm_matches_cpu_forward_and_backward() {
    let dev = gpu!();
    // 9 nodes with [3, 2] features, 23 edges (repeats, self loops), 6 output rows (row 5 empty).
    let (n, e, out_rows) = (9usize, 23usize, 6usize);
    let x = randn(&[n, 3, 2], 1);
    let src = ints((0..e).map(|i| ((i * 5 + 1) % n) as i32).collect());
    let dst = ints((0..e).map(|i| ((i * 7) % (out_rows - 1)) as i32).collect());
    let w = randn(&[e], 2);
    for weight in [None, Some(&w)] {
        let want = ops::spmm(&x, &src, &dst, weight, out_rows).unwrap();
        let (xg, sg, dg, wg) = (up(dev, &x), up(dev, &src), up(dev, &dst), weight.map(|w| up(dev, w)));
        let got = spmm(dev, &xg, &sg, &dg, wg.as_ref(), out_rows).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert_close("spmm", &down(dev, &got), &vals(&want), 1e-5, 1e-5);
        let seed = randn(want.shape(), 3);
        let mut inputs = vec![x.clone()];
        inputs.extend(weight.cloned());
        let cpu = cpu_grads(&inputs, &seed, |t| ops::spmm(&t[0], &src, &dst, t.get(1), out_rows).unwrap());
        // As kiln-core composes it: dx is spmm over the reversed edges; dw has its own kernel.
        let gg = up(dev, &seed);
        let dx = spmm(dev, &gg, &dg, &sg, wg.as_ref(), n).unwrap();
        let dw = wg.as_ref().map(|_| spmm_weight_grad(dev, &xg, &sg, &dg, &gg).unwrap());
        assert_close("spmm dx", &down(dev, &dx), &cpu[0], 1e-5, 1e-5);
        assert_eq!(dw.is_some(), weight.is_some());
        if let Some(dw) = dw {
            assert_close("spmm dw", &down(dev, &dw), &cpu[1], 1e-5, 1e-5);
        }
    }
}

#[test]
fn segment_reduce_matches_cpu_forward_and_backward() {
    let dev = gpu!();
    let rows = 17usize;
    let values = randn(&[rows, 4], 4);
    // Segment 2 of 6 stays empty; ties inside a segment (rows 3 and 8 equal) test the winner rule.
    let ids = ints((0..rows).map(|i| [0, 1, 3, 4, 5][(i * 3) % 5]).collect());
    let mut v = vals(&values);
    let (a, b) = (3 * 4, 8 * 4);
    assert_eq!(ids.to_vec::<i32>().unwrap()[3], ids.to_vec::<i32>().unwrap()[8]);
    for k in 0..4 {
        v[b + k] = v[a + k] + 10.0;
        v[a + k] = v[b + k];
    }
    let values = Tensor::from_vec(v, &[rows, 4]).unwrap();
    for op in [SegmentReduce::Sum, SegmentReduce::Mean, SegmentReduce::Max] {
        let want = ops::segment_reduce(&values, &ids, 6, op).unwrap();
        let (vg, ig) = (up(dev, &values), up(dev, &ids));
        let (got, saved) = segment_reduce(dev, &vg, &ig, 6, op).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert_close(op.name(), &down(dev, &got), &vals(&want), 1e-5, 1e-5);
        let seed = randn(want.shape(), 5);
        let cpu = cpu_grads(&[values.clone()], &seed, |t| ops::segment_reduce(&t[0], &ids, 6, op).unwrap());
        let dv = segment_reduce_backward(dev, &up(dev, &seed), &ig, &saved, values.shape()).unwrap();
        assert_close(&format!("{} backward", op.name()), &down(dev, &dv), &cpu[0], 1e-6, 1e-6);
    }
}

#[test]
fn bad_edges_are_reported() {
    gpu!();
    let own = kiln_gpu::GpuDevice::new().unwrap();
    let dev = &own;
    let x = up(dev, &randn(&[4, 2], 1));
    let y = spmm(dev, &x, &up(dev, &ints(vec![0, 1, 7])), &up(dev, &ints(vec![0, 0, 1])), None, 2).unwrap();
    let e = y.download(dev).unwrap_err().to_string();
    assert!(e.starts_with("spmm: src index 7 at position 2 is out of range [0, 4) (x has 4 rows, x float32 [4, 2])"), "{e}");
    // A bad dst picks the second message.
    let y = spmm(dev, &x, &up(dev, &ints(vec![0, 1, 2])), &up(dev, &ints(vec![0, 5, 1])), None, 2).unwrap();
    let e = y.download(dev).unwrap_err().to_string();
    assert!(e.starts_with("spmm: dst index 5 at position 1 is out of range [0, 2) (numOut is 2)"), "{e}");
    segment_reduce(dev, &x, &up(dev, &ints(vec![0, 1, 2, 3])), 3, SegmentReduce::Max).unwrap();
    let e = dev.synchronize().unwrap_err().to_string();
    assert!(e.starts_with("segmentReduce: segmentIds index 3 at position 3 is out of range [0, 3)"), "{e}");
}
