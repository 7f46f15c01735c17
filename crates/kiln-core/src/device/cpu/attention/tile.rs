//! The building blocks shared by the attention kernels: strided [B, H, T, D] operands, block
//! products through the `gemm` crate, the score block (QKᵀ with scale, padding bias and causal
//! mask), the row kernels of the online softmax, the dropout mask, and task plumbing.

use crate::error::{KilnError, Result};
use crate::math;
use crate::multiversion;
use crate::parallel::{self, RegionLock, SendPtr};
use crate::tensor::Tensor;

/// A float32 [B, H, T, D] operand read in place through its strides: heads split by a permuted
/// view ([B, T, H, D] memory), expanded batch or heads, all without a copy.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 4],
}

impl<'a> Operand<'a> {
    /// The caller has checked that `t` is a rank-4 float32 tensor; `op` names it in the error of
    /// a tensor with no host memory.
    pub fn of(t: &'a Tensor, op: &str) -> Result<Operand<'a>> {
        let s = t.strides();
        Ok(Operand { data: t.cpu_raw::<f32>(op)?, offset: t.offset(), strides: [s[0], s[1], s[2], s[3]] })
    }

    /// Positions t0.. of head (b, h) as a matrix: a row per position, a column per feature.
    pub fn rows(&self, b: usize, h: usize, t0: usize) -> Mat<'a> {
        let [sb, sh, st, sd] = self.strides;
        Mat { data: self.data, offset: self.offset + b * sb + h * sh + t0 * st, row_stride: st, col_stride: sd }
    }
}

/// A strided matrix inside a slice (non-negative strides; a transpose swaps them).
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns filling `data`.
    pub fn dense(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, offset: 0, row_stride: cols, col_stride: 1 }
    }

    pub fn t(self) -> Mat<'a> {
        Mat { row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    fn check(&self, rows: usize, cols: usize) {
        let last = self.offset + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        assert!(last < self.data.len(), "attention: block out of bounds");
    }

    /// Element (r, c); for the small row reductions that do not go through a GEMM.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[self.offset + r * self.row_stride + c * self.col_stride]
    }
}

/// dst[m×n] (rows `dst_stride` apart, columns contiguous) = (accumulate ? dst : 0) + alpha·a·b,
/// with a [m×k] and b [k×n]. Single-threaded: the kernels parallelize over blocks instead. A
/// transposed b of at least 64 x 64 (the scores' Kᵀ, the backward's Vᵀ) goes to Kiln's AVX-512
/// GEMM, which packs it by transposing 16 x 16 blocks in registers, where the `gemm` crate reads
/// it column by column (H·D floats apart when K is a projection split into heads). Measured on
/// the ONNX bench's attention at batch 1 (4 heads of 64, T = 128: 128 x 128 x 64 score blocks;
/// Q, K, V views of one [1, 128, 12, 64] projection), both alternated in one process, 12 rounds,
/// medians, load average 6: 252-254 against 270-271 µs of CPU per call on one thread, 281 against
/// 296 on two; outputs bitwise equal. `gemm_avx512::chooses` leaves such a b to the crate below
/// k = 256 (64 x 64 x 64 blocks were level); here k is the head size, 64.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block(dst: &mut [f32], dst_stride: usize, m: usize, n: usize, k: usize, a: Mat, b: Mat, alpha: f32, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_stride + n, "attention: destination block out of bounds");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_stride..r * dst_stride + n].fill(0.0);
            }
        }
        return;
    }
    a.check(m, k);
    b.check(k, n);
    #[cfg(target_arch = "x86_64")]
    if b.col_stride != 1 && m >= 64 && n >= 64 && crate::device::cpu::gemm_avx512::cpu_supports() {
        use crate::device::cpu::gemm_avx512::{gemm, MatRef};
        // SAFETY: as below; the CPU runs AVX-512 (cpu_supports).
        unsafe {
            let ar = MatRef { ptr: a.data.as_ptr().add(a.offset), rs: a.row_stride as isize, cs: a.col_stride as isize };
            let br = MatRef { ptr: b.data.as_ptr().add(b.offset), rs: b.row_stride as isize, cs: b.col_stride as isize };
            gemm(m, n, k, dst.as_mut_ptr(), dst_stride, accumulate, ar, br, alpha, 1);
        }
        return;
    }
    // SAFETY: the checks above keep every strided read and write inside the slices.
    unsafe {
        crate::device::cpu::gemm_call::gemm_scaled(
            m, n, k,
            dst.as_mut_ptr(), dst_stride as isize, 1, accumulate,
            a.data.as_ptr().add(a.offset), a.row_stride as isize, a.col_stride as isize,
            b.data.as_ptr().add(b.offset), b.row_stride as isize, b.col_stride as isize,
            alpha,
            crate::device::cpu::gemm_call::Parallelism::None,
        );
    }
}

