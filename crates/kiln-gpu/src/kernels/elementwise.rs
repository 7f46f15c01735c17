//! Elementwise ops on the device, and the unary ops' backward: each is one map.rs kernel whose
//! expression comes from table.rs (binary gradients are composed by kiln-core's autograd). Validation mirrors kiln-core's (same op names, same rules).

use super::map::{self, Map};
use super::table;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::{BinaryOp, UnaryOp};
use kiln_core::{DType, KilnError, Result};

fn no_kernel(op: &str) -> KilnError {
    KilnError::new(op, "has no GPU kernel yet (add its row to kiln-gpu's kernels/table.rs)")
}

fn expect_f32(op: &str, ts: &[&GpuTensor]) -> Result<()> {
    if ts.iter().any(|t| t.dtype() != DType::F32) {
        let got: Vec<String> = ts.iter().map(|t| format!("{} {}", t.dtype(), fmt_shape(t.shape()))).collect();
        return Err(KilnError::new(op, format!("expected float32 tensors, got {}", got.join(" and "))));
    }
    Ok(())
}

/// `op(x)` elementwise: any shape -> the same shape, float32.
pub fn unary(dev: &GpuDevice, op: UnaryOp, x: &GpuTensor, alpha: f32) -> Result<GpuTensor> {
    expect_f32(op.name(), &[x])?;
    let row = table::unary(op).ok_or_else(|| no_kernel(op.name()))?;
    let kernel = format!("unary:{}", op.name());
    map::run(dev, Map { op: op.name(), kernel: &kernel, inputs: &[("x", x)], out_dtype: DType::F32, body: "", expr: row.forward, alpha })
}

/// g * dy/dx for y = op(x): x, y (the forward output) and g share one shape -> that shape.
pub fn unary_backward(dev: &GpuDevice, op: UnaryOp, x: &GpuTensor, y: &GpuTensor, g: &GpuTensor, alpha: f32) -> Result<GpuTensor> {
    expect_f32(op.name(), &[x, y, g])?;
    let row = table::unary(op).ok_or_else(|| no_kernel(op.name()))?;
    let kernel = format!("unary_backward:{}", op.name());
    let expr = format!("g * ({})", row.derivative);
    map::run(dev, Map { op: op.name(), kernel: &kernel, inputs: &[("x", x), ("y", y), ("g", g)], out_dtype: DType::F32, body: "", expr: &expr, alpha })
}

/// `op(a, b)` with NumPy broadcasting. Arithmetic: float32 -> float32; comparisons: float32 or
/// int32 (compared as float32, as on the CPU) -> bool.
pub fn binary(dev: &GpuDevice, op: BinaryOp, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    if op.is_comparison() && (a.dtype() == DType::I32 || b.dtype() == DType::I32) {
        let promote = |t: &GpuTensor| if t.dtype() == DType::I32 { cast(dev, t, DType::F32) } else { Ok(t.clone()) };
        return binary(dev, op, &promote(a)?, &promote(b)?);
    }
    expect_f32(op.name(), &[a, b])?;
    let row = table::binary(op).ok_or_else(|| no_kernel(op.name()))?;
    let kernel = format!("binary:{}", op.name());
    map::run(dev, Map { op: op.name(), kernel: &kernel, inputs: &[("a", a), ("b", b)], out_dtype: row.out, body: "", expr: row.forward, alpha: 0.0 })
}

/// Converts between float32, int32 and bool with the CPU's rules (float -> int truncates and
/// saturates, NaN -> 0, as Rust's `as`; nonzero -> true). WGSL's own i32(x) clamps to the largest
/// float below 2^31 (2147483520) and leaves NaN undefined, hence the selects.
pub fn cast(dev: &GpuDevice, x: &GpuTensor, dtype: DType) -> Result<GpuTensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    let expr = match (x.dtype(), dtype) {
        (DType::F32, DType::I32) => "select(select(i32(x), 2147483647, x >= 2147483648.0), 0, kiln_isnan(x))",
        (DType::Bool, DType::I32) => "i32(x)",
        (DType::I32, DType::F32) | (DType::Bool, DType::F32) => "f32(x)",
        (DType::F32, DType::Bool) => "select(0u, 1u, x != 0.0 || kiln_isnan(x))",
        (DType::I32, DType::Bool) => "select(0u, 1u, x != 0)",
        (from, to) => return Err(KilnError::new("cast", format!("cannot cast {from} to {to} on the GPU"))),
    };
    let kernel = format!("cast:{}", dtype.name());
    map::run(dev, Map { op: "cast", kernel: &kernel, inputs: &[("x", x)], out_dtype: dtype, body: "", expr, alpha: 0.0 })
}

/// `cond ? a : b` elementwise, all three broadcast together. cond: bool; a, b: float32.
pub fn where_(dev: &GpuDevice, cond: &GpuTensor, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    if cond.dtype() != DType::Bool {
        return Err(KilnError::new("where", format!("condition must be a bool tensor, got {} {}", cond.dtype(), fmt_shape(cond.shape()))));
    }
    expect_f32("where", &[a, b])?;
    let inputs = [("c", cond), ("a", a), ("b", b)];
    map::run(dev, Map { op: "where", kernel: "where", inputs: &inputs, out_dtype: DType::F32, body: "", expr: "select(b, a, c != 0u)", alpha: 0.0 })
}

/// A contiguous copy of any view (what GpuTensor::contiguous runs).
pub fn copy(dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
    map::run(dev, Map { op: "contiguous", kernel: "copy", inputs: &[("x", x)], out_dtype: x.dtype(), body: "", expr: "x", alpha: 0.0 })
}
