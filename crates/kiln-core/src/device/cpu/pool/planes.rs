//! The parallel loop over the planes of a pooling (or batch-norm) call, and average pooling's divisors.

use crate::params::pool::{AxisPlan, Plan};
use crate::parallel::{self, SendPtr};

/// Runs `f(plane index, output plane, index plane)` over every plane, in parallel when the work
/// (`work_per_plane` elements touched per plane) is large. `out` holds `out_len` values per plane;
/// `idx` is empty or holds as many. Shared with batch_norm.rs, whose planes are (batch, channel) rows.
pub(crate) fn for_each_plane<T: Send + Copy>(planes: usize, work_per_plane: usize, out_len: usize, out: &mut [T], idx: &mut [i32], f: impl Fn(usize, &mut [T], &mut [i32]) + Sync + Send) {
    let out_ptr = SendPtr(out.as_mut_ptr());
    let idx_ptr = SendPtr(idx.as_mut_ptr());
    let idx_len = if idx.is_empty() { 0 } else { out_len };
    let run = |start: usize, end: usize| {
        for p in start..end {
            // SAFETY: plane p owns out[p*out_len..][..out_len] (and the same range of idx); no
            // other chunk touches it.
            let (o, i) = unsafe {
                (
                    std::slice::from_raw_parts_mut(out_ptr.get().add(p * out_len), out_len),
                    std::slice::from_raw_parts_mut(idx_ptr.get().add(p * idx_len), idx_len),
                )
            };
            f(p, o, i);
        }
    };
    let total = planes.saturating_mul(work_per_plane);
    if total < parallel::MIN_PARALLEL_ELEMENTS {
        run(0, planes);
    } else {
        parallel::for_each_chunk(planes, parallel::chunk_count(total), run);
    }
}

/// 1 / divisor for every output position of a plane.
pub(crate) fn divisors(plan: &Plan, count_include_pad: bool) -> Vec<f32> {
    let count = |ax: &AxisPlan, o: usize| if count_include_pad { ax.kernel } else { let (lo, hi) = ax.taps(o); hi - lo };
    let mut out = Vec::with_capacity(plan.out_plane());
    for oy in 0..plan.rows.out {
        for ox in 0..plan.cols.out {
            out.push(1.0 / (count(&plan.rows, oy) * count(&plan.cols, ox)) as f32);
        }
    }
    out
}
