//! Depthwise convolutions: every output channel reads a single input channel (`channels / groups
//! == 1`, any channel multiplier). im2col + GEMM fits them badly: the GEMM's inner dimension is
//! only kh·kw (9 for 3x3), so it streams 9-long panels, and im2col copies the image kh·kw times to
//! get them (issue 18 measured depthwise at ~5 GFLOP/s per core). The kernels also compute a
//! one-channel image with many filters correctly, but `applies` leaves that case to the GEMM.
//!
//! Here each plane is convolved directly. A zero-padded copy of the input plane (`PaddedPlane`)
//! sits in L1, and a block of ROWS output rows x LANES columns accumulates every kernel tap in
//! registers, with no bound test in the loop. The three passes share that one gather kernel:
//! - forward:         y  = Σ_taps w · x, x padded by the convolution's padding;
//! - input gradient:  dx = Σ_taps flip(w) · dy, dy spread out by the stride (zeros between its
//!   values) and shifted, which turns the transposed convolution's scatter into a gather;
//! - weight gradient: dw[tap] = Σ dy · (x shifted by the tap), summed over the batch.

use crate::params::conv::Geometry;
use crate::error::Result;
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::storage::try_zeroed;

/// Output columns computed together, one per vector lane (a full AVX-512 register of f32).
const LANES: usize = 16;
/// Output rows computed together: ROWS independent accumulators hide the FMA latency.
const ROWS: usize = 4;

/// Whether these kernels serve this convolution: one input channel per group, in more than one
/// group. A one-channel image with many filters (conv2d-a) stays on im2col + GEMM: there the
/// GEMM shares each loaded input value across all filters, and this kernel measured half its
/// GFLOP per CPU-second (15.8 vs 30.5 forward, bench/conv-passes.mjs, loaded machine).
pub(crate) fn applies(g: &Geometry) -> bool {
    g.group_channels() == 1 && g.groups > 1
}

/// `a·b + c`, fused where the CPU has FMA. Chosen per call: f32::mul_add without hardware FMA
/// is a slow library call (the portable and WASM builds), so those add a plain product.
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}
struct Fused;
struct Unfused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}
impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Runs `$f::<Fused>` where `multiversion!` will pick an FMA build, `$f::<Unfused>` elsewhere.
macro_rules! with_mul_add {
    ($f:ident($($arg:expr),*)) => {
        match crate::simd::level() {
            crate::simd::SimdLevel::Scalar => $f::<Unfused>($($arg),*),
            _ => $f::<Fused>($($arg),*),
        }
    };
}

/// One plane's gather: out[y, x] = Σ_{ki, kj} taps[ki·kw + kj] · P[y·sh + ki·dh, x·sw + kj·dw],
/// for out_rows x out_cols outputs (rounded up to whole blocks; the extra ones are discarded).
#[derive(Clone, Copy, Debug)]
struct Gather {
    out_rows: usize,
    out_cols: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
}

impl Gather {
    fn rows(&self) -> usize {
        self.out_rows.div_ceil(ROWS) * ROWS
    }
    fn cols(&self) -> usize {
        self.out_cols.div_ceil(LANES) * LANES
    }
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
    /// Rows of P the rounded-up block of outputs reads.
    fn plane_rows(&self) -> usize {
        (self.rows() - 1) * self.stride[0] + (self.kernel[0] - 1) * self.dilation[0] + 1
    }
    /// Floats per phase of a P row (see PaddedPlane).
    fn phase_width(&self) -> usize {
        self.cols() + (self.kernel[1] - 1) * self.dilation[1] / self.stride[1]
    }
    fn plane_len(&self) -> usize {
        self.plane_rows() * self.stride[1] * self.phase_width()
    }
    fn out_len(&self) -> usize {
        self.rows() * self.cols()
    }
}

/// Where a source plane's values go in P: value (i, j) at padded (offset + i·spacing) per axis;
/// positions that fall outside P are never read, so they are dropped.
struct Placement {
    spacing: [usize; 2],
    offset: [isize; 2],
}

