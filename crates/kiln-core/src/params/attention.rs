//! The options of fused attention (ops/attention.rs), as its device kernels receive them.

/// Block sizes of the kernels (queries × keys per block). Exposed so tests can force many small
/// blocks; the defaults were measured (see bench/ and the kiln-core example attention_tiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub query: usize,
    pub key: usize,
}

impl Default for Tiles {
    /// 128 x 128: the fastest forward of the `attention_tiles` example at T = 128, 512 and 2048
    /// (4 heads of 64, two threads, loaded machine, GFLOP per CPU-second against 128 x 64:
    /// 61.9-62.6 against 57.4-59.3 at T = 128 in three runs, 71.4-73.1 against 67.4-68.0 at 512
    /// in two, 73.3 against 69.5 at 2048 in one), level or faster with the backward (50.1-51.1
    /// against 47.1-48.4 at 128, 58.9-60.7 against 56.9-59.1 at 512, 63.3 against 59.3 at
    /// 2048); a 128-token sequence (the ONNX bench's encoder) is then one key block, with no
    /// rescaling of the partial output.
    fn default() -> Tiles {
        Tiles { query: 128, key: 128 }
    }
}

/// Options of `attention`. `Default` is plain, unmasked attention with scale 1/√D.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionOptions {
    /// Query i sees keys j <= i + Tk − Tq (bottom-right aligned; for Tq = Tk the usual j <= i).
    pub causal: bool,
    /// Multiplies QKᵀ; None for 1/√D.
    pub scale: Option<f32>,
    /// Probability of dropping each attention weight (training); survivors are scaled by 1/(1 − p).
    pub dropout: f32,
    /// Seed of the dropout mask; None draws one from the global generator (`random::set_seed`).
    pub seed: Option<u64>,
    pub tiles: Tiles,
}

impl AttentionOptions {
    /// The options as the bindings receive them from JavaScript: scale NaN for the default, seed
    /// negative to draw one from the global generator. Values are checked by `attention`.
    pub fn from_flat(causal: bool, scale: f64, dropout: f64, seed: f64) -> AttentionOptions {
        AttentionOptions {
            causal,
            scale: if scale.is_nan() { None } else { Some(scale as f32) },
            dropout: dropout as f32,
            seed: if seed >= 0.0 { Some(seed as u64) } else { None },
            tiles: Tiles::default(),
        }
    }
}
