//! The Tensor: a shared buffer seen through a shape, strides and an offset. Reshape, permute,
//! slice and expand make views (no copy) whenever the layout allows.

use crate::autograd::{self, GradMeta};
use crate::device::{Device, DeviceBuffer};
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::{self, contiguous_strides, numel};
use crate::storage::{Buffer, Element, Storage};
use smallvec::SmallVec;
use std::sync::Arc;

/// Shape or strides, inline up to rank 6: small tensors are made at a high rate (millions per
/// second in a tight loop), and two fewer heap allocations per tensor is measurable there.
type Dims = SmallVec<[usize; 6]>;

/// Cloning a Tensor makes another reference to the same tensor (same data, same place in the
/// autograd graph); views and op results are new tensors.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Dims,
    strides: Dims,
    offset: usize,
    /// Present when the tensor requires gradients: a leaf, or the output of a recorded op.
    grad_meta: Option<Arc<GradMeta>>,
}

impl Tensor {
    /// A contiguous tensor that owns `data`.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if Some(data.len()) != layout::checked_numel("tensor", shape).ok() {
            let dtype = T::wrap(Vec::new()).dtype();
            return Err(KilnError::new(
                "tensor",
                format!("{} values cannot fill shape {} ({} elements, {dtype})", data.len(), fmt_shape(shape), numel(shape)),
            ));
        }
        Ok(Tensor::from_buffer(T::wrap(data), shape))
    }

    pub(crate) fn from_buffer(buffer: Buffer, shape: &[usize]) -> Tensor {
        debug_assert_eq!(buffer.len(), numel(shape));
        Tensor {
            storage: Arc::new(Storage::new(buffer)),
            shape: Dims::from_slice(shape),
            strides: contiguous_dims(shape),
            offset: 0,
            grad_meta: None,
        }
    }

    /// A tensor over a device's buffer (kiln-gpu makes these), seen through shape, strides, offset.
    pub fn from_device(buffer: Box<dyn DeviceBuffer>, shape: &[usize], strides: &[usize], offset: usize) -> Tensor {
        Tensor {
            storage: Arc::new(Storage::new(Buffer::Device(buffer))),
            shape: Dims::from_slice(shape),
            strides: Dims::from_slice(strides),
            offset,
            grad_meta: None,
        }
    }

    /// The device the tensor lives on; None for the CPU.
    pub fn device(&self) -> Option<Arc<dyn Device>> {
        match &self.storage.buffer {
            Buffer::Device(b) => Some(b.device()),
            _ => None,
        }
    }

    /// The device buffer of a tensor on a device (for that device's kernels).
    pub fn device_buffer(&self) -> Option<&dyn DeviceBuffer> {
        match &self.storage.buffer {
            Buffer::Device(b) => Some(b.as_ref()),
            _ => None,
        }
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::from_buffer(Buffer::F32(vec![v]), &[])
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn dtype(&self) -> DType {
        self.storage.buffer.dtype()
    }
    pub fn buffer(&self) -> &Buffer {
        &self.storage.buffer
    }
    /// Bytes held by the underlying buffer (shared by all views of it).
    pub fn storage_bytes(&self) -> usize {
        self.storage.buffer.size_bytes()
    }
    /// Whether two tensors view the same buffer.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// A form derived from this view's values by `make` (returning the form and the bytes it
    /// holds), made on the first call and kept with the buffer: later calls with the same type
    /// and `tag` on the same view get it back. For kernels that lay a constant operand out their
    /// own way (quantized weights): the layout is built once, not per call, and freed with the
    /// tensor. Buffers are never written in place while shared, and an in-place write drops it.
    pub fn derived<T: std::any::Any + Send + Sync>(&self, tag: &[usize], make: impl FnOnce() -> Result<(T, usize)>) -> Result<Arc<T>> {
        let view = [self.offset].into_iter().chain(self.shape.iter().copied()).chain(self.strides.iter().copied()).collect();
        let key = crate::storage::DerivedKey { kind: std::any::TypeId::of::<T>(), view, tag: tag.to_vec() };
        self.storage.derived(key, make)
    }

    /// The raw element slice of the whole buffer (not only this view), if the dtype is T.
    pub fn raw<T: Element>(&self) -> Option<&[T]> {
        T::slice(&self.storage.buffer)
    }

    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.rank()).rev() {
            if self.shape[i] != 1 && self.strides[i] != expected {
                return false;
            }
            expected *= self.shape[i];
        }
        true
    }

    /// The elements of a contiguous view as a slice; None for other layouts or dtypes.
    pub fn contiguous_slice<T: Element>(&self) -> Option<&[T]> {
        if !self.is_contiguous() {
            return None;
        }
        T::slice(&self.storage.buffer).map(|s| &s[self.offset..self.offset + self.numel()])
    }

    /// The elements of a contiguous CPU tensor, for the CPU device's kernels (which materialize
    /// their inputs first): an error naming `op`, never a panic, for anything else.
    pub fn cpu_slice<T: Element>(&self, op: &str) -> Result<&[T]> {
        self.contiguous_slice::<T>().ok_or_else(|| {
            let want = T::wrap(Vec::new()).dtype();
            let place = if self.device().is_some() { "a device's" } else if self.is_contiguous() { "another dtype's" } else { "strided" };
            KilnError::new(op, format!("internal error: a CPU kernel expected contiguous {want} host memory, got {place} {} {}", self.dtype(), fmt_shape(&self.shape)))
        })
    }

    /// The whole host buffer under a CPU tensor of dtype T (strided kernels read it through the
    /// view's offset and strides): an error naming `op`, never a panic, for anything else.
    pub fn cpu_raw<T: Element>(&self, op: &str) -> Result<&[T]> {
        self.raw::<T>().ok_or_else(|| {
            let want = T::wrap(Vec::new()).dtype();
            let place = if self.device().is_some() { "a device's" } else { "another dtype's" };
            KilnError::new(op, format!("internal error: a CPU kernel expected {want} host memory, got {place} {} {}", self.dtype(), fmt_shape(&self.shape)))
        })
    }

    /// Requires dtype T, naming `op` in the error.
    pub fn expect_dtype(&self, op: &str, dtype: DType) -> Result<()> {
        if self.dtype() != dtype {
            return Err(KilnError::new(
                op,
                format!("expected a {dtype} tensor, got {} with shape {}", self.dtype(), fmt_shape(&self.shape)),
            ));
        }
        Ok(())
    }

    /// The elements in row-major order (copies unless already contiguous and whole). None if
    /// the dtype is not T or the copy cannot be allocated.
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        self.elements("to_vec").ok()
    }

    /// The elements in row-major order, for a kernel of `op`: an Error naming `op` if the dtype is
    /// not T or the copy cannot be allocated (an expanded view may stand for far more elements
    /// than its buffer holds).
    pub fn elements<T: Element>(&self, op: &str) -> Result<Vec<T>> {
        let raw = T::slice(&self.storage.buffer).ok_or_else(|| {
            let want = T::wrap(Vec::new()).dtype();
            KilnError::new(op, format!("expected a {want} tensor, got {} with shape {}", self.dtype(), fmt_shape(&self.shape)))
        })?;
        if self.is_contiguous() {
            return crate::alloc::try_copy(op, &raw[self.offset..self.offset + self.numel()]);
        }
        layout::gather_strided(op, raw, &self.shape, &self.strides, self.offset)
    }

    /// A contiguous tensor with the same elements (the same tensor if already contiguous);
    /// gradients pass straight through.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = self.materialize()?;
        Ok(autograd::record("contiguous", &[self], &[], out, |g, _, _| Ok(vec![Some(g.clone())])))
    }

    /// Kernels' internal copy to a contiguous layout: not recorded for autograd (the op that
    /// calls it records itself). Fails only if the copy cannot be allocated.
    pub(crate) fn materialize(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.detach());
        }
        self.copied("contiguous")
    }

    /// A contiguous copy of the elements in a buffer of its own (on the tensor's device), shared
    /// with no other tensor. Fails only if the copy cannot be allocated.
    fn copied(&self, op: &str) -> Result<Tensor> {
        if let Some(device) = self.device() {
            return device.copy(&self.detach());
        }
        let buffer = match &self.storage.buffer {
            Buffer::F32(v) => Buffer::F32(layout::gather_strided(op, v, &self.shape, &self.strides, self.offset)?),
            Buffer::I32(v) => Buffer::I32(layout::gather_strided(op, v, &self.shape, &self.strides, self.offset)?),
            Buffer::Bool(v) => Buffer::Bool(layout::gather_strided(op, v, &self.shape, &self.strides, self.offset)?),
            Buffer::I8(v) => Buffer::I8(layout::gather_strided(op, v, &self.shape, &self.strides, self.offset)?),
            Buffer::Device(_) => unreachable!("device tensors are copied by their device above"),
        };
        Ok(Tensor::from_buffer(buffer, &self.shape))
    }

    fn view(&self, shape: impl AsRef<[usize]>, strides: impl AsRef<[usize]>, offset: usize) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            shape: Dims::from_slice(shape.as_ref()),
            strides: Dims::from_slice(strides.as_ref()),
            offset,
            grad_meta: None,
        }
    }

    /// The elements of a whole, contiguous float32 tensor for in-place update (optimizers).
    /// Copy-on-write: if another tensor shares the buffer, this tensor first gets its own copy,
    /// so no one else ever sees the change.
    pub fn data_mut_f32(&mut self, op: &str) -> Result<&mut [f32]> {
        self.expect_dtype(op, DType::F32)?;
        if let Some(device) = self.device() {
            return Err(KilnError::new(op, format!("the tensor lives on the {} device: its values cannot be changed from the CPU", device.name())));
        }
        let whole = self.offset == 0 && self.is_contiguous() && self.numel() == self.storage.buffer.len();
        let watched = self.storage.is_watched();
        if !whole || Arc::get_mut(&mut self.storage).is_none() {
            let copy = self.to_vec::<f32>().ok_or_else(|| KilnError::new(op, "cannot copy the tensor for an in-place update"))?;
            self.storage = Arc::new(Storage::new(Buffer::F32(copy)));
            self.strides = contiguous_dims(&self.shape);
            self.offset = 0;
        }
        self.keep_watched(watched);
        match Arc::get_mut(&mut self.storage).expect("unique after copy").buffer_mut() {
            Buffer::F32(v) => Ok(v.as_mut_slice()),
            _ => unreachable!("dtype checked above"),
        }
    }

    /// Overwrites this tensor's values with `source`'s (same shape and dtype), in place and
    /// copy-on-write: the tensor keeps its identity and autograd state (a parameter stays the same
    /// leaf), and no other tensor sharing the old buffer sees the change.
    pub fn assign(&mut self, source: &Tensor) -> Result<()> {
        const OP: &str = "assign";
        if source.shape() != self.shape() || source.dtype() != self.dtype() {
            return Err(KilnError::new(OP, format!(
                "cannot assign {} {} to {} {} (the shapes and dtypes must match)",
                source.dtype(), fmt_shape(source.shape()), self.dtype(), fmt_shape(&self.shape)
            )));
        }
        if self.device().is_some() || source.device().is_some() || self.dtype() != DType::F32 {
            // New contents in a buffer of their own on this tensor's device; the old buffer is
            // left to whoever shares it. (Float32 on the CPU writes in place below instead: an
            // optimizer's parameter keeps its buffer.)
            let moved = crate::device::to_device(&source.detach(), self.device().as_ref())?;
            // A transfer made new storage already; otherwise copy, so no buffer is shared.
            let copy = if Arc::ptr_eq(&moved.storage, &source.storage) { moved.copied(OP)? } else { moved.materialize()? };
            self.replace_data(copy);
            return Ok(());
        }
        let values = source.to_vec::<f32>().ok_or_else(|| KilnError::new(OP, "cannot read the source"))?;
        self.data_mut_f32(OP)?.copy_from_slice(&values);
        Ok(())
    }

    /// Whether this tensor alone holds its buffer and views all of it, contiguously: an
    /// in-place update of it can change no other tensor.
    pub fn owns_whole_buffer(&self) -> bool {
        Arc::strong_count(&self.storage) == 1 && self.offset == 0 && self.is_contiguous() && self.numel() == self.storage.buffer.len()
    }

    /// Makes this tensor show `data`'s buffer and layout (same shape), keeping its own identity
    /// and autograd state: how in-place updates on a device (optimizer steps) land in a parameter.
    pub fn replace_data(&mut self, data: Tensor) {
        debug_assert_eq!(data.shape(), self.shape());
        let watched = self.storage.is_watched();
        self.storage = data.storage;
        self.strides = data.strides;
        self.offset = data.offset;
        self.keep_watched(watched);
    }

    /// Counts this tensor's in-place writes from now on (crate::storage::watched_writes), through
    /// copy-on-write and device updates: for forms a caller computes from its values and keeps.
    pub fn watch_writes(&self) {
        self.storage.watch();
    }

    /// For a device kernel about to write this tensor's own buffer in place (kiln-gpu's
    /// make_unique): counts the write if the tensor is watched.
    pub fn note_in_place_write(&self) {
        self.keep_watched(self.storage.is_watched());
    }

    /// After an in-place write: a watched tensor stays watched (its buffer may be new: copy-on-
    /// write, a device update) and the write is counted.
    fn keep_watched(&self, watched: bool) {
        if watched {
            self.storage.watch();
            crate::storage::count_watched_write();
        }
    }

    // ---- autograd ----

    pub fn requires_grad(&self) -> bool {
        self.grad_meta.is_some()
    }

    pub fn grad_meta(&self) -> Option<&Arc<GradMeta>> {
        self.grad_meta.as_ref()
    }

    pub(crate) fn with_grad_meta(mut self, meta: Option<Arc<GradMeta>>) -> Tensor {
        self.grad_meta = meta;
        self
    }

    /// The same data, cut off from the autograd graph.
    pub fn detach(&self) -> Tensor {
        Tensor { grad_meta: None, ..self.clone() }
    }

    /// Makes this tensor a leaf that accumulates gradients (true), or detaches it (false).
    pub fn set_requires_grad(&self, requires: bool) -> Result<Tensor> {
        if !requires {
            return Ok(self.detach());
        }
        if self.dtype() != DType::F32 {
            return Err(KilnError::new("requiresGrad", format!("only float32 tensors can require gradients, got {} {}", self.dtype(), fmt_shape(&self.shape))));
        }
        if self.requires_grad() {
            return Ok(self.clone());
        }
        Ok(self.clone().with_grad_meta(Some(GradMeta::leaf())))
    }

    /// The accumulated gradient of a leaf (None if it has none yet or is not a leaf).
    pub fn grad(&self) -> Option<Tensor> {
        self.grad_meta.as_ref().and_then(|m| m.grad())
    }

    /// Clears a leaf's accumulated gradient.
    pub fn zero_grad(&self) {
        if let Some(m) = &self.grad_meta {
            m.set_grad(None);
        }
    }

    /// New shape with the same elements; one entry may be -1 (inferred). A view when contiguous.
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let shape = infer_shape("reshape", shape, self.numel(), &self.shape)?;
        let base = self.materialize()?;
        let strides = contiguous_strides(&shape);
        let out = base.view(shape, strides, base.offset);
        let from: Vec<isize> = self.shape.iter().map(|&d| d as isize).collect();
        Ok(autograd::record("reshape", &[self], &[], out, move |g, _, _| Ok(vec![Some(g.reshape(&from)?)])))
    }

    /// Reorders dimensions; `perm[i]` is the source dimension of output dimension i. Always a view.
    pub fn permute(&self, perm: &[isize]) -> Result<Tensor> {
        if perm.len() != self.rank() {
            return Err(KilnError::new(
                "permute",
                format!("perm {perm:?} has {} entries but the tensor has shape {} (rank {})", perm.len(), fmt_shape(&self.shape), self.rank()),
            ));
        }
        let axes: Vec<usize> =
            perm.iter().map(|&a| layout::normalize_axis("permute", a, self.rank())).collect::<Result<_>>()?;
        let mut seen = vec![false; self.rank()];
        for &a in &axes {
            if seen[a] {
                return Err(KilnError::new("permute", format!("perm {perm:?} is not a permutation of 0..{}", self.rank())));
            }
            seen[a] = true;
        }
        let shape: Dims = axes.iter().map(|&a| self.shape[a]).collect();
        let strides: Dims = axes.iter().map(|&a| self.strides[a]).collect();
        let out = self.view(shape, strides, self.offset);
        let mut inverse = vec![0isize; axes.len()];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i as isize;
        }
        Ok(autograd::record("permute", &[self], &[], out, move |g, _, _| Ok(vec![Some(g.permute(&inverse)?)])))
    }

    /// Swaps two dimensions (a view).
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Tensor> {
        let d0 = layout::normalize_axis("transpose", dim0, self.rank())?;
        let d1 = layout::normalize_axis("transpose", dim1, self.rank())?;
        let mut perm: Vec<isize> = (0..self.rank() as isize).collect();
        perm.swap(d0, d1);
        self.permute(&perm)
    }

    /// `size[i]` elements from `begin[i]` along each dimension (size -1: to the end). A view.
    pub fn slice(&self, begin: &[isize], size: &[isize]) -> Result<Tensor> {
        if begin.len() != self.rank() || size.len() != self.rank() {
            return Err(KilnError::new(
                "slice",
                format!("begin {begin:?} and size {size:?} must each have one entry per dimension of shape {}", fmt_shape(&self.shape)),
            ));
        }
        // -1 is the one negative size with a meaning (as in tfjs); any other is a mistake that
        // would otherwise also read "to the end". (PyTorch's narrow refuses negative lengths.)
        if let Some(d) = size.iter().position(|&s| s < -1) {
            return Err(KilnError::new(
                "slice",
                format!("size {size:?} has {} at dimension {d}; sizes are non-negative, or -1 for 'to the end' (shape {})", size[d], fmt_shape(&self.shape)),
            ));
        }
        let mut shape = Vec::with_capacity(self.rank());
        let mut starts = Vec::with_capacity(self.rank());
        let mut offset = self.offset;
        for d in 0..self.rank() {
            let dim = self.shape[d] as isize;
            let b = if begin[d] < 0 { begin[d] + dim } else { begin[d] };
            let s = if size[d] < 0 { dim - b } else { size[d] };
            if b < 0 || b > dim || s < 0 || b + s > dim {
                return Err(KilnError::new(
                    "slice",
                    format!("begin {begin:?} with size {size:?} is out of bounds for shape {} (dimension {d})", fmt_shape(&self.shape)),
                ));
            }
            shape.push(s as usize);
            offset += b as usize * self.strides[d];
            starts.push(b as usize);
        }
        let out = self.view(&shape, &self.strides, offset);
        // The gradient of a slice is the incoming gradient padded with zeros back to full size.
        let pads: Vec<(usize, usize)> = (0..self.rank()).map(|d| (starts[d], self.shape[d] - starts[d] - shape[d])).collect();
        Ok(autograd::record("slice", &[self], &[], out, move |g, _, _| Ok(vec![Some(crate::ops::pad(g, &pads, 0.0)?)])))
    }

    /// Broadcasts to `shape` (NumPy rules, only size-1 or missing dims grow). A view with stride 0.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let target = layout::broadcast_shapes("expand", &self.shape, shape)?;
        layout::checked_numel("expand", shape)?;
        if target != shape {
            return Err(KilnError::new(
                "expand",
                format!("shape {} cannot be broadcast to {}", fmt_shape(&self.shape), fmt_shape(shape)),
            ));
        }
        let strides = layout::broadcast_strides(&self.shape, &self.strides, shape);
        let out = self.view(shape, strides, self.offset);
        let from = self.shape.to_vec();
        Ok(autograd::record("expand", &[self], &[], out, move |g, _, _| Ok(vec![Some(autograd::sum_to_shape(g, &from)?)])))
    }

    /// Inserts a size-1 dimension at `axis` (a view).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let axis = layout::normalize_axis("unsqueeze", axis, self.rank() + 1)?;
        let mut shape = self.shape.to_vec();
        let mut strides = self.strides.to_vec();
        let stride = if axis < self.rank() { self.strides[axis] * self.shape[axis] } else { 1 };
        shape.insert(axis, 1);
        strides.insert(axis, stride);
        let out = self.view(shape, strides, self.offset);
        Ok(autograd::record("unsqueeze", &[self], &[], out, move |g, _, _| Ok(vec![Some(g.squeeze(&[axis as isize])?)])))
    }

    /// Removes size-1 dimensions (the given ones, or all when `axes` is empty). A view.
    pub fn squeeze(&self, axes: &[isize]) -> Result<Tensor> {
        let drop: Vec<usize> = if axes.is_empty() {
            (0..self.rank()).filter(|&d| self.shape[d] == 1).collect()
        } else {
            layout::normalize_axes("squeeze", axes, self.rank())?
        };
        for &d in &drop {
            if self.shape[d] != 1 {
                return Err(KilnError::new(
                    "squeeze",
                    format!("dimension {d} of shape {} has size {}, not 1", fmt_shape(&self.shape), self.shape[d]),
                ));
            }
        }
        let keep = (0..self.rank()).filter(|d| !drop.contains(d));
        let (shape, strides): (Vec<usize>, Vec<usize>) = keep.map(|d| (self.shape[d], self.strides[d])).unzip();
        let out = self.view(shape, strides, self.offset);
        let from: Vec<isize> = self.shape.iter().map(|&d| d as isize).collect();
        Ok(autograd::record("squeeze", &[self], &[], out, move |g, _, _| Ok(vec![Some(g.reshape(&from)?)])))
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({} {})", self.dtype(), fmt_shape(&self.shape))
    }
}

