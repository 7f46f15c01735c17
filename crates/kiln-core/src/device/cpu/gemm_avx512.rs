//! Kiln's own f32 GEMM for AVX-512 CPUs (x86-64 only): `dst (+)= scale · a · b` with a row-major
//! destination, any operand strides, and b either read through its strides or packed once ahead
//! of time (`PackedB`: a constant weight). Issue 18 asks for matmul-1024 within 10% of the FMA
//! peak; docs/families.md ("Native GEMM") has the figures.
//!
//! Shape of the computation (BLIS's loops, turned for a row-major destination):
//! - the register tile is MR = 14 rows x NR = 32 columns: 28 accumulators + 2 vectors of b, 30 of
//!   the 32 zmm registers; each step of k loads 2 vectors of b and broadcasts 14 values of a
//!   straight from memory (the FMA's embedded broadcast), 28 FMAs for 16 loads;
//! - b is packed into KC x NC blocks (up to 1024 x 1024: per-tile costs, not cache sizes, set
//!   them; see KC) of 32-column panels, each panel k-major so the kernel reads it as one stream,
//!   prefetched a fixed distance ahead (from L3);
//! - a is packed 14 rows at a time, row-major with a fixed row stride LDA (a compile-time
//!   constant, so every broadcast is one instruction with a constant displacement; LDA is not a
//!   multiple of 4 KiB's worth of floats, so the 14 rows fall in different L1 sets). Packing a
//!   row-major a is then 14 row copies, not a transpose;
//! - a range of rows is cut into tiles of equal height (1024 rows: 74 tiles of 13-14, not 73 of
//!   14 and one of 2, which would run a whole tile's time for 2 rows);
//! - threads share each packed block of b and split the rows (shared_b.rs: BLIS's scheme, work
//!   claimed through counters, no barrier); products with too few rows for that split the
//!   destination into column (or row) ranges instead, each thread packing its own operands, and
//!   a b packed ahead into a few row ranges per thread, claimed one at a time. One fork/join per
//!   call either way.
//! - the first k block of a non-accumulating call stores without reading dst, so the caller can
//!   hand over uninitialized memory (matmul.rs then skips its output's zero fill); it adds an
//!   `Addend` there instead if given (a Linear's bias and residual), read in the store.

#[cfg(test)]
mod anatomy;
mod shared_b;

use crate::parallel::{self, SendPtr, SendView};
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

/// Rows of the register tile.
const MR: usize = 14;
/// Vectors of 16 columns in the register tile.
const NV: usize = 2;
/// Columns of the register tile.
const NR: usize = 16 * NV;
/// Largest k block. Neither operand's block stays in a cache of this machine (Zen 4: L1d 32 KiB
/// and L2 1 MiB per core): a panel of b (32 x k) streams through L1 past the 14 rows of packed a,
/// which come back from L2 once per panel, and a whole b block streams from L3 ahead of the
/// kernel (PREFETCH_B). What a block costs is per tile: packing 14 rows of a, the tile's
/// destination lines, and a pass of the destination per k block. So the fewer and larger the
/// blocks, the faster: k in one block up to 1024, and a b block of 1024 columns (B_BLOCK_FLOATS).
/// Measured at 1024 (`examples/gemm_shapes.rs` style loops, the variants interleaved, GFLOP per
/// CPU-second, medians of 9 rounds, load average 4-8): k block 1024 with 1024 columns 1.02-1.03x
/// the 512 x 1024 blocks of the previous version on one thread, 1.02-1.04x on two; blocks that fit
/// L2 were slower: 512 x 256 (512 KiB) 0.91-0.92x, 256 x 512 0.90-0.94x, 512 x 384 0.92-0.95x,
/// 512 x 512 (1 MiB) 0.93x; and 1024 x 512 (a packed twice) 0.98-1.01x.
const KC: usize = 1024;
/// Row stride of packed a: KC plus a cache line, so 14 rows map to 14 different L1 sets.
const LDA: usize = KC + 16;
/// Floats of one thread's packed b block: 4 MiB, a k block of 1024 by 1024 columns (KC: a larger
/// block costs fewer per-tile overheads; it streams from L3 whatever its size).
const B_BLOCK_FLOATS: usize = 1 << 20;
/// How far ahead of the kernel's reads of b its prefetches run, in floats (16 steps of k). No
/// gain while b sits in L2 (one weight used again and again), but a model's layers find their
/// weights in L3: with 24 packed weights used in turn (M = 128) 125-186 GFLOP per CPU-second
/// against 90-175 without (`PACKED=24 examples/gemm_shapes.rs`, loaded machine).
const PREFETCH_B: usize = 16 * NR;
/// Steps of k before a tile's end at which the fetches (for writing) of its destination lines
/// start, one line per step: late enough that the panel of b streaming through L1 does not evict
/// them before the stores, early enough (~900 cycles) to cover a fetch from L3. Fetched at the
/// tile's start (the first version), they were evicted and the stores (or the next k block's
/// reads) waited on L2/L3; all 28 at once DST_LEAD steps before the end (the second version: 106.1-107.4
/// GFLOP per CPU-second at 1024 against 104.8-106.0 at the start, one core, `anatomy` test) took
/// more line fill buffers at once than the b stream could spare: one per step measured 1.00-1.03x
/// that on one thread at 1024 and M = 128 (packed weights in turn; level on two threads, load
/// average 5-8).
const DST_LEAD: usize = 32;

