//! The CNN family's GPU kernels against kiln-core's CPU kernels on one ResNet-style layer
//! (the same workloads, labelled with the adapter).
//! `cargo run --release -p kiln-gpu --example bench_cnn`
//!
//! On lavapipe (a CPU driver) the GPU column measures correctness plus dispatch overhead on the
//! same cores the CPU column uses: it says nothing about speed on a real GPU.

use kiln_core::ops::conv::conv2d_geometry;
use kiln_core::ops::pool::Plan;
use kiln_core::ops::{self, BatchNorm, ConvParams, Pool2d};
use kiln_core::{autograd, Tensor};
use kiln_gpu::kernels::cnn::{batch_norm as bn, conv, pool};
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
    println!("{name:<34} cpu {:>9.3} ms{:<18} gpu {:>9.3} ms{:<18} gpu/cpu {:.2}", cpu * 1e3, rate(cpu), gpu * 1e3, rate(gpu), gpu / cpu);
}

fn main() -> kiln_core::Result<()> {
    let dev = GpuDevice::new()?;
    let info = dev.adapter_info();
    println!("adapter: '{}' ({:?}, {:?}, driver {} {})", info.name, info.device_type, info.backend, info.driver, info.driver_info);
    if dev.is_software() {
        println!("NOTE: a software adapter: GPU timings show correctness and dispatch overhead only, not GPU speed.");
    }
    println!("GPU times include waiting for the queue (synchronize) after each call; data stays on the device.\n");
    let sync = || dev.synchronize().unwrap();

    // conv 3x3, padding 1: [32, 32, 16, 16] -> [32, 32, 16, 16]
    let (x, w) = (ops::randn(&[32, 32, 16, 16], 0.0, 1.0, Some(1))?, ops::randn(&[32, 32, 3, 3], 0.0, 0.1, Some(2))?);
    let p = ConvParams { padding: [1, 1, 1, 1], ..Default::default() };
    let geo = conv2d_geometry("conv2d", &x, &w, None, &p)?;
    let (xg, wg) = (GpuTensor::upload(&dev, &x)?, GpuTensor::upload(&dev, &w)?);
    let flops = Some(2.0 * geo.macs() as f64);
    let cpu = time(5, || drop(ops::conv2d(&x, &w, None, &p).unwrap()));
    let gpu = time(5, || {
        drop(conv::forward(&dev, &geo, &xg, &wg, None, "conv2d").unwrap());
        sync();
    });
    row("conv2d 3x3 [32,32,16,16] fwd", cpu, gpu, flops);
    let dy = ops::randn(&[32, 32, 16, 16], 0.0, 1.0, Some(3))?;
    let dyg = GpuTensor::upload(&dev, &dy)?;
    let cpu = time(5, || {
        let (xl, wl) = (x.set_requires_grad(true).unwrap(), w.set_requires_grad(true).unwrap());
        let y = ops::conv2d(&xl, &wl, None, &p).unwrap();
        autograd::backward(&y, Some(&dy)).unwrap();
    });
    let gpu = time(5, || {
        drop(conv::input_grad(&dev, &geo, &dyg, &wg, None, "conv2d").unwrap());
        drop(conv::weight_grad(&dev, &geo, &xg, &dyg, "conv2d").unwrap());
        sync();
    });
    row("conv2d 3x3 fwd+bwd (cpu) / bwd (gpu)", cpu, gpu, None);
    let diff = max_abs_diff(&ops::conv2d(&x, &w, None, &p)?, &conv::forward(&dev, &geo, &xg, &wg, None, "conv2d")?.download(&dev)?);
    println!("{:<34} max |gpu - cpu| of the forward = {diff:.2e}", "");

    let pool2 = Pool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], dilation: [1, 1] };
    let plan = Plan::new("maxPool2d", &x, &pool2)?;
    let cpu = time(10, || drop(ops::max_pool2d(&x, pool2).unwrap()));
    let gpu = time(10, || {
        drop(pool::max_pool2d(&dev, &plan, &xg).unwrap());
        sync();
    });
    row("maxPool2d 2x2 [32,32,16,16]", cpu, gpu, None);

    let options = BatchNorm { training: true, momentum: 0.1, eps: 1e-5 };
    let cpu = time(10, || drop(ops::batch_norm(&x, None, None, None, options).unwrap()));
    let gpu = time(10, || {
        drop(bn::batch_norm_in_place(&dev, &xg, None, None, None, options).unwrap());
        sync();
    });
    row("batchNorm train [32,32,16,16]", cpu, gpu, None);
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
