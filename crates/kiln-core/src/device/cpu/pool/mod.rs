//! 2-D max and average pooling on the CPU. Every (batch, channel) plane is independent, so planes
//! are the unit of parallel work (planes.rs); inside a plane, the windows of an output row are
//! computed in vector lanes over a padded copy of the plane (kernels.rs), or straight from the
//! plane: with AVX-512 for column stride 2 (2x2 and 3x3 stride-2 pools, forward, and max
//! pooling's backward when windows do not overlap: avx512.rs), with SIMD128 on wasm32 when no
//! window crosses a row's ends (simd128.rs). The op (ops/pool) has checked the geometry into a
//! `Plan` and records autograd.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod kernels;
mod planes;
#[cfg(target_arch = "wasm32")]
mod simd128;

pub(crate) use planes::{divisors, for_each_plane};

use crate::error::Result;
use crate::params::pool::Plan;
use crate::storage::try_zeroed;
use crate::alloc::try_filled_by;
#[cfg(target_arch = "x86_64")]
use crate::alloc::try_written;
use crate::tensor::Tensor;
use kernels::{avg_plane_backward, avg_pool_plane, max_pool_plane};

/// (maxima, first argmax per window as int32 indices into its plane); the indices are empty
/// (shape [0]) unless `need_indices` (inference skips them).
pub(crate) fn max_pool2d(plan: &Plan, x: &Tensor, need_indices: bool) -> Result<(Tensor, Tensor)> {
    const OP: &str = "maxPool2d";
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    let xs = x.materialize()?;
    let data = xs.cpu_slice::<f32>(OP)?;
    let total = plan.planes * out_plane;
    let work = out_plane * plan.rows.kernel * plan.cols.kernel;
    let pool = |out: &mut [f32], idx: &mut [i32]| {
        for_each_plane(plan.planes, work, out_plane, out, idx, |p, out, idx| {
            max_pool_plane(plan, &data[p * in_plane..(p + 1) * in_plane], out, idx);
        })
    };
    let (out, idx) = if writes_every_output(plan, need_indices) {
        // SAFETY: the kernel stores every output (and index) of every plane and reads none (no
        // zeroing first: the pool's outputs were a fifth of cnn-train's memset time).
        unsafe {
            let mut out = None;
            let idx = try_filled_by::<i32>(OP, if need_indices { total } else { 0 }, |idx| out = Some(try_filled_by::<f32>(OP, total, |out| pool(out, idx))))?;
            (out.expect("filled above")?, idx)
        }
    } else {
        let mut out = try_zeroed::<f32>(OP, total)?;
        let mut idx = if need_indices { try_zeroed::<i32>(OP, total)? } else { Vec::new() };
        pool(&mut out, &mut idx);
        (out, idx)
    };
    let out_shape = plan.out_shape(x);
    let indices = if need_indices { Tensor::from_vec(idx, &out_shape)? } else { Tensor::from_vec(idx, &[0])? };
    Ok((Tensor::from_vec(out, &out_shape)?, indices))
}

/// Whether the forward kernels store every output (and index) of a plane, so their buffers need
/// no zeroing: the AVX-512 kernels' stores cover each output row, and so do the SIMD128 ones,
/// which compute no indices (a max pooling that needs them runs kernels.rs's key path).
fn writes_every_output(plan: &Plan, need_indices: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    return {
        let _ = need_indices;
        avx512::applies(plan)
    };
    #[cfg(target_arch = "wasm32")]
    return !need_indices && simd128::applies(plan);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
    {
        let _ = (plan, need_indices);
        false
    }
}

/// Scatters each output's gradient to its window's first maximum.
pub(crate) fn max_pool2d_backward(plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "maxPool2d";
    let (in_plane, out_plane, planes) = (plan.in_plane(), plan.out_plane(), plan.planes);
    let g = g.materialize()?;
    let gs = g.cpu_slice::<f32>(OP)?;
    let indices = indices.materialize()?;
    let idx = indices.cpu_slice::<i32>(OP)?;
    #[cfg(target_arch = "x86_64")]
    if avx512::tiles_backward(plan) {
        // Windows tile the plane: every element is written once, so the buffer is not zeroed
        // first (zeroing it was as much memory traffic as the kernel: cnn-train's first pool
        // gradient is 5.5 MB).
        // SAFETY: max_input_grad writes every element of its plane (and reads none); the slice
        // covers the allocation of planes·in_plane floats.
        let gx = unsafe {
            try_written::<f32>(OP, planes * in_plane, |ptr| {
                let gx = std::slice::from_raw_parts_mut(ptr, planes * in_plane);
                for_each_plane(planes, in_plane, in_plane, gx, &mut [], |p, dst, _| {
                    let range = p * out_plane..(p + 1) * out_plane;
                    avx512::max_input_grad(plan, &gs[range.clone()], &idx[range], dst);
                });
                Ok(())
            })?
        };
        return Tensor::from_vec(gx, in_shape);
    }
    let mut gx = try_zeroed::<f32>(OP, planes * in_plane)?;
    // Each plane's gradient is written only by that plane's outputs, so planes run in parallel.
    for_each_plane(planes, out_plane, in_plane, &mut gx, &mut [], |p, dst, _| {
        let range = p * out_plane..(p + 1) * out_plane;
        for (&i, &v) in idx[range.clone()].iter().zip(&gs[range]) {
            dst[i as usize] += v;
        }
    });
    Tensor::from_vec(gx, in_shape)
}

pub(crate) fn avg_pool2d(plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2d";
    let xs = x.materialize()?;
    let data = xs.cpu_slice::<f32>(OP)?;
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    let scale = divisors(plan, count_include_pad);
    let work = out_plane * plan.rows.kernel * plan.cols.kernel;
    let pool = |out: &mut [f32]| {
        for_each_plane(plan.planes, work, out_plane, out, &mut [], |p, out, _| {
            avg_pool_plane(plan, &scale, &data[p * in_plane..(p + 1) * in_plane], out);
        })
    };
    let out = if writes_every_output(plan, false) {
        // SAFETY: as in max_pool2d.
        unsafe { try_filled_by::<f32>(OP, plan.planes * out_plane, pool)? }
    } else {
        let mut out = try_zeroed::<f32>(OP, plan.planes * out_plane)?;
        pool(&mut out);
        out
    };
    Tensor::from_vec(out, &plan.out_shape(x))
}

/// Spreads each output's gradient over its window.
pub(crate) fn avg_pool2d_backward(plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2d";
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    let scale = divisors(plan, count_include_pad);
    let runs = plan.column_runs();
    let work = out_plane * plan.rows.kernel * plan.cols.kernel;
    let g = g.materialize()?;
    let gs = g.cpu_slice::<f32>(OP)?;
    let mut gx = try_zeroed::<f32>(OP, plan.planes * in_plane)?;
    for_each_plane(plan.planes, work, in_plane, &mut gx, &mut [], |p, dst, _| {
        avg_plane_backward(plan, &runs, &scale, &gs[p * out_plane..(p + 1) * out_plane], dst);
    });
    Tensor::from_vec(gx, in_shape)
}