/// A strided read-only operand: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// Whether the CPU can run this file's GEMM (AVX-512F; tests and the examples call it directly).
pub fn cpu_supports() -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
}

/// How b reaches a product, for `chooses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BForm {
    /// Rows of b contiguous (column stride 1).
    RowMajor,
    /// Any other strides: a transposed view (a Linear weight, matmul's NT case).
    Strided,
    /// Packed ahead of time (`PackedB`).
    Packed,
}

/// Whether this file's GEMM runs an m x n x k product, or the `gemm` crate does: the one place
/// that chooses per shape (gemm_call.rs, matmul.rs and linear.rs ask it). Measured per core
/// (`examples/gemm_shapes.rs`, GFLOP per CPU-second, docs/families.md "Native GEMM"):
/// - packed b (a Linear weight under inference): 194-208 against the crate's 122-168 on the same
///   weight's transposed view (M = 128, K and N in 256 / 1024);
/// - a transposed b of at least 128 rows and k 256: the crate reads it column by column, K
///   floats apart; this file's packing transposes 16 x 16 blocks in registers (M = 128: 156-175
///   against 99-168). Fewer rows leave too few to share the packing: conv2d-b's im2col weight
///   gradient (64 x 576 x band, b the transposed im2col matrix) ran 89-102 against the crate's
///   107-124 (noisy: the crate's own path read 80-107 in the next pairs), and attention's
///   64 x 64 x 64 blocks were level;
/// - a row-major b on one thread: the crate's kernel measured 3-8% faster per core on the first
///   machine (1024: 200-205 against 188-200; M = 128: up to 20%, where packing b on every call
///   is a larger share), so it keeps the smaller ones; on the Zen 4 with this file's 1024 x 1024
///   blocks this one is ahead from 768 in every dimension but k (512): one thread, GFLOP per
///   CPU-second, load 8.3-8.5, 1.03-1.06x at 1024, 1.03x at 2048, 1.02x at 768, 1.01-1.03x at
///   1024 x 1024 x 512, where 512 read 0.97x and 1024 x 256 x 256 0.96x. On a Xeon with 2 MiB of
///   L2 per core (48 KiB L1d) the crate was level or ahead on one thread (1024: 0.92-0.97x, 2048
///   0.94-0.99x, 768 0.97-1.00x; its blocks follow the caches, this file's 4 MiB b blocks do
///   not), so there one thread keeps the crate (`ONE_THREAD_L2_LIMIT`). On two threads with at least 512 rows, this file's threads share
///   each packed b block (gemm_avx512/shared_b.rs) where the crate's each pack their own: 1024 on
///   2 threads 347 GFLOP/s of wall time against the column split's 282 in the quiet moments of a
///   loaded machine, and the crate's 275-295 in the lead's quiet runs;
/// - thin products (fewer than 14 rows (7 for a packed b) or 32 columns, k < 64: conv2d-a's
///   9 x 32 x 784 input gradient ran at half the crate's speed here) are the crate's too: its
///   kernels for them waste no tile padding, and a weight that small is not worth a packed copy.
/// `threads`: how many threads the product may use.
pub fn chooses(m: usize, n: usize, k: usize, b: BForm, threads: usize) -> bool {
    cpu_supports()
        && match b {
            BForm::Packed => m >= MR / 2 && n >= NR && k >= 64,
            BForm::Strided => m >= 128 && n >= NR && k >= 256,
            BForm::RowMajor => m >= 512 && n >= 256 && k >= 256 && (threads > 1 || (m >= 768 && n >= 768 && k >= 512 && !crate::cpu_cache::l2_bytes().is_some_and(|b| b >= ONE_THREAD_L2_LIMIT))),
        }
}

/// L2 bytes per core from which a one-thread row-major product stays with the `gemm` crate
/// (`chooses`): the Xeon's 2 MiB, not the Zen 4's 1 MiB.
const ONE_THREAD_L2_LIMIT: usize = 2 << 20;

/// The form of a b with these strides (column stride `cs`).
pub fn b_form(cs: isize) -> BForm {
    if cs == 1 {
        BForm::RowMajor
    } else {
        BForm::Strided
    }
}

/// k cut into blocks of equal length, at most KC each (1200 = 2 x 600, not 1024 + 176).
fn k_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1))
}

/// `dst = scale · a · b`, or `dst += scale · a · b` with `accumulate`; a is m x k, b is k x n,
/// dst m x n with rows `dst_rs` floats apart and unit column stride. `threads` is the most
/// threads to use (1 = the calling thread only).
///
/// # Safety
/// `cpu_supports()` must be true; every element addressed through a and b must be readable, dst
/// valid for writes of its m x n elements (it may be uninitialized when !accumulate), and dst
/// must not overlap a or b.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: MatRef, scale: f32, threads: usize) {
    gemm_from(m, n, k, dst, dst_rs, accumulate, a, BSource::Strided(b), scale, threads, Addend::NONE, None);
}

