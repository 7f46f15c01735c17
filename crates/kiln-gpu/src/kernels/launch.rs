//! The shared shape of the simple 1-D kernels of the indexing, creation, loss, optimizer and
//! graph families: binding 0 is the u32 parameter block whose first word is the invocation
//! count n, the kernel's own bindings follow, and the body runs once per index `i` < n.

use super::{Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::checks;
use crate::device::GpuDevice;
use kiln_core::Result;

pub(crate) struct Kernel<'a> {
    /// The user-facing op, for errors.
    pub op: &'a str,
    /// Cache key: names the kernel and everything baked into its source.
    pub key: &'a str,
    /// WGSL declarations after the parameter block: bindings 1.. and helper functions.
    pub decls: &'a str,
    /// WGSL statements run for each `i` in [0, n); `p(k)` reads parameter word k as u32,
    /// `pf(k)` as f32.
    pub body: &'a str,
    /// For kernels that check indices (checks.rs): the message for a bad one, with `{value}` and
    /// `{position}` placeholders. Adds the error buffer after `buffers` and `checked(value,
    /// bound, position)` to the WGSL.
    pub check: Option<String>,
}

/// Runs `k` over `n` invocations with `params` (its first word must be n) and `buffers` bound to
/// bindings 1.. in order. Nothing to do when n is 0.
pub(crate) fn run_1d(dev: &GpuDevice, k: Kernel, n: usize, params: Params, buffers: &[&wgpu::Buffer]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    super::check_u32_range(k.op, n)?;
    match k.check.clone() {
        None => launch(dev, &k, n, params, buffers, ""),
        Some(template) => dev.with_index_check(k.op, template, |id, errors| {
            // The id goes last in the parameter block, at a word fixed per kernel.
            let checks = checks::wgsl(buffers.len() as u32 + 1, params.0.len());
            let mut all = buffers.to_vec();
            all.push(errors);
            launch(dev, &k, n, params.u32(id as usize), &all, &checks)
        }),
    }
}

fn launch(dev: &GpuDevice, k: &Kernel, n: usize, params: Params, buffers: &[&wgpu::Buffer], checks: &str) -> Result<()> {
    let params = params.upload(dev, k.op)?;
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
fn p(k: u32) -> u32 {{ return params[k]; }}
fn pf(k: u32) -> f32 {{ return bitcast<f32>(params[k]); }}
{decls}
{checks}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let i = {LINEAR_INDEX};
  if (i >= params[0]) {{ return; }}
{body}
}}
",
            decls = k.decls,
            body = k.body
        )
    };
    let mut all: Vec<&wgpu::Buffer> = vec![params.buffer()];
    all.extend_from_slice(buffers);
    dev.dispatch(k.op, k.key, source, &all, dev.groups_1d(n))
}

/// WGSL: `fn add_<array>(i: u32, v: f32)`, a float add into element i of `array`, an
/// `array<atomic<u32>>`, by compare-exchange (WebGPU has no float atomics without an optional
/// feature, and storage pointers cannot be passed to functions, hence one function per array).
pub(crate) fn atomic_add_f32(array: &str) -> String {
    format!(
        "fn add_{array}(i: u32, v: f32) {{
  var old = atomicLoad(&{array}[i]);
  loop {{
    let r = atomicCompareExchangeWeak(&{array}[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) {{ return; }}
    old = r.old_value;
  }}
}}
"
    )
}
