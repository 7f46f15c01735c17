//! The hot entry points, written against raw N-API. napi-rs's generated wrappers cost about
//! 100 ns per call here (measured: add+dispose of 4-element tensors ran at 2.8M/s through them,
//! 5.9M/s raw), which dominates small ops. So the ops whose arguments are only handles and
//! numbers are declared in the table at the bottom, with the same guarantees as the napi-rs ones:
//! arguments are type-checked, KilnErrors become JS Errors, and panics are caught.

use crate::{panic_message, register, registry};
use kiln_core::ops::{self, BinaryOp, UnaryOp};
use kiln_core::{autograd, optim, KilnError, Result, Tensor};
use napi::sys;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// A JS value that converts to a Rust argument (None if the JS value has the wrong type).
trait FromJs: Sized {
    const EXPECTED: &'static str;
    unsafe fn from_js(env: sys::napi_env, v: sys::napi_value) -> Option<Self>;
}

impl FromJs for u32 {
    const EXPECTED: &'static str = "a non-negative integer";
    unsafe fn from_js(env: sys::napi_env, v: sys::napi_value) -> Option<Self> {
        let mut x = 0.0;
        let ok = sys::napi_get_value_double(env, v, &mut x) == sys::Status::napi_ok;
        (ok && x >= 0.0 && x <= u32::MAX as f64 && x.fract() == 0.0).then_some(x as u32)
    }
}

impl FromJs for i64 {
    const EXPECTED: &'static str = "an integer";
    unsafe fn from_js(env: sys::napi_env, v: sys::napi_value) -> Option<Self> {
        let mut x = 0.0;
        let ok = sys::napi_get_value_double(env, v, &mut x) == sys::Status::napi_ok;
        (ok && x.fract() == 0.0).then_some(x as i64)
    }
}

impl FromJs for f64 {
    const EXPECTED: &'static str = "a number";
    unsafe fn from_js(env: sys::napi_env, v: sys::napi_value) -> Option<Self> {
        let mut x = 0.0;
        (sys::napi_get_value_double(env, v, &mut x) == sys::Status::napi_ok).then_some(x)
    }
}

impl FromJs for bool {
    const EXPECTED: &'static str = "a boolean";
    unsafe fn from_js(env: sys::napi_env, v: sys::napi_value) -> Option<Self> {
        let mut x = false;
        (sys::napi_get_value_bool(env, v, &mut x) == sys::Status::napi_ok).then_some(x)
    }
}

/// A Rust result that converts to a JS value.
trait ToJs {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value;
}

impl ToJs for u32 {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_create_uint32(env, self, &mut v);
        v
    }
}

impl ToJs for f64 {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_create_double(env, self, &mut v);
        v
    }
}

impl ToJs for bool {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_get_boolean(env, self, &mut v);
        v
    }
}

/// Tensor contents read back to JS. Copied into an ArrayBuffer that V8 owns: an external buffer
/// (napi-rs's Float32Array::new) is only freed by a finalizer that runs when the event loop
/// turns, so a synchronous loop of reads grew without bound (5,000 reads of 256 KB: 1.3 GB).
pub enum Readback {
    F32(Vec<f32>),
    I32(Vec<i32>),
    Bool(Vec<u8>),
    I8(Vec<i8>),
}

impl Readback {
    /// Copies the elements into a new JS typed array (null after throwing if that fails).
    pub(crate) unsafe fn into_js(self, env: sys::napi_env) -> sys::napi_value {
        self.to_js(env)
    }
}

impl ToJs for Readback {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let (bytes, len, kind): (&[u8], usize, i32) = match &self {
            Readback::F32(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4), v.len(), sys::TypedarrayType::float32_array),
            Readback::I32(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4), v.len(), sys::TypedarrayType::int32_array),
            Readback::Bool(v) => (v.as_slice(), v.len(), sys::TypedarrayType::uint8_array),
            Readback::I8(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len()), v.len(), sys::TypedarrayType::int8_array),
        };
        let (mut data, mut buffer, mut array) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        if sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer) != sys::Status::napi_ok {
            return throw(env, false, format!("data: cannot allocate {} bytes for the readback", bytes.len()));
        }
        if !bytes.is_empty() {
            ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
        }
        sys::napi_create_typedarray(env, kind, len, buffer, 0, &mut array);
        array
    }
}

