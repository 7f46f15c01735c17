//! Weight-only quantization: round-trip error bounds, linear parity with the dequantized matmul
//! (both the per-row dot path and the GEMM tile path), layouts, and errors.
use kiln_core::ops::{self, BinaryOp};
use kiln_core::{autograd, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// Reference: x · Wᵀ + b through matmul with the dequantized weight.
fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Vec<f32> {
    let y = ops::matmul(x, w, false, true).unwrap();
    vals(&match b {
        Some(b) => ops::binary(BinaryOp::Add, &y, b).unwrap(),
        None => y,
    })
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: element {i}: {g} vs {w}");
    }
}

#[test]
fn int8_round_trip_within_half_a_step() {
    let w = rand(&[37, 53], 1);
    let (q, s) = ops::quantize_int8(&w).unwrap();
    assert_eq!((q.shape(), s.shape()), (&[37usize, 53][..], &[37usize][..]));
    let d = vals(&ops::dequantize_int8(&q, &s).unwrap());
    let (wv, sv, qv) = (vals(&w), vals(&s), q.to_vec::<i8>().unwrap());
    assert!(qv.iter().all(|&v| v >= -127), "-128 must not be used");
    for o in 0..37 {
        let max = wv[o * 53..(o + 1) * 53].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((sv[o] - max / 127.0).abs() <= 1e-7 * max);
        for i in 0..53 {
            let e = (d[o * 53 + i] - wv[o * 53 + i]).abs();
            assert!(e <= sv[o] / 2.0 * (1.0 + 1e-5), "row {o} col {i}: error {e} > scale/2 {}", sv[o] / 2.0);
        }
        // The largest weight of a row maps to ±127 exactly.
        assert!(qv[o * 53..(o + 1) * 53].iter().any(|&v| v.abs() == 127));
    }
}

#[test]
fn int4_round_trip_within_half_a_step_per_block() {
    for (cols, block) in [(70usize, 32usize), (64, 32), (33, 8), (9, 3)] {
        let w = rand(&[5, cols], 2 + cols as u64);
        let (p, s) = ops::quantize_int4(&w, block).unwrap();
        let blocks = cols.div_ceil(block);
        assert_eq!((p.shape(), s.shape()), (&[5usize, cols.div_ceil(2)][..], &[5usize, blocks][..]));
        let d = vals(&ops::dequantize_int4(&p, &s, cols, block).unwrap());
        let (wv, sv) = (vals(&w), vals(&s));
        for o in 0..5 {
            for i in 0..cols {
                let scale = sv[o * blocks + i / block];
                let e = (d[o * cols + i] - wv[o * cols + i]).abs();
                assert!(e <= scale / 2.0 * (1.0 + 1e-5), "cols {cols} block {block} [{o},{i}]: error {e} > {}", scale / 2.0);
            }
        }
    }
}

#[test]
fn int4_packing_layout() {
    // One row, block 4: [7, -8?..] chosen so the integers are known: scale = 7/7 = 1.
    let w = Tensor::from_vec(vec![1.0f32, -2.0, 7.0, -7.0, 3.0], &[1, 5]).unwrap();
    let (p, s) = ops::quantize_int4(&w, 8).unwrap();
    assert_eq!(vals(&s), vec![1.0]);
    let bytes: Vec<u8> = p.to_vec::<i8>().unwrap().iter().map(|&b| b as u8).collect();
    // low nibble = even element, high nibble = odd element, two's complement; padding nibble 0.
    assert_eq!(bytes, vec![0xE1, 0x97, 0x03]);
}

#[test]
fn zero_rows_quantize_to_zero() {
    let w = ops::zeros(&[3, 40], kiln_core::DType::F32).unwrap();
    let (q, s) = ops::quantize_int8(&w).unwrap();
    assert!(vals(&s).iter().all(|&v| v == 0.0) && q.to_vec::<i8>().unwrap().iter().all(|&v| v == 0));
    let (p, s4) = ops::quantize_int4(&w, 32).unwrap();
    assert_eq!(vals(&ops::dequantize_int4(&p, &s4, 40, 32).unwrap()), vec![0.0; 120]);
}

