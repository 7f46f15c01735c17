//! Why batch normalization is one fused kernel: the fused op against the same computation from
//! primitive ops (mean, variance, sub, rsqrt, mul, add, with their autograd), training mode,
//! forward and forward + backward, on [64, 32, 14, 14] (the CNN issue's size). Also times the
//! pooling kernels on [64, 32, 28, 28]. Best of 7 runs of 20 calls each.
//! `cargo run --release -p kiln-core --example batch_norm_choice`
use kiln_core::ops::{self, BatchNorm, BinaryOp, Pool2d, ReduceOp, UnaryOp};
use kiln_core::{autograd, DType, Tensor};
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..20 {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / 20.0
        })
        .fold(f64::INFINITY, f64::min)
}

fn composed(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
    let bin = |op, a: &Tensor, b: &Tensor| ops::binary(op, a, b).unwrap();
    let mean = ops::reduce(ReduceOp::Mean, x, &[0, 2, 3], true, 0).unwrap();
    let var = ops::reduce(ReduceOp::Variance, x, &[0, 2, 3], true, 0).unwrap();
    let inv_std = ops::unary(UnaryOp::Rsqrt, &bin(BinaryOp::Add, &var, &Tensor::scalar_f32(1e-5)), 0.0).unwrap();
    let normalized = bin(BinaryOp::Mul, &bin(BinaryOp::Sub, x, &mean), &inv_std);
    bin(BinaryOp::Add, &bin(BinaryOp::Mul, &normalized, &gamma.reshape(&[32, 1, 1]).unwrap()), &beta.reshape(&[32, 1, 1]).unwrap())
}

fn main() {
    let x = ops::randn(&[64, 32, 14, 14], 0.0, 1.0, Some(1)).unwrap().set_requires_grad(true).unwrap();
    let gamma = ops::full(&[32], 1.0, DType::F32).unwrap().set_requires_grad(true).unwrap();
    let beta = ops::full(&[32], 0.0, DType::F32).unwrap().set_requires_grad(true).unwrap();
    let seed = ops::randn(&[64, 32, 14, 14], 0.0, 1.0, Some(2)).unwrap();
    let (mut running_mean, mut running_var) = (ops::zeros(&[32], DType::F32).unwrap(), ops::ones(&[32], DType::F32).unwrap());
    let train = BatchNorm { training: true, momentum: 0.1, eps: 1e-5 };
    let clear = || [&x, &gamma, &beta].iter().for_each(|t| t.zero_grad());

    let mut fused = |backward: bool| {
        let y = ops::batch_norm(&x, Some(&gamma), Some(&beta), Some((&mut running_mean, &mut running_var)), train).unwrap();
        if backward {
            autograd::backward(&y, Some(&seed)).unwrap();
            clear();
        }
    };
    let previous = autograd::set_enabled(false);
    let fused_fwd = best_ms(|| fused(false));
    let composed_fwd = best_ms(|| drop(composed(&x, &gamma, &beta)));
    autograd::set_enabled(previous);
    let fused_both = best_ms(|| fused(true));
    let composed_both = best_ms(|| {
        autograd::backward(&composed(&x, &gamma, &beta), Some(&seed)).unwrap();
        clear();
    });
    println!("batch norm, training, [64, 32, 14, 14] (ms, best of 7):");
    println!("  forward:            fused {fused_fwd:.3}   composed {composed_fwd:.3}   ({:.1}x)", composed_fwd / fused_fwd);
    println!("  forward + backward: fused {fused_both:.3}   composed {composed_both:.3}   ({:.1}x)", composed_both / fused_both);

    let xp = ops::randn(&[64, 32, 28, 28], 0.0, 1.0, Some(3)).unwrap().set_requires_grad(true).unwrap();
    println!("pooling, [64, 32, 28, 28] (ms, best of 7):");
    for (name, pool) in [
        ("2x2 stride 2", Pool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], dilation: [1, 1] }),
        ("3x3 stride 2 pad 1", Pool2d { kernel: [3, 3], stride: [2, 2], padding: [1; 4], dilation: [1, 1] }),
    ] {
        for max in [true, false] {
            let run = || if max { ops::max_pool2d(&xp, pool).unwrap() } else { ops::avg_pool2d(&xp, pool, true).unwrap() };
            let previous = autograd::set_enabled(false);
            let forward = best_ms(|| drop(run()));
            autograd::set_enabled(previous);
            let y = run();
            let g = ops::randn(y.shape(), 0.0, 1.0, Some(4)).unwrap();
            let both = best_ms(|| {
                autograd::backward(&run(), Some(&g)).unwrap();
                xp.zero_grad();
            });
            println!("  {} {name}: forward {forward:.3}, forward + backward {both:.3}", if max { "maxPool2d" } else { "avgPool2d" });
        }
    }
}
