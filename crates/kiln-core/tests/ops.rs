//! kiln-core ops against plain loops, on contiguous and strided inputs, at every SIMD level.
use kiln_core::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use kiln_core::simd::{self, SimdLevel};
use kiln_core::Tensor;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

#[test]
fn matmul_matches_loops_for_all_transposes_and_sizes() {
    // 530 x 300 x 260: large enough that a row-major b runs Kiln's AVX-512 GEMM on 2 threads
    // (threads sharing each packed block of b) where the CPU has it. 130 x 70 x 150 and
    // 300 x 200 x 100 run the gemm crate's products on several threads, cut into column and
    // row ranges (gemm_call::crate_gemm) whose bounds fall off multiples of 16.
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 2), (17, 33, 9), (130, 70, 150), (300, 200, 100), (530, 300, 260)] {
        let a = rand(&[m, k], 1);
        let b = rand(&[k, n], 2);
        let want = naive_matmul(&a.to_vec().unwrap(), &b.to_vec().unwrap(), m, k, n);
        let at = a.permute(&[1, 0]).unwrap().contiguous().unwrap();
        let bt = b.permute(&[1, 0]).unwrap().contiguous().unwrap();
        for (x, y, ta, tb) in [(&a, &b, false, false), (&at, &b, true, false), (&a, &bt, false, true), (&at, &bt, true, true)] {
            let got = ops::matmul(x, y, ta, tb).unwrap();
            assert_eq!(got.shape(), &[m, n]);
            close(&got.to_vec().unwrap(), &want, 1e-4);
        }
    }
}

#[test]
fn batched_matmul_broadcasts_batch_dims() {
    let a = rand(&[2, 1, 4, 3], 3);
    let b = rand(&[5, 3, 6], 4);
    let c = ops::matmul(&a, &b, false, false).unwrap();
    assert_eq!(c.shape(), &[2, 5, 4, 6]);
    let (av, bv, cv) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
    for i in 0..2 {
        for j in 0..5 {
            let want = naive_matmul(&av[i * 12..(i + 1) * 12], &bv[j * 18..(j + 1) * 18], 4, 3, 6);
            close(&cv[(i * 5 + j) * 24..(i * 5 + j + 1) * 24], &want, 1e-5);
        }
    }
    // The stacked path: [B, M, K] @ [K, N].
    let x = rand(&[3, 4, 5], 5);
    let w = rand(&[5, 2], 6);
    let y = ops::matmul(&x, &w, false, false).unwrap();
    let want = naive_matmul(&x.to_vec().unwrap(), &w.to_vec().unwrap(), 12, 5, 2);
    close(&y.to_vec().unwrap(), &want, 1e-5);
}

#[test]
fn binary_broadcasts_over_strided_views_at_every_simd_level() {
    let a = rand(&[40, 1, 300], 7);
    let b = rand(&[300, 20], 8).permute(&[1, 0]).unwrap(); // [20, 300], strided
    let (av, bv) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let mut want = vec![0.0; 40 * 20 * 300];
    for i in 0..40 {
        for j in 0..20 {
            for k in 0..300 {
                want[(i * 20 + j) * 300 + k] = av[i * 300 + k] * bv[j * 300 + k];
            }
        }
    }
    for level in [SimdLevel::Scalar, SimdLevel::Avx2Fma, SimdLevel::Avx512] {
        simd::set_level(level);
        let got = ops::binary(BinaryOp::Mul, &a, &b).unwrap();
        assert_eq!(got.shape(), &[40, 20, 300]);
        close(&got.to_vec().unwrap(), &want, 0.0);
        let e = ops::unary(UnaryOp::Exp, &b, 0.0).unwrap();
        close(&e.to_vec().unwrap(), &bv.iter().map(|v| v.exp()).collect::<Vec<_>>(), 1e-6);
    }
    simd::set_level(SimdLevel::Avx512);
}

#[test]
fn reductions_over_axes() {
    let x = rand(&[3, 4, 5], 9);
    let v = x.to_vec::<f32>().unwrap();
    let s = ops::reduce(ReduceOp::Sum, &x, &[0, 2], false, 0).unwrap();
    assert_eq!(s.shape(), &[4]);
    let want: Vec<f32> = (0..4).map(|j| (0..3).flat_map(|i| (0..5).map(move |k| (i, k))).map(|(i, k)| v[i * 20 + j * 5 + k]).sum()).collect();
    close(&s.to_vec().unwrap(), &want, 1e-5);
    let m = ops::reduce(ReduceOp::ArgMax, &x, &[-1], true, 0).unwrap();
    assert_eq!(m.shape(), &[3, 4, 1]);
    let idx = m.to_vec::<i32>().unwrap();
    for r in 0..12 {
        let row = &v[r * 5..(r + 1) * 5];
        let best = row.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(row[idx[r] as usize], best);
    }
    let var = ops::reduce(ReduceOp::Variance, &x, &[], false, 1).unwrap().to_vec::<f32>().unwrap()[0];
    let mean = v.iter().sum::<f32>() / 60.0;
    let want = v.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / 59.0;
    assert!((var - want).abs() < 1e-5);
    assert!(ops::reduce(ReduceOp::ArgMax, &x, &[0, 1], false, 0).is_err());
    assert!(ops::reduce(ReduceOp::Sum, &x, &[3], false, 0).is_err());
}

#[test]
fn softmax_rows_sum_to_one_and_survive_huge_logits() {
    let x = Tensor::from_vec(vec![1000.0f32, 1001.0, 999.0, -5.0, 0.0, 5.0], &[2, 3]).unwrap();
    let s = ops::softmax(&x, -1, false).unwrap().to_vec::<f32>().unwrap();
    assert!(s.iter().all(|v| v.is_finite()));
    close(&[s[0] + s[1] + s[2], s[3] + s[4] + s[5]], &[1.0, 1.0], 1e-6);
    let l = ops::softmax(&x, 0, true).unwrap().to_vec::<f32>().unwrap();
    close(&l[..3], &[0.0, 0.0, 0.0], 1e-6);
}

#[test]
fn same_seed_same_numbers() {
    let a = ops::randn(&[1000], 0.0, 1.0, Some(42)).unwrap().to_vec::<f32>().unwrap();
    let b = ops::randn(&[1000], 0.0, 1.0, Some(42)).unwrap().to_vec::<f32>().unwrap();
    let c = ops::randn(&[1000], 0.0, 1.0, Some(43)).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mean = a.iter().sum::<f32>() / 1000.0;
    assert!(mean.abs() < 0.1);
}

#[test]
fn gather_and_scatter_add_are_adjoint() {
    let x = rand(&[4, 6, 3], 10);
    let idx = Tensor::from_vec(vec![5i32, 0, 5, 2], &[2, 2]).unwrap();
    let g = ops::gather(&x, &idx, 1).unwrap();
    assert_eq!(g.shape(), &[4, 2, 2, 3]);
    let u = rand(&[4, 2, 2, 3], 11);
    let zeros = ops::zeros(&[4, 6, 3], kiln_core::DType::F32).unwrap();
    let s = ops::scatter_add(&zeros, &idx, &u, 1).unwrap();
    let dot = |p: &Tensor, q: &Tensor| -> f32 { p.to_vec::<f32>().unwrap().iter().zip(q.to_vec::<f32>().unwrap()).map(|(a, b)| a * b).sum() };
    assert!((dot(&g, &u) - dot(&x, &s)).abs() < 1e-4);
    let bad = Tensor::from_vec(vec![6i32], &[1]).unwrap();
    assert!(ops::gather(&x, &bad, 1).unwrap_err().to_string().contains("out of range"));
}
