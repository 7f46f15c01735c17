//! Weight-only quantization entries that cross typed arrays or return several handles (napi-rs);
//! the others (linearQ8/Q4, dequantizeInt8/4) are in the shared table (crates/kiln-boundary),
//! readI8 is a raw entry in fast.rs.

use crate::{count, guard, handle, register, registry, Handle};
use kiln_core::args::dims;
use kiln_core::ops;
use kiln_core::Tensor;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi(js_name = "fromI8")]
pub fn from_i8(data: Int8ArraySlice, shape: Vec<f64>) -> Result<u32> {
    guard("tensor", || Ok(register(Tensor::from_vec(data.as_ref().to_vec(), &dims("tensor", &shape)?)?)))
}

/// [q, scales] for an int8 per-channel quantization of w [O, I].
#[napi(js_name = "quantizeInt8")]
pub fn quantize_int8(w: Handle) -> Result<Vec<u32>> {
    guard("quantizeInt8", || {
        let w = handle("quantizeInt8", "w", w)?;
        let (q, s) = registry::with(|r| ops::quantize_int8(r.get(w)?))?;
        Ok(vec![register(q), register(s)])
    })
}

/// [packed, scales] for an int4 per-block quantization of w [O, I].
#[napi(js_name = "quantizeInt4")]
pub fn quantize_int4(w: Handle, block: f64) -> Result<Vec<u32>> {
    guard("quantizeInt4", || {
        let (w, block) = (handle("quantizeInt4", "w", w)?, count("quantizeInt4", "block", block)?);
        let (q, s) = registry::with(|r| ops::quantize_int4(r.get(w)?, block as usize))?;
        Ok(vec![register(q), register(s)])
    })
}
