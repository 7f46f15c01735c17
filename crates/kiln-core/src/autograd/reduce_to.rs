//! Gradients of broadcasting ops arrive in the broadcast shape and must be summed back to each
//! input's shape: over leading dims the input lacked, and over dims where it had size 1.

use crate::error::Result;
use crate::ops::{self, ReduceOp};
use crate::tensor::Tensor;

pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g.rank() - shape.len();
    let axes: Vec<isize> = (0..g.rank())
        .filter(|&d| d < extra || (shape[d - extra] == 1 && g.shape()[d] != 1))
        .map(|d| d as isize)
        .collect();
    let summed = if axes.is_empty() { g.clone() } else { ops::reduce(ReduceOp::Sum, g, &axes, true, 0)? };
    let target: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
    summed.reshape(&target)
}