/// As `gemm`, with b packed ahead of time (`PackedB::new`; k and n are its own).
///
/// # Safety
/// As `gemm`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(m: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: &PackedB, scale: f32, threads: usize) {
    gemm_from(m, b.n, b.k, dst, dst_rs, accumulate, a, BSource::Packed(b), scale, threads, Addend::NONE, None);
}

/// What a product is added to in place of dst's old value: a row of n floats added to every row
/// (a Linear's bias) and an m x n matrix (a residual), each optional. The first k block's stores
/// read them, so no pass writes dst before the product (the starting value written block by
/// block and read back by the stores was 3-4% of a Transformer inference, as memcpy).
#[derive(Clone, Copy)]
pub struct Addend {
    pub row: Option<*const f32>,
    /// (element (0, 0), row stride in floats).
    pub matrix: Option<(*const f32, usize)>,
}

impl Addend {
    pub const NONE: Addend = Addend { row: None, matrix: None };
}

/// Called on a block (rows, columns) of dst right after its product.
pub type FinishBlock<'a> = &'a (dyn Fn(Range<usize>, Range<usize>) + Sync);

/// `dst = scale · a · b + addend` with b packed ahead of time; `finish`, if given, is called on
/// each block right after its product (a Linear's activation), while the block is still in the
/// computing thread's cache.
///
/// # Safety
/// As `gemm` (dst may be uninitialized); the addend's row must hold n readable floats, its
/// matrix m rows of n at its stride, neither overlapping dst.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_plus(m: usize, dst: *mut f32, dst_rs: usize, addend: Addend, finish: Option<FinishBlock>, a: MatRef, b: &PackedB, scale: f32, threads: usize) {
    gemm_from(m, b.n, b.k, dst, dst_rs, false, a, BSource::Packed(b), scale, threads, addend, finish);
}

/// Where the kernel's b panels come from.
#[derive(Clone, Copy)]
enum BSource<'a> {
    /// Read through strides and packed block by block by each thread.
    Strided(MatRef),
    /// Packed once, whole.
    Packed(&'a PackedB),
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_from(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: BSource, scale: f32, threads: usize, addend: Addend, finish: Option<FinishBlock>) {
    debug_assert!(!accumulate || (addend.row.is_none() && addend.matrix.is_none()), "an addend replaces dst's old value");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                let row = std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n);
                row.fill(0.0);
                if let Some(bias) = addend.row {
                    row.iter_mut().zip(std::slice::from_raw_parts(bias, n)).for_each(|(d, b)| *d += b);
                }
                if let Some((mat, rs)) = addend.matrix {
                    row.iter_mut().zip(std::slice::from_raw_parts(mat.add(i * rs), n)).for_each(|(d, x)| *d += x);
                }
            }
        }
        if let Some(finish) = finish {
            finish(0..m, 0..n);
        }
        return;
    }
    if let BSource::Strided(b) = b {
        if shared_b::suits(m, threads) {
            return shared_b::gemm(m, n, k, dst, dst_rs, accumulate, a, b, scale, threads);
        }
    }
    let split = Split::new(m, n, threads, matches!(b, BSource::Packed(_)));
    let jobs = split.jobs();
    // Raw pointers are not Sync: the closure shared by the threads carries them as SendPtr and
    // SendView (a and b are only read).
    let (dst, a, b, addend) = (SendPtr(dst), SendView(a), SendView(b), SendView(addend));
    let job = |j: usize| {
        let (rows, cols) = split.job(j);
        // SAFETY: jobs write disjoint blocks of dst; the caller vouches for the rest.
        unsafe { gemm_block(rows.clone(), cols.clone(), k, dst.ptr(), dst_rs, accumulate, addend.get(), a.get(), b.get(), scale) };
        if let Some(finish) = finish {
            finish(rows, cols);
        }
    };
    if jobs == 1 {
        job(0);
    } else {
        parallel::for_each_chunk(jobs, jobs, |s, e| (s..e).for_each(job));
    }
}

/// How the destination is cut among threads: column ranges of whole 32-column panels, or row
/// ranges of whole 14-row tiles when the product has too few columns to keep every thread busy.
/// A column split packs all of a in every thread (cheap row copies), a row split all of b.
/// A b packed ahead needs no packing, so a row split costs nothing there: such products are cut
/// into a few row ranges per thread, claimed one at a time, so a thread that joins late (a worker
/// woken from its park, or preempted on a loaded machine) leaves the rest to the others instead
/// of holding half the product.
struct Split {
    m: usize,
    n: usize,
    by_columns: bool,
    parts: usize,
}

/// Row ranges per thread for a b packed ahead (`Split`). Measured on two threads at M = 128 and
/// 1024 (K, N in 256 / 1024, 24 packed weights used in turn, the variants interleaved, loaded
/// machine): the GFLOP per CPU-second of 1 to 5 ranges per thread were level with each other and
/// 0-4% above the two-part column split (which packs all of a in both threads).
const PACKED_PARTS_PER_THREAD: usize = 4;

impl Split {
    fn new(m: usize, n: usize, threads: usize, b_packed: bool) -> Split {
        let (col_panels, row_tiles) = (n.div_ceil(NR), m.div_ceil(MR));
        if b_packed && threads > 1 && row_tiles >= 2 * threads {
            let parts = (threads * PACKED_PARTS_PER_THREAD).min(row_tiles);
            return Split { m, n, by_columns: false, parts };
        }
        // Columns when each thread gets at least two panels and the column split does not
        // repack a larger matrix than the row split would (m·k vs k·n).
        let by_columns = col_panels >= 2 * threads && (n >= m || row_tiles < 2 * threads);
        let units = if by_columns { col_panels } else { row_tiles };
        Split { m, n, by_columns, parts: threads.clamp(1, units.max(1)) }
    }

