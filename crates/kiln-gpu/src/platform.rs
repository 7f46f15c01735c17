//! The few things native wgpu and WebGPU in a browser do differently, so the rest of kiln-gpu is
//! written once. Natively, kiln-gpu blocks: futures (adapter, device, error scopes) are driven by
//! pollster and a readback waits in `device.poll`. A browser cannot block its one thread: the
//! work happens in the browser's own event loop, so there every wait is an `.await`, an error
//! scope's result arrives later (and is reported by the next op, like an uncaptured error), and a
//! synchronous read is an error that says to use the async one.

use kiln_core::Result;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// An error found after its op returned (a WebGPU error scope resolving late, or wgpu's
/// uncaptured-error handler); the next op reports it.
pub(crate) type LateError = Arc<Mutex<Option<String>>>;

/// The outcome of a buffer mapping, sent by map_async's callback.
pub(crate) type MapResult = std::result::Result<(), wgpu::BufferAsyncError>;

pub(crate) fn record_late(slot: &LateError, message: String) {
    slot.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(message);
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{LateError, MapResult};
    use kiln_core::{KilnError, Result};
    use std::future::Future;
    use std::time::{Duration, Instant};

    /// How long a readback may wait for the queue before it is reported as a hang rather than
    /// blocking forever. Generous: large matmuls on a software driver take seconds.
    const READ_TIMEOUT: Duration = Duration::from_secs(300);

    /// Runs an async kiln-gpu call to completion on this thread.
    pub fn block_on<T>(_op: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
        pollster::block_on(future)
    }

    /// The errors captured by an OutOfMemory and a Validation scope, popped innermost first.
    pub fn pop_scopes(_op: &str, [oom, validation]: [wgpu::ErrorScopeGuard; 2], _late: &LateError) -> Option<wgpu::Error> {
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        validation.or(oom)
    }

    /// Waits for a buffer mapping to complete. Whichever thread polls fires the callbacks, so
    /// after our poll the callback may still be on its way from another thread's poll: wait for
    /// it, polling again now and then.
    pub async fn wait_for_map(op: &str, device: &wgpu::Device, mut mapped: futures_channel::oneshot::Receiver<MapResult>, alive: impl Fn() -> Result<()>) -> Result<MapResult> {
        let started = Instant::now();
        loop {
            device
                .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(READ_TIMEOUT) })
                .map_err(|e| KilnError::new(op, format!("waiting for the GPU failed: {e}")))?;
            if let Ok(Some(result)) = mapped.try_recv() {
                return Ok(result);
            }
            alive()?;
            if started.elapsed() > READ_TIMEOUT {
                return Err(KilnError::new(op, format!("reading the result back did not complete within {READ_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the queue has run everything submitted so far.
    pub async fn wait_idle(op: &str, device: &wgpu::Device, _queue: &wgpu::Queue) -> Result<()> {
        device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(READ_TIMEOUT) })
            .map(drop)
            .map_err(|e| KilnError::new(op, format!("waiting for the GPU failed: {e}")))
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{record_late, LateError, MapResult};
    use kiln_core::{KilnError, Result};
    use std::future::Future;

    /// A browser's thread cannot wait for the GPU: the synchronous form of an async call is an
    /// error that names the async one.
    pub fn block_on<T>(op: &str, _future: impl Future<Output = Result<T>>) -> Result<T> {
        Err(KilnError::new(op, "a synchronous GPU read is not possible on WebGPU in a browser (the page's thread cannot wait for the GPU): use `await t.data()` or `await kiln.synchronize()` instead of dataSync()/arraySync()"))
    }

    /// WebGPU resolves error scopes asynchronously: the op returns first, and an error its
    /// scopes caught is recorded for the next op to report, named after the op that caused it.
    pub fn pop_scopes(op: &str, [oom, validation]: [wgpu::ErrorScopeGuard; 2], late: &LateError) -> Option<wgpu::Error> {
        let (validation, oom) = (validation.pop(), oom.pop());
        let (op, late) = (op.to_string(), late.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let error = match validation.await {
                Some(e) => Some(e),
                None => oom.await,
            };
            if let Some(e) = error {
                record_late(&late, format!("{op}: {}", crate::error::from_wgpu(&op, &e).message));
            }
        });
        None
    }

    /// The map callback fires from the browser's event loop once the copy has run.
    pub async fn wait_for_map(op: &str, _device: &wgpu::Device, mapped: futures_channel::oneshot::Receiver<MapResult>, _alive: impl Fn() -> Result<()>) -> Result<MapResult> {
        mapped.await.map_err(|_| KilnError::new(op, "reading the result back failed: the GPU dropped the request (device lost?)"))
    }

    pub async fn wait_idle(op: &str, _device: &wgpu::Device, queue: &wgpu::Queue) -> Result<()> {
        let (done, finished) = futures_channel::oneshot::channel();
        queue.on_submitted_work_done(move || {
            let _ = done.send(());
        });
        finished.await.map_err(|_| KilnError::new(op, "waiting for the GPU failed: the GPU dropped the request (device lost?)"))
    }
}

pub(crate) use imp::{pop_scopes, wait_for_map, wait_idle};

/// Runs an async kiln-gpu call to completion: natively by blocking, in a browser as an error
/// that names the async form (see the module comment).
pub fn block_on<T>(op: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    imp::block_on(op, future)
}
