//! The entries outside the shared table (crates/kiln-boundary): those that take lists, strings
//! or typed arrays, or return several handles, mirroring bindings/node/src/lib.rs and quant.rs
//! name for name. Handles cross as f64 and are checked by `handle` (lib.rs).

use crate::{dims, dtype, handle, int, ints, js_error, op1, register, registry, whole, Handle, Result};
use kiln_core::ops::{self, ReduceOp, Sections};
use kiln_core::{autograd, KilnError};
use wasm_bindgen::prelude::*;

/// The tensors behind a list of handles, each checked.
fn resolve_all(entry: &str, arg: &str, hs: &[Handle]) -> kiln_core::Result<Vec<kiln_core::Tensor>> {
    let hs = hs.iter().map(|&h| handle(entry, arg, h)).collect::<kiln_core::Result<Vec<u32>>>()?;
    registry::resolve_all(&hs)
}

// ---- reductions ----------------------------------------------------------------------------

#[wasm_bindgen]
pub fn reduce(op: f64, x: Handle, reduce_axes: Vec<f64>, keep_dims: bool, correction: f64) -> Result<u32> {
    op1("reduce", x, |t| {
        let code = whole("reduce", "op", op)?;
        let op = ReduceOp::ALL.get(code as usize).copied().ok_or_else(|| KilnError::new("reduce", format!("unknown op code {code}")))?;
        let correction = whole(op.name(), "correction", correction)?;
        ops::reduce(op, t, &ints(op.name(), &reduce_axes)?, keep_dims, correction as usize)
    })
}

// ---- views and shape ops -------------------------------------------------------------------

#[wasm_bindgen]
pub fn reshape(x: Handle, new_shape: Vec<f64>) -> Result<u32> {
    op1("reshape", x, |t| t.reshape(&ints("reshape", &new_shape)?))
}

#[wasm_bindgen]
pub fn permute(x: Handle, perm: Vec<f64>) -> Result<u32> {
    op1("permute", x, |t| t.permute(&ints("permute", &perm)?))
}

#[wasm_bindgen]
pub fn slice(x: Handle, begin: Vec<f64>, size: Vec<f64>) -> Result<u32> {
    op1("slice", x, |t| t.slice(&ints("slice", &begin)?, &ints("slice", &size)?))
}

#[wasm_bindgen]
pub fn expand(x: Handle, new_shape: Vec<f64>) -> Result<u32> {
    op1("expand", x, |t| t.expand(&dims("expand", &new_shape)?))
}

#[wasm_bindgen]
pub fn squeeze(x: Handle, squeeze_axes: Vec<f64>) -> Result<u32> {
    op1("squeeze", x, |t| t.squeeze(&ints("squeeze", &squeeze_axes)?))
}

#[wasm_bindgen]
pub fn cast(x: Handle, to: String) -> Result<u32> {
    op1("cast", x, |t| ops::cast(t, dtype("cast", &to)?))
}

#[wasm_bindgen]
pub fn concat(tensors: Vec<Handle>, axis: f64) -> Result<u32> {
    let out = (|| ops::concat(&resolve_all("concat", "tensors", &tensors)?, int("concat", axis)?))().map_err(|e| js_error(registry::name_entry(e, "concat")))?;
    Ok(register(out))
}

#[wasm_bindgen]
pub fn stack(tensors: Vec<Handle>, axis: f64) -> Result<u32> {
    let out = (|| ops::stack(&resolve_all("stack", "tensors", &tensors)?, int("stack", axis)?))().map_err(|e| js_error(registry::name_entry(e, "stack")))?;
    Ok(register(out))
}

/// Splits into `count` equal parts when `sizes` is empty, else into parts of `sizes`.
#[wasm_bindgen]
pub fn split(x: Handle, sizes: Vec<f64>, count: f64, axis: f64) -> Result<js_sys::Array> {
    let parts = (|| {
        let x = handle("split", "x", x)?;
        let sections = if sizes.is_empty() { Sections::Count(whole("split", "count", count)? as usize) } else { Sections::Sizes(dims("split", &sizes)?) };
        registry::with(|r| ops::split(r.get(x)?, sections, int("split", axis)?))
    })()
    .map_err(|e| js_error(registry::name_entry(e, "split")))?;
    Ok(parts.into_iter().map(|t| JsValue::from_f64(register(t) as f64)).collect())
}

