//! NCHW <-> NCHWc: the reorders at the layout boundaries of every imported graph (the ONNX
//! layout pass puts one before the first blocked convolution and one after the last). Each unit
//! is (image, block, run of SEGMENT pixels); with AVX-512 a 16-channel x 16-pixel square moves as
//! 16 vector loads, an in-register 16x16 transpose and 16 stores, instead of 256 scalar moves with
//! a 64-byte stride on one side. Large reorders run on the thread pool (parallel::chunk_count).

use super::{blocks, BLOCK};

/// Pixels of one unit of work: a multiple of 16, small enough that a 3-channel 224x224 image
/// (one block) still splits over the threads.
const SEGMENT: usize = 1024;

/// Which way a reorder goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToBlocked,
    FromBlocked,
}

/// super::to_blocked's contract.
pub(super) fn to_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    reorder(Direction::ToBlocked, x, batch, channels, plane, y);
}

/// super::from_blocked's contract.
pub(super) fn from_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    reorder(Direction::FromBlocked, x, batch, channels, plane, y);
}

fn reorder(direction: Direction, src: &[f32], batch: usize, channels: usize, plane: usize, dst: &mut [f32]) {
    let cb = blocks(channels);
    let segments = plane.div_ceil(SEGMENT);
    let units = batch * cb * segments;
    let chunks = crate::parallel::chunk_count(batch * cb * plane * BLOCK);
    let (src, dst) = (crate::parallel::SendPtr(src.as_ptr() as *mut f32), crate::parallel::SendPtr(dst.as_mut_ptr()));
    crate::parallel::for_each_chunk(units, chunks, |start, end| {
        for unit in start..end {
            let (image_block, segment) = (unit / segments, unit % segments);
            let (n, b) = (image_block / cb, image_block % cb);
            let run = Run {
                // NCHW: channel b·16 of image n, pixel 0; NCHWc: block b of image n.
                flat: (n * channels + b * BLOCK) * plane,
                blocked: image_block * plane * BLOCK,
                lanes: BLOCK.min(channels - b * BLOCK),
                plane,
                pixels: segment * SEGMENT..((segment + 1) * SEGMENT).min(plane),
            };
            // SAFETY: the callers checked both lengths (blocked_len, batch·channels·plane); each
            // unit writes its own (image, block, pixels) in either layout.
            unsafe {
                let (from, to) = (src.ptr() as *const f32, dst.ptr());
                #[cfg(target_arch = "x86_64")]
                if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
                    avx512::run(direction, from, to, &run);
                    continue;
                }
                portable(direction, from, to, &run);
            }
        }
    });
}

/// One unit: `pixels` of the block whose channels start at `flat` in NCHW (`lanes` of them,
/// `plane` apart) and at `blocked` in NCHWc.
struct Run {
    flat: usize,
    blocked: usize,
    lanes: usize,
    plane: usize,
    pixels: std::ops::Range<usize>,
}