    fn jobs(&self) -> usize {
        self.parts
    }

    /// (row range, column range) of job `j`: whole tiles, shares differing by at most one tile.
    fn job(&self, j: usize) -> (Range<usize>, Range<usize>) {
        let (len, unit) = if self.by_columns { (self.n, NR) } else { (self.m, MR) };
        let units = len.div_ceil(unit);
        let start = (units * j / self.parts * unit).min(len);
        let end = (units * (j + 1) / self.parts * unit).min(len);
        if self.by_columns {
            (0..self.m, start..end)
        } else {
            (start..end, 0..self.n)
        }
    }
}

thread_local! {
    /// Each thread's packing buffers (packed b block, packed a tile), kept between calls: a
    /// fresh 1 MiB per call would cost page faults on every product.
    static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A slice of `len` floats aligned to 64 bytes inside `v` (grown when needed).
fn aligned(v: &mut Vec<f32>, len: usize) -> *mut f32 {
    if v.len() < len + 16 {
        *v = vec![0.0; len + 16];
    }
    let skip = v.as_ptr().align_offset(64).min(16);
    // SAFETY: skip + len <= v.len().
    unsafe { v.as_mut_ptr().add(skip) }
}

/// A whole k x n operand b in the kernel's layout, packed once: k blocks of `k_block(k)` rows,
/// each a row of 32-column panels ([kc][32], zeros past n). A constant weight packed this way
/// skips the per-call packing (for a transposed weight view, a transpose) that a batch-1 product
/// otherwise pays on every call, as onnxruntime prepacks its initializers.
pub struct PackedB {
    data: Vec<f32>,
    /// Where the 64-byte aligned panels start in `data`.
    start: usize,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs b (k x n, any strides).
    ///
    /// # Safety
    /// `cpu_supports()` must be true and every element of b readable.
    pub unsafe fn new(k: usize, n: usize, b: MatRef) -> PackedB {
        let n_pad = n.next_multiple_of(NR);
        let mut data = Vec::new();
        let p = aligned(&mut data, k * n_pad);
        let start = p.offset_from(data.as_ptr()) as usize;
        let kc_max = k_block(k);
        for pc in (0..k).step_by(kc_max.max(1)) {
            let kc = kc_max.min(k - pc);
            pack_b(b, pc, kc, 0, n, p.add(pc * n_pad));
        }
        PackedB { data, start, k, n }
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// The panels of the k block starting at row pc with kc rows, from column jc (a multiple of 32).
    fn block(&self, pc: usize, kc: usize, jc: usize) -> *const f32 {
        // SAFETY (of the offset): pc·n_pad + jc·kc < k·n_pad for pc < k, jc < n.
        unsafe { self.data.as_ptr().add(self.start + pc * self.n.next_multiple_of(NR) + jc * kc) }
    }
}

/// Row tile `t` of `tiles` equal-height tiles over `rows`: (first row, height <= MR).
fn row_tile(rows: &Range<usize>, tiles: usize, t: usize) -> (usize, usize) {
    let len = rows.len();
    let (s, e) = (len * t / tiles, len * (t + 1) / tiles);
    (rows.start + s, e - s)
}

/// One thread's block: dst[rows, cols] (+)= scale · a[rows, :] · b[:, cols] (+ addend).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(rows: Range<usize>, cols: Range<usize>, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, addend: Addend, a: MatRef, b: BSource, scale: f32) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let kc_max = k_block(k);
    let nc_max = (B_BLOCK_FLOATS / kc_max / NR * NR).max(NR);
    let tiles = rows.len().div_ceil(MR);
    PACKS.with(|packs| {
        let mut packs = packs.borrow_mut();
        let (b_buf, a_buf) = &mut *packs;
        let bp = match b {
            BSource::Strided(_) => aligned(b_buf, kc_max * nc_max.min(cols.len().next_multiple_of(NR))),
            BSource::Packed(_) => std::ptr::null_mut(),
        };
        let ap = aligned(a_buf, MR * LDA);
        for jc in cols.clone().step_by(nc_max) {
            let nc = nc_max.min(cols.end - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let panels: *const f32 = match b {
                    BSource::Strided(b) => {
                        pack_b(b, pc, kc, jc, nc, bp);
                        bp
                    }
                    BSource::Packed(p) => p.block(pc, kc, jc),
                };
                let block = Block { pc, kc, jc, nc, panels, onto: Onto::of_block(pc, accumulate, addend) };
                for t in 0..tiles {
                    let next = (t + 1 < tiles).then(|| row_tile(&rows, tiles, t + 1));
                    row_of_tiles(a, row_tile(&rows, tiles, t), next, &block, dst, dst_rs, scale, ap);
                }
            }
        }
    });
}

/// One packed block of b: rows pc..pc+kc, columns jc..jc+nc, as 32-column panels.
#[derive(Clone, Copy)]
struct Block {
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    panels: *const f32,
    onto: Onto,
}

/// What a block's stores add its product to.
#[derive(Clone, Copy)]
enum Onto {
    /// dst's old value (an accumulating product, or a k block after the first).
    Dst,
    /// The addend's parts only, dst not read (the first k block of a non-accumulating product);
    /// its pointers are dst's (0, 0) (the block's and the tile's shift them).
    Addend(Addend),
}

impl Onto {
    /// For k block `pc` of a product.
    fn of_block(pc: usize, accumulate: bool, addend: Addend) -> Onto {
        if pc == 0 && !accumulate {
            Onto::Addend(addend)
        } else {
            Onto::Dst
        }
    }

    /// The same for dst's block from row i, column j on.
    fn at(self, i: usize, j: usize) -> Onto {
        match self {
            Onto::Dst => Onto::Dst,
            Onto::Addend(Addend { row, matrix }) => Onto::Addend(Addend {
                row: row.map(|p| p.wrapping_add(j)),
                matrix: matrix.map(|(p, rs)| (p.wrapping_add(i * rs + j), rs)),
            }),
        }
    }
}

/// dst[ic..ic+mr, block's columns] (+)= scale · a[ic..ic+mr, block's k] · block: packs the a
/// rows into `ap`, then runs them against every panel; `next` (the tile this thread runs next, if
/// known) is prefetched into L2 meanwhile, a slice per panel.
#[allow(clippy::too_many_arguments)]
unsafe fn row_of_tiles(a: MatRef, (ic, mr): (usize, usize), next: Option<(usize, usize)>, block: &Block, dst: *mut f32, dst_rs: usize, scale: f32, ap: *mut f32) {
    let Block { pc, kc, jc, nc, panels, onto } = *block;
    pack_a(a, ic, mr, pc, kc, ap);
    let count = nc.div_ceil(NR);
    for q in 0..count {
        if let Some((next, next_mr)) = next {
            prefetch_a(a, next, next_mr, pc, kc, q, count);
        }
        let c = dst.add(ic * dst_rs + jc + q * NR);
        let tile = Tile { kc, a: ap, b: panels.add(q * kc * NR), c, ldc: dst_rs, cols: NR.min(nc - q * NR), scale, onto: onto.at(ic, jc + q * NR) };
        run_tile(mr, &tile);
    }
}

/// b[pc..pc+kc, jc..jc+nc] into 32-column panels, each k-major ([kc][32]), zeros past nc.
unsafe fn pack_b(b: MatRef, pc: usize, kc: usize, jc: usize, nc: usize, bp: *mut f32) {
    if b.cs == 1 {
        return pack_b_rows(b.ptr.offset(pc as isize * b.rs + jc as isize), b.rs, kc, nc, bp);
    }
    // A transposed b (matmul's NT case, a Linear weight): each column of a panel is a run of k
    // along b's rows.
    for (q, j0) in (0..nc).step_by(NR).enumerate() {
        let src = b.ptr.offset(pc as isize * b.rs + (jc + j0) as isize * b.cs);
        pack_b_columns(MatRef { ptr: src, rs: b.rs, cs: b.cs }, kc, NR.min(nc - j0), bp.add(q * kc * NR));
    }
}

/// kc rows of a row-major b (rows `rs` apart, nc floats each) into panels: each row is read once,
/// front to back (what the hardware prefetcher follows), and its 32-float pieces go to their
/// panels, zeros past nc.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_rows(src: *const f32, rs: isize, kc: usize, nc: usize, bp: *mut f32) {
    for p in 0..kc {
        let row = src.offset(p as isize * rs);
        for (q, j0) in (0..nc).step_by(NR).enumerate() {
            let dst = bp.add(q * kc * NR + p * NR);
            for v in 0..NV {
                let m = mask((nc - j0).saturating_sub(16 * v));
                _mm512_store_ps(dst.add(16 * v), _mm512_maskz_loadu_ps(m, row.add(j0 + 16 * v)));
            }
        }
    }
}

