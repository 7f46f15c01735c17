//! Threads sharing each packed block of b (BLIS's scheme, for a b read through its strides):
//! per k x n block, the threads pack its panels together into one buffer, then each runs row
//! tiles of a against the whole block, packing only the a rows it runs. b is packed once per call
//! instead of once per thread, and a once instead of once per column range (the column split
//! packs all of a in every thread: at 1024 that doubled the packing share of each thread).
//!
//! The work of a block is handed out through counters rather than split at barriers: a thread
//! claims pieces of the packing, then row tiles (first from its own contiguous range, so the a
//! tile it runs next is the one it prefetched, then from the others' ranges). A thread waits only
//! for work another thread has claimed and is running: a thread the pool starts late (busy
//! elsewhere, or this call nested in another parallel region) finds less left to claim, and one
//! that never starts costs nothing, so the call cannot deadlock on a missing partner.
//!
//! Order: row tile t of block s starts once row tile t of block s - 1 is done (both write the
//! same dst rows: the second k block accumulates onto the first). The rows of a tile, not the
//! whole block, are what wait: a thread's home tiles of block s follow its own tiles of block
//! s - 1, so it goes on without waiting for its partner's last tile of the previous block (the
//! first version waited for every tile of block s - 1: on a loaded machine, whenever the partner
//! was preempted). Block s is packed into the buffer block s - 2 used, after every tile of
//! block s - 2 is done, so a thread that finishes block s - 1's tiles early packs block s
//! meanwhile.

use super::{aligned, k_block, pack_b, row_of_tiles, row_tile, Addend, Block, MatRef, Onto, B_BLOCK_FLOATS, LDA, MR, NR, PACKS};
use crate::parallel;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Panels packed per claim: 4 panels of 32 columns (512 KiB at k block 1024), small enough that
/// the last pieces even out the threads, large enough that claims are rare.
const PIECE_PANELS: usize = 4;

/// The double buffer of packed b blocks, kept between calls (a fresh 8 MiB per call would cost
/// its page faults every time); a call that finds it taken (another product running at the same
/// time) allocates its own.
static BUFFER: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Whether `threads` threads should run an m-row product this way: enough row tiles for each
/// thread to get two (fewer rows: the column split packs little of a anyway).
pub(super) fn suits(m: usize, threads: usize) -> bool {
    threads > 1 && m.div_ceil(MR) >= 2 * threads
}

/// One block's claims and completions.
struct Progress {
    pack_claimed: AtomicUsize,
    pack_done: AtomicUsize,
    /// Tiles claimed so far from each thread's home range.
    tiles_claimed: Vec<AtomicUsize>,
    tiles_done: AtomicUsize,
}

/// `dst (+)= scale · a · b` on `threads` threads (the caller has checked `suits`).
///
/// # Safety
/// As `super::gemm`, with b read through its strides.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: MatRef, scale: f32, threads: usize) {
    let kc_max = k_block(k);
    let nc_max = (B_BLOCK_FLOATS / kc_max / NR * NR).max(NR).min(n.next_multiple_of(NR));
    let mut blocks = Vec::new();
    for jc in (0..n).step_by(nc_max) {
        for pc in (0..k).step_by(kc_max) {
            blocks.push((jc, nc_max.min(n - jc), pc, kc_max.min(k - pc)));
        }
    }
    let tiles = m.div_ceil(MR);
    let progress: Vec<Progress> = blocks
        .iter()
        .map(|_| Progress { pack_claimed: AtomicUsize::new(0), pack_done: AtomicUsize::new(0), tiles_claimed: (0..threads).map(|_| AtomicUsize::new(0)).collect(), tiles_done: AtomicUsize::new(0) })
        .collect();
    // Per row tile: how many blocks have run over its rows.
    let rows_done: Vec<AtomicUsize> = (0..tiles).map(|_| AtomicUsize::new(0)).collect();
    let block_floats = kc_max * nc_max;
    let mut own = Vec::new();
    let mut shared = BUFFER.try_lock().ok();
    let buffer = shared.as_deref_mut().unwrap_or(&mut own);
    let base = parallel::SendPtr(aligned(buffer, 2 * block_floats));
    let (dst, a, b) = (parallel::SendPtr(dst), parallel::SendView(a), parallel::SendView(b));
    parallel::for_each_chunk(threads, threads, |home, _| {
        let a = a.get();
        PACKS.with(|packs| {
            let ap = aligned(&mut packs.borrow_mut().1, MR * LDA);
            for (s, &(jc, nc, pc, kc)) in blocks.iter().enumerate() {
                let done = &progress[s];
                if s >= 2 {
                    wait_until(&progress[s - 2].tiles_done, tiles);
                }
                // SAFETY: block s packs into half s % 2 of the buffer, which block s - 2 read
                // and every thread has finished (waited for just above).
                let panels = base.ptr().add(s % 2 * block_floats);
                let pieces = nc.div_ceil(NR).div_ceil(PIECE_PANELS);
                loop {
                    let piece = done.pack_claimed.fetch_add(1, Ordering::Relaxed);
                    if piece >= pieces {
                        break;
                    }
                    let first = piece * PIECE_PANELS * NR;
                    let cols = (PIECE_PANELS * NR).min(nc - first);
                    pack_b(b.get(), pc, kc, jc + first, cols, panels.add(first * kc));
                    done.pack_done.fetch_add(1, Ordering::Release);
                }
                wait_until(&done.pack_done, pieces);
                let block = Block { pc, kc, jc, nc, panels, onto: Onto::of_block(pc, accumulate, Addend::NONE) };
                while let Some((t, next)) = claim_tile(done, home, tiles, threads) {
                    // These rows in block s - 1: run by this thread (its home range) or by one
                    // that claimed them before this thread reached block s, so never unclaimed.
                    wait_until(&rows_done[t], s);
                    let (tile, next) = (row_tile(&(0..m), tiles, t), next.map(|t| row_tile(&(0..m), tiles, t)));
                    // SAFETY: tile t's rows of dst are written by this thread alone during
                    // block s, after block s - 1 finished them; the caller vouches for the
                    // operands.
                    row_of_tiles(a, tile, next, &block, dst.ptr(), dst_rs, scale, ap);
                    rows_done[t].store(s + 1, Ordering::Release);
                    done.tiles_done.fetch_add(1, Ordering::Release);
                }
            }
        });
    });
}

/// The next unclaimed row tile of a block, from the thread's home range first, then from the
/// others' in turn; with it the tile that follows in the same range (the thread's likely next).
fn claim_tile(progress: &Progress, home: usize, tiles: usize, threads: usize) -> Option<(usize, Option<usize>)> {
    for r in (0..threads).map(|i| (home + i) % threads) {
        let (start, end) = (tiles * r / threads, tiles * (r + 1) / threads);
        let i = progress.tiles_claimed[r].fetch_add(1, Ordering::Relaxed);
        if start + i < end {
            let t = start + i;
            return Some((t, (t + 1 < end).then_some(t + 1)));
        }
    }
    None
}

/// Spins until `counter` reaches `value`, yielding the core after about a tile's time (~40 µs:
/// a running partner is at most a tile away; one that is not is preempted on a loaded machine).
fn wait_until(counter: &AtomicUsize, value: usize) {
    if counter.load(Ordering::Acquire) >= value {
        return;
    }
    #[cfg(feature = "wait-stats")]
    let _timed = crate::native_pool::waits::Timed::start();
    let mut spins = 0u32;
    while counter.load(Ordering::Acquire) < value {
        if spins < 1 << 10 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}
