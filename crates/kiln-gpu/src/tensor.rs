//! A tensor on the device: a pooled storage buffer seen through a shape, strides and an offset,
//! like kiln-core's Tensor. Views (reshape of a contiguous tensor, permute, transpose, expand)
//! only change the metadata; kernels read strided inputs directly or copy them first.
//!
//! Every element is 4 bytes on the device: float32, int32, and bool stored as u32 0/1 (WGSL has
//! no 8-bit storage type), converted to kiln-core's byte bools on download.

use crate::device::GpuDevice;
use crate::pool::PooledBuffer;
use kiln_core::error::fmt_shape;
use kiln_core::layout::{self, contiguous_strides, numel};
use kiln_core::{DType, KilnError, Result, Tensor};
use std::sync::Arc;

#[derive(Clone)]
pub struct GpuTensor {
    buffer: Arc<PooledBuffer>,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    dtype: DType,
}

/// Bytes per element on the device, for every supported dtype.
pub const ELEMENT_BYTES: u64 = 4;

/// The WGSL scalar type a dtype is stored as.
pub fn wgsl_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::I32 => "i32",
        _ => "u32",
    }
}

impl GpuTensor {
    /// A contiguous tensor over a fresh buffer (contents undefined until a kernel writes it).
    pub(crate) fn empty(dev: &GpuDevice, op: &str, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
        let n = layout::checked_numel(op, shape)?;
        let buffer = dev.alloc(op, n as u64 * ELEMENT_BYTES)?;
        Ok(GpuTensor::contiguous_over(buffer, shape, dtype))
    }

    fn contiguous_over(buffer: PooledBuffer, shape: &[usize], dtype: DType) -> GpuTensor {
        GpuTensor { buffer: Arc::new(buffer), shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0, dtype }
    }

    /// A view over an existing buffer (the backend's view of a kiln-core tensor).
    pub(crate) fn from_parts(buffer: Arc<PooledBuffer>, shape: &[usize], strides: &[usize], offset: usize, dtype: DType) -> GpuTensor {
        GpuTensor { buffer, shape: shape.to_vec(), strides: strides.to_vec(), offset, dtype }
    }

    /// The shared buffer (the backend wraps it into a kiln-core tensor).
    pub(crate) fn buffer_arc(&self) -> Arc<PooledBuffer> {
        self.buffer.clone()
    }

    /// Copies a kiln-core tensor (any layout; float32, int32 or bool) to the device.
    pub fn upload(dev: &GpuDevice, t: &Tensor) -> Result<GpuTensor> {
        const OP: &str = "upload";
        let unreadable = || KilnError::new(OP, format!("cannot read the {} tensor of shape {}", t.dtype(), fmt_shape(t.shape())));
        let bytes: Vec<u8> = match t.dtype() {
            DType::F32 => t.to_vec::<f32>().ok_or_else(unreadable)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::I32 => t.to_vec::<i32>().ok_or_else(unreadable)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::Bool => t.to_vec::<u8>().ok_or_else(unreadable)?.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect(),
            other => return Err(KilnError::new(OP, format!("{other} tensors are not supported on the GPU yet (float32, int32, bool are)"))),
        };
        let buffer = dev.upload_bytes(OP, &bytes)?;
        Ok(GpuTensor::contiguous_over(buffer, t.shape(), t.dtype()))
    }

    /// A float32 tensor from host values.
    pub fn from_f32(dev: &GpuDevice, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        GpuTensor::upload(dev, &Tensor::from_vec(data.to_vec(), shape)?)
    }

    /// Copies the tensor back into a contiguous kiln-core tensor, waiting for pending kernels.
    /// Blocking: native only (a browser awaits `download_async`).
    pub fn download(&self, dev: &GpuDevice) -> Result<Tensor> {
        crate::platform::block_on("download", self.download_async(dev))
    }

    /// `download`, awaited.
    pub async fn download_async(&self, dev: &GpuDevice) -> Result<Tensor> {
        const OP: &str = "download";
        let t = self.contiguous(dev)?;
        let bytes = dev.read_bytes_async(OP, t.buffer(), t.offset as u64 * ELEMENT_BYTES, t.numel() as u64 * ELEMENT_BYTES).await?;
        let words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        match self.dtype {
            DType::F32 => Tensor::from_vec(words.map(f32::from_le_bytes).collect::<Vec<_>>(), &self.shape),
            DType::I32 => Tensor::from_vec(words.map(i32::from_le_bytes).collect::<Vec<_>>(), &self.shape),
            _ => Tensor::from_vec(words.map(|w| (u32::from_le_bytes(w) != 0) as u8).collect::<Vec<_>>(), &self.shape),
        }
    }

