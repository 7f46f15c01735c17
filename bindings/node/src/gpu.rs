//! The GPU from Node: the device is opened on first use (so the addon loads on machines without
//! a Vulkan driver, and only `setBackend('gpu')` reports its absence), tensors move with
//! `toDevice`, and `readAsync` reads a tensor back on a libuv worker thread so that
//! `await t.data()` never blocks the JS thread while the GPU finishes.

use crate::fast::{readback, Readback};
use crate::{guard, handle, register, registry, Handle};
use kiln_core::device::{to_device as move_to, Device};
use kiln_core::{KilnError, Tensor};
use kiln_gpu::GpuBackend;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::{Arc, OnceLock};

/// The process's GPU, opened once; the error (no adapter, with the install hint) is kept too.
fn gpu() -> kiln_core::Result<Arc<dyn Device>> {
    static GPU: OnceLock<std::result::Result<Arc<GpuBackend>, String>> = OnceLock::new();
    match GPU.get_or_init(|| GpuBackend::open().map_err(|e| e.message)) {
        Ok(b) => Ok(b.clone() as Arc<dyn Device>),
        Err(message) => Err(KilnError::new("gpu", message.clone())),
    }
}

fn device_named(op: &str, name: &str) -> kiln_core::Result<Option<Arc<dyn Device>>> {
    match name {
        "cpu" => Ok(None),
        "gpu" => gpu().map(Some),
        other => Err(KilnError::new(op, format!("unknown device '{other}' (expected 'cpu' or 'gpu')"))),
    }
}

/// Opens the GPU (if not yet open) and describes it as JSON: adapter, driver, limits, readbacks
/// so far. Throws the no-adapter error, which says how to install a Vulkan driver.
#[napi(js_name = "gpuInfo")]
pub fn gpu_info() -> Result<String> {
    guard("gpuInfo", || {
        let g = gpu()?;
        let described = g.describe();
        Ok(format!("{},\"readbacks\":{}}}", &described[..described.len() - 1], g.readbacks()))
    })
}

/// A new handle to `h`'s tensor on `device` ('cpu' or 'gpu'); gradients flow back across it.
#[napi(js_name = "toDevice")]
pub fn to_device(h: Handle, device: String) -> Result<u32> {
    guard("to", || {
        let h = handle("to", "h", h)?;
        let target = device_named("to", &device)?;
        let out = registry::with(|r| r.get(h).and_then(|t| move_to(t, target.as_ref())))?;
        Ok(register(out))
    })
}

/// 'cpu' or the device's name.
#[napi(js_name = "deviceOf")]
pub fn device_of(h: Handle) -> Result<String> {
    guard("device", || registry::with(|r| r.get(handle("device", "h", h)?).map(|t| t.device().map_or("cpu".to_string(), |d| d.name().to_string()))))
}

/// Waits for every kernel submitted so far (and reports a failure if one did).
#[napi(js_name = "gpuSynchronize")]
pub fn gpu_synchronize() -> Result<bool> {
    guard("synchronize", || gpu()?.synchronize().map(|_| true))
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
        let v = val.0.into_js(env);
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