fn read(h: u32, dtype: kiln_core::DType) -> Result<Readback> {
    let t = registry::with(|r| r.get(h).cloned())?;
    t.expect_dtype("data", dtype)?;
    readback(&t)
}

/// A tensor's elements for JS; a tensor on a device is downloaded first (and waits for it).
pub(crate) fn readback(t: &Tensor) -> Result<Readback> {
    let dtype = t.dtype();
    let downloaded;
    let t = match t.device() {
        Some(device) => {
            downloaded = device.download(t)?;
            &downloaded
        }
        None => t,
    };
    let fail = || KilnError::new("data", "cannot copy the tensor for reading");
    Ok(match dtype {
        kiln_core::DType::F32 => Readback::F32(t.to_vec().ok_or_else(fail)?),
        kiln_core::DType::I32 => Readback::I32(t.to_vec().ok_or_else(fail)?),
        kiln_core::DType::I8 => Readback::I8(t.to_vec().ok_or_else(fail)?),
        _ => Readback::Bool(t.to_vec().ok_or_else(fail)?),
    })
}

unsafe fn throw(env: sys::napi_env, type_error: bool, msg: String) -> sys::napi_value {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    if type_error {
        sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr());
    } else {
        sys::napi_throw_error(env, ptr::null(), msg.as_ptr());
    }
    ptr::null_mut()
}

/// Runs an entry's body: errors and panics become JS exceptions.
unsafe fn finish<T: ToJs>(env: sys::napi_env, name: &str, body: impl FnOnce() -> Result<T>) -> sys::napi_value {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v.to_js(env),
        Ok(Err(e)) => throw(env, false, e.to_string()),
        Err(panic) => throw(env, false, panic_message(name, panic)),
    }
}

/// Resolves handles, runs `f`, registers its result.
fn with_tensors<const N: usize>(handles: [u32; N], f: impl FnOnce([&Tensor; N]) -> Result<Tensor>) -> Result<u32> {
    let out = registry::with(|r| {
        let mut ts: [Option<&Tensor>; N] = [None; N];
        for (slot, &h) in ts.iter_mut().zip(&handles) {
            *slot = Some(r.get(h)?);
        }
        f(ts.map(|t| t.unwrap()))
    })?;
    Ok(register(out))
}

fn table_op<T: Copy>(family: &str, all: &[T], code: u32) -> Result<T> {
    all.get(code as usize).copied().ok_or_else(|| KilnError::new(family, format!("unknown op code {code}")))
}


fn transform(scale: f64, clip_value: f64, weight_decay: f64) -> optim::GradTransform {
    optim::GradTransform { scale: scale as f32, clip_value: clip_value as f32, weight_decay: weight_decay as f32 }
}

/// A rejected argument as the error shows it: a number as Rust prints an f64, which is how the
/// WASM module's checks (bindings/wasm `whole`) show it, so both backends word the error alike.
unsafe fn describe_js(env: sys::napi_env, v: sys::napi_value) -> String {
    let mut x = 0.0;
    if sys::napi_get_value_double(env, v, &mut x) == sys::Status::napi_ok {
        return format!("{x}");
    }
    let mut kind = 0;
    sys::napi_typeof(env, v, &mut kind);
    match kind {
        sys::ValueType::napi_undefined => "undefined",
        sys::ValueType::napi_null => "null",
        sys::ValueType::napi_boolean => "a boolean",
        sys::ValueType::napi_string => "a string",
        sys::ValueType::napi_object => "an object",
        sys::ValueType::napi_function => "a function",
        _ => "a value of another type",
    }
    .to_string()
}

