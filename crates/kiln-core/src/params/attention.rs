//! The options of fused attention (ops/attention.rs), as its device kernels receive them.

/// Block sizes of the kernels (queries × keys per block). Exposed so tests can force many small
/// blocks; the defaults were measured (see bench/ and the kiln-core example attention_tiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub query: usize,
    pub key: usize,
}

impl Default for Tiles {
    fn default() -> Tiles {
        Tiles { query: 128, key: 64 }
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