/// SAFETY: src and dst hold the run in their layouts.
unsafe fn portable(direction: Direction, src: *const f32, dst: *mut f32, run: &Run) {
    for p in run.pixels.clone() {
        for lane in 0..BLOCK {
            let blocked = run.blocked + p * BLOCK + lane;
            let flat = run.flat + lane * run.plane + p;
            match direction {
                Direction::ToBlocked => *dst.add(blocked) = if lane < run.lanes { *src.add(flat) } else { 0.0 },
                Direction::FromBlocked if lane < run.lanes => *dst.add(flat) = *src.add(blocked),
                Direction::FromBlocked => {}
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Direction, Run, BLOCK};
    use std::arch::x86_64::*;

    /// SAFETY: AVX-512F; src and dst hold the run in their layouts.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run(direction: Direction, src: *const f32, dst: *mut f32, run: &Run) {
        let mut p = run.pixels.start;
        while p < run.pixels.end {
            let len = BLOCK.min(run.pixels.end - p);
            let mask = if len == BLOCK { !0 } else { ((1u32 << len) - 1) as __mmask16 };
            let mut square = [_mm512_setzero_ps(); BLOCK];
            match direction {
                // Rows of the square: channels (16 pixels each) -> pixels (16 channels each).
                Direction::ToBlocked => {
                    for (lane, row) in square.iter_mut().enumerate().take(run.lanes) {
                        *row = _mm512_maskz_loadu_ps(mask, src.add(run.flat + lane * run.plane + p));
                    }
                    transpose(&mut square);
                    for (j, row) in square.iter().enumerate().take(len) {
                        _mm512_storeu_ps(dst.add(run.blocked + (p + j) * BLOCK), *row);
                    }
                }
                Direction::FromBlocked => {
                    for (j, row) in square.iter_mut().enumerate().take(len) {
                        *row = _mm512_loadu_ps(src.add(run.blocked + (p + j) * BLOCK));
                    }
                    transpose(&mut square);
                    for (lane, row) in square.iter().enumerate().take(run.lanes) {
                        _mm512_mask_storeu_ps(dst.add(run.flat + lane * run.plane + p), mask, *row);
                    }
                }
            }
            p += len;
        }
    }

    /// The 16x16 transpose of `r` (row i, element j -> row j, element i): 32-bit interleaves,
    /// 64-bit interleaves, then two rounds of 128-bit lane shuffles.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transpose(r: &mut [__m512; BLOCK]) {
        let mut t = [_mm512_setzero_ps(); BLOCK];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4i + k], 128-bit lane L: column 4L + k of rows 4i..4i + 4.
        let mut u = [_mm512_setzero_ps(); BLOCK];
        let (lo, hi) = (|a: __m512, b: __m512| _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))), |a: __m512, b: __m512| _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))));
        for i in 0..4 {
            u[4 * i] = lo(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = hi(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = lo(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = hi(t[4 * i + 1], t[4 * i + 3]);
        }
        // Column 4L + k: lane L of u[k], u[4 + k], u[8 + k], u[12 + k].
        for k in 0..4 {
            let ab01 = _mm512_shuffle_f32x4::<0x44>(u[k], u[4 + k]);
            let cd01 = _mm512_shuffle_f32x4::<0x44>(u[8 + k], u[12 + k]);
            let ab23 = _mm512_shuffle_f32x4::<0xEE>(u[k], u[4 + k]);
            let cd23 = _mm512_shuffle_f32x4::<0xEE>(u[8 + k], u[12 + k]);
            r[k] = _mm512_shuffle_f32x4::<0x88>(ab01, cd01);
            r[4 + k] = _mm512_shuffle_f32x4::<0xDD>(ab01, cd01);
            r[8 + k] = _mm512_shuffle_f32x4::<0x88>(ab23, cd23);
            r[12 + k] = _mm512_shuffle_f32x4::<0xDD>(ab23, cd23);
        }
    }
}

/// The pixels of a blocked x [N, Cb, H, W, 16] that a 1x1 unpadded convolution of `stride` reads,
/// (oh·s0, ow·s1) for the `out` [OH, OW] plane, gathered into y [N, Cb, OH, OW, 16]: one vector
/// per pixel.
pub(super) fn subsample(x: &[f32], batch: usize, cb: usize, size: [usize; 2], stride: [usize; 2], out: [usize; 2], y: &mut [f32]) {
    assert!((out[0] - 1) * stride[0] < size[0] && (out[1] - 1) * stride[1] < size[1], "nchwc::subsample: the output reads outside the input");
    for_each_plane(x, batch * cb, size[0] * size[1], y, out[0] * out[1], |src, dst| {
        for (oh, row) in dst.chunks_exact_mut(out[1] * BLOCK).enumerate() {
            let src_row = &src[oh * stride[0] * size[1] * BLOCK..];
            for (ow, pixel) in row.chunks_exact_mut(BLOCK).enumerate() {
                pixel.copy_from_slice(&src_row[ow * stride[1] * BLOCK..][..BLOCK]);
            }
        }
    });
}

/// A blocked x [N, Cb, H, W, 16] with `pad` zero pixels added on each side of each axis:
/// y [N, Cb, H + 2·pad[0], W + 2·pad[1], 16].
pub(super) fn pad(x: &[f32], batch: usize, cb: usize, size: [usize; 2], pad: [usize; 2], y: &mut [f32]) {
    let padded = [size[0] + 2 * pad[0], size[1] + 2 * pad[1]];
    for_each_plane(x, batch * cb, size[0] * size[1], y, padded[0] * padded[1], |src, dst| {
        for (r, row) in dst.chunks_exact_mut(padded[1] * BLOCK).enumerate() {
            match r.checked_sub(pad[0]).filter(|&ih| ih < size[0]) {
                Some(ih) => {
                    let (left, rest) = row.split_at_mut(pad[1] * BLOCK);
                    let (middle, right) = rest.split_at_mut(size[1] * BLOCK);
                    left.fill(0.0);
                    middle.copy_from_slice(&src[ih * size[1] * BLOCK..][..size[1] * BLOCK]);
                    right.fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
    });
}

/// `each(x's plane, y's plane)` for the `planes` (image, block) planes of x (`in_plane` pixels
/// each) and y (`out_plane` pixels each), spread over the threads as the reorders are.
fn for_each_plane(x: &[f32], planes: usize, in_plane: usize, y: &mut [f32], out_plane: usize, each: impl Fn(&[f32], &mut [f32]) + Sync + Send) {
    assert!(x.len() == planes * in_plane * BLOCK && y.len() == planes * out_plane * BLOCK, "nchwc: lengths do not match the planes");
    let chunks = crate::parallel::chunk_count(y.len()).min(planes);
    let dst = crate::parallel::SendPtr(y.as_mut_ptr());
    crate::parallel::for_each_chunk(planes, chunks, |start, end| {
        for plane in start..end {
            // SAFETY: plane `plane` of y (out_plane·16 floats inside y, checked above) is this
            // chunk's alone.
            let dst = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(plane * out_plane * BLOCK), out_plane * BLOCK) };
            each(&x[plane * in_plane * BLOCK..][..in_plane * BLOCK], dst);
        }
    });
}
