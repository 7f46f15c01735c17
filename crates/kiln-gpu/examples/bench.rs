//! kiln-gpu against kiln-core's CPU kernels on the same workloads, labelled with the adapter.
//! `cargo run --release -p kiln-gpu --example bench`
//!
//! On lavapipe (a CPU driver) the GPU column measures correctness plus dispatch overhead on the
//! same two cores the CPU column uses: it says nothing about speed on a real GPU.

use kiln_core::ops::{self, BinaryOp, UnaryOp};
use kiln_core::Tensor;
use kiln_gpu::kernels::{elementwise as ew, matmul::matmul};
use kiln_gpu::{GpuDevice, GpuTensor};
use std::time::Instant;

/// Median seconds per call of `f` over `reps` timed calls, after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[reps / 2]
}

fn row(name: &str, cpu: f64, gpu: f64, flops: Option<f64>) {
    let rate = |s: f64| flops.map_or(String::new(), |f| format!(" ({:.1} GFLOP/s)", f / s / 1e9));
    println!("{name:<28} cpu {:>9.3} ms{:<18} gpu {:>9.3} ms{:<18} gpu/cpu {:.2}", cpu * 1e3, rate(cpu), gpu * 1e3, rate(gpu), gpu / cpu);
}

fn main() -> kiln_core::Result<()> {
    let dev = GpuDevice::new()?;
    let info = dev.adapter_info();
    println!("adapter: '{}' ({:?}, {:?}, driver {} {})", info.name, info.device_type, info.backend, info.driver, info.driver_info);
    if dev.is_software() {
        println!("NOTE: a software adapter: GPU timings show correctness and dispatch overhead only, not GPU speed.");
    }
    println!("GPU times include waiting for the queue (synchronize) after each call; data stays on the device.\n");

    for n in [256usize, 1024] {
        let a = ops::randn(&[n, n], 0.0, 1.0, Some(1))?;
        let b = ops::randn(&[n, n], 0.0, 1.0, Some(2))?;
        let (ag, bg) = (GpuTensor::upload(&dev, &a)?, GpuTensor::upload(&dev, &b)?);
        let reps = if n <= 256 { 20 } else { 5 };
        let cpu = time(reps, || drop(ops::matmul(&a, &b, false, false).unwrap()));
        let gpu = time(reps, || {
            drop(matmul(&dev, &ag, &bg, false, false).unwrap());
            dev.synchronize().unwrap();
        });
        row(&format!("matmul {n}x{n}x{n}"), cpu, gpu, Some(2.0 * (n * n * n) as f64));
        // Agreement on this very workload, so the timing is of a correct result.
        let diff = max_abs_diff(&ops::matmul(&a, &b, false, false)?, &matmul(&dev, &ag, &bg, false, false)?.download(&dev)?);
        println!("{:<28} max |gpu - cpu| = {diff:.2e}", "");
    }

    let n = 1 << 20;
    let x = ops::randn(&[n], 0.0, 1.0, Some(3))?;
    let y = ops::randn(&[n], 0.0, 1.0, Some(4))?;
    let (xg, yg) = (GpuTensor::upload(&dev, &x)?, GpuTensor::upload(&dev, &y)?);
    let cpu = time(20, || drop(ops::binary(BinaryOp::Add, &x, &y).unwrap()));
    let gpu = time(20, || {
        drop(ew::binary(&dev, BinaryOp::Add, &xg, &yg).unwrap());
        dev.synchronize().unwrap();
    });
    row("add 1M", cpu, gpu, None);
    let cpu = time(20, || drop(ops::unary(UnaryOp::Tanh, &x, 0.0).unwrap()));
    let gpu = time(20, || {
        drop(ew::unary(&dev, UnaryOp::Tanh, &xg, 0.0).unwrap());
        dev.synchronize().unwrap();
    });
    row("tanh 1M", cpu, gpu, None);
    // The fixed cost of one kernel launch plus a wait, on a tensor too small to matter.
    let tiny = GpuTensor::upload(&dev, &Tensor::scalar_f32(1.0))?;
    let gpu = time(50, || {
        drop(ew::unary(&dev, UnaryOp::Exp, &tiny, 0.0).unwrap());
        dev.synchronize().unwrap();
    });
    let cpu = time(50, || drop(ops::unary(UnaryOp::Exp, &Tensor::scalar_f32(1.0), 0.0).unwrap()));
    row("exp of 1 element (overhead)", cpu, gpu, None);
    let round_trip = time(20, || drop(GpuTensor::upload(&dev, &x).unwrap().download(&dev).unwrap()));
    println!("{:<28} upload + download of 1M f32 (4 MB): {:.3} ms", "transfer", round_trip * 1e3);
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