/// One panel from `w` (<= 32) columns of b, each read down its rows (unit stride when b is a
/// transposed row-major matrix): whole 16 x 16 blocks by in-register transposes, the rest (and
/// every element when b.rs != 1) one at a time; zeros past w.
unsafe fn pack_b_columns(b: MatRef, kc: usize, w: usize, panel: *mut f32) {
    let whole_k = if b.rs == 1 { kc / 16 * 16 } else { 0 };
    let whole_j = if b.rs == 1 { w / 16 * 16 } else { 0 };
    for j0 in (0..whole_j).step_by(16) {
        for p0 in (0..whole_k).step_by(16) {
            transpose_block(b.ptr.offset(j0 as isize * b.cs + p0 as isize), b.cs, 16, 16, panel.add(p0 * NR + j0), NR);
        }
    }
    for p in 0..kc {
        let row = panel.add(p * NR);
        let first = if p < whole_k { whole_j } else { 0 };
        for j in first..w {
            *row.add(j) = *b.ptr.offset(j as isize * b.cs + p as isize * b.rs);
        }
        // Not a call per row of a whole panel: a zero-length memset still costs one (0.8% of
        // attention's samples at T = 128, its score products packing Kᵀ).
        if w < NR {
            std::ptr::write_bytes(row.add(w), 0, NR - w);
        }
    }
}