/// Declares raw entry points: `"jsName" => fn name(arg: type, ...) -> type { body }`.
macro_rules! raw_functions {
    ($($js:literal => fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block)*) => {
        $(
            unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
                const ARGC: usize = [$(stringify!($arg)),*].len();
                let mut argc = ARGC;
                let mut argv = [ptr::null_mut(); ARGC];
                sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut());
                if argc < ARGC {
                    return throw(env, true, format!("{}: expected {} arguments, got {}", $js, ARGC, argc));
                }
                let mut _index = 0;
                $(
                    let $arg: $ty = match <$ty as FromJs>::from_js(env, argv[_index]) {
                        Some(v) => v,
                        None => return throw(env, true, format!("{}: argument '{}' must be {}, got {}", $js, stringify!($arg), <$ty as FromJs>::EXPECTED, describe_js(env, argv[_index]))),
                    };
                    _index += 1;
                )*
                finish(env, $js, move || -> Result<$ret> { $body })
            }
        )*

        /// Adds every raw entry point to the module's exports.
        pub unsafe fn install(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
            $(
                let name = concat!($js, "\0");
                let mut func = ptr::null_mut();
                let status = sys::napi_create_function(env, name.as_ptr().cast(), $js.len() as isize, Some($name), ptr::null_mut(), &mut func);
                if status != sys::Status::napi_ok || sys::napi_set_named_property(env, exports, name.as_ptr().cast(), func) != sys::Status::napi_ok {
                    return Err(napi::Error::from_reason(concat!("could not export ", $js)));
                }
            )*
            Ok(())
        }
    };
}

