//! Shapes, strides and strided iteration. Every kernel that accepts views walks memory through
//! `for_each_row`: the innermost dimension is handed to the kernel as a (start, length, stride)
//! run, so the hot loop is a plain slice loop the compiler can vectorize.

use crate::error::{fmt_shape, KilnError, Result};
use crate::parallel;

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Element count of a shape coming from user input, with overflow as an error.
pub fn checked_numel(op: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KilnError::new(op, format!("shape {} has too many elements to address", fmt_shape(shape))))
}

/// Row-major strides of a contiguous tensor.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Resolves a possibly negative axis (`-1` is the last) against `rank`.
pub fn normalize_axis(op: &str, axis: isize, rank: usize) -> Result<usize> {
    // A scalar is treated as rank 1 here so that `softmax(scalar, -1)` means what it says.
    let r = rank.max(1) as isize;
    if axis < -r || axis >= r {
        return Err(KilnError::new(op, format!("axis {axis} is out of range for a tensor of rank {rank}")));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Resolves a list of axes; an empty list means "all axes". Duplicates are an error.
pub fn normalize_axes(op: &str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let r = rank as isize;
        if a < -r || a >= r {
            return Err(KilnError::new(op, format!("axis {a} is out of range for a tensor of rank {rank}")));
        }
        let a = if a < 0 { (a + r) as usize } else { a as usize };
        if out.contains(&a) {
            return Err(KilnError::new(op, format!("axis {a} appears twice in {axes:?}")));
        }
        out.push(a);
    }
    out.sort_unstable();
    Ok(out)
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(KilnError::new(
                op,
                format!("shapes {} and {} cannot be broadcast together (dimension {i}: {da} vs {db})", fmt_shape(a), fmt_shape(b)),
            ));
        };
    }
    Ok(out)
}

/// Strides that read a tensor of `shape`/`strides` as if it had the (broadcast) shape `target`:
/// broadcast dimensions get stride 0.
pub fn broadcast_strides(shape: &[usize], strides: &[usize], target: &[usize]) -> Vec<usize> {
    let offset = target.len() - shape.len();
    (0..target.len())
        .map(|i| if i < offset || shape[i - offset] == 1 && target[i] != 1 { 0 } else { strides[i - offset] })
        .collect()
}

/// Whether a view walks its buffer in row-major order with no gaps (size-1 dims may have any
/// stride): what a kernel that reads a plain slice needs.
pub fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] != 1 && strides[i] != expected {
            return false;
        }
        expected *= shape[i];
    }
    true
}

/// One past the largest buffer index a view reads (`offset` when it has no elements): how much
/// of a buffer the view needs.
pub fn view_end(shape: &[usize], strides: &[usize], offset: usize) -> usize {
    if shape.contains(&0) {
        return offset;
    }
    offset + 1 + shape.iter().zip(strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>()
}

/// Shape and strides of a view with its dimensions reordered (`perm[i]` is the source of output
/// dimension i), or an error naming `op` when `perm` is not a permutation of the dimensions.
pub fn permuted(op: &str, shape: &[usize], strides: &[usize], perm: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut seen = vec![false; shape.len()];
    if perm.len() != shape.len() || perm.iter().any(|&p| p >= shape.len() || std::mem::replace(&mut seen[p], true)) {
        return Err(KilnError::new(op, format!("perm {perm:?} is not a permutation of the dimensions of shape {}", fmt_shape(shape))));
    }
    Ok((perm.iter().map(|&p| shape[p]).collect(), perm.iter().map(|&p| strides[p]).collect()))
}

/// Shape and strides of a view with a size-1 dimension inserted at `axis` (0..=rank); its stride
/// is the one a contiguous tensor would have there, so contiguity is preserved.
pub fn unsqueezed(shape: &[usize], strides: &[usize], axis: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut shape_out, mut strides_out) = (shape.to_vec(), strides.to_vec());
    let stride = if axis < shape.len() { strides[axis] * shape[axis] } else { 1 };
    shape_out.insert(axis, 1);
    strides_out.insert(axis, stride);
    (shape_out, strides_out)
}

/// Merges adjacent dimensions that every operand walks contiguously, so the innermost run is as
/// long as possible. Size-1 dimensions are dropped.
pub fn coalesce<const N: usize>(shape: &[usize], strides: [&[usize]; N]) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        if let Some(&last) = out_shape.last() {
            let mergeable = (0..N).all(|k| *out_strides[k].last().unwrap() == strides[k][d] * shape[d]);
            if mergeable {
                *out_shape.last_mut().unwrap() = last * shape[d];
                for k in 0..N {
                    *out_strides[k].last_mut().unwrap() = strides[k][d];
                }
                continue;
            }
        }
        out_shape.push(shape[d]);
        for k in 0..N {
            out_strides[k].push(strides[k][d]);
        }
    }
    (out_shape, out_strides)
}

/// One innermost run handed to a kernel: start offsets of each operand, run length, and each
/// operand's stride along the run.
pub type Row<const N: usize> = ([usize; N], usize, [usize; N]);