/// dst[q·ld_dst + j] = src[j·ld_src + q] for j < rows, q < cols (both <= 16): `rows` rows of
/// `cols` contiguous floats become `cols` rows of `rows` floats, through 16 x 16 in-register
/// transposes (4 shuffles per vector against one scalar store per element).
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(src: *const f32, ld_src: isize, rows: usize, cols: usize, dst: *mut f32, ld_dst: usize) {
    let mut r = [_mm512_setzero_ps(); 16];
    for (j, row) in r.iter_mut().enumerate().take(rows) {
        *row = _mm512_maskz_loadu_ps(mask(cols), src.offset(j as isize * ld_src));
    }
    let keep = mask(rows);
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in (0..16).step_by(4) {
        let pd: [__m512d; 4] = [_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 2]), _mm512_castps_pd(t[g + 3])];
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd[0], pd[2]));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd[0], pd[2]));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd[1], pd[3]));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd[1], pd[3]));
    }
    // Gather the four 128-bit lanes of each column from u[c], u[4 + c], u[8 + c], u[12 + c].
    for c in 0..4 {
        let (x0, x1, x2, x3) = (u[c], u[4 + c], u[8 + c], u[12 + c]);
        let w0 = _mm512_shuffle_f32x4::<0x44>(x0, x1);
        let w1 = _mm512_shuffle_f32x4::<0xEE>(x0, x1);
        let w2 = _mm512_shuffle_f32x4::<0x44>(x2, x3);
        let w3 = _mm512_shuffle_f32x4::<0xEE>(x2, x3);
        let out = [_mm512_shuffle_f32x4::<0x88>(w0, w2), _mm512_shuffle_f32x4::<0xDD>(w0, w2), _mm512_shuffle_f32x4::<0x88>(w1, w3), _mm512_shuffle_f32x4::<0xDD>(w1, w3)];
        for (g, v) in out.into_iter().enumerate() {
            let q = 4 * g + c;
            if q < cols {
                _mm512_mask_storeu_ps(dst.add(q * ld_dst), keep, v);
            }
        }
    }
}

/// a[ic..ic+mr, pc..pc+kc] into ap, rows LDA apart.
unsafe fn pack_a(a: MatRef, ic: usize, mr: usize, pc: usize, kc: usize, ap: *mut f32) {
    let src = a.ptr.offset(ic as isize * a.rs + pc as isize * a.cs);
    if a.cs == 1 {
        for r in 0..mr {
            std::ptr::copy_nonoverlapping(src.offset(r as isize * a.rs), ap.add(r * LDA), kc);
        }
    } else if a.rs == 1 {
        // A transposed a (matmul's TN case, a weight gradient): its rows of k are columns here.
        for p0 in (0..kc).step_by(16) {
            transpose_block(src.offset(p0 as isize * a.cs), a.cs, 16.min(kc - p0), mr, ap.add(p0), LDA);
        }
    } else {
        for p in 0..kc {
            let row = src.offset(p as isize * a.cs);
            for r in 0..mr {
                *ap.add(r * LDA + p) = *row.offset(r as isize * a.rs);
            }
        }
    }
}

/// Part `part` of `parts` of the rows of a that pack_a will copy next, prefetched into L2 while
/// the current tiles run, so the copy reads L2 rather than L3.
unsafe fn prefetch_a(a: MatRef, ic: usize, mr: usize, pc: usize, kc: usize, part: usize, parts: usize) {
    if a.cs != 1 {
        return;
    }
    let per_row = kc.div_ceil(16);
    let lines = mr * per_row;
    for line in lines * part / parts..lines * (part + 1) / parts {
        let (r, l) = (line / per_row, line % per_row);
        let p = a.ptr.wrapping_offset((ic + r) as isize * a.rs + (pc + 16 * l) as isize);
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
    }
}

/// One register tile's operands: packed a (MR rows at LDA), one packed b panel, where its
/// `cols` (<= 32) columns of rows go and what they are added to (`onto`, at the tile's (0, 0)).
struct Tile {
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    scale: f32,
    onto: Onto,
}

/// The tile kernel for `rows` rows (a whole tile is 14; the last tile of a range has fewer).
unsafe fn run_tile(rows: usize, t: &Tile) {
    match rows {
        14 => tile::<14>(t),
        13 => tile::<13>(t),
        12 => tile::<12>(t),
        11 => tile::<11>(t),
        10 => tile::<10>(t),
        9 => tile::<9>(t),
        8 => tile::<8>(t),
        7 => tile::<7>(t),
        6 => tile::<6>(t),
        5 => tile::<5>(t),
        4 => tile::<4>(t),
        3 => tile::<3>(t),
        2 => tile::<2>(t),
        _ => tile::<1>(t),
    }
}