raw_functions! {
    "dispose" => fn dispose(h: u32) -> bool { Ok(registry::with_mut(|r| r.remove(h))) }
    "readF32" => fn read_f32(h: u32) -> Readback { read(h, kiln_core::DType::F32) }
    "readI32" => fn read_i32(h: u32) -> Readback { read(h, kiln_core::DType::I32) }
    "readBool" => fn read_bool(h: u32) -> Readback { read(h, kiln_core::DType::Bool) }
    "isContiguous" => fn is_contiguous(x: u32) -> bool { registry::with(|r| Ok(r.get(x)?.is_contiguous())) }

    "unary" => fn unary(op: u32, x: u32, alpha: f64) -> u32 {
        with_tensors([x], |[t]| ops::unary(table_op("unary", UnaryOp::ALL, op)?, t, alpha as f32))
    }
    "binary" => fn binary(op: u32, a: u32, b: u32) -> u32 {
        with_tensors([a, b], |[x, y]| ops::binary(table_op("binary", BinaryOp::ALL, op)?, x, y))
    }
    "where" => fn where_(cond: u32, a: u32, b: u32) -> u32 {
        with_tensors([cond, a, b], |[c, x, y]| ops::where_(c, x, y))
    }
    "softmax" => fn softmax(x: u32, axis: i64, log: bool) -> u32 {
        with_tensors([x], |[t]| ops::softmax(t, axis as isize, log))
    }
    "matmul" => fn matmul(a: u32, b: u32, transpose_a: bool, transpose_b: bool) -> u32 {
        with_tensors([a, b], |[x, y]| ops::matmul(x, y, transpose_a, transpose_b))
    }
    "contiguous" => fn contiguous(x: u32) -> u32 { with_tensors([x], |[t]| t.contiguous()) }
    "unsqueeze" => fn unsqueeze(x: u32, axis: i64) -> u32 { with_tensors([x], |[t]| t.unsqueeze(axis as isize)) }
    "gather" => fn gather(x: u32, indices: u32, axis: i64) -> u32 {
        with_tensors([x, indices], |[t, i]| ops::gather(t, i, axis as isize))
    }
    "scatterAdd" => fn scatter_add(base: u32, indices: u32, updates: u32, axis: i64) -> u32 {
        with_tensors([base, indices, updates], |[b, i, u]| ops::scatter_add(b, i, u, axis as isize))
    }
    "oneHot" => fn one_hot(indices: u32, depth: u32, on: f64, off: f64) -> u32 {
        with_tensors([indices], |[i]| ops::one_hot(i, depth as usize, on as f32, off as f32))
    }
    "eye" => fn eye(rows: u32, cols: u32) -> u32 { Ok(register(ops::eye(rows as usize, cols as usize)?)) }

    "assign" => fn assign(target: u32, source: u32) -> bool {
        let src = registry::with(|r| r.get(source).cloned())?;
        registry::with_mut(|r| {
            let mut t = r.take(target)?;
            let result = t.assign(&src);
            r.put_back(target, t);
            result.map(|_| true)
        })
    }

    // ---- autograd ----
    "setRequiresGrad" => fn set_requires_grad(x: u32, requires: bool) -> bool {
        let t = registry::with(|r| r.get(x)?.set_requires_grad(requires))?;
        registry::with_mut(|r| r.replace(x, t))?;
        Ok(requires)
    }
    "requiresGrad" => fn requires_grad(x: u32) -> bool { registry::with(|r| Ok(r.get(x)?.requires_grad())) }
    // `seed` is a handle, or -1 for the implicit 1 of a one-element tensor.
    "backward" => fn backward(x: u32, seed: i64) -> bool {
        registry::with(|r| {
            let seed = if seed < 0 { None } else { Some(r.get(seed as u32)?.clone()) };
            autograd::backward(r.get(x)?, seed.as_ref())
        })?;
        Ok(true)
    }
    // A new handle to the accumulated gradient, or -1 if there is none.
    "grad" => fn grad(x: u32) -> f64 {
        let g = registry::with(|r| Ok::<_, KilnError>(r.get(x)?.grad()))?;
        Ok(g.map_or(-1.0, |g| register(g) as f64))
    }
    "zeroGrad" => fn zero_grad(x: u32) -> bool { registry::with(|r| r.get(x).map(|t| t.zero_grad()))?; Ok(true) }
    "detach" => fn detach(x: u32) -> u32 { with_tensors([x], |[t]| Ok(t.detach())) }
    // Turns gradient recording on or off; returns the previous setting.
    "setGradEnabled" => fn set_grad_enabled(enabled: bool) -> bool { Ok(autograd::set_enabled(enabled)) }

    // ---- training ----
    // reduction: 0 none, 1 mean, 2 sum; weights: a handle or -1.
    "crossEntropy" => fn cross_entropy(logits: u32, targets: u32, weights: i64, smoothing: f64, reduction: u32) -> u32 {
        let reduction = ops::Reduction::from_code(reduction)?;
        let out = registry::with(|r| {
            let w = if weights < 0 { None } else { Some(r.get(weights as u32)?) };
            ops::cross_entropy(r.get(logits)?, r.get(targets)?, w, smoothing as f32, reduction)
        })?;
        Ok(register(out))
    }
    // In-place updates; `buffer` is the momentum buffer handle or -1 without momentum.
    "sgdStep" => fn sgd_step(param: u32, grad: u32, buffer: i64, lr: f64, momentum: f64, dampening: f64, nesterov: bool, first_step: bool, scale: f64, clip_value: f64, weight_decay: f64) -> bool {
        let rule = optim::Rule::Sgd { lr: lr as f32, momentum: momentum as f32, dampening: dampening as f32, nesterov, first_step };
        registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[buffer as f64])
    }
    "adamStep" => fn adam_step(param: u32, grad: u32, m: u32, v: u32, lr: f64, beta1: f64, beta2: f64, eps: f64, decoupled_decay: f64, step: u32, scale: f64, clip_value: f64, weight_decay: f64) -> bool {
        let rule = optim::Rule::Adam { lr: lr as f32, beta1: beta1 as f32, beta2: beta2 as f32, eps: eps as f32, decoupled_decay: decoupled_decay as f32, step };
        registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[m as f64, v as f64])
    }
    "rmspropStep" => fn rmsprop_step(param: u32, grad: u32, square_avg: u32, lr: f64, alpha: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> bool {
        let rule = optim::Rule::RmsProp { lr: lr as f32, alpha: alpha as f32, eps: eps as f32 };
        registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[square_avg as f64])
    }
    "adagradStep" => fn adagrad_step(param: u32, grad: u32, sum: u32, lr: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> bool {
        let rule = optim::Rule::AdaGrad { lr: lr as f32, eps: eps as f32 };
        registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[sum as f64])
    }

    // Panics on purpose, on the calling thread or inside the rayon pool, so a test can prove a
    // Rust panic reaches JS as an Error and leaves the process running.
    "debugPanic" => fn debug_panic(in_thread_pool: bool) -> bool {
        if in_thread_pool {
            kiln_core::parallel::for_each_chunk(4, 4, |_, _| panic!("deliberate panic in a worker thread"));
        }
        panic!("deliberate panic for tests")
    }

    // ---- graph neural networks: message passing over an edge list ----
    // `weight` is a handle, or -1 for weight 1 on every edge.
    "spmm" => fn spmm(x: u32, src: u32, dst: u32, weight: i64, num_out: u32) -> u32 {
        let out = registry::with(|r| {
            let w = if weight < 0 { None } else { Some(r.get(weight as u32)?) };
            ops::spmm(r.get(x)?, r.get(src)?, r.get(dst)?, w, num_out as usize)
        })?;
        Ok(register(out))
    }
    "segmentReduce" => fn segment_reduce(op: u32, values: u32, ids: u32, num_segments: u32) -> u32 {
        let op = table_op("segmentReduce", ops::SegmentReduce::ALL, op)?;
        with_tensors([values, ids], |[v, i]| ops::segment_reduce(v, i, num_segments as usize, op))
    }
    // ---- recurrent layers ----
    // One layer and direction over a sequence (kiln-core ops/recurrent). cell: code in the op
    // table's "recurrent" family; c0, b_ih, b_hh: handles or -1 when absent.
    "recurrent" => fn recurrent(cell: u32, x: u32, h0: u32, c0: i64, w_ih: u32, w_hh: u32, b_ih: i64, b_hh: i64, reverse: bool) -> u32 {
        let out = registry::with(|r| {
            let optional = |h: i64| if h < 0 { Ok(None) } else { r.get(h as u32).map(Some) };
            let w = ops::Weights { w_ih: r.get(w_ih)?, w_hh: r.get(w_hh)?, b_ih: optional(b_ih)?, b_hh: optional(b_hh)? };
            ops::recurrent(ops::Cell::from_code(cell)?, r.get(x)?, r.get(h0)?, optional(c0)?, &w, reverse)
        })?;
        Ok(register(out))
    }
    // ---- weight-only quantization (kiln-core ops/quant.rs) ----
    "readI8" => fn read_i8(h: u32) -> Readback { read(h, kiln_core::DType::I8) }
    // `bias` is a handle, or -1 without bias.
    "linearQ8" => fn linear_q8(x: u32, q: u32, scales: u32, bias: i64) -> u32 {
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::linear_q8(r.get(x)?, r.get(q)?, r.get(scales)?, b)
        })?;
        Ok(register(out))
    }
    // As linearQ8, with the input quantized to int8 too (int8 x int8 -> i32; ops/quant/w8a8.rs).
    "linearW8A8" => fn linear_w8a8(x: u32, q: u32, scales: u32, bias: i64) -> u32 {
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::linear_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, b)
        })?;
        Ok(register(out))
    }
    "linearQ4" => fn linear_q4(x: u32, packed: u32, scales: u32, bias: i64, block: u32) -> u32 {
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::linear_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, b, block as usize)
        })?;
        Ok(register(out))
    }
    // ---- convolution (CNN family) ----
    // `bias` is a handle or -1; padding is per side (the TypeScript layer resolves 'same').
    "conv2d" => fn conv2d(x: u32, w: u32, bias: i64, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> u32 {
        let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::conv2d(r.get(x)?, r.get(w)?, b, &p)
        })?;
        Ok(register(out))
    }
    "convTranspose2d" => fn conv_transpose2d(x: u32, w: u32, bias: i64, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32, output_padding_h: u32, output_padding_w: u32) -> u32 {
        let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::conv_transpose2d(r.get(x)?, r.get(w)?, b, &p, [output_padding_h as usize, output_padding_w as usize])
        })?;
        Ok(register(out))
    }
    // ---- CNN pooling and batch normalization (pool.rs, batch_norm.rs) ----
    // Padding is (top, bottom, left, right).
    "maxPool2d" => fn max_pool2d(x: u32, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32) -> u32 {
        let pool = pool2d([kernel_h, kernel_w], [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w]);
        with_tensors([x], |[t]| ops::max_pool2d(t, pool))
    }
    "avgPool2d" => fn avg_pool2d(x: u32, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, count_include_pad: bool) -> u32 {
        let pool = pool2d([kernel_h, kernel_w], [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [1, 1]);
        with_tensors([x], |[t]| ops::avg_pool2d(t, pool, count_include_pad))
    }
    // weight, bias, runningMean, runningVar: handles or -1; the running statistics update in place.
    "batchNorm" => fn batch_norm(x: u32, weight: f64, bias: f64, running_mean: f64, running_var: f64, training: bool, momentum: f64, eps: f64) -> u32 {
        let options = ops::BatchNorm { training, momentum: momentum as f32, eps: eps as f32 };
        Ok(register(registry::batch_norm(x, weight, bias, running_mean, running_var, options)?))
    }
    // ---- attention (Transformer family) ----
    // mask: a handle or -1; scale: NaN for 1/sqrt(D); seed: negative to draw from the global generator.
    "attention" => fn attention(q: u32, k: u32, v: u32, mask: i64, causal: bool, scale: f64, dropout: f64, seed: f64) -> u32 {
        let out = registry::with(|r| {
            let m = if mask < 0 { None } else { Some(r.get(mask as u32)?) };
            ops::attention(r.get(q)?, r.get(k)?, r.get(v)?, m, &ops::AttentionOptions::from_flat(causal, scale, dropout, seed))
        })?;
        Ok(register(out))
    }
    // The most bytes live at once since the last reset (tensors and kernel scratch); `reset` starts anew.
    "peakBytes" => fn peak_bytes(reset: bool) -> f64 {
        let peak = kiln_core::storage::peak_bytes() as f64;
        if reset {
            kiln_core::storage::reset_peak_bytes();
        }
        Ok(peak)
    }
    // ---- quantized convolutions (kiln-core ops/quant/conv.rs) ----
    // `bias` is a handle or -1; the kernel size [kh, kw] comes first (the rows do not record it),
    // then conv2d's stride, per-side padding, dilation and groups.
    "conv2dQ8" => fn conv2d_q8(x: u32, q: u32, scales: u32, bias: i64, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> u32 {
        let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::conv2d_q8(r.get(x)?, r.get(q)?, r.get(scales)?, b, [kernel_h as usize, kernel_w as usize], &p)
        })?;
        Ok(register(out))
    }
    "conv2dW8A8" => fn conv2d_w8a8(x: u32, q: u32, scales: u32, bias: i64, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> u32 {
        let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::conv2d_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, b, [kernel_h as usize, kernel_w as usize], &p)
        })?;
        Ok(register(out))
    }
    "conv2dQ4" => fn conv2d_q4(x: u32, packed: u32, scales: u32, bias: i64, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32, block: u32) -> u32 {
        let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
        let out = registry::with(|r| {
            let b = if bias < 0 { None } else { Some(r.get(bias as u32)?) };
            ops::conv2d_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, b, [kernel_h as usize, kernel_w as usize], &p, block as usize)
        })?;
        Ok(register(out))
    }
}

// convolution (CNN family)
fn conv_params(stride: [u32; 2], padding: [u32; 4], dilation: [u32; 2], groups: u32) -> ops::ConvParams {
    ops::ConvParams { stride: stride.map(|v| v as usize), padding: padding.map(|v| v as usize), dilation: dilation.map(|v| v as usize), groups: groups as usize }
}

// CNN pooling
fn pool2d(kernel: [u32; 2], stride: [u32; 2], padding: [u32; 4], dilation: [u32; 2]) -> ops::Pool2d {
    ops::Pool2d { kernel: kernel.map(|v| v as usize), stride: stride.map(|v| v as usize), padding: padding.map(|v| v as usize), dilation: dilation.map(|v| v as usize) }
}
