//! The GPU in a browser (the `gpu` feature: the module kiln_wasm_gpu, loaded only when a page asks
//! for `setBackend('gpu')`): kiln-gpu on WebGPU, behind the same entries as the Node addon's
//! bindings/node/src/gpu.rs. What differs is time: WebGPU hands out its device and reads its
//! buffers asynchronously, and a page's thread cannot wait, so opening the device (`openGpu`),
//! reading a tensor (`readAsync`) and waiting for the queue (`gpuSynchronize`) return Promises;
//! a synchronous read of a GPU tensor is an Error that names `await t.data()`.

use crate::{js_error, Result};
use kiln_registry::{self as registry, handle, register};

/// A tensor handle as it crosses: an f64, checked by `handle` (wasm-bindgen's u32 would wrap
/// 2^32 + 1 to the live handle 1, and cut 1.5 to 1).
type Handle = f64;
use kiln_core::device::{to_device as move_to, Device};
use kiln_core::{DType, KilnError, Tensor};
use kiln_gpu::GpuBackend;
use std::cell::RefCell;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The page's GPU once `openGpu` has succeeded (the module runs on one thread).
    static GPU: RefCell<Option<Arc<GpuBackend>>> = const { RefCell::new(None) };
}

fn opened(op: &str) -> kiln_core::Result<Arc<GpuBackend>> {
    GPU.with(|g| g.borrow().clone())
        .ok_or_else(|| KilnError::new(op, "the GPU is not open: `await kiln.setBackend('gpu')` first"))
}

fn info(g: &GpuBackend) -> String {
    let described = g.describe();
    format!("{},\"readbacks\":{}}}", &described[..described.len() - 1], g.readbacks())
}

/// Opens WebGPU's adapter and device (once) and describes them as `gpuInfo` does. Rejects with
/// the reason when the browser gives no adapter (no `navigator.gpu`, or WebGPU disabled).
#[wasm_bindgen(js_name = "openGpu")]
pub async fn open_gpu() -> Result<String> {
    if let Ok(g) = opened("gpu") {
        return Ok(info(&g));
    }
    let g = GpuBackend::open_async().await.map_err(js_error)?;
    GPU.with(|slot| *slot.borrow_mut() = Some(g.clone()));
    Ok(info(&g))
}

/// The open GPU as JSON: adapter, limits, buffer pool, readbacks so far.
#[wasm_bindgen(js_name = "gpuInfo")]
pub fn gpu_info() -> Result<String> {
    opened("gpuInfo").map(|g| info(&g)).map_err(js_error)
}

fn device_named(op: &str, name: &str) -> kiln_core::Result<Option<Arc<dyn Device>>> {
    match name {
        "cpu" => Ok(None),
        "gpu" => opened(op).map(|g| Some(g as Arc<dyn Device>)),
        other => Err(KilnError::new(op, format!("unknown device '{other}' (expected 'cpu' or 'gpu')"))),
    }
}

/// A new handle to `h`'s tensor on `device` ('cpu' or 'gpu'); gradients flow back across it.
/// To the CPU it reads the GPU, which a page cannot wait for: `await t.data()` instead.
#[wasm_bindgen(js_name = "toDevice")]
pub fn to_device(h: Handle, device: String) -> Result<u32> {
    let run = || {
        let h = handle("to", "h", h)?;
        let target = device_named("to", &device)?;
        let out = registry::with(|r| r.get(h).and_then(|t| move_to(t, target.as_ref())))?;
        Ok(register(out))
    };
    run().map_err(|e| js_error(registry::name_entry(e, "to")))
}

/// 'cpu' or the device's name.
#[wasm_bindgen(js_name = "deviceOf")]
pub fn device_of(h: Handle) -> Result<String> {
    let run = || registry::with(|r| r.get(handle("device", "h", h)?).map(|t| t.device().map_or("cpu".to_string(), |d| d.name().to_string())));
    run().map_err(|e| js_error(registry::name_entry(e, "device")))
}

/// Resolves once the GPU has run every kernel submitted so far, or rejects with the failure (an
/// out-of-range index a kernel found, a lost device).
#[wasm_bindgen(js_name = "gpuSynchronize")]
pub async fn gpu_synchronize() -> Result<bool> {
    let g = opened("synchronize").map_err(js_error)?;
    g.device().synchronize_async().await.map_err(js_error)?;
    Ok(true)
}

/// A tensor's elements as a typed array of its dtype, once the GPU has produced them.
#[wasm_bindgen(js_name = "readAsync")]
pub async fn read_async(h: Handle) -> Result<JsValue> {
    let t = registry::with(|r| r.get(handle("data", "h", h)?).cloned()).map_err(|e| js_error(registry::name_entry(e, "data")))?;
    let host = match t.device() {
        Some(_) => opened("data").map_err(js_error)?.download_async(&t).await.map_err(js_error)?,
        None => t,
    };
    typed_array(&host).map_err(js_error)
}

fn typed_array(t: &Tensor) -> kiln_core::Result<JsValue> {
    Ok(match t.dtype() {
        DType::F32 => js_sys::Float32Array::from(&t.elements::<f32>("data")?[..]).into(),
        DType::I32 => js_sys::Int32Array::from(&t.elements::<i32>("data")?[..]).into(),
        DType::I8 => js_sys::Int8Array::from(&t.elements::<i8>("data")?[..]).into(),
        DType::Bool => js_sys::Uint8Array::from(&t.elements::<u8>("data")?[..]).into(),
        other => return Err(KilnError::new("data", format!("cannot read a {other} tensor"))),
    })
}
