//! Weight-only quantization entries that cross typed arrays or return several handles (napi-rs);
//! the hot linearQ8 / linearQ4 and readI8 are raw entries in fast.rs.

use crate::{guard, register, registry, Handle};
use kiln_core::args::dims;
use kiln_core::ops;
use kiln_core::Tensor;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi(js_name = "fromI8")]
pub fn from_i8(data: Int8ArraySlice, shape: Vec<f64>) -> Result<Handle> {
    guard("tensor", || Ok(register(Tensor::from_vec(data.as_ref().to_vec(), &dims("tensor", &shape)?)?)))
}

/// [q, scales] for an int8 per-channel quantization of w [O, I].
#[napi(js_name = "quantizeInt8")]
pub fn quantize_int8(w: Handle) -> Result<Vec<Handle>> {
    guard("quantizeInt8", || {
        let (q, s) = registry::with(|r| ops::quantize_int8(r.get(w)?))?;
        Ok(vec![register(q), register(s)])
    })
}

/// [packed, scales] for an int4 per-block quantization of w [O, I].
#[napi(js_name = "quantizeInt4")]
pub fn quantize_int4(w: Handle, block: u32) -> Result<Vec<Handle>> {
    guard("quantizeInt4", || {
        let (q, s) = registry::with(|r| ops::quantize_int4(r.get(w)?, block as usize))?;
        Ok(vec![register(q), register(s)])
    })
}

#[napi(js_name = "dequantizeInt8")]
pub fn dequantize_int8(q: Handle, scales: Handle) -> Result<Handle> {
    guard("dequantizeInt8", || Ok(register(registry::with(|r| ops::dequantize_int8(r.get(q)?, r.get(scales)?))?)))
}

#[napi(js_name = "dequantizeInt4")]
pub fn dequantize_int4(packed: Handle, scales: Handle, in_features: u32, block: u32) -> Result<Handle> {
    guard("dequantizeInt4", || {
        Ok(register(registry::with(|r| ops::dequantize_int4(r.get(packed)?, r.get(scales)?, in_features as usize, block as usize))?))
    })
}
