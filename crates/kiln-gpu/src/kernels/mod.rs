//! The WGSL kernels, one module per op family. Each kernel's source is generated once per
//! specialization and cached by GpuDevice under a key naming the family, the op and whatever was
//! baked in (dtypes, access pattern); sizes, strides and scalars travel in a u32 parameter block
//! (binding 0), so one compiled kernel serves every shape.

pub mod adam;
pub mod elementwise;
pub mod map;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod table;
// CNN family: conv2d / convTranspose2d passes, pooling, batch normalization (issue 6).
pub mod cnn;
// Transformer and RNN family: fused attention and recurrent cells.
pub mod attention;
pub mod recurrent;
// Indexing, creation, losses, optimizers and graph ops.
pub mod creation;
pub mod graph;
pub mod index;
pub mod join;
pub(crate) mod launch;
pub mod loss;
pub mod optim;
pub mod reduce_more;

use crate::device::GpuDevice;
use crate::pool::PooledBuffer;
use kiln_core::Result;

/// A kernel's parameter block: u32 words, floats stored by their bits (WGSL `bitcast<f32>`).
#[derive(Default)]
pub(crate) struct Params(Vec<u32>);

impl Params {
    pub fn u32(mut self, v: usize) -> Self {
        self.0.push(v as u32);
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }
    pub fn words(mut self, vs: impl IntoIterator<Item = usize>) -> Self {
        self.0.extend(vs.into_iter().map(|v| v as u32));
        self
    }
    pub fn upload(self, dev: &GpuDevice, op: &str) -> Result<PooledBuffer> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
        dev.upload_bytes(op, &bytes)
    }
}

/// Offsets and sizes travel as u32: refuse tensors whose element indices would not fit.
pub(crate) fn check_u32_range(op: &str, elements: usize) -> Result<()> {
    if elements > u32::MAX as usize {
        return Err(kiln_core::KilnError::new(op, format!("{elements} elements exceed the GPU kernels' 32-bit indexing")));
    }
    Ok(())
}

/// The linear invocation index of a 1-D kernel dispatched with GpuDevice::groups_1d.
pub(crate) const LINEAR_INDEX: &str = "(wid.y * nwg.x + wid.x) * 256u + lid";

/// Entry-point arguments matching LINEAR_INDEX.
pub(crate) const ENTRY_ARGS_1D: &str =
    "@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>";
