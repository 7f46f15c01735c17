//! The operands of a GEMM shape given on the command line as m,n,k[,layout] (gemm_shapes.rs,
//! split_balance.rs): nn (default), nt (b a transposed view), tn (a transposed).

/// a (m x k) and b (k x n) filled with fixed values, their (row, column) strides, and a zeroed
/// m x n destination.
pub struct ShapeOperands {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub sa: (isize, isize),
    pub sb: (isize, isize),
}

pub fn shape_operands(spec: &str) -> ShapeOperands {
    let v: Vec<&str> = spec.split(',').collect();
    let (m, n, k): (usize, usize, usize) = (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap());
    let layout = v.get(3).copied().unwrap_or("nn");
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0).collect();
    let (mi, ni, ki) = (m as isize, n as isize, k as isize);
    let sa = if layout == "tn" { (1, mi) } else { (ki, 1) };
    let sb = if layout == "nt" { (1, ki) } else { (ni, 1) };
    ShapeOperands { m, n, k, a, b, c: vec![0.0; m * n], sa, sb }
}