/// Calls `f` for every innermost run of a (coalesced) iteration space, rows `start..end`.
fn rows_in_range<const N: usize>(
    shape: &[usize],
    strides: &[Vec<usize>; N],
    base: [usize; N],
    start: usize,
    end: usize,
    f: &mut impl FnMut(Row<N>),
) {
    let rank = shape.len();
    if rank == 0 {
        if start == 0 && end > 0 {
            f((base, 1, [0; N]));
        }
        return;
    }
    let inner_len = shape[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|k| strides[k][rank - 1]);
    let outer = &shape[..rank - 1];
    // Multi-index of row `start`.
    let mut index = vec![0usize; outer.len()];
    let mut rem = start;
    for d in (0..outer.len()).rev() {
        index[d] = rem % outer[d];
        rem /= outer[d];
    }
    let mut offsets: [usize; N] = std::array::from_fn(|k| base[k] + (0..outer.len()).map(|d| index[d] * strides[k][d]).sum::<usize>());
    for _ in start..end {
        f((offsets, inner_len, inner_strides));
        // Advance the odometer.
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            for k in 0..N {
                offsets[k] += strides[k][d];
            }
            if index[d] < outer[d] {
                break;
            }
            for k in 0..N {
                offsets[k] -= strides[k][d] * outer[d];
            }
            index[d] = 0;
        }
    }
}

/// Iterates every innermost run of `shape` for N operands, in parallel when the work is large.
/// `f` must only touch memory that belongs to its own row (outputs are disjoint per row).
pub fn for_each_row<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    base: [usize; N],
    f: impl Fn(Row<N>) + Sync + Send,
) {
    if numel(shape) == 0 {
        return;
    }
    let (shape, strides) = coalesce(shape, strides);
    let rows: usize = shape.iter().rev().skip(1).product();
    let inner = *shape.last().unwrap_or(&1);
    let total = rows * inner;
    if total < parallel::MIN_PARALLEL_ELEMENTS || rows < 2 {
        rows_in_range(&shape, &strides, base, 0, rows, &mut |r| f(r));
        return;
    }
    let chunks = parallel::chunk_count(total);
    if rows >= chunks {
        parallel::for_each_chunk(rows, chunks, |start, end| {
            rows_in_range(&shape, &strides, base, start, end, &mut |r| f(r));
        });
        return;
    }
    // Few long rows (e.g. one contiguous run): cut each row into segments so every thread works.
    let segments = chunks.div_ceil(rows);
    parallel::for_each_chunk(rows * segments, rows * segments, |item, _| {
        let (row, seg) = (item / segments, item % segments);
        let (lo, hi) = (inner * seg / segments, inner * (seg + 1) / segments);
        rows_in_range(&shape, &strides, base, row, row + 1, &mut |(offsets, _, inner_strides)| {
            let start: [usize; N] = std::array::from_fn(|k| offsets[k] + lo * inner_strides[k]);
            f((start, hi - lo, inner_strides));
        });
    });
}

/// Copies a strided view into a new contiguous Vec.
pub fn gather_strided<T: crate::storage::Element>(op: &str, src: &[T], shape: &[usize], strides: &[usize], offset: usize) -> Result<Vec<T>> {
    let n = checked_numel(op, shape)?;
    let mut out: Vec<T> = crate::storage::try_zeroed(op, n)?;
    let out_strides = contiguous_strides(shape);
    let dst = parallel::SendPtr(out.as_mut_ptr());
    for_each_row(shape, [strides, &out_strides], [offset, 0], |([s, d], len, [ss, _])| {
        // SAFETY: rows write disjoint ranges of `out`, whose capacity is numel(shape).
        let dst = unsafe { std::slice::from_raw_parts_mut(dst.get().add(d), len) };
        if ss == 1 {
            dst.copy_from_slice(&src[s..s + len]);
        } else {
            for (i, o) in dst.iter_mut().enumerate() {
                *o = src[s + i * ss];
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn contiguity_ignores_size_one_strides() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]), "a transpose");
        assert!(!is_contiguous(&[2, 3], &[0, 1]), "a broadcast");
        assert!(is_contiguous(&[], &[]));
    }

    #[test]
    fn view_end_is_one_past_the_last_element_read() {
        assert_eq!(view_end(&[2, 3], &[3, 1], 0), 6);
        assert_eq!(view_end(&[3, 2], &[1, 3], 4), 10, "transposed, at an offset");
        assert_eq!(view_end(&[4, 5], &[0, 1], 2), 7, "broadcast rows share one row");
        assert_eq!(view_end(&[0, 5], &[5, 1], 3), 3, "empty");
        assert_eq!(view_end(&[], &[], 7), 8, "a scalar");
    }

    #[test]
    fn permuted_and_unsqueezed_match_a_strided_walk() {
        let (shape, strides) = permuted("permute", &[2, 3, 4], &[12, 4, 1], &[2, 0, 1]).unwrap();
        assert_eq!((shape, strides), (vec![4, 2, 3], vec![1, 12, 4]));
        for bad in [&[0, 0, 1][..], &[0, 1], &[0, 1, 3]] {
            let e = permuted("permute", &[2, 3, 4], &[12, 4, 1], bad).unwrap_err().to_string();
            assert!(e.starts_with("permute:") && e.contains("[2, 3, 4]"), "{e}");
        }
        assert_eq!(unsqueezed(&[2, 3], &[3, 1], 0), (vec![1, 2, 3], vec![6, 3, 1]));
        assert_eq!(unsqueezed(&[2, 3], &[3, 1], 2), (vec![2, 3, 1], vec![3, 1, 1]));
        let (s, st) = unsqueezed(&[3, 2], &[1, 3], 1);
        assert_eq!((s.as_slice(), st.as_slice()), (&[3, 1, 2][..], &[1, 6, 3][..]));
    }
}
