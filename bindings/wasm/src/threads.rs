//! The worker pool of the threaded build (kiln-core's wasm_pool.rs), as seen from JavaScript:
//! ts/backends/wasm-threads.ts starts Web Workers that each instantiate this module on the shared
//! memory and call `poolWorkerLoop`. In the single-threaded build the same names exist and report
//! one thread, so the loader needs no special case.

use wasm_bindgen::prelude::*;

/// Whether this build can run threads (compiled with atomics and shared memory).
#[wasm_bindgen(js_name = "threadsSupported")]
pub fn threads_supported() -> bool {
    cfg!(target_feature = "atomics")
}

/// A worker's entry point: never returns (it sleeps between jobs in `memory.atomic.wait32`,
/// which workers may do and the page's main thread may not).
#[wasm_bindgen(js_name = "poolWorkerLoop")]
pub fn pool_worker_loop() {
    #[cfg(target_feature = "atomics")]
    kiln_core::wasm_pool::worker_loop();
}

/// Workers that have entered their loop.
#[wasm_bindgen(js_name = "poolWorkers")]
pub fn pool_workers() -> u32 {
    #[cfg(target_feature = "atomics")]
    return kiln_core::wasm_pool::workers() as u32;
    #[cfg(not(target_feature = "atomics"))]
    0
}

/// Called by a worker's JavaScript after its instance trapped, so the caller stops waiting for it.
#[wasm_bindgen(js_name = "poolWorkerFailed")]
pub fn pool_worker_failed() {
    #[cfg(target_feature = "atomics")]
    kiln_core::wasm_pool::worker_failed();
}

/// Caps the threads kernels use (1 = the calling thread only, 0 = every worker); returns the
/// number now in use.
#[wasm_bindgen(js_name = "setNumThreads")]
pub fn set_num_threads(n: u32) -> u32 {
    #[cfg(target_feature = "atomics")]
    kiln_core::wasm_pool::set_threads(n as usize);
    let _ = n;
    kiln_core::parallel::num_threads() as u32
}

/// Chunks of parallel kernels the workers have run since start-up (0 in the single-threaded build).
#[wasm_bindgen(js_name = "poolWorkerChunks")]
pub fn pool_worker_chunks() -> u32 {
    #[cfg(target_feature = "atomics")]
    return kiln_core::wasm_pool::worker_chunks() as u32;
    #[cfg(not(target_feature = "atomics"))]
    0
}