    /// The float32 elements in row-major order (download and unwrap).
    pub fn to_vec_f32(&self, dev: &GpuDevice) -> Result<Vec<f32>> {
        self.expect_dtype("download", DType::F32)?;
        Ok(self.download(dev)?.to_vec::<f32>().expect("float32 checked"))
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Element offset of the first element inside the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// One past the largest buffer index the view reads (kernels index with u32).
    pub(crate) fn end_index(&self) -> usize {
        layout::view_end(&self.shape, &self.strides, self.offset)
    }
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.buffer()
    }
    /// Whether two tensors view the same device buffer.
    pub fn shares_buffer(&self, other: &GpuTensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    pub fn is_contiguous(&self) -> bool {
        layout::is_contiguous(&self.shape, &self.strides)
    }

    pub fn expect_dtype(&self, op: &str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(KilnError::new(op, format!("expected a {dtype} tensor, got {} with shape {}", self.dtype, fmt_shape(&self.shape))));
        }
        Ok(())
    }

    /// The same elements in a contiguous buffer (this tensor itself when already contiguous).
    pub fn contiguous(&self, dev: &GpuDevice) -> Result<GpuTensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        crate::kernels::elementwise::copy(dev, self)
    }

    fn view(&self, shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> GpuTensor {
        GpuTensor { buffer: self.buffer.clone(), shape, strides, offset, dtype: self.dtype }
    }

    /// New shape, same elements (one entry may be -1). A view when contiguous, else a copy.
    pub fn reshape(&self, dev: &GpuDevice, shape: &[isize]) -> Result<GpuTensor> {
        let shape = kiln_core::tensor::infer_shape("reshape", shape, self.numel(), &self.shape)?;
        let base = self.contiguous(dev)?;
        let strides = contiguous_strides(&shape);
        Ok(base.view(shape, strides, base.offset))
    }

    /// Reorders dimensions (`perm[i]` is the source of output dimension i). Always a view.
    pub fn permute(&self, perm: &[usize]) -> Result<GpuTensor> {
        let (shape, strides) = layout::permuted("permute", &self.shape, &self.strides, perm)?;
        Ok(self.view(shape, strides, self.offset))
    }

    /// Swaps the last two dimensions (a view).
    pub fn transpose_last(&self) -> Result<GpuTensor> {
        if self.rank() < 2 {
            return Err(KilnError::new("transpose", format!("needs rank >= 2, got shape {}", fmt_shape(&self.shape))));
        }
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(self.rank() - 1, self.rank() - 2);
        self.permute(&perm)
    }

    /// Broadcasts to `shape` (NumPy rules): a view with stride 0 on broadcast dimensions.
    pub fn expand(&self, shape: &[usize]) -> Result<GpuTensor> {
        let target = layout::broadcast_shapes("expand", &self.shape, shape)?;
        if target != shape {
            return Err(KilnError::new("expand", format!("shape {} cannot be broadcast to {}", fmt_shape(&self.shape), fmt_shape(shape))));
        }
        Ok(self.view(shape.to_vec(), layout::broadcast_strides(&self.shape, &self.strides, shape), self.offset))
    }

    /// Inserts a size-1 dimension at `axis` (a view).
    pub fn unsqueeze(&self, axis: usize) -> GpuTensor {
        let (shape, strides) = layout::unsqueezed(&self.shape, &self.strides, axis);
        self.view(shape, strides, self.offset)
    }

    /// Elements `start..start + len` along `axis` (a view): a chunk of a batch, a part of a split.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<GpuTensor> {
        if axis >= self.rank() || start.checked_add(len).is_none_or(|end| end > self.shape[axis]) {
            return Err(KilnError::new("narrow", format!("elements {start}..{} of axis {axis} are outside shape {}", start.saturating_add(len), fmt_shape(&self.shape))));
        }
        let mut shape = self.shape.clone();
        shape[axis] = len;
        Ok(self.view(shape, self.strides.clone(), self.offset + start * self.strides[axis]))
    }
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuTensor({} {})", self.dtype, fmt_shape(&self.shape))
    }
}
