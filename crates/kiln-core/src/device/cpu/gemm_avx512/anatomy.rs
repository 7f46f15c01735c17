//! Where a 1024 x 1024 x 1024 product's time goes (issue 18), part by part, in GFLOP per
//! CPU-second (CPU time: the machine is shared), to compare with the FMA probe's per-core figure
//! (bench/flops-probe, `gflops_per_cpu_second`). Not a check, a measurement (ignored by default):
//! `cargo test --release -p kiln-core --lib anatomy -- --ignored --nocapture`.
//! docs/families.md ("Native GEMM") has its figures.

use super::*;
use crate::cpu_clock::{process_ns, thread_ns};

/// CPU seconds per call of `f` (best of 7 rounds of `reps` calls, after one warm-up call).
fn cpu_seconds(clock: fn() -> u64, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let start = clock();
            (0..reps).for_each(|_| f());
            (clock() - start) as f64 / 1e9 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore]
fn anatomy() {
    if !cpu_supports() {
        return;
    }
    let (n, kc) = (1024usize, KC);
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let b = a.clone();
    let mut c = vec![0.0f32; n * n];
    let (mut a_buf, mut b_buf) = (Vec::new(), Vec::new());
    let (ap, bp) = (aligned(&mut a_buf, MR * LDA), aligned(&mut b_buf, kc * n));
    let ar = MatRef { ptr: a.as_ptr(), rs: n as isize, cs: 1 };
    let br = MatRef { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
    let tiles = n.div_ceil(MR);
    // SAFETY (every block below): the buffers hold what pack_a, pack_b and the tiles address.
    unsafe {
        pack_a(ar, 0, MR, 0, kc, ap);
        pack_b(br, 0, kc, 0, n, bp);
    }
    // The kernel alone: one packed a tile against 1 to 32 panels of b (64 KiB each).
    for panels in [1usize, 8, 32] {
        let cpu = cpu_seconds(thread_ns, 2000 / panels, || unsafe {
            for q in 0..panels {
                tile::<14>(&Tile { kc, a: ap, b: bp.add(q * kc * NR), c: c.as_mut_ptr().add(q * NR), ldc: n, cols: NR, scale: 1.0, onto: Onto::Addend(Addend::NONE) });
            }
        });
        println!("kernel 14 x 32 x {kc}, {panels} panel(s) of b ({} KiB): {:.1}", panels * kc * NR * 4 / 1024, (2 * MR * NR * kc * panels) as f64 / cpu / 1e9);
    }
    // One k block's tiles (no packing), with the destination in L1 or the real one.
    // A destination with rows 4 KiB + 64 bytes apart: its 14 rows' lines in different L1 sets.
    let mut wide = vec![0.0f32; n * (n + 16)];
    for (label, real_dst, ldc, overwrite) in [("one dst tile (L1)", false, n, true), ("the real dst, stores", true, n, true), ("the real dst, accumulating", true, n, false), ("a dst with rows 1040 floats apart, stores", true, n + 16, true)] {
        let dst = if ldc == n { c.as_mut_ptr() } else { wide.as_mut_ptr() };
        let cpu = cpu_seconds(thread_ns, 3, || unsafe {
            for t in 0..tiles {
                let (i, h) = row_tile(&(0..n), tiles, t);
                for q in 0..n / NR {
                    let c = if real_dst { dst.add(i * ldc + q * NR) } else { dst };
                    run_tile(h, &Tile { kc, a: ap, b: bp.add(q * kc * NR), c, ldc, cols: NR, scale: 1.0, onto: if overwrite { Onto::Addend(Addend::NONE) } else { Onto::Dst } });
                }
            }
        });
        println!("one k block's {tiles} x {} tiles, {label}: {:.1}", n / NR, (2 * n * n * kc) as f64 / cpu / 1e9);
    }
    let flops = 2.0 * (n as f64).powi(3);
    let cpu = cpu_seconds(thread_ns, 100, || unsafe {
        for t in 0..tiles {
            let (i, h) = row_tile(&(0..n), tiles, t);
            pack_a(ar, i, h, 0, kc, ap);
        }
    });
    println!("packing a ({n} x {kc}, one k block): {:.0} us = {:.1}% of the product at 116 GFLOP/s (all k blocks)", cpu * 1e6, 100.0 * cpu * n.div_ceil(kc) as f64 / (flops / 116e9));
    let cpu = cpu_seconds(thread_ns, 20, || unsafe { pack_b(br, 0, kc, 0, n, bp) });
    println!("packing b ({kc} x {n}, one block): {:.0} us = {:.1}% of the product at 116 GFLOP/s (all k blocks)", cpu * 1e6, 100.0 * cpu * n.div_ceil(kc) as f64 / (flops / 116e9));
    for threads in [1usize, 2] {
        let cpu = cpu_seconds(process_ns, 6, || unsafe { gemm(n, n, n, c.as_mut_ptr(), n, false, ar, br, 1.0, threads) });
        println!("the whole product on {threads} thread(s): {:.1}", flops / cpu / 1e9);
    }
}