/// Fills `p` with the padded plane the gather `g` reads: zeros, with `src` ([h, w]) placed. A
/// padded column c is stored in phase c % sw at c / sw (row r, phase q starting at
/// (r·sw + q)·phase_width), so LANES adjacent outputs of a strided convolution read LANES
/// adjacent floats and the gather needs no strided loads.
fn fill_plane(g: &Gather, src: &[f32], [h, w]: [usize; 2], at: &Placement, p: &mut [f32]) {
    p.fill(0.0);
    let (sw, pw, rows) = (g.stride[1], g.phase_width(), g.plane_rows() as isize);
    let width = (sw * pw) as isize;
    for i in 0..h {
        let r = at.offset[0] + (i * at.spacing[0]) as isize;
        if r < 0 || r >= rows {
            continue;
        }
        let (dst, line) = (&mut p[r as usize * sw * pw..(r as usize + 1) * sw * pw], &src[i * w..(i + 1) * w]);
        if sw == 1 && at.spacing[1] == 1 {
            // The common case as one copy: the columns of the source row that land inside P.
            let first = (-at.offset[1]).max(0) as usize;
            let last = ((width - at.offset[1]).max(0) as usize).min(w);
            if first < last {
                let c = (at.offset[1] + first as isize) as usize;
                dst[c..c + last - first].copy_from_slice(&line[first..last]);
            }
            continue;
        }
        if sw == 1 {
            // A spread-out source row (the input gradient's dy): every spacing-th column.
            for (j, &v) in line.iter().enumerate() {
                let c = at.offset[1] + (j * at.spacing[1]) as isize;
                if (0..width).contains(&c) {
                    dst[c as usize] = v;
                }
            }
            continue;
        }
        // A strided gather reads an unspread source (the forward's x): phase q holds padded
        // columns q, q + sw, ..., so source column k·sw + q - offset. (No division per value:
        // that measured slower than the convolution itself at stride 2.)
        debug_assert_eq!(at.spacing[1], 1);
        for (q, phase) in dst.chunks_exact_mut(pw).enumerate() {
            for (k, v) in phase.iter_mut().enumerate() {
                let j = (k * sw + q) as isize - at.offset[1];
                if (0..w as isize).contains(&j) {
                    *v = line[j as usize];
                }
            }
        }
    }
}

impl Gather {
    /// Where tap (ki, kj) of output (0, 0) reads in P, in taps' order; output (y, x) reads
    /// `x + y·row_step()` further on.
    fn tap_offsets(&self) -> Vec<usize> {
        let ([kh, kw], [dh, dw], sw, pw) = (self.kernel, self.dilation, self.stride[1], self.phase_width());
        let mut offsets = Vec::with_capacity(self.taps());
        for ki in 0..kh {
            for kj in 0..kw {
                let t = kj * dw;
                offsets.push(ki * dh * sw * pw + (t % sw) * pw + t / sw);
            }
        }
        offsets
    }
    /// Floats from one output row's reads to the next's: `stride` rows of P.
    fn row_step(&self) -> usize {
        self.stride[0] * self.stride[1] * self.phase_width()
    }
}

/// acc += w · v[at..at + LANES], lane by lane (one vector instruction when LANES fills a
/// register).
///
/// SAFETY: at + LANES <= v.len(). The kernels check their largest index once up front: a bound
/// check per load measured about a third of the kernel's instructions.
#[inline(always)]
unsafe fn mul_add_lanes<M: MulAdd>(acc: &mut [f32; LANES], w: f32, v: &[f32], at: usize) {
    let v = &*(v.as_ptr().add(at) as *const [f32; LANES]);
    for l in 0..LANES {
        acc[l] = M::mul_add(w, v[l], acc[l]);
    }
}

/// acc += a[i..i + LANES] · b[j..j + LANES], lane by lane.
///
/// SAFETY: i + LANES <= a.len() and j + LANES <= b.len().
#[inline(always)]
unsafe fn mul_add_pairs<M: MulAdd>(acc: &mut [f32; LANES], a: &[f32], i: usize, b: &[f32], j: usize) {
    let (a, b) = (&*(a.as_ptr().add(i) as *const [f32; LANES]), &*(b.as_ptr().add(j) as *const [f32; LANES]));
    for l in 0..LANES {
        acc[l] = M::mul_add(a[l], b[l], acc[l]);
    }
}

/// Checks that every LANES-wide read of P by the gather `g` at `offsets` is inside `p`.
fn check_reads(g: &Gather, p: &[f32], offsets: &[usize]) {
    let last = (g.rows() - 1) * g.row_step() + g.cols() - LANES + offsets.iter().max().copied().unwrap_or(0);
    assert!(last + LANES <= p.len(), "depthwise conv: padded plane too small");
}

