//! The GPU device: adapter, device and queue, the compiled-kernel cache, the buffer pool, and the
//! one place where kernels are dispatched and buffers read back. Every wgpu call that can fail
//! runs inside error scopes here, so failures come back as KilnError (wgpu's default would be to
//! panic from its uncaptured-error handler, which would take Node down with it).

use crate::checks::{IndexChecks, ERROR_BYTES};
use crate::error;
use crate::platform::{self, record_late, LateError};
use crate::pool::{BufferPool, Kind, PoolStats, PooledBuffer};
use kiln_core::{KilnError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Threads per workgroup of the 1-D kernels (elementwise, Adam). 256 is a multiple of every
/// vendor's SIMD width (32 NVIDIA, 32/64 AMD, 8-32 Intel) and within WebGPU's default limits.
pub const WORKGROUP: u32 = 256;

pub struct GpuDevice {
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Compiled kernels by name + specialization (op, dtypes, tile sizes...): WGSL compilation
    /// costs milliseconds to a second per kernel, so each one is compiled once per device.
    pipelines: Mutex<HashMap<String, Arc<Compiled>>>,
    pool: BufferPool,
    /// Set by the device-lost callback (or destroy()); every op checks it first.
    lost: LateError,
    /// Errors wgpu raised outside our error scopes (and, on WebGPU, those our scopes caught after
    /// the op returned); reported by the next op instead of panicking.
    uncaptured: LateError,
    /// Out-of-range indices found by kernels, reported at the next readback (checks.rs).
    checks: IndexChecks,
    /// Kernels recorded but not yet submitted, and how many. A submit per kernel costs more than
    /// a small kernel runs (on lavapipe ~1 ms), so kernels go to the queue in batches: when
    /// MAX_BATCH are recorded, and before anything that must see their results (a read, a
    /// synchronize).
    batch: Mutex<Option<(wgpu::CommandEncoder, usize)>>,
}

/// A compiled kernel and its bind group layout. The layout is asked for once: each
/// `get_bind_group_layout` makes a new layout object (on WebGPU a new JS object and a command to
/// the GPU process), which a dispatch would otherwise pay every time.
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Kernels per submitted batch: bounds the buffers held back by the pool meanwhile.
const MAX_BATCH: usize = 64;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GpuDevice {
    /// Opens the best adapter (high-performance preference), blocking (native only; a browser
    /// uses `open`). Backends follow WGPU_BACKEND when set (e.g. `vulkan`), else every backend
    /// compiled in. No adapter -> an error saying what to install.
    pub fn new() -> Result<GpuDevice> {
        GpuDevice::with_backends(wgpu::InstanceDescriptor::new_without_display_handle_from_env().backends)
    }

    /// Opens the best adapter among `backends` (e.g. `wgpu::Backends::VULKAN`), blocking.
    pub fn with_backends(backends: wgpu::Backends) -> Result<GpuDevice> {
        platform::block_on("gpu", GpuDevice::open(backends))
    }

    /// Opens the best adapter among `backends`: the form a browser awaits (WebGPU hands out its
    /// adapter and device asynchronously).
    pub async fn open(backends: wgpu::Backends) -> Result<GpuDevice> {
        let desc = wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle_from_env() };
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
        let adapter = instance.request_adapter(&options).await.map_err(|e| error::no_adapter(&format!("backends {backends:?}: {e}")))?;
        let info = adapter.get_info();
        // Ask for everything the adapter offers: the WebGPU defaults (128 MiB bindings, 16 KiB of
        // workgroup memory) are lower than most hardware, and tensors hit the binding limit first.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor { label: Some("kiln"), required_limits: limits.clone(), ..Default::default() })
            .await
            .map_err(|e| KilnError::new("gpu", format!("adapter '{}' refused a device: {e}", info.name)))?;

        let lost = LateError::default();
        let lost_cb = lost.clone();
        device.set_device_lost_callback(move |reason, message| record_late(&lost_cb, format!("{reason:?}: {message}")));
        let uncaptured = LateError::default();
        let uncaptured_cb = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| record_late(&uncaptured_cb, e.to_string())));
        let pool = BufferPool::new(device.clone(), uncaptured.clone());
        let checks = IndexChecks::new(&device);
        Ok(GpuDevice { info, limits, device, queue, pipelines: Mutex::new(HashMap::new()), pool, lost, uncaptured, checks, batch: Mutex::new(None) })
    }

    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" for lavapipe.
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    /// True for a CPU implementation (lavapipe, SwiftShader): timings mean nothing about GPUs.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }
    /// Returns cached free buffers to the driver.
    pub fn trim(&self) {
        self.pool.trim()
    }
    /// Kernels compiled so far on this device.
    pub fn pipeline_count(&self) -> usize {
        lock(&self.pipelines).len()
    }

    /// Releases the device now; every later op fails with a device-lost error.
    pub fn destroy(&self) {
        lock(&self.lost).get_or_insert_with(|| "destroyed by the program".into());
        self.device.destroy();
    }

    pub(crate) fn check_alive(&self, op: &str) -> Result<()> {
        if let Some(reason) = lock(&self.lost).as_ref() {
            return Err(error::device_lost(op, reason));
        }
        if let Some(message) = lock(&self.uncaptured).take() {
            return Err(KilnError::new(op, format!("an earlier GPU operation failed: {message}")));
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes` bytes from the pool.
    pub(crate) fn alloc(&self, op: &str, bytes: u64) -> Result<PooledBuffer> {
        self.check_alive(op)?;
        let max = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        if bytes > max {
            return Err(KilnError::new(op, format!(
                "a tensor of {bytes} bytes exceeds this GPU's largest storage binding ({max} bytes, adapter '{}')",
                self.info.name
            )));
        }
        self.pool.acquire(op, Kind::Storage, bytes.max(4), max)
    }

    /// A storage buffer holding `data` (a kernel's u32 parameter block, or uploaded elements).
    pub(crate) fn upload_bytes(&self, op: &str, data: &[u8]) -> Result<PooledBuffer> {
        let buffer = self.alloc(op, data.len() as u64)?;
        if !data.is_empty() {
            self.queue.write_buffer(buffer.buffer(), 0, data);
        }
        Ok(buffer)
    }

    /// The compiled kernel for `key`, compiling `source()` on first use.
    fn pipeline(&self, op: &str, key: &str, source: impl FnOnce() -> String) -> Result<Arc<Compiled>> {
        if let Some(p) = lock(&self.pipelines).get(key) {
            return Ok(p.clone());
        }
        let wgsl = source();
        let pipeline = self.scoped(op, || {
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(wgsl.as_str().into()),
            });
            let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            Compiled { pipeline, layout }
        })
        .map_err(|e| KilnError::new(op, format!("internal error: kernel '{key}' did not compile: {}", e.message)))?;
        let pipeline = Arc::new(pipeline);
        lock(&self.pipelines).insert(key.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `f` with validation and out-of-memory errors captured, and turns them into a KilnError.
    fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        match platform::pop_scopes(op, [oom, validation], &self.uncaptured) {
            Some(e) => Err(error::from_wgpu(op, &e)),
            None => Ok(out),
        }
    }

    /// Runs kernel `key` once over `groups` workgroups with `buffers` bound to @binding(0..) of
    /// group 0, in binding order. Submits without waiting: results stay on the device.
    pub(crate) fn dispatch(&self, op: &str, key: &str, source: impl FnOnce() -> String, buffers: &[&wgpu::Buffer], groups: [u32; 3]) -> Result<()> {
        self.check_alive(op)?;
        let pipeline = self.pipeline(op, key, source)?;
        if groups.contains(&0) {
            return Ok(());
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(KilnError::new(op, format!("internal error: kernel '{key}' needs {groups:?} workgroups, above this GPU's {max} per dimension")));
        }
        self.scoped(op, || {
            let entries: Vec<wgpu::BindGroupEntry> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(key),
                layout: &pipeline.layout,
                entries: &entries,
            });
            let mut batch = lock(&self.batch);
            if batch.is_none() {
                self.pool.recording();
            }
            let (encoder, count) = batch.get_or_insert_with(|| (self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln batch") }), 0));
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(key), timestamp_writes: None });
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
            *count += 1;
            if *count >= MAX_BATCH {
                self.submit_batch(&mut batch);
            }
        })?;
        self.check_alive(op)
    }

    /// Submits the recorded kernels, if any (before a read or a wait that must see them).
    fn flush(&self, op: &str) -> Result<()> {
        self.scoped(op, || self.submit_batch(&mut lock(&self.batch)))
    }

    fn submit_batch(&self, batch: &mut Option<(wgpu::CommandEncoder, usize)>) {
        if let Some((encoder, _)) = batch.take() {
            self.queue.submit([encoder.finish()]);
            self.pool.submitted();
        }
    }

    /// Workgroup counts covering `n` invocations of a 1-D kernel of WORKGROUP threads, folded
    /// into two dimensions when one would pass the per-dimension limit (65535 on most devices).
    /// Kernels rebuild the linear index as (wid.y * num_workgroups.x + wid.x) * WORKGROUP + lid.
    pub(crate) fn groups_1d(&self, n: usize) -> [u32; 3] {
        self.groups_for(n.div_ceil(WORKGROUP as usize))
    }

    /// `count` workgroups, folded into two dimensions like groups_1d; kernels rebuild the
    /// workgroup's index as wid.y * num_workgroups.x + wid.x and skip indices >= count.
    pub(crate) fn groups_for(&self, count: usize) -> [u32; 3] {
        let groups = count as u64;
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            return [groups as u32, 1, 1];
        }
        let y = groups.div_ceil(max);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }

    /// Runs `submit` (a dispatch whose kernel checks indices, checks.rs) with the check's id and
    /// the error buffer to bind. `template` is the message, with `{value}` and `{position}`
    /// standing for the bad index and where it was.
    pub(crate) fn with_index_check(&self, op: &str, template: String, submit: impl FnOnce(u32, &wgpu::Buffer) -> Result<()>) -> Result<()> {
        let seq = self.checks.register(op, template);
        let result = submit(seq as u32, self.checks.buffer());
        self.checks.finish(seq, result.is_ok());
        result
    }

    /// Waits until every kernel submitted so far has finished (for timing; reads wait by
    /// themselves), and reports an out-of-range index any of them found. Blocking: native only.
    pub fn synchronize(&self) -> Result<()> {
        platform::block_on("synchronize", self.synchronize_async())
    }

    /// `synchronize`, awaited (the form a browser uses).
    pub async fn synchronize_async(&self) -> Result<()> {
        const OP: &str = "synchronize";
        self.check_alive(OP)?;
        self.flush(OP)?;
        platform::wait_idle(OP, &self.device, &self.queue).await?;
        if self.checks.submitted().is_some() {
            self.read_bytes_async(OP, self.checks.buffer(), 0, 0).await?;
        }
        self.check_alive(OP)
    }

    /// Copies `bytes` bytes from `src` at `offset` back to the host and waits for them. When
    /// index checks are pending, the error buffer comes back in the same copy, and a reported
    /// bad index becomes this read's error.
    pub(crate) async fn read_bytes_async(&self, op: &str, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        self.check_alive(op)?;
        self.flush(op)?;
        let covered_checks = self.checks.submitted();
        if bytes == 0 && covered_checks.is_none() {
            return Ok(Vec::new());
        }
        // The error words go after the data, at an offset buffer mapping accepts (8-aligned).
        let flag_at = bytes.next_multiple_of(8);
        let total = if covered_checks.is_some() { flag_at + ERROR_BYTES } else { bytes };
        let staging = self.pool.acquire(op, Kind::Staging, total, self.limits.max_buffer_size)?;
        let (tx, rx) = futures_channel::oneshot::channel();
        self.scoped(op, || {
            let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln read") });
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(src, offset, staging.buffer(), 0, bytes);
            }
            if covered_checks.is_some() {
                encoder.copy_buffer_to_buffer(self.checks.buffer(), 0, staging.buffer(), flag_at, ERROR_BYTES);
            }
            self.queue.submit([encoder.finish()]);
            staging.buffer().slice(0..total).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        })?;
        let mapped = match platform::wait_for_map(op, &self.device, rx, || self.check_alive(op)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(KilnError::new(op, format!("reading the result back failed: {e}"))),
            Err(e) => Err(e),
        };
        if let Err(e) = mapped {
            // The map may still complete later: never hand this buffer out again.
            staging.discard();
            self.check_alive(op)?;
            return Err(e);
        }
        let (data, words) = {
            let view = staging.buffer().get_mapped_range(0..total).map_err(|e| KilnError::new(op, format!("reading the result back failed: {e}")))?;
            let words: Vec<u32> = match covered_checks {
                Some(_) => view[flag_at as usize..total as usize].chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                None => Vec::new(),
            };
            (view[..bytes as usize].to_vec(), words)
        };
        staging.buffer().unmap();
        if let Some(covered) = covered_checks {
            if let Some((err, slot_at)) = self.checks.resolve(&covered, &words) {
                // Clear the slot so the next bad index there is reported in its turn.
                self.queue.write_buffer(self.checks.buffer(), slot_at, &[0u8; 16]);
                return Err(err);
            }
        }
        Ok(data)
    }
}
