//! Message-passing kernels (ops/graph.rs) against independent computations: spmm against a dense
//! adjacency matmul, segment_reduce against plain loops; bad edge lists give errors naming the op.
use kiln_core::ops::{self, SegmentReduce};
use kiln_core::Tensor;

/// A small deterministic pseudo-random stream (LCG), so the tests need no extra crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> i32 {
        (self.next() % n as u64) as i32
    }
    fn uniform(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 5_000.0 - 1.0
    }
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

fn ints(v: &[i32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
}

#[test]
fn spmm_matches_dense_adjacency_matmul() {
    // Sizes large enough that the parallel path runs (E·F over the parallel threshold).
    for &(n_in, n_out, edges, f, weighted) in &[(7, 5, 20, 3, true), (50, 50, 400, 1, false), (300, 200, 5000, 24, true)] {
        let mut rng = Lcg(n_in as u64 * 31 + edges as u64);
        let src: Vec<i32> = (0..edges).map(|_| rng.below(n_in)).collect();
        let dst: Vec<i32> = (0..edges).map(|_| rng.below(n_out)).collect();
        let w: Vec<f32> = (0..edges).map(|_| rng.uniform()).collect();
        let x: Vec<f32> = (0..n_in * f).map(|_| rng.uniform()).collect();
        let mut dense = vec![0.0f32; n_out * n_in];
        for e in 0..edges {
            dense[dst[e] as usize * n_in + src[e] as usize] += if weighted { w[e] } else { 1.0 };
        }
        let xt = Tensor::from_vec(x, &[n_in, f]).unwrap();
        let wt = Tensor::from_vec(w, &[edges]).unwrap();
        let got = ops::spmm(&xt, &ints(&src), &ints(&dst), weighted.then_some(&wt), n_out).unwrap();
        assert_eq!(got.shape(), [n_out, f]);
        let want = ops::matmul(&Tensor::from_vec(dense, &[n_out, n_in]).unwrap(), &xt, false, false).unwrap();
        close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, "spmm");
    }
}

#[test]
fn spmm_keeps_trailing_dims_and_reads_views() {
    // x [3, 2, 2] seen through a transpose (a non-contiguous view).
    let base = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), &[3, 2, 2]).unwrap();
    let x = base.transpose(1, 2).unwrap();
    let out = ops::spmm(&x, &ints(&[2, 0]), &ints(&[0, 0]), None, 2).unwrap();
    assert_eq!(out.shape(), [2, 2, 2]);
    let xs = x.contiguous().unwrap().to_vec::<f32>().unwrap();
    let want: Vec<f32> = (0..4).map(|i| xs[8 + i] + xs[i]).chain([0.0; 4]).collect();
    assert_eq!(out.to_vec::<f32>().unwrap(), want);
}

#[test]
fn segment_reduce_matches_loops() {
    let (rows, segments, f) = (3000, 40, 16);
    let mut rng = Lcg(7);
    // Segment 0 stays empty: every reducer must give 0 there.
    let ids: Vec<i32> = (0..rows).map(|_| 1 + rng.below(segments - 1)).collect();
    let values: Vec<f32> = (0..rows * f).map(|_| rng.uniform()).collect();
    let vt = Tensor::from_vec(values.clone(), &[rows, f]).unwrap();
    for &op in SegmentReduce::ALL {
        let got = ops::segment_reduce(&vt, &ints(&ids), segments, op).unwrap().to_vec::<f32>().unwrap();
        let mut want = vec![0.0f32; segments * f];
        let mut count = vec![0usize; segments];
        for r in 0..rows {
            let s = ids[r] as usize;
            for j in 0..f {
                let v = values[r * f + j];
                let o = &mut want[s * f + j];
                *o = match op {
                    SegmentReduce::Max if count[s] == 0 => v,
                    SegmentReduce::Max => o.max(v),
                    _ => *o + v,
                };
            }
            count[s] += 1;
        }
        if op == SegmentReduce::Mean {
            for s in 0..segments {
                want[s * f..(s + 1) * f].iter_mut().for_each(|v| *v /= count[s].max(1) as f32);
            }
        }
        close(&got, &want, 1e-5, op.name());
        assert!(got[..f].iter().all(|&v| v == 0.0), "{}: empty segment must be 0", op.name());
    }
}

