//! The matrix products of one mlp-train step (bench/workloads.mjs: 784-512-10, batch 128) and
//! nothing else: no JavaScript, no allocation, no autograd, on Kiln's pool. The control of
//! bench/step-controls.mjs: a spread the bench's step shows and this loop beside it does not
//! comes from what the step adds around its products.
//! Prints one JSON line: per measurement of about `seconds`, the wall and process CPU
//! milliseconds per step.
//! `cargo run --release -p kiln-core --example mlp_products -- [seconds, default 0.7] [runs, default 5]`
use kiln_core::cpu_clock::process_ns;
use kiln_core::device::cpu::gemm_avx512::{self, MatRef};
use std::time::Instant;

const BATCH: usize = 128;
const INPUTS: usize = 784;
const HIDDEN: usize = 512;
const CLASSES: usize = 10;

/// Row-major `rows x cols` operand, optionally read transposed.
fn view(data: &[f32], cols: usize, transposed: bool) -> MatRef {
    let (rs, cs) = if transposed { (1, cols as isize) } else { (cols as isize, 1) };
    MatRef { ptr: data.as_ptr(), rs, cs }
}

fn main() {
    if !gemm_avx512::cpu_supports() {
        println!("{{\"error\":\"mlp_products: no AVX-512F on this CPU\"}}");
        return;
    }
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(0.7);
    let runs = args.get(1).copied().unwrap_or(5.0) as usize;
    let threads = kiln_core::parallel::num_threads();
    let fill = |n: usize, s: f32| (0..n).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * s).collect::<Vec<f32>>();
    let (x, w1, w2) = (fill(BATCH * INPUTS, 1.0), fill(INPUTS * HIDDEN, 0.05), fill(HIDDEN * CLASSES, 0.05));
    let (mut h, mut y, mut dy) = (vec![0f32; BATCH * HIDDEN], vec![0f32; BATCH * CLASSES], fill(BATCH * CLASSES, 0.1));
    let (mut dh, mut dw1, mut dw2) = (vec![0f32; BATCH * HIDDEN], vec![0f32; INPUTS * HIDDEN], vec![0f32; HIDDEN * CLASSES]);
    let mut step = || unsafe {
        // Forward: h = x w1, y = h w2; backward: dw2 = hᵀ dy, dh = dy w2ᵀ, dw1 = xᵀ dh.
        gemm_avx512::gemm(BATCH, HIDDEN, INPUTS, h.as_mut_ptr(), HIDDEN, false, view(&x, INPUTS, false), view(&w1, HIDDEN, false), 1.0, threads);
        gemm_avx512::gemm(BATCH, CLASSES, HIDDEN, y.as_mut_ptr(), CLASSES, false, view(&h, HIDDEN, false), view(&w2, CLASSES, false), 1.0, threads);
        dy[0] += y[0] * 1e-9;
        gemm_avx512::gemm(HIDDEN, CLASSES, BATCH, dw2.as_mut_ptr(), CLASSES, false, view(&h, HIDDEN, true), view(&dy, CLASSES, false), 1.0, threads);
        gemm_avx512::gemm(BATCH, HIDDEN, CLASSES, dh.as_mut_ptr(), HIDDEN, false, view(&dy, CLASSES, false), view(&w2, CLASSES, true), 1.0, threads);
        gemm_avx512::gemm(INPUTS, HIDDEN, BATCH, dw1.as_mut_ptr(), HIDDEN, false, view(&x, INPUTS, true), view(&dh, HIDDEN, false), 1.0, threads);
    };
    // Calibrate: steps per measurement of about `seconds`.
    let t0 = Instant::now();
    let mut n = 0usize;
    while t0.elapsed().as_secs_f64() < 0.1 {
        step();
        n += 1;
    }
    let steps = ((n as f64) * seconds / t0.elapsed().as_secs_f64()).ceil() as usize;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c) = (Instant::now(), process_ns());
        for _ in 0..steps {
            step();
        }
        wall.push(format!("{:.4}", t.elapsed().as_secs_f64() * 1e3 / steps as f64));
        cpu.push(format!("{:.4}", (process_ns() - c) as f64 / 1e6 / steps as f64));
    }
    std::hint::black_box(&dw1);
    println!("{{\"threads\":{threads},\"steps\":{steps},\"wall_ms\":[{}],\"cpu_ms\":[{}]}}", wall.join(","), cpu.join(","));
}