/// The counter-based dropout mask: whether weight (row, key) is kept is a hash of the seed and
/// the global position, so the backward pass regenerates the forward's mask without storing it,
/// and the mask does not depend on the tile sizes.
#[derive(Clone, Copy)]
pub(crate) struct DropoutMask {
    pub seed: u64,
    /// Keep when the hash's top 24 bits are below this: keep probability · 2²⁴.
    pub threshold: u32,
    /// 1 / keep probability: survivors are scaled so the expectation is unchanged.
    pub scale: f32,
}

/// A 32-bit integer mixer (xorshift-multiply rounds): consecutive inputs give unrelated outputs.
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

impl DropoutMask {
    pub fn new(p: f32, seed: u64) -> DropoutMask {
        let keep = 1.0 - p;
        DropoutMask { seed, threshold: (keep as f64 * (1u64 << 24) as f64) as u32, scale: 1.0 / keep }
    }

    /// The per-row key of global row `row` (= (b·H + h)·Tq + i).
    pub fn row_key(&self, row: u64) -> u32 {
        let lo = mix32((self.seed as u32) ^ mix32(row as u32));
        mix32(lo ^ ((self.seed >> 32) as u32) ^ mix32(((row >> 32) as u32) ^ 0x9e37_79b9))
    }

    /// Applies the mask to one row of weights for keys j0.. in place (dropped: 0, kept: ·scale).
    pub fn apply(&self, row: &mut [f32], key: u32, j0: usize) {
        dropout_row(row, key, j0 as u32, self.threshold, self.scale);
    }
}

multiversion! {
    fn dropout_row(row: &mut [f32], key: u32, j0: u32, threshold: u32, scale: f32) {
        for (j, v) in row.iter_mut().enumerate() {
            let h = mix32(key ^ (j0.wrapping_add(j as u32)).wrapping_mul(0x9e37_79b9));
            *v = if (h >> 8) < threshold { *v * scale } else { 0.0 };
        }
    }
}

multiversion! {
    /// The largest value of a row; NaN is skipped here (it propagates through exp later).
    pub(crate) fn row_max(x: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; 16];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l = if v > *l { v } else { *l };
            }
        }
        let mut m = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for l in lanes {
            m = if l > m { l } else { m };
        }
        m
    }
}

/// x ← exp(x − shift) in place (−inf → 0); returns the sum of the new values. x − shift is <= 0
/// (shift is the row maximum, or the row's log-normalizer in the backward pass, which a
/// recomputed score may exceed by a rounding error; fine below 88). Measured: exp was a fifth of
/// the forward kernel's time, hence math::exp_nonpositive, and on AVX-512 exp_avx512's loop with
/// FMAs (a quarter of the kernel at T = 128 before it, docs/onnx-speed-log.md).
pub(crate) fn exp_shifted(x: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
        // SAFETY: the CPU runs AVX-512 (the level is only ever set to what it reports).
        return unsafe { crate::device::cpu::exp_avx512::exp_shifted(x, shift) };
    }
    exp_shifted_portable(x, shift)
}

multiversion! {
    fn exp_shifted_portable(x: &mut [f32], shift: f32) -> f32 {
        let mut lanes = [0.0f32; 16];
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c.iter_mut()) {
                *v = math::exp_nonpositive(*v - shift);
                *l += *v;
            }
        }
        let mut sum = 0.0;
        for v in chunks.into_remainder() {
            *v = math::exp_nonpositive(*v - shift);
            sum += *v;
        }
        sum + lanes.iter().sum::<f32>()
    }
}

multiversion! {
    /// x ← x·factor.
    pub(crate) fn scale_row(x: &mut [f32], factor: f32) {
        for v in x {
            *v *= factor;
        }
    }
}

multiversion! {
    /// The softmax gradient of one row: dp ← p·(dp − delta).
    pub(crate) fn softmax_grad_row(p: &[f32], dp: &mut [f32], delta: f32) {
        for (d, &pv) in dp.iter_mut().zip(p) {
            *d = pv * (*d - delta);
        }
    }
}