/// `paddings` is flat: [before0, after0, before1, after1, ...].
#[wasm_bindgen]
pub fn pad(x: Handle, paddings: Vec<f64>, value: f64) -> Result<u32> {
    op1("pad", x, |t| {
        let flat = dims("pad", &paddings)?;
        if flat.len() % 2 != 0 {
            return Err(KilnError::new("pad", format!("paddings must come in (before, after) pairs, got {paddings:?}")));
        }
        let pairs: Vec<(usize, usize)> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
        ops::pad(t, &pairs, value)
    })
}

// ---- creation ------------------------------------------------------------------------------

#[wasm_bindgen]
pub fn full(new_shape: Vec<f64>, value: f64, dtype_name: String, op_name: Option<String>) -> Result<u32> {
    let op = op_name.unwrap_or_else(|| "full".to_string());
    let t = (|| ops::creation::full_named(&op, &dims(&op, &new_shape)?, value, dtype(&op, &dtype_name)?))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn arange(start: f64, stop: f64, step: f64, dtype_name: String) -> Result<u32> {
    let t = (|| ops::arange(start, stop, step, dtype("arange", &dtype_name)?))().map_err(js_error)?;
    Ok(register(t))
}

fn seed_of(seed: Option<f64>) -> Option<u64> {
    seed.map(|s| s as u64)
}

#[wasm_bindgen]
pub fn randn(new_shape: Vec<f64>, mean: f64, std: f64, seed: Option<f64>) -> Result<u32> {
    let t = (|| ops::randn(&dims("randn", &new_shape)?, mean as f32, std as f32, seed_of(seed)))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn randu(new_shape: Vec<f64>, low: f64, high: f64, seed: Option<f64>) -> Result<u32> {
    let t = (|| ops::randu(&dims("randu", &new_shape)?, low as f32, high as f32, seed_of(seed)))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "setSeed")]
pub fn set_seed(seed: f64) {
    kiln_core::random::set_seed(seed as u64);
}

// ---- autograd: gradients returned, not accumulated (interpretability) ----------------------

/// d(root)/d(input) per input as new handles (-1 where root does not depend on the input);
/// `seed` is a handle, or -1 for the implicit 1 of a one-element root. No leaf's grad changes.
#[wasm_bindgen]
pub fn gradients(root: Handle, seed: f64, inputs: Vec<Handle>) -> Result<Vec<f64>> {
    let grads = (|| {
        let seed = registry::optional_handle("gradients", "seed", seed)?;
        let (root, inputs) = (handle("gradients", "root", root)?, resolve_all("gradients", "inputs", &inputs)?);
        registry::with(|r| {
            let seed = seed.map(|s| r.get(s).cloned()).transpose()?;
            autograd::gradients(r.get(root)?, seed.as_ref(), &inputs.iter().collect::<Vec<_>>())
        })
    })()
    .map_err(|e| js_error(registry::name_entry(e, "gradients")))?;
    Ok(grads.into_iter().map(|g| g.map_or(-1.0, |g| register(g) as f64)).collect())
}

// ---- weight-only quantization (kiln-core ops/quant.rs) --------------------------------------

#[wasm_bindgen(js_name = "fromI8")]
pub fn from_i8(data: Vec<i8>, shape: Vec<f64>) -> Result<u32> {
    let t = kiln_core::Tensor::from_vec(data, &dims("tensor", &shape).map_err(js_error)?).map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "readI8")]
pub fn read_i8(h: Handle) -> Result<Vec<i8>> {
    crate::read(h, kiln_core::DType::I8)
}

/// [q, scales] for an int8 per-channel quantization of w [O, I].
#[wasm_bindgen(js_name = "quantizeInt8")]
pub fn quantize_int8(w: Handle) -> Result<Vec<u32>> {
    let (q, s) = (|| registry::with(|r| ops::quantize_int8(r.get(handle("quantizeInt8", "w", w)?)?)))().map_err(|e| js_error(registry::name_entry(e, "quantizeInt8")))?;
    Ok(vec![register(q), register(s)])
}

/// [packed, scales] for an int4 per-block quantization of w [O, I].
#[wasm_bindgen(js_name = "quantizeInt4")]
pub fn quantize_int4(w: Handle, block: f64) -> Result<Vec<u32>> {
    let (q, s) = (|| registry::with(|r| ops::quantize_int4(r.get(handle("quantizeInt4", "w", w)?)?, whole("quantizeInt4", "block", block)? as usize)))()
        .map_err(|e| js_error(registry::name_entry(e, "quantizeInt4")))?;
    Ok(vec![register(q), register(s)])
}