// The four row accumulators are separate variables, not an array indexed in a loop: that keeps
// them in registers (an indexed [[f32; 16]; 4] was spilled and copied with memcpy/memset, 1.7
// GFLOP/s). ROWS is therefore written out as 4 here.
multiversion! {
    /// out ([g.rows(), g.cols()]) = the gather of `p` (filled for `g`) with `taps` [kh·kw];
    /// `offsets` = g.tap_offsets().
    fn gather_plane<M: MulAdd>(g: &Gather, p: &[f32], taps: &[f32], offsets: &[usize], out: &mut [f32]) {
        let (cols, step) = (g.cols(), g.row_step());
        check_reads(g, p, offsets);
        assert!(taps.len() == offsets.len() && out.len() >= g.out_len());
        for y0 in (0..g.rows()).step_by(ROWS) {
            for x0 in (0..cols).step_by(LANES) {
                let base = y0 * step + x0;
                let (mut a0, mut a1, mut a2, mut a3) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
                for (&w, &offset) in taps.iter().zip(offsets) {
                    let at = base + offset;
                    // SAFETY: check_reads covers the last row and column block.
                    unsafe {
                        mul_add_lanes::<M>(&mut a0, w, p, at);
                        mul_add_lanes::<M>(&mut a1, w, p, at + step);
                        mul_add_lanes::<M>(&mut a2, w, p, at + 2 * step);
                        mul_add_lanes::<M>(&mut a3, w, p, at + 3 * step);
                    }
                }
                for (r, a) in [a0, a1, a2, a3].iter().enumerate() {
                    out[(y0 + r) * cols + x0..][..LANES].copy_from_slice(a);
                }
            }
        }
    }
}

multiversion! {
    /// taps[ki·kw + kj] += Σ_{y, x} dy[y, x] · P[y·sh + ki·dh, x·sw + kj·dw]: the weight gradient
    /// of one plane. `dy` is [g.rows(), g.cols()] with zeros past the real outputs.
    fn tap_products<M: MulAdd>(g: &Gather, p: &[f32], dy: &[f32], offsets: &[usize], taps: &mut [f32]) {
        let (cols, step) = (g.cols(), g.row_step());
        check_reads(g, p, offsets);
        assert!(dy.len() >= g.out_len());
        for (tap, &offset) in taps.iter_mut().zip(offsets) {
            let (mut a0, mut a1, mut a2, mut a3) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
            for y0 in (0..g.rows()).step_by(ROWS) {
                for x0 in (0..cols).step_by(LANES) {
                    let (at, d) = (y0 * step + x0 + offset, y0 * cols + x0);
                    // SAFETY: check_reads covers P; dy has g.rows() x cols floats.
                    unsafe {
                        mul_add_pairs::<M>(&mut a0, dy, d, p, at);
                        mul_add_pairs::<M>(&mut a1, dy, d + cols, p, at + step);
                        mul_add_pairs::<M>(&mut a2, dy, d + 2 * cols, p, at + 2 * step);
                        mul_add_pairs::<M>(&mut a3, dy, d + 3 * cols, p, at + 3 * step);
                    }
                }
            }
            *tap += [a0, a1, a2, a3].iter().flatten().sum::<f32>();
        }
    }
}

/// The gather of the forward pass: x padded by the convolution's padding.
fn forward_gather(g: &Geometry) -> (Gather, Placement) {
    let gather = Gather { out_rows: g.out_height, out_cols: g.out_width, kernel: g.kernel, stride: g.stride, dilation: g.dilation };
    (gather, Placement { spacing: [1, 1], offset: [g.pad[0] as isize, g.pad[1] as isize] })
}

/// Output channels per input channel (the channel multiplier).
fn multiplier(g: &Geometry) -> usize {
    g.out_channels / g.channels
}

/// Splits `units` over the threads; `work(start, end)` runs on contiguous pieces.
fn run(units: usize, elements: usize, work: impl Fn(usize, usize) + Sync + Send) {
    parallel::for_each_chunk(units, parallel::chunk_count(elements).min(units), work);
}

