//! Kiln's JavaScript boundary, declared once. Each line of the table in `for_each_entry!` is
//! one entry: its JS name, its Rust body (a function in entries.rs), the kind of each argument
//! (kinds.rs) and the Rust type it returns. Three places expand the same table:
//!
//! - bindings/node/src/fast.rs: raw N-API functions (napi-rs's generated wrappers cost ~100 ns a
//!   call, which dominated small ops), each argument checked by its kind;
//! - bindings/wasm/src/entries.rs: wasm-bindgen exports, every argument crossing as an f64 that
//!   its kind checks (wasm-bindgen would otherwise wrap 2^32 + 1 to the handle 1 and cut 2.5 to 2);
//! - `MANIFEST` below: the list that tests/boundary/manifest.test.ts compares with the TypeScript
//!   `Backend` interface (ts/backends/backend.ts), so a mismatch in name, arity or kind fails
//!   `npm test`. Both bindings export it as `boundaryManifest()`.
//!
//! A new entry is one function in entries.rs and one line here; see docs/architecture.md.

pub mod entries;
pub mod js;
pub mod kinds;
pub mod returns;

pub use kiln_registry as registry;

/// Calls `$expand! { "jsName" => body_fn(arg: Kind, ...) -> RustType; ... }` with every entry.
#[macro_export]
macro_rules! for_each_entry {
    ($expand:ident) => {
        $expand! {
            "fromF32" => from_f32(data: F32Data, shape: Dims) -> u32;
            "fromI32" => from_i32(data: I32Data, shape: Dims) -> u32;
            "fromBool" => from_bool(data: BoolData, shape: Dims) -> u32;
            "fromI8" => from_i8(data: I8Data, shape: Dims) -> u32;
            "readF32" => read_f32(h: Handle) -> Vec<f32>;
            "readI32" => read_i32(h: Handle) -> Vec<i32>;
            "readBool" => read_bool(h: Handle) -> Vec<u8>;
            "readI8" => read_i8(h: Handle) -> Vec<i8>;
            "shape" => shape(h: Handle) -> Vec<f64>;
            "dtypeOf" => dtype_of(h: Handle) -> String;
            "dispose" => dispose(h: Handle) -> bool;
            "isContiguous" => is_contiguous(x: Handle) -> bool;

            "unary" => unary(op: Count, x: Handle, alpha: Number) -> u32;
            "binary" => binary(op: Count, a: Handle, b: Handle) -> u32;
            "where" => where_(cond: Handle, a: Handle, b: Handle) -> u32;
            "reduce" => reduce(op: Count, x: Handle, axes: Numbers, keep_dims: Flag, correction: Number) -> u32;
            "softmax" => softmax(x: Handle, axis: Int, log: Flag) -> u32;
            "matmul" => matmul(a: Handle, b: Handle, transpose_a: Flag, transpose_b: Flag) -> u32;
            "linear" => linear(x: Handle, w: Handle, bias: MaybeHandle, residual: MaybeHandle, activation: MaybeText, alpha: Number) -> u32;

            "reshape" => reshape(x: Handle, shape: Ints) -> u32;
            "permute" => permute(x: Handle, perm: Ints) -> u32;
            "slice" => slice(x: Handle, begin: Ints, size: Ints) -> u32;
            "expand" => expand(x: Handle, shape: Dims) -> u32;
            "squeeze" => squeeze(x: Handle, axes: Ints) -> u32;
            "cast" => cast(x: Handle, dtype: DTypeName) -> u32;
            "concat" => concat(xs: Handles, axis: Int) -> u32;
            "stack" => stack(xs: Handles, axis: Int) -> u32;
            "split" => split(x: Handle, sizes: Dims, count: Count, axis: Int) -> Vec<u32>;
            "pad" => pad(x: Handle, paddings: Dims, value: Number) -> u32;
            "contiguous" => contiguous(x: Handle) -> u32;
            "unsqueeze" => unsqueeze(x: Handle, axis: Int) -> u32;
            "gather" => gather(x: Handle, indices: Handle, axis: Int) -> u32;
            "scatterAdd" => scatter_add(base: Handle, indices: Handle, updates: Handle, axis: Int) -> u32;
            "oneHot" => one_hot(indices: Handle, depth: Count, on: Number, off: Number) -> u32;
            "eye" => eye(rows: Count, cols: Count) -> u32;
            "full" => full(shape: Numbers, value: Number, dtype: Text, op_name: MaybeText) -> u32;
            "arange" => arange(start: Number, stop: Number, step: Number, dtype: DTypeName) -> u32;
            "randn" => randn(shape: Dims, mean: Number, std: Number, seed: MaybeSeed) -> u32;
            "randu" => randu(shape: Dims, low: Number, high: Number, seed: MaybeSeed) -> u32;
            "setSeed" => set_seed(seed: Seed) -> ();
            "assign" => assign(target: Handle, source: Handle) -> bool;

            "setRequiresGrad" => set_requires_grad(x: Handle, requires: Flag) -> bool;
            "requiresGrad" => requires_grad(x: Handle) -> bool;
            "backward" => backward(x: Handle, seed: MaybeHandle) -> bool;
            "grad" => grad(x: Handle) -> f64;
            "zeroGrad" => zero_grad(x: Handle) -> bool;
            "detach" => detach(x: Handle) -> u32;
            "gradients" => gradients(root: Handle, seed: MaybeHandle, inputs: Handles) -> Vec<f64>;
            "setGradEnabled" => set_grad_enabled(enabled: Flag) -> bool;

            "crossEntropy" => cross_entropy(logits: Handle, targets: Handle, weights: MaybeHandle, smoothing: Number, reduction: Count) -> u32;
            "sgdStep" => sgd_step(param: Handle, grad: Handle, buffer: MaybeHandle, options: SgdStepOptions, transform: GradTransform) -> bool;
            "adamStep" => adam_step(param: Handle, grad: Handle, m: Handle, v: Handle, options: AdamStepOptions, transform: GradTransform) -> bool;
            "rmspropStep" => rmsprop_step(param: Handle, grad: Handle, square_avg: Handle, options: RmspropStepOptions, transform: GradTransform) -> bool;
            "adagradStep" => adagrad_step(param: Handle, grad: Handle, sum: Handle, options: AdagradStepOptions, transform: GradTransform) -> bool;
            "peakBytes" => peak_bytes(reset: Flag) -> f64;
            "watchWrites" => watch_writes(xs: Handles) -> f64;

            "spmm" => spmm(x: Handle, src: Handle, dst: Handle, weight: MaybeHandle, num_out: Count) -> u32;
            "segmentReduce" => segment_reduce(op: Count, values: Handle, ids: Handle, num_segments: Count) -> u32;
            "recurrent" => recurrent(cell: Count, x: Handle, h0: Handle, c0: MaybeHandle, w_ih: Handle, w_hh: Handle, b_ih: MaybeHandle, b_hh: MaybeHandle, reverse: Flag) -> u32;

            "quantizeInt8" => quantize_int8(w: Handle) -> Vec<u32>;
            "quantizeInt4" => quantize_int4(w: Handle, block: Count) -> Vec<u32>;
            "dequantizeInt8" => dequantize_int8(q: Handle, scales: Handle) -> u32;
            "dequantizeInt4" => dequantize_int4(packed: Handle, scales: Handle, in_features: Count, block: Count) -> u32;
            "linearQ8" => linear_q8(x: Handle, q: Handle, scales: Handle, bias: MaybeHandle) -> u32;
            "linearW8A8" => linear_w8a8(x: Handle, q: Handle, scales: Handle, bias: MaybeHandle) -> u32;
            "linearQ4" => linear_q4(x: Handle, packed: Handle, scales: Handle, bias: MaybeHandle, block: Count) -> u32;

            "conv2d" => conv2d(x: Handle, w: Handle, bias: MaybeHandle, residual: MaybeHandle, geometry: ConvGeometry, alpha: Number, activation: MaybeText) -> u32;
            "conv2dConcat" => conv2d_concat(x: Handle, weights: Handles, biases: Handles, geometries: ConvGeometries, activations: Texts, alphas: Numbers) -> u32;
            "conv2dNchwc" => conv2d_nchwc(x: Handle, packed: Handle, bias: MaybeHandle, residual: MaybeHandle, geometry: ConvGeometry, alpha: Number, activation: MaybeText) -> u32;
            "conv2dNchwcConcat" => conv2d_nchwc_concat(x: Handle, weights: Handles, biases: Handles, geometries: ConvGeometries, activations: Texts, alphas: Numbers) -> u32;
            "maxPool2dNchwc" => max_pool2d_nchwc(x: Handle, window: MaxPoolWindow) -> u32;
            "avgPool2dNchwc" => avg_pool2d_nchwc(x: Handle, window: AvgPoolWindow) -> u32;
            "toNchwc" => to_nchwc(x: Handle) -> u32;
            "fromNchwc" => from_nchwc(x: Handle, channels: Count) -> u32;
            "packNchwcFilters" => pack_nchwc_filters(w: Handle) -> u32;
            "convTranspose2d" => conv_transpose2d(x: Handle, w: Handle, bias: MaybeHandle, geometry: ConvGeometry, output_padding: Pair) -> u32;
            "maxPool2d" => max_pool2d(x: Handle, window: MaxPoolWindow) -> u32;
            "avgPool2d" => avg_pool2d(x: Handle, window: AvgPoolWindow) -> u32;
            "batchNorm" => batch_norm(x: Handle, weight: MaybeHandle, bias: MaybeHandle, running_mean: MaybeHandle, running_var: MaybeHandle, training: Flag, momentum: Number, eps: Number) -> u32;
            "attention" => attention(q: Handle, k: Handle, v: Handle, mask: MaybeHandle, options: FusedAttentionOptions) -> u32;
            "layerNorm" => layer_norm(x: Handle, weight: MaybeHandle, bias: MaybeHandle, axis: Int, eps: Number) -> u32;
            "conv2dQ8" => conv2d_q8(x: Handle, q: Handle, scales: Handle, bias: MaybeHandle, kernel: Pair, geometry: ConvGeometry) -> u32;
            "conv2dW8A8" => conv2d_w8a8(x: Handle, q: Handle, scales: Handle, bias: MaybeHandle, kernel: Pair, geometry: ConvGeometry) -> u32;
            "conv2dQ4" => conv2d_q4(x: Handle, packed: Handle, scales: Handle, bias: MaybeHandle, kernel: Pair, geometry: ConvGeometry, block: Count) -> u32;
        }
    };
}