/// One attention problem: the operands, the masks and the scale, shared by forward and backward.
pub(crate) struct Problem<'a> {
    pub q: Operand<'a>,
    pub k: Operand<'a>,
    pub v: Operand<'a>,
    /// Additive bias per key, [B, Tk] (0 keeps, −inf masks), from the padding mask.
    pub bias: Option<&'a [f32]>,
    pub causal: bool,
    pub dropout: Option<DropoutMask>,
    pub scale: f32,
    pub batch: usize,
    pub heads: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub dv: usize,
    pub tiles: crate::params::attention::Tiles,
}

impl Problem<'_> {
    /// Keys query i may see: 0..key_limit(i). Causal masks are aligned bottom-right (query i sees
    /// keys up to i + Tk − Tq, as FlashAttention), so the last query always sees every key and a
    /// query over cached keys (Tq = 1) sees them all; with Tq > Tk the first queries see none.
    pub fn key_limit(&self, i: usize) -> usize {
        if !self.causal {
            return self.tk;
        }
        (i as isize + self.tk as isize - self.tq as isize + 1).clamp(0, self.tk as isize) as usize
    }

    /// The first query that sees key j (Tq if none does).
    pub fn first_query(&self, j: usize) -> usize {
        if !self.causal {
            return 0;
        }
        (j as isize - (self.tk as isize - self.tq as isize)).clamp(0, self.tq as isize) as usize
    }

    /// How many tasks a pass over blocks of `block` positions (of `len` per head) has.
    pub fn block_tasks(&self, len: usize, block: usize) -> usize {
        self.batch * self.heads * len.div_ceil(block)
    }

    /// Task `task` of such a pass: (b, h, first position, end position).
    pub fn block_task(&self, task: usize, len: usize, block: usize) -> (usize, usize, usize, usize) {
        let blocks = len.div_ceil(block);
        let (bh, index) = (task / blocks, task % blocks);
        let start = index * block;
        (bh / self.heads, bh % self.heads, start, (start + block).min(len))
    }

    /// The global row number of query i of head (b, h), the dropout mask's row counter.
    pub fn row_id(&self, b: usize, h: usize, i: usize) -> u64 {
        ((b * self.heads + h) * self.tq + i) as u64
    }

    /// s[rows × (j1 − j0)] = scale·Q[i0..i1]·K[j0..j1]ᵀ + bias, −inf where the causal mask hides a key.
    #[allow(clippy::too_many_arguments)]
    pub fn scores(&self, b: usize, h: usize, i0: usize, i1: usize, j0: usize, j1: usize, s: &mut [f32]) {
        let (rows, w) = (i1 - i0, j1 - j0);
        gemm_block(s, w, rows, w, self.d, self.q.rows(b, h, i0), self.k.rows(b, h, j0).t(), self.scale, false);
        for r in 0..rows {
            let row = &mut s[r * w..(r + 1) * w];
            if let Some(bias) = self.bias {
                for (x, &add) in row.iter_mut().zip(&bias[b * self.tk + j0..b * self.tk + j1]) {
                    *x += add;
                }
            }
            let limit = self.key_limit(i0 + r);
            if limit < j1 {
                row[limit.saturating_sub(j0)..].fill(f32::NEG_INFINITY);
            }
        }
    }
}

/// Runs `task(i)` for i in 0..n, in parallel, and returns the first error any task reported.
pub(crate) fn run_tasks(n: usize, task: impl Fn(usize) -> Result<()> + Sync + Send) -> Result<()> {
    let failure: RegionLock<Option<KilnError>> = RegionLock::new(None);
    parallel::for_each_chunk(n, n, |start, end| {
        for i in start..end {
            if let Err(e) = task(i) {
                failure.with(|f| {
                    f.get_or_insert(e);
                });
            }
        }
    });
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A result buffer that parallel tasks fill in disjoint pieces.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut {
    ptr: SendPtr<f32>,
    len: usize,
}

impl SharedOut {
    pub fn new(buf: &mut [f32]) -> SharedOut {
        SharedOut { ptr: SendPtr(buf.as_mut_ptr()), len: buf.len() }
    }

    /// Writes `values` at `offset`.
    ///
    /// SAFETY: no two tasks may write overlapping ranges, and the buffer must outlive the tasks.
    pub unsafe fn write(&self, offset: usize, values: &[f32]) {
        assert!(offset + values.len() <= self.len, "attention: result row out of bounds");
        std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.get().add(offset), values.len());
    }
}