/// Forward [batch, out_channels, out_height, out_width]. Unit (n, c) convolves input plane c of
/// image n with its `multiplier` filters, so the padded copy is made once per input plane.
pub(crate) fn forward(g: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let mut out = try_zeroed::<f32>(op, g.batch * g.out_image_len())?;
    let (gather, at) = forward_gather(g);
    let (mult, taps, plane, in_plane) = (multiplier(g), gather.taps(), g.out_plane(), g.height * g.width);
    let offsets = gather.tap_offsets();
    let dst = SendPtr(out.as_mut_ptr());
    run(g.batch * g.channels, out.len(), |start, end| {
        let (mut p, mut block) = (vec![0.0; gather.plane_len()], vec![0.0; gather.out_len()]);
        for unit in start..end {
            fill_plane(&gather, &input[unit * in_plane..(unit + 1) * in_plane], [g.height, g.width], &at, &mut p);
            let (n, c) = (unit / g.channels, unit % g.channels);
            for o in c * mult..(c + 1) * mult {
                with_mul_add!(gather_plane(&gather, &p, &weight[o * taps..(o + 1) * taps], &offsets, &mut block));
                // SAFETY: output plane (n, o) belongs to this unit alone.
                let y = unsafe { std::slice::from_raw_parts_mut(dst.get().add((n * g.out_channels + o) * plane), plane) };
                let b = bias.map_or(0.0, |b| b[o]);
                for (row, src) in y.chunks_exact_mut(g.out_width).zip(block.chunks_exact(gather.cols())) {
                    for (v, s) in row.iter_mut().zip(src) {
                        *v = s + b;
                    }
                }
            }
        }
    });
    Ok(out)
}

/// Input gradient [batch, channels, height, width] (+ `init` per channel: a conv-transpose's
/// bias). Input row ih is read by output row oh through kernel row ki when
/// oh·stride = ih + pad - ki·dilation; placing dy[oh] at row oh·stride + (kh-1)·dilation - pad
/// makes that a gather at row ih + (kh-1-ki)·dilation: a stride-1 convolution with the kernel
/// flipped (and likewise for columns).
pub(crate) fn input_grad(g: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let mut dx = try_zeroed::<f32>(op, g.batch * g.image_len())?;
    let gather = Gather { out_rows: g.height, out_cols: g.width, kernel: g.kernel, stride: [1, 1], dilation: g.dilation };
    let extent = |axis: usize| ((g.kernel[axis] - 1) * g.dilation[axis]) as isize - g.pad[axis] as isize;
    let at = Placement { spacing: g.stride, offset: [extent(0), extent(1)] };
    let (mult, taps, plane, in_plane) = (multiplier(g), gather.taps(), g.out_plane(), g.height * g.width);
    let offsets = gather.tap_offsets();
    let dst = SendPtr(dx.as_mut_ptr());
    run(g.batch * g.channels, dx.len(), |start, end| {
        let (mut p, mut block, mut flipped) = (vec![0.0; gather.plane_len()], vec![0.0; gather.out_len()], vec![0.0; taps]);
        for unit in start..end {
            let (n, c) = (unit / g.channels, unit % g.channels);
            // SAFETY: input plane (n, c) belongs to this unit alone.
            let x = unsafe { std::slice::from_raw_parts_mut(dst.get().add(unit * in_plane), in_plane) };
            x.fill(init.map_or(0.0, |b| b[c]));
            for o in c * mult..(c + 1) * mult {
                for (f, w) in flipped.iter_mut().zip(weight[o * taps..(o + 1) * taps].iter().rev()) {
                    *f = *w;
                }
                let dy = &grad_out[(n * g.out_channels + o) * plane..][..plane];
                fill_plane(&gather, dy, [g.out_height, g.out_width], &at, &mut p);
                with_mul_add!(gather_plane(&gather, &p, &flipped, &offsets, &mut block));
                for (row, src) in x.chunks_exact_mut(g.width).zip(block.chunks_exact(gather.cols())) {
                    for (v, s) in row.iter_mut().zip(src) {
                        *v += s;
                    }
                }
            }
        }
    });
    Ok(dx)
}

