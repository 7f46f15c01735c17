//! The GPU from Node: the device is opened on first use (so the addon loads on machines without
//! a Vulkan driver, and only `setBackend('gpu')` reports its absence), tensors move with
//! `toDevice`, and `readAsync` reads a tensor back on a libuv worker thread so that
//! `await t.data()` never blocks the JS thread while the GPU finishes.

use crate::napi_value::ToJs;
use crate::{guard, handle, register, registry, Handle};
use kiln_boundary::kinds::Place;
use kiln_core::device::{to_device as move_to, Device};
use kiln_core::{DType, KilnError, Tensor};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

/// The process's GPU, opened once; the error (no adapter, with the install hint) is kept too.
#[cfg(feature = "gpu")]
fn gpu() -> kiln_core::Result<Arc<dyn Device>> {
    use kiln_gpu::GpuBackend;
    use std::sync::OnceLock;
    static GPU: OnceLock<std::result::Result<Arc<GpuBackend>, String>> = OnceLock::new();
    match GPU.get_or_init(|| GpuBackend::open().map_err(|e| e.message)) {
        Ok(b) => Ok(b.clone() as Arc<dyn Device>),
        Err(message) => Err(KilnError::new("gpu", message.clone())),
    }
}

/// The addon `npm start` builds leaves the GPU out to build quickly (bindings/node's `gpu` feature).
#[cfg(not(feature = "gpu"))]
fn gpu() -> kiln_core::Result<Arc<dyn Device>> {
    Err(KilnError::new(
        "gpu",
        "this native addon was built without the GPU backend (`npm start` builds a CPU-only addon to start quickly); `npm run build` builds the full one",
    ))
}

/// Opens the GPU (if not yet open) and describes it as JSON: adapter, driver, limits, readbacks
/// so far. Throws the no-adapter error, which says how to install a Vulkan driver.
pub fn info() -> kiln_core::Result<String> {
    let g = gpu()?;
    let described = g.describe();
    Ok(format!("{},\"readbacks\":{}}}", &described[..described.len() - 1], g.readbacks()))
}

/// A new handle to `h`'s tensor on `place`; gradients flow back across it. Errors name `to`,
/// the Tensor method the user called.
pub fn to_device(h: u32, place: Place) -> kiln_core::Result<u32> {
    let target = match place {
        Place::Cpu => None,
        Place::Gpu => Some(gpu()?),
    };
    let out = registry::with(|r| r.get(h).and_then(|t| move_to(t, target.as_ref()))).map_err(|e| registry::name_entry(e, "to"))?;
    Ok(register(out))
}

/// 'cpu' or the device's name.
pub fn device_of(h: u32) -> kiln_core::Result<String> {
    registry::with(|r| r.get(h).map(|t| t.device().map_or("cpu".to_string(), |d| d.name().to_string()))).map_err(|e| registry::name_entry(e, "device"))
}

/// Waits for every kernel submitted so far (and reports a failure if one did).
pub fn synchronize() -> kiln_core::Result<bool> {
    gpu()?.synchronize().map(|_| true).map_err(|e| registry::name_entry(e, "synchronize"))
}

/// Reads a tensor's elements on a worker thread: the promise resolves with a typed array.
#[napi(js_name = "readAsync")]
pub fn read_async(h: Handle) -> Result<AsyncTask<ReadTask>> {
    let tensor = guard("data", || registry::with(|r| r.get(handle("data", "h", h)?).cloned()))?;
    Ok(AsyncTask::new(ReadTask { tensor: Some(tensor) }))
}

pub struct ReadTask {
    tensor: Option<Tensor>,
}

/// Tensor contents read on a worker thread.
pub enum Readback {
    F32(Vec<f32>),
    I32(Vec<i32>),
    Bool(Vec<u8>),
    I8(Vec<i8>),
}

/// A tensor's elements; a tensor on a device is downloaded first (the worker thread waits).
fn readback(t: &Tensor) -> kiln_core::Result<Readback> {
    let downloaded;
    let t = match t.device() {
        Some(device) => {
            downloaded = device.download(t)?;
            &downloaded
        }
        None => t,
    };
    Ok(match t.dtype() {
        DType::F32 => Readback::F32(t.elements("data")?),
        DType::I32 => Readback::I32(t.elements("data")?),
        DType::I8 => Readback::I8(t.elements("data")?),
        _ => Readback::Bool(t.elements("data")?),
    })
}

/// A readback on its way to JS (converted on the JS thread).
pub struct JsReadback(Readback);

impl TypeName for JsReadback {
    fn type_name() -> &'static str {
        "TypedArray"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for JsReadback {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let v = match val.0 {
            Readback::F32(v) => v.to_js(env),
            Readback::I32(v) => v.to_js(env),
            Readback::Bool(v) => v.to_js(env),
            Readback::I8(v) => v.to_js(env),
        };
        if v.is_null() {
            return Err(Error::new(Status::PendingException, "data: the readback could not be copied to JS"));
        }
        Ok(v)
    }
}

impl Task for ReadTask {
    type Output = Readback;
    type JsValue = JsReadback;

    fn compute(&mut self) -> Result<Readback> {
        let t = self.tensor.take().ok_or_else(|| Error::new(Status::GenericFailure, "data: read twice"))?;
        guard("data", || readback(&t))
    }

    fn resolve(&mut self, _env: Env, output: Readback) -> Result<JsReadback> {
        Ok(JsReadback(output))
    }
}
