//! kiln-gpu as a kiln-core `Device`: how kiln-core's tensors (and so the whole op set, autograd and
//! the bindings) reach the kernels. A kiln-core tensor on the GPU holds a `GpuStorage` (a pooled
//! buffer); each trait method views its inputs as GpuTensors (no copy), runs a kernel and wraps
//! the result back. Kernel families are wired in their own files next to this one.

mod core_ops;
// CNN family (conv, pooling, batch norm)
mod cnn;
// Transformer and RNN family.
mod sequence_ops;
// Indexing, creation, losses and graph ops.
mod indexing;

use crate::device::GpuDevice;
use crate::pool::PooledBuffer;
use crate::tensor::GpuTensor;
use kiln_core::device::{Device, DeviceBuffer, RecurrentWorkspace};
use kiln_core::params::recurrent::{Grads, Needs};
use kiln_core::error::fmt_shape;
use kiln_core::ops::{conv::{Activation, Epilogue, Geometry}, pool::Plan, AttentionOptions, BatchNorm, Cell, Weights};
use kiln_core::ops::{BinaryOp, ReduceOp, Reduction, SegmentReduce, UnaryOp};
use kiln_core::optim::{GradTransform, Rule};
use kiln_core::{DType, KilnError, Result, Tensor};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// The GPU as a kiln-core device. Made once per process by the bindings (`GpuBackend::open`).
pub struct GpuBackend {
    dev: GpuDevice,
    readbacks: AtomicU64,
    /// Handed to every buffer made here, so a tensor knows its device.
    me: Weak<GpuBackend>,
}

/// A kiln-core Storage's view of a device buffer.
struct GpuStorage {
    buffer: Arc<PooledBuffer>,
    dtype: DType,
    len: usize,
    backend: Arc<GpuBackend>,
}

impl DeviceBuffer for GpuStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn device(&self) -> Arc<dyn Device> {
        self.backend.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl GpuBackend {
    /// Opens the best adapter (see GpuDevice::new); the error says what to install when none exists.
    /// Blocking: native only.
    pub fn open() -> Result<Arc<GpuBackend>> {
        Ok(GpuBackend::around(GpuDevice::new()?))
    }

    /// Opens the best adapter, awaited: how a browser opens WebGPU.
    pub async fn open_async() -> Result<Arc<GpuBackend>> {
        let backends = wgpu::InstanceDescriptor::new_without_display_handle_from_env().backends;
        Ok(GpuBackend::around(GpuDevice::open(backends).await?))
    }

    fn around(dev: GpuDevice) -> Arc<GpuBackend> {
        Arc::new_cyclic(|me| GpuBackend { dev, readbacks: AtomicU64::new(0), me: me.clone() })
    }

    /// Device::download, awaited (a browser cannot block for a read).
    pub async fn download_async(&self, t: &Tensor) -> Result<Tensor> {
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        self.gpu(t)?.download_async(&self.dev).await
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Views a kiln-core tensor as a GpuTensor: a tensor on this device without a copy; a CPU
    /// tensor (the 1-element constants of backward closures) is uploaded.
    pub fn gpu(&self, t: &Tensor) -> Result<GpuTensor> {
        match t.device_buffer() {
            Some(b) => {
                let s = b.as_any().downcast_ref::<GpuStorage>().ok_or_else(|| KilnError::new("gpu", "the tensor lives on another device"))?;
                Ok(GpuTensor::from_parts(s.buffer.clone(), t.shape(), t.strides(), t.offset(), s.dtype))
            }
            None => GpuTensor::upload(&self.dev, t),
        }
    }

    /// Wraps a kernel's result as a kiln-core tensor on this device.
    pub fn wrap(&self, g: GpuTensor) -> Tensor {
        let backend = self.me.upgrade().expect("the backend outlives its tensors' creation");
        let storage = GpuStorage { buffer: g.buffer_arc(), dtype: g.dtype(), len: g.end_index(), backend };
        Tensor::from_device(Box::new(storage), g.shape(), g.strides(), g.offset())
    }

    /// Makes `t` the sole owner of a whole, contiguous buffer (copying on the device if another
    /// tensor shares it), so an in-place kernel changes no one else: copy-on-write.
    pub(crate) fn make_unique(&self, t: &mut Tensor) -> Result<()> {
        if !t.owns_whole_buffer() {
            let copy = crate::kernels::elementwise::copy(&self.dev, &self.gpu(t)?)?;
            t.replace_data(self.wrap(copy));
        } else {
            t.note_in_place_write();
        }
        Ok(())
    }
}

impl Device for GpuBackend {
    fn name(&self) -> &str {
        "gpu"
    }

    fn describe(&self) -> String {
        let (info, l, pool) = (self.dev.adapter_info(), self.dev.limits(), self.dev.pool_stats());
        let s = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            concat!(
                "{{\"adapter\":\"{}\",\"backend\":\"{:?}\",\"deviceType\":\"{:?}\",\"driver\":\"{}\",\"driverInfo\":\"{}\",",
                "\"software\":{},\"limits\":{{\"maxBufferSize\":{},\"maxStorageBufferBindingSize\":{},",
                "\"maxComputeWorkgroupStorageSize\":{},\"maxComputeInvocationsPerWorkgroup\":{},\"maxComputeWorkgroupsPerDimension\":{}}},",
                "\"pool\":{{\"liveBuffers\":{},\"liveBytes\":{},\"freeBuffers\":{},\"freeBytes\":{},\"created\":{}}},\"pipelines\":{}}}"
            ),
            s(&info.name), info.backend, info.device_type, s(&info.driver), s(&info.driver_info), self.dev.is_software(),
            l.max_buffer_size, l.max_storage_buffer_binding_size, l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup, l.max_compute_workgroups_per_dimension,
            pool.live_buffers, pool.live_bytes, pool.free_buffers, pool.free_bytes, pool.created, self.dev.pipeline_count()
        )
    }

    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        if t.device().is_some() {
            return Err(KilnError::new("to", format!("the {} {} tensor is not on the CPU", t.dtype(), fmt_shape(t.shape()))));
        }
        Ok(self.wrap(GpuTensor::upload(&self.dev, t)?))
    }