/// Weight gradient [out_channels, 1, kh, kw], summed over the batch. Unit o owns filter o, so
/// threads never add into the same memory.
pub(crate) fn weight_grad(g: &Geometry, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let (gather, at) = forward_gather(g);
    let (mult, taps, plane, in_plane) = (multiplier(g), gather.taps(), g.out_plane(), g.height * g.width);
    let offsets = gather.tap_offsets();
    let mut dw = try_zeroed::<f32>(op, g.out_channels * taps)?;
    let dst = SendPtr(dw.as_mut_ptr());
    run(g.out_channels, g.batch * g.out_image_len(), |start, end| {
        let (mut p, mut dy) = (vec![0.0; gather.plane_len()], vec![0.0; gather.out_len()]);
        for o in start..end {
            // SAFETY: filter o belongs to this unit alone.
            let filter = unsafe { std::slice::from_raw_parts_mut(dst.get().add(o * taps), taps) };
            for n in 0..g.batch {
                let c = o / mult;
                fill_plane(&gather, &input[(n * g.channels + c) * in_plane..][..in_plane], [g.height, g.width], &at, &mut p);
                // dy's plane, widened to whole blocks with zeros, so the padding adds nothing.
                let src = &grad_out[(n * g.out_channels + o) * plane..][..plane];
                for (row, s) in dy.chunks_exact_mut(gather.cols()).zip(src.chunks_exact(g.out_width)) {
                    row[..g.out_width].copy_from_slice(s);
                }
                with_mul_add!(tap_products(&gather, &p, &dy, &offsets, filter));
            }
        }
    });
    Ok(dw)
}

#[cfg(test)]
mod tests {
    //! Each pass against the im2col + GEMM engine on odd shapes: strides, asymmetric padding,
    //! dilation, channel multipliers, batch 1, widths that are not whole vector blocks.
    use super::super::engine;
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn geometry(batch: usize, channels: usize, mult: usize, [h, w]: [usize; 2], kernel: [usize; 2], stride: [usize; 2], pad: [usize; 4], dilation: [usize; 2]) -> Geometry {
        let size = |len: usize, axis: usize, before: usize, after: usize| (len + before + after - (kernel[axis] - 1) * dilation[axis] - 1) / stride[axis] + 1;
        Geometry {
            batch,
            channels,
            height: h,
            width: w,
            out_channels: channels * mult,
            out_height: size(h, 0, pad[0], pad[1]),
            out_width: size(w, 1, pad[2], pad[3]),
            kernel,
            stride,
            pad: [pad[0], pad[2]],
            dilation,
            groups: channels,
        }
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: element {i}: {a} vs {b}");
        }
    }

    #[test]
    fn every_pass_matches_im2col_gemm() {
        let cases = [
            geometry(2, 3, 1, [9, 21], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
            geometry(1, 5, 2, [8, 7], [3, 3], [2, 2], [1, 0, 1, 1], [1, 1]),
            geometry(2, 4, 1, [11, 17], [3, 2], [1, 2], [2, 1, 0, 3], [2, 1]),
            geometry(3, 1, 6, [13, 13], [5, 5], [1, 1], [2, 2, 2, 2], [1, 1]),
            geometry(1, 2, 3, [6, 40], [1, 3], [3, 1], [0, 0, 4, 4], [1, 3]),
            geometry(2, 17, 1, [5, 5], [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),
            geometry(1, 1, 32, [28, 28], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
        ];
        for (i, g) in cases.iter().enumerate() {
            let x = values(g.batch * g.image_len(), 3 * i as u32);
            let w = values(g.weight_len(), 3 * i as u32 + 1);
            let dy = values(g.batch * g.out_image_len(), 3 * i as u32 + 2);
            let bias = values(g.out_channels, 7);
            let init = values(g.channels, 8);
            let what = |pass: &str| format!("{pass} of {g:?}");
            let want = engine::forward(g, &x, &engine::Dense(&w), Some(&bias), "test").unwrap();
            assert_close(&forward(g, &x, &w, Some(&bias), "test").unwrap(), &want, &what("forward"));
            let want = engine::input_grad(g, &dy, &w, Some(&init), "test").unwrap();
            assert_close(&input_grad(g, &dy, &w, Some(&init), "test").unwrap(), &want, &what("input_grad"));
            let want = engine::weight_grad(g, &x, &dy, "test").unwrap();
            assert_close(&weight_grad(g, &x, &dy, "test").unwrap(), &want, &what("weight_grad"));
        }
    }

    #[test]
    fn portable_build_matches_fma_build() {
        let g = geometry(2, 3, 2, [10, 19], [3, 3], [2, 1], [1, 1, 1, 1], [1, 2]);
        let (x, w) = (values(g.batch * g.image_len(), 1), values(g.weight_len(), 2));
        let fast = forward(&g, &x, &w, None, "test").unwrap();
        let before = crate::simd::level();
        crate::simd::set_level(crate::simd::SimdLevel::Scalar);
        let portable = forward(&g, &x, &w, None, "test").unwrap();
        crate::simd::set_level(before);
        assert_close(&portable, &fast, "portable forward");
    }
}
