//! Views and shape ops that take lists: reshape, permute, slice, expand, squeeze, cast, concat,
//! stack, split and pad.

use kiln_core::ops::{self, Sections};
use kiln_core::{DType, KilnError, Result};
use kiln_registry::{self as registry, register, with_tensors};

type H = u32;

pub fn reshape(x: H, shape: Vec<isize>) -> Result<H> {
    with_tensors([x], |[t]| t.reshape(&shape))
}

pub fn permute(x: H, perm: Vec<isize>) -> Result<H> {
    with_tensors([x], |[t]| t.permute(&perm))
}

pub fn slice(x: H, begin: Vec<isize>, size: Vec<isize>) -> Result<H> {
    with_tensors([x], |[t]| t.slice(&begin, &size))
}

pub fn expand(x: H, shape: Vec<usize>) -> Result<H> {
    with_tensors([x], |[t]| t.expand(&shape))
}

pub fn squeeze(x: H, axes: Vec<isize>) -> Result<H> {
    with_tensors([x], |[t]| t.squeeze(&axes))
}

pub fn cast(x: H, dtype: DType) -> Result<H> {
    with_tensors([x], |[t]| ops::cast(t, dtype))
}

pub fn concat(xs: Vec<H>, axis: isize) -> Result<H> {
    Ok(register(ops::concat(&registry::resolve_all(&xs)?, axis)?))
}

pub fn stack(xs: Vec<H>, axis: isize) -> Result<H> {
    Ok(register(ops::stack(&registry::resolve_all(&xs)?, axis)?))
}

/// Into `count` equal parts when `sizes` is empty, else into parts of `sizes`.
pub fn split(x: H, sizes: Vec<usize>, count: u32, axis: isize) -> Result<Vec<H>> {
    let sections = if sizes.is_empty() { Sections::Count(count as usize) } else { Sections::Sizes(sizes) };
    let parts = registry::with(|r| ops::split(r.get(x)?, sections, axis))?;
    Ok(parts.into_iter().map(register).collect())
}

/// `paddings` is flat: [before0, after0, before1, after1, ...].
pub fn pad(x: H, paddings: Vec<usize>, value: f64) -> Result<H> {
    if paddings.len() % 2 != 0 {
        return Err(KilnError::new("pad", format!("paddings must come in (before, after) pairs, got {paddings:?}")));
    }
    let pairs: Vec<(usize, usize)> = paddings.chunks(2).map(|p| (p[0], p[1])).collect();
    with_tensors([x], |[t]| ops::pad(t, &pairs, value))
}