/// One entry as the TypeScript check sees it.
pub struct Entry {
    pub js: &'static str,
    /// (Rust argument name, kind, TypeScript type, fields of a group) per argument.
    pub args: &'static [(&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)])],
    /// What each argument must be, as its kind's errors say it (`Kind::EXPECTED`).
    pub expected: &'static [&'static str],
    pub returns: &'static str,
}

macro_rules! manifest {
    ($($js:literal => $name:ident($($arg:ident: $kind:ident),*) -> $ret:ty;)*) => {
        /// Every entry of the table, in order.
        pub const MANIFEST: &[Entry] = &[$(Entry {
            js: $js,
            args: &[$((stringify!($arg), stringify!($kind), <kinds::$kind as kinds::Kind>::TS, <kinds::$kind as kinds::Kind>::FIELDS)),*],
            expected: &[$(<kinds::$kind as kinds::Kind>::EXPECTED),*],
            returns: <$ret as returns::Returned>::TS,
        }),*];
    };
}
for_each_entry!(manifest);

/// The manifest as JSON, `[{"name":"unary","args":[["op","number","Count"],...],"returns":"Handle"},...]`
/// (per argument: its JS name, TypeScript type and kind; a group adds its fields as
/// `[["stride","[number, number]"],...]`). Both bindings export it as `boundaryManifest()`.
pub fn manifest_json() -> String {
    let entries: Vec<String> = MANIFEST
        .iter()
        .map(|e| {
            let args: Vec<String> = e.args.iter().map(|(name, kind, ts, fields)| {
                if fields.is_empty() {
                    format!("[\"{}\",\"{ts}\",\"{kind}\"]", kinds::js_name(name))
                } else {
                    let fields: Vec<String> = fields.iter().map(|(f, t)| format!("[\"{f}\",\"{t}\"]")).collect();
                    format!("[\"{}\",\"{ts}\",\"{kind}\",[{}]]", kinds::js_name(name), fields.join(","))
                }
            }).collect();
            format!("{{\"name\":\"{}\",\"args\":[{}],\"returns\":\"{}\"}}", e.js, args.join(","), e.returns)
        })
        .collect();
    format!("[{}]", entries.join(","))
}