#[test]
fn segment_max_propagates_nan() {
    let v = Tensor::from_vec(vec![1.0, f32::NAN, 3.0, 0.5], &[4, 1]).unwrap();
    let out = ops::segment_reduce(&v, &ints(&[0, 0, 0, 1]), 2, SegmentReduce::Max).unwrap().to_vec::<f32>().unwrap();
    assert!(out[0].is_nan() && out[1] == 0.5, "{out:?}");
}

#[test]
fn results_do_not_depend_on_threading() {
    // Each output row is summed by one thread in edge order: bit-identical on every run.
    let (n, edges, f) = (2000, 40_000, 32);
    let mut rng = Lcg(11);
    let src: Vec<i32> = (0..edges).map(|_| rng.below(n)).collect();
    let dst: Vec<i32> = (0..edges).map(|_| rng.below(n)).collect();
    let x = Tensor::from_vec((0..n * f).map(|_| rng.uniform()).collect::<Vec<_>>(), &[n, f]).unwrap();
    let a = ops::spmm(&x, &ints(&src), &ints(&dst), None, n).unwrap().to_vec::<f32>().unwrap();
    let b = ops::spmm(&x, &ints(&src), &ints(&dst), None, n).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_edge_lists_are_errors_naming_the_op() {
    let x = Tensor::from_vec(vec![0.0f32; 6], &[3, 2]).unwrap();
    let err = |r: kiln_core::Result<Tensor>| r.unwrap_err().to_string();
    let e = err(ops::spmm(&x, &ints(&[0, 3]), &ints(&[0, 1]), None, 2));
    assert!(e.starts_with("spmm:") && e.contains("src index 3") && e.contains("[3, 2]"), "{e}");
    let e = err(ops::spmm(&x, &ints(&[0, 1]), &ints(&[0, -1]), None, 2));
    assert!(e.contains("dst index -1") && e.contains("numOut is 2"), "{e}");
    let e = err(ops::spmm(&x, &ints(&[0, 1]), &ints(&[0]), None, 2));
    assert!(e.contains("dst must be int32 [2]"), "{e}");
    let w = Tensor::from_vec(vec![1.0f32; 3], &[3]).unwrap();
    let e = err(ops::spmm(&x, &ints(&[0, 1]), &ints(&[0, 1]), Some(&w), 2));
    assert!(e.contains("weight must be float32 [2]"), "{e}");
    let e = err(ops::spmm(&ints(&[1, 2]), &ints(&[0]), &ints(&[0]), None, 1));
    assert!(e.contains("x must be float32"), "{e}");
    let e = err(ops::segment_reduce(&x, &ints(&[0, 1, 5]), 4, SegmentReduce::Sum));
    assert!(e.starts_with("segmentReduce:") && e.contains("index 5") && e.contains("numSegments is 4"), "{e}");
    let e = err(ops::segment_reduce(&x, &ints(&[0, 1]), 4, SegmentReduce::Max));
    assert!(e.contains("segmentIds must be int32 [3]"), "{e}");
}

#[test]
fn empty_feature_rows_and_huge_counts_do_not_abort() {
    // [3, 0] values into 4e9 segments: an empty result, with no per-segment work.
    let v = Tensor::from_vec(Vec::<f32>::new(), &[3, 0]).unwrap();
    let out = ops::segment_reduce(&v, &ints(&[0, 1, 2]), 4_000_000_000, SegmentReduce::Mean).unwrap();
    assert_eq!(out.shape(), [4_000_000_000, 0]);
    // A real output that large is an error naming the op, not a crash.
    let v = Tensor::from_vec(vec![1.0f32; 6], &[3, 2]).unwrap();
    let e = ops::segment_reduce(&v, &ints(&[0, 1, 2]), 4_000_000_000, SegmentReduce::Sum).unwrap_err().to_string();
    assert!(e.starts_with("segmentReduce:") && e.contains("allocate"), "{e}");
    let x = Tensor::from_vec(vec![1.0f32; 4], &[2, 2]).unwrap();
    let e = ops::spmm(&x, &ints(&[0]), &ints(&[0]), None, 4_000_000_000).unwrap_err().to_string();
    assert!(e.starts_with("spmm:") && e.contains("allocate"), "{e}");
}