    fn download(&self, t: &Tensor) -> Result<Tensor> {
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        self.gpu(t)?.download(&self.dev)
    }

    fn copy(&self, t: &Tensor) -> Result<Tensor> {
        Ok(self.wrap(crate::kernels::elementwise::copy(&self.dev, &self.gpu(t)?)?))
    }

    fn readbacks(&self) -> u64 {
        self.readbacks.load(Ordering::Relaxed)
    }

    fn synchronize(&self) -> Result<()> {
        self.dev.synchronize()
    }

    // Core ops (core_ops.rs): elementwise, reductions, softmax, matmul, optimizer updates.
    fn unary(&self, op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
        core_ops::unary(self, op, x, alpha)
    }
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
        core_ops::unary_backward(self, op, x, y, g, alpha)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        core_ops::binary(self, op, a, b)
    }
    fn where_(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        core_ops::where_(self, cond, a, b)
    }
    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        core_ops::cast(self, x, dtype)
    }
    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
        core_ops::reduce(self, op, x, axes, keep_dims, correction)
    }
    fn softmax(&self, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        core_ops::softmax(self, x, axis, log)
    }
    fn softmax_backward(&self, y: &Tensor, g: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        core_ops::softmax_backward(self, y, g, axis, log)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        core_ops::matmul(self, a, b, transpose_a, transpose_b)
    }
    // No fused kernels yet: matmul + add and the reductions + elementwise kernels, on the GPU.
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
        kiln_core::ops::linear::composed(x, w, bias, residual, activation)
    }
    fn layer_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: usize, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        kiln_core::ops::layer_norm::composed(x, weight, bias, axis, eps)
    }
    fn optim_step(&self, rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
        core_ops::optim_step(self, rule, transform, param, grad, state)
    }

    // CNN family (cnn.rs): conv2d / convTranspose2d passes, pooling, batch normalization.
    fn conv2d_forward(&self, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
        cnn::conv2d_forward(self, geo, x, w, bias, epilogue, op)
    }
    fn conv2d_input_grad(&self, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
        cnn::conv2d_input_grad(self, geo, dy, w, init, op)
    }
    fn conv2d_weight_grad(&self, geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
        cnn::conv2d_weight_grad(self, geo, x, dy, op)
    }
    fn max_pool2d(&self, plan: &Plan, x: &Tensor, _need_indices: bool) -> Result<(Tensor, Tensor)> {
        cnn::max_pool2d(self, plan, x)
    }
    fn max_pool2d_backward(&self, plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
        cnn::max_pool2d_backward(self, plan, g, indices, in_shape)
    }
    fn avg_pool2d(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        cnn::avg_pool2d(self, plan, x, count_include_pad)
    }
    fn avg_pool2d_backward(&self, plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
        cnn::avg_pool2d_backward(self, plan, g, in_shape, count_include_pad)
    }
    fn batch_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running: Option<(&mut Tensor, &mut Tensor)>, options: BatchNorm) -> Result<(Tensor, Tensor)> {
        cnn::batch_norm(self, x, weight, bias, running, options)
    }
    fn batch_norm_backward(&self, g: &Tensor, x: &Tensor, stats: &Tensor, weight: Option<&Tensor>, batch_stats: bool, need_input: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        cnn::batch_norm_backward(self, g, x, stats, weight, batch_stats, need_input)
    }

    // Transformer and RNN family (sequence_ops.rs): fused attention and recurrent layers.
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Tensor, Tensor)> {
        sequence_ops::attention(self, q, k, v, mask, options)
    }
    fn attention_backward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, out: &Tensor, lse: &Tensor, g: &Tensor, options: &AttentionOptions) -> Result<[Tensor; 3]> {
        sequence_ops::attention_backward(self, q, k, v, mask, out, lse, g, options)
    }
    #[allow(clippy::too_many_arguments)]
    fn recurrent(&self, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool, keep: bool) -> Result<(Tensor, Option<RecurrentWorkspace>)> {
        sequence_ops::recurrent(self, cell, x, h0, c0, weights, reverse, keep)
    }
    fn recurrent_backward(&self, cell: Cell, workspace: RecurrentWorkspace, g: &Tensor, reverse: bool, needs: Needs) -> Result<Grads> {
        sequence_ops::recurrent_backward(self, cell, workspace, g, reverse, needs)
    }
    // The quantized layers (quantized_linear, quantized_conv2d, quantize, dequantize) have no
    // GPU kernels: the trait's defaults refuse them with an error naming the op and this device.

    // Indexing, creation, losses and graph ops: backend/indexing.rs.
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        indexing::full(self, shape, value, dtype)
    }
    fn gather(&self, x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
        indexing::gather(self, x, indices, axis)
    }
    fn scatter_add(&self, base: &Tensor, indices: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
        indexing::scatter_add(self, base, indices, updates, axis)
    }
    fn one_hot(&self, indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
        indexing::one_hot(self, indices, depth, on, off)
    }
    fn concat(&self, tensors: &[Tensor], axis: usize) -> Result<Tensor> {
        indexing::concat(self, tensors, axis)
    }
    fn pad(&self, x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
        indexing::pad(self, x, paddings, value)
    }
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
        indexing::cross_entropy(self, logits, targets, weights, smoothing, reduction)
    }
    fn cross_entropy_backward(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction, g: &Tensor) -> Result<Tensor> {
        indexing::cross_entropy_backward(self, logits, targets, weights, smoothing, reduction, g)
    }
    fn spmm(&self, x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
        indexing::spmm(self, x, src, dst, weight, num_out)
    }
    fn spmm_weight_grad(&self, x: &Tensor, src: &Tensor, dst: &Tensor, g: &Tensor) -> Result<Tensor> {
        indexing::spmm_weight_grad(self, x, src, dst, g)
    }
    fn segment_reduce(&self, values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<(Tensor, Option<Tensor>)> {
        indexing::segment_reduce(self, values, ids, num_segments, op)
    }
    fn segment_reduce_backward(&self, g: &Tensor, ids: &Tensor, saved: Option<&Tensor>, op: SegmentReduce, values_shape: &[usize]) -> Result<Tensor> {
        indexing::segment_reduce_backward(self, g, ids, saved, op, values_shape)
    }
}