/// The error of argument `index` of `entry` when its value `v` has the wrong JavaScript type,
/// worded as the argument's kind words it. For the WASM module, whose scalar arguments cross as
/// f64 (JS has already turned "2" into 2 and true into 1 there): its TypeScript guard checks each
/// scalar's `typeof` and, only when one is wrong, asks for this message, so both bindings refuse
/// the same values with the same words. None if `entry` has no such argument.
pub fn wrong_type<V: js::JsArg>(entry: &str, index: usize, v: &V) -> Option<kiln_core::KilnError> {
    let e = MANIFEST.iter().find(|e| e.js == entry)?;
    let (arg, ..) = e.args.get(index)?;
    Some(kinds::wrong_value(entry, arg, e.expected[index], &v.describe()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrong_type_is_worded_as_the_kind_words_it() {
        use crate::js::Fake;
        use crate::kinds::{Flag, Kind};
        let by_kind = Flag::read("reduce", "keep_dims", &Fake::Num(1.0)).unwrap_err().to_string();
        let by_index = super::wrong_type("reduce", 3, &Fake::Num(1.0)).unwrap().to_string();
        assert_eq!(by_index, "reduce: argument 'keepDims' must be a boolean, got 1");
        assert_eq!(by_index, by_kind);
        assert!(super::wrong_type("reduce", 9, &Fake::Num(1.0)).is_none());
        assert!(super::wrong_type("noSuchEntry", 0, &Fake::Num(1.0)).is_none());
    }

    #[test]
    fn the_manifest_lists_each_entry_once() {
        let mut names: Vec<&str> = super::MANIFEST.iter().map(|e| e.js).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "an entry is declared twice");
        assert!(super::manifest_json().contains(r#"{"name":"matmul","args":[["a","Handle","Handle"],["b","Handle","Handle"],["transposeA","boolean","Flag"],["transposeB","boolean","Flag"]],"returns":"Handle"}"#));
    }
}