#[test]
fn linear_matches_dequantized_matmul() {
    // Row counts on both sides of the dot/GEMM switch, output widths on both sides of a tile.
    for &(n, i, o) in &[(1usize, 70usize, 10usize), (3, 784, 130), (5, 33, 7), (64, 100, 200), (257, 64, 65)] {
        let x = rand(&[n, i], 10 + n as u64);
        let w = rand(&[o, i], 20 + o as u64);
        let b = rand(&[o], 30);
        let (q, s) = ops::quantize_int8(&w).unwrap();
        let d8 = ops::dequantize_int8(&q, &s).unwrap();
        assert_close(&vals(&ops::linear_q8(&x, &q, &s, Some(&b)).unwrap()), &reference(&x, &d8, Some(&b)), &format!("q8 {n}x{i}->{o}"));
        assert_close(&vals(&ops::linear_q8(&x, &q, &s, None).unwrap()), &reference(&x, &d8, None), "q8 no bias");
        let (p, s4) = ops::quantize_int4(&w, 32).unwrap();
        let d4 = ops::dequantize_int4(&p, &s4, i, 32).unwrap();
        assert_close(&vals(&ops::linear_q4(&x, &p, &s4, Some(&b), 32).unwrap()), &reference(&x, &d4, Some(&b)), &format!("q4 {n}x{i}->{o}"));
    }
}

#[test]
fn linear_folds_leading_dims_and_reads_views() {
    let x = rand(&[2, 3, 16], 40);
    let w = rand(&[16, 5], 41).transpose(0, 1).unwrap(); // a non-contiguous [5, 16] view
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let y = ops::linear_q8(&x, &q, &s, None).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    let flat = x.reshape(&[6, 16]).unwrap();
    assert_close(&vals(&y), &reference(&flat, &ops::dequantize_int8(&q, &s).unwrap(), None), "folded");
}

#[test]
fn errors_name_op_shapes_and_dtypes() {
    let w = rand(&[4, 8], 50);
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let msg = |r: Result<Tensor, kiln_core::KilnError>| r.err().expect("should fail").to_string();
    let m = msg(ops::linear_q8(&rand(&[2, 7], 51), &q, &s, None));
    assert!(m.starts_with("linearQ8") && m.contains("[4, 8]") && m.contains("[2, 7]"), "{m}");
    let m = msg(ops::linear_q8(&rand(&[2, 8], 51), &q, &s, Some(&rand(&[3], 52))));
    assert!(m.contains("bias [4]") && m.contains("[3]"), "{m}");
    let m = msg(ops::linear_q8(&rand(&[2, 8], 51), &w, &s, None));
    assert!(m.contains("int8") && m.contains("float32 [4, 8]"), "{m}");
    let (p, s4) = ops::quantize_int4(&w, 32).unwrap();
    let m = msg(ops::linear_q4(&rand(&[2, 8], 51), &p, &s4, None, 2));
    assert!(m.starts_with("linearQ4") && m.contains("block 2"), "{m}");
    let m = ops::quantize_int8(&q).err().unwrap().to_string();
    assert!(m.starts_with("quantizeInt8") && m.contains("int8 [4, 8]"), "{m}");
    let bad = Tensor::from_vec(vec![1.0f32, f32::NAN], &[1, 2]).unwrap();
    let m = ops::quantize_int4(&bad, 32).err().unwrap().to_string();
    assert!(m.contains("non-finite") && m.contains("[0, 1]"), "{m}");
    assert!(ops::quantize_int4(&w, 0).is_err());
}

#[test]
fn gradients_are_refused_not_dropped() {
    let w = rand(&[4, 8], 60);
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let x = rand(&[2, 8], 61).set_requires_grad(true).unwrap();
    let m = ops::linear_q8(&x, &q, &s, None).err().expect("needs an error").to_string();
    assert!(m.contains("inference-only") && m.contains("noGrad"), "{m}");
    let previous = autograd::set_enabled(false);
    let y = ops::linear_q8(&x, &q, &s, None);
    autograd::set_enabled(previous);
    assert!(!y.unwrap().requires_grad());
}

#[test]
fn int4_few_row_path_matches_for_every_block_shape() {
    // The fused int4 dot (blocks of a multiple of 16) and the expand-then-dot path (others), with
    // rows ending mid-block and on an odd element.
    for &(block, i) in &[(16usize, 95usize), (48, 100), (64, 64), (32, 31), (6, 45), (7, 29)] {
        let x = rand(&[2, i], 70 + block as u64);
        let w = rand(&[9, i], 80 + i as u64);
        let (p, s) = ops::quantize_int4(&w, block).unwrap();
        let d = ops::dequantize_int4(&p, &s, i, block).unwrap();
        assert_close(&vals(&ops::linear_q4(&x, &p, &s, None, block).unwrap()), &reference(&x, &d, None), &format!("q4 block {block} in {i}"));
    }
}