/// c[r, 0..cols] (+)= scale · Σ_p a[r·LDA + p] · b[p·32 + 0..cols] for R rows.
///
/// SAFETY: needs AVX-512F; a holds R rows of kc at LDA, b kc x 32 floats 64-byte aligned, c
/// R rows of `cols` floats at ldc.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let (mut a, mut b) = (t.a, t.b);
    // The tile's R·NV destination lines are fetched (for writing) one per step from DST_LEAD
    // steps before the stores, and with them those of an addend's matrix.
    let fetch_dst_at = t.kc.saturating_sub(DST_LEAD);
    let matrix = match t.onto {
        Onto::Addend(Addend { matrix, .. }) => matrix,
        Onto::Dst => None,
    };
    for p in 0..t.kc {
        let line = p.wrapping_sub(fetch_dst_at);
        if line < R * NV {
            let (r, v) = (line / NV, line % NV);
            _mm_prefetch::<_MM_HINT_ET0>(t.c.add(r * t.ldc + 16 * v) as *const i8);
            if let Some((m, rs)) = matrix {
                _mm_prefetch::<_MM_HINT_T0>(m.wrapping_add(r * rs + 16 * v) as *const i8);
            }
        }
        // The panel's lines PREFETCH_B floats ahead (past its end: the next panel, read next).
        for v in 0..NV {
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_B + 16 * v) as *const i8);
        }
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_load_ps(b.add(16 * v));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r * LDA));
            for v in 0..NV {
                acc[v] = _mm512_fmadd_ps(x, bv[v], acc[v]);
            }
        }
        a = a.add(1);
        b = b.add(NR);
    }
    store_tile(t, &acc);
}

/// c = scale · acc + (c, or the addend) for the tile's rows and columns.
#[target_feature(enable = "avx512f")]
unsafe fn store_tile<const R: usize>(t: &Tile, acc: &[[__m512; NV]; R]) {
    let mut masks: [__mmask16; NV] = [0; NV];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = mask(t.cols.saturating_sub(16 * v));
    }
    let scale = _mm512_set1_ps(t.scale);
    // The addend's row, the same for every row of the tile.
    let mut bias = [_mm512_setzero_ps(); NV];
    if let Onto::Addend(Addend { row: Some(b), .. }) = t.onto {
        for (h, &m) in masks.iter().enumerate() {
            bias[h] = _mm512_maskz_loadu_ps(m, b.add(16 * h));
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = t.c.add(r * t.ldc);
        for (h, &m) in masks.iter().enumerate() {
            let dst = row.add(16 * h);
            let onto = match t.onto {
                Onto::Dst => _mm512_maskz_loadu_ps(m, dst),
                Onto::Addend(Addend { matrix: Some((x, rs)), .. }) => _mm512_add_ps(bias[h], _mm512_maskz_loadu_ps(m, x.add(r * rs + 16 * h))),
                Onto::Addend(Addend { matrix: None, .. }) => bias[h],
            };
            _mm512_mask_storeu_ps(dst, m, _mm512_fmadd_ps(acc[h], scale, onto));
        }
    }
}

