//! Times linear_w8a8 (each int8 path) against float matmul and linear_q8 for a Linear 784 -> 512,
//! and conv2d_w8a8 against conv2d for a 32 -> 64 3x3 'same' conv on 14x14, alternating the
//! variants each round (for a loaded machine); the fastest call of all rounds.
//! `cargo run --release -p kiln-core --example int8_probe`
use kiln_core::ops;
use kiln_core::Tensor;
use std::time::Instant;

/// The fastest single call in about 0.3 s of calls: on a loaded machine the minimum is the call
/// that ran without being descheduled, the closest to a quiet figure.
fn ms(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    while start.elapsed().as_secs_f64() < 0.3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn main() {
    parts();
    conv();
    int4();
    let (k, o) = (784, 512);
    let w = Tensor::from_vec((0..o * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect::<Vec<_>>(), &[o, k]).unwrap();
    let (q, s) = ops::quantize_int8(&w).unwrap();
    for n in [1usize, 256] {
        let x = Tensor::from_vec((0..n * k).map(|i| ((i * 13 % 97) as f32 - 48.0) / 48.0).collect::<Vec<_>>(), &[n, k]).unwrap();
        let mut best = [f64::INFINITY; 5];
        let names = ["float matmul", "linear_q8", "w8a8 vnni", "w8a8 avx2", "w8a8 scalar"];
        for _ in 0..3 {
            best[0] = best[0].min(ms(|| drop(ops::matmul(&x, &w, false, true).unwrap())));
            best[1] = best[1].min(ms(|| drop(ops::linear_q8(&x, &q, &s, None).unwrap())));
            for (i, path) in [(2, "vnni"), (3, "avx2"), (4, "scalar")] {
                std::env::set_var("KILN_INT8_PATH", path);
                best[i] = best[i].min(ms(|| drop(ops::linear_w8a8(&x, &q, &s, None).unwrap())));
            }
            std::env::remove_var("KILN_INT8_PATH");
        }
        for (name, b) in names.iter().zip(best) {
            println!("batch {n:3} {name:14} {b:8.3} ms  ({:.2}x float)", best[0] / b);
        }
    }
}

/// The parts of linear_w8a8 at batch 256, timed alone: quantizing x, and the int8 product.
#[allow(dead_code)]
pub fn parts() {
    use kiln_core::ops::quant::int8_gemm::{self, Int8Path, Int8Rows};
    let (n, k, o) = (256, 784, 512);
    let x: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 97) as f32 - 48.0) / 48.0).collect();
    let w: Vec<i8> = (0..o * k).map(|i| (i * 37 % 255) as i32 as i8).map(|v| v.max(-127)).collect();
    let (mut xq, mut xs) = (vec![0i8; n * k], vec![0f32; n]);
    println!("quantize x      {:8.3} ms", ms(|| int8_gemm::quantize_rows(&x, n, k, &mut xq, &mut xs)));
    let a = Int8Rows { data: &xq, rows: n, k, stride: k };
    let wr = Int8Rows { data: &w, rows: o, k, stride: k };
    let sums = int8_gemm::weight_sums(wr);
    println!("weight sums     {:8.3} ms", ms(|| drop(int8_gemm::weight_sums(wr))));
    let mut out = vec![0i32; n * o];
    for path in [Int8Path::Vnni, Int8Path::Avx2] {
        println!("gemm {:10} {:8.3} ms (one thread)", path.name(), ms(|| int8_gemm::gemm(path, a, wr, 0..o, &sums, |i, j, v| out[i * o + j] = v)));
    }
}

/// conv2d_w8a8 (best path) against float conv2d, batch 1 and 64.
fn conv() {
    let (c, o, hw) = (32, 64, 14);
    let w = Tensor::from_vec((0..o * c * 9).map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0).collect::<Vec<_>>(), &[o, c, 3, 3]).unwrap();
    let (q, s) = ops::quantize_int8(&w.reshape(&[o as isize, (c * 9) as isize]).unwrap()).unwrap();
    let p = ops::ConvParams { padding: [1; 4], ..Default::default() };
    for n in [1usize, 64] {
        let x = Tensor::from_vec((0..n * c * hw * hw).map(|i| ((i * 13 % 97) as f32 - 48.0) / 48.0).collect::<Vec<_>>(), &[n, c, hw, hw]).unwrap();
        let (mut f, mut i8) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            f = f.min(ms(|| drop(ops::conv2d(&x, &w, None, &p).unwrap())));
            i8 = i8.min(ms(|| drop(ops::conv2d_w8a8(&x, &q, &s, None, [3, 3], &p).unwrap())));
        }
        println!("conv batch {n:3} float {f:8.3} ms, w8a8 {i8:8.3} ms ({:.2}x float)", f / i8);
    }
}

/// linear_q4 (block 32) against float matmul at batch 1, the row-dot path.
fn int4() {
    let (k, o) = (784, 512);
    let w = Tensor::from_vec((0..o * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect::<Vec<_>>(), &[o, k]).unwrap();
    let (q, s) = ops::quantize_int4(&w, ops::INT4_BLOCK).unwrap();
    let x = Tensor::from_vec((0..k).map(|i| ((i * 13 % 97) as f32 - 48.0) / 48.0).collect::<Vec<_>>(), &[1, k]).unwrap();
    let (mut f, mut i4) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        f = f.min(ms(|| drop(ops::matmul(&x, &w, false, true).unwrap())));
        i4 = i4.min(ms(|| drop(ops::linear_q4(&x, &q, &s, None, ops::INT4_BLOCK).unwrap())));
    }
    println!("int4 batch   1 float {f:8.3} ms, linear_q4 {i4:8.3} ms ({:.2}x float)", f / i4);
}