/// Resolves a requested shape that may contain one -1 against an element count.
pub fn infer_shape(op: &str, shape: &[isize], count: usize, from: &[usize]) -> Result<Vec<usize>> {
    let unknown = shape.iter().filter(|&&d| d == -1).count();
    let bad = || KilnError::new(op, format!("cannot reshape {} ({count} elements) to {shape:?}", fmt_shape(from)));
    if unknown > 1 || shape.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    // Checked: a wrapping product let [2^32+1, 2^32-1, 2^32+1, 2^32-1] (product 2^128 - ...,
    // which wraps to 1) pass as a view of one element.
    let known = shape
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| KilnError::new(op, format!("cannot reshape {} ({count} elements) to {shape:?}: that shape has more elements than can be addressed", fmt_shape(from))))?;
    let out: Vec<usize> = if unknown == 1 {
        if known == 0 || count % known != 0 {
            return Err(bad());
        }
        shape.iter().map(|&d| if d == -1 { count / known } else { d as usize }).collect()
    } else {
        shape.iter().map(|&d| d as usize).collect()
    };
    if layout::checked_numel(op, &out)? != count {
        return Err(bad());
    }
    Ok(out)
}

fn contiguous_dims(shape: &[usize]) -> Dims {
    let mut strides = Dims::from_elem(0, shape.len());
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}