/// The first `n` lanes (n >= 16: all).
fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        !0
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a·b in f64 by the definition, operands through their strides.
    fn reference(m: usize, n: usize, k: usize, a: &[f32], (ars, acs): (usize, usize), b: &[f32], (brs, bcs): (usize, usize)) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 9) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Every layout (NN, NT, TN), b strided or packed ahead, edge tiles in both directions, k
    /// over one block, one to three threads, overwrite / accumulate / scale, a destination with
    /// a wider row stride.
    #[test]
    fn matches_the_definition() {
        if !cpu_supports() {
            return;
        }
        // (60, 1600, 2100): 5 row tiles (the shared-b split on 2 threads) and 3 k blocks x 2
        // column blocks of b; (100, 70, 2100): 8 row tiles through 3 k blocks, each waiting on
        // its rows' previous one.
        let shapes = [(1, 1, 1), (13, 31, 5), (14, 32, 512), (29, 70, 1030), (100, 3, 17), (3, 100, 600), (64, 64, 64), (45, 48, 33), (130, 96, 100), (60, 1600, 2100), (100, 70, 2100)];
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false)] {
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                let want = reference(m, n, k, &a, sa, &b, sb);
                for threads in [1, 2, 3] {
                    for prepacked in [false, true] {
                        let ldc = n + 3;
                        let mut dst = vec![7.0f32; m * ldc];
                        let (ar, br) = (MatRef { ptr: a.as_ptr(), rs: sa.0 as isize, cs: sa.1 as isize }, MatRef { ptr: b.as_ptr(), rs: sb.0 as isize, cs: sb.1 as isize });
                        if prepacked {
                            let packed = unsafe { PackedB::new(k, n, br) };
                            unsafe { gemm_packed(m, dst.as_mut_ptr(), ldc, false, ar, &packed, 1.0, threads) };
                            unsafe { gemm_packed(m, dst.as_mut_ptr(), ldc, true, ar, &packed, 0.5, threads) };
                        } else {
                            unsafe { gemm(m, n, k, dst.as_mut_ptr(), ldc, false, ar, br, 1.0, threads) };
                            unsafe { gemm(m, n, k, dst.as_mut_ptr(), ldc, true, ar, br, 0.5, threads) };
                        }
                        for i in 0..m {
                            for j in 0..n {
                                let (got, w) = (dst[i * ldc + j] as f64, 1.5 * want[i * n + j]);
                                assert!((got - w).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()), "{m}x{n}x{k} t{threads} {ta}/{tb} packed {prepacked} ({i},{j}): {got} vs {w}");
                            }
                            assert_eq!(dst[i * ldc + n], 7.0, "the padding past n is untouched");
                        }
                    }
                }
            }
        }
    }

    /// `gemm_packed_plus`: the product plus a bias row, a residual matrix (wider row stride),
    /// both or neither, over k blocks and one to three threads, dst left uninitialized (NaN).
    #[test]
    fn adds_the_addend_in_the_store() {
        if !cpu_supports() {
            return;
        }
        for &(m, n, k) in &[(1, 1, 1), (13, 31, 5), (29, 70, 1030), (130, 96, 100), (60, 1600, 2100)] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let want = reference(m, n, k, &a, (k, 1), &b, (1, k));
            let packed = unsafe { PackedB::new(k, n, MatRef { ptr: b.as_ptr(), rs: 1, cs: k as isize }) };
            let (bias, res_rs) = (values(n, 3), n + 5);
            let residual = values(m * res_rs, 4);
            for (with_bias, with_res) in [(false, false), (true, false), (false, true), (true, true)] {
                let addend = Addend { row: with_bias.then_some(bias.as_ptr()), matrix: with_res.then_some((residual.as_ptr(), res_rs)) };
                for threads in [1, 2, 3] {
                    let mut dst = vec![f32::NAN; m * n];
                    let ar = MatRef { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
                    unsafe { gemm_packed_plus(m, dst.as_mut_ptr(), n, addend, None, ar, &packed, 0.5, threads) };
                    for i in 0..m {
                        for j in 0..n {
                            let mut w = 0.5 * want[i * n + j];
                            w += if with_bias { bias[j] as f64 } else { 0.0 } + if with_res { residual[i * res_rs + j] as f64 } else { 0.0 };
                            let got = dst[i * n + j] as f64;
                            assert!((got - w).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()), "{m}x{n}x{k} t{threads} bias {with_bias} residual {with_res} ({i},{j}): {got} vs {w}");
                        }
                    }
                }
            }
        }
    }

    /// Products that share their packed b among threads, started from inside a parallel region
    /// that keeps every pool thread busy (two at once, so one finds the shared buffer taken):
    /// each finishes, whether or not its partner thread ever joins, and matches the definition.
    #[test]
    fn shared_b_needs_no_partner() {
        if !cpu_supports() {
            return;
        }
        let (m, n, k) = (200, 300, 700);
        let (a, b) = (values(m * k, 4), values(k * n, 5));
        let want = reference(m, n, k, &a, (k, 1), &b, (n, 1));
        let outs: Vec<std::sync::Mutex<Vec<f32>>> = (0..4).map(|_| std::sync::Mutex::new(vec![0.0f32; m * n])).collect();
        parallel::for_each_chunk(4, 4, |s, e| {
            for out in &outs[s..e] {
                let mut out = out.lock().unwrap();
                let (ar, br) = (MatRef { ptr: a.as_ptr(), rs: k as isize, cs: 1 }, MatRef { ptr: b.as_ptr(), rs: n as isize, cs: 1 });
                unsafe { gemm(m, n, k, out.as_mut_ptr(), n, false, ar, br, 1.0, 2) };
            }
        });
        for out in outs {
            let out = out.into_inner().unwrap();
            for (i, (&got, &w)) in out.iter().zip(&want).enumerate() {
                assert!((got as f64 - w).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()), "element {i}: {got} vs {w}");
            }
        }
    }

    /// The in-register transpose against its definition, at row strides wider than 16.
    #[test]
    fn transposes_blocks() {
        if !cpu_supports() {
            return;
        }
        let src = values(16 * 20, 3);
        for (rows, cols) in [(16, 16), (16, 14), (5, 16), (3, 7)] {
            let mut dst = vec![0.5f32; 16 * 24];
            unsafe { transpose_block(src.as_ptr(), 20, rows, cols, dst.as_mut_ptr(), 24) };
            for q in 0..16 {
                for j in 0..24 {
                    let want = if q < cols && j < rows { src[j * 20 + q] } else { 0.5 };
                    assert_eq!(dst[q * 24 + j], want, "{rows}x{cols} ({q},{j})");
                }
            }
        }
    }

    /// Equal-height row tiles cover the range once, none taller than MR.
    #[test]
    fn row_tiles_cover_the_range() {
        for len in [1usize, 13, 14, 15, 28, 29, 1024] {
            let rows = 5..5 + len;
            let tiles = len.div_ceil(MR);
            let mut next = rows.start;
            for t in 0..tiles {
                let (start, height) = row_tile(&rows, tiles, t);
                assert!(start == next && (1..=MR).contains(&height), "{len}: tile {t} at {start} height {height}");
                next += height;
            }
            assert_eq!(next, rows.end);
        }
    }

    #[test]
    fn empty_k_zeroes_or_keeps() {
        if !cpu_supports() {
            return;
        }
        let mut dst = vec![3.0f32; 6];
        let none = MatRef { ptr: std::ptr::null(), rs: 0, cs: 0 };
        unsafe { gemm(2, 3, 0, dst.as_mut_ptr(), 3, true, none, none, 1.0, 2) };
        assert_eq!(dst, vec![3.0; 6]);
        unsafe { gemm(2, 3, 0, dst.as_mut_ptr(), 3, false, none, none, 1.0, 2) };
        assert_eq!(dst, vec![0.0; 6]);
    }
}
