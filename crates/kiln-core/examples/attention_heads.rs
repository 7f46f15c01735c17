//! Attention as the ONNX bench's Transformer runs it at batch 1: q, k and v are head views of
//! one [1, T, 3·H·D] projection (reshaped to [1, T, 3H, D], split, permuted to [1, H, T, D]), the
//! output written in [1, T, H, D] order. CPU microseconds per forward call, best of 3 rounds.
//! `cargo run --release -p kiln-core --example attention_heads [T] [query tile] [key tile]`
#[path = "support/cpu_time.rs"]
mod cpu_time;

use kiln_core::ops::attention::{attention, AttentionOptions, Tiles};
use kiln_core::ops;

fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let t = arg(1, 128);
    let tiles = Tiles { query: arg(2, Tiles::default().query), key: arg(3, Tiles::default().key) };
    let (h, d) = (4, 64);
    let product = ops::randn(&[1, t, 3 * h * d], 0.0, 1.0, Some(1)).unwrap();
    let heads = product.reshape(&[1, t as isize, 3 * h as isize, d as isize]).unwrap();
    let view = |i: usize| heads.slice(&[0, 0, (i * h) as isize, 0], &[1, t as isize, h as isize, d as isize]).unwrap().permute(&[0, 2, 1, 3]).unwrap();
    let (q, k, v) = (view(0), view(1), view(2));
    let options = AttentionOptions { scale: Some(0.125), tiles, ..Default::default() };
    let flops = 4.0 * (h * t * t * d) as f64;
    let (cpu, wall) = cpu_time::per_call(1.0, || drop(attention(&q, &k, &v, None, &options).unwrap()));
    println!("T {t}, tiles {}x{}: {:.1} µs CPU ({:.1} GFLOP per CPU-second), {:.1} µs wall, threads {}", tiles.query, tiles.key, cpu * 1e6, flops / cpu / 1e9, wall * 1e6, kiln_core::parallel::num_threads());
}
