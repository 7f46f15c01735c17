//! The optimizer update rules, as the fused update kernels receive them (optim.rs).

/// Applied to every gradient element before the rule: g' = clamp(g * scale, -clip, clip) + wd * p
/// (wd only for the L2 form; AdamW decays the weights directly).
#[derive(Clone, Copy, Debug)]
pub struct GradTransform {
    /// Factor from clip-by-global-norm (1 when not clipping).
    pub scale: f32,
    /// Clip by value (infinity when not clipping).
    pub clip_value: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
}

#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// SGD with optional momentum (PyTorch's form: buf = m buf + (1 - dampening) g; first step buf = g).
    Sgd { lr: f32, momentum: f32, dampening: f32, nesterov: bool, first_step: bool },
    /// Adam / AdamW (decoupled weight decay) with bias correction at step `step` (1-based).
    Adam { lr: f32, beta1: f32, beta2: f32, eps: f32, decoupled_decay: f32, step: u32 },
    /// RMSProp: v = alpha v + (1 - alpha) g²; p -= lr g / (sqrt(v) + eps).
    RmsProp { lr: f32, alpha: f32, eps: f32 },
    /// AdaGrad: s += g²; p -= lr g / (sqrt(s) + eps).
    AdaGrad { lr: f32, eps: f32 },
}

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { .. } => "sgd",
            Rule::Adam { .. } => "adam",
            Rule::RmsProp { .. } => "rmsprop",
            Rule::AdaGrad { .. } => "adagrad",
        }
    }

    /// State tensors the rule keeps per parameter (momentum buffer, moments, ...).
    pub fn state_count(&self) -> usize {
        match self {
            Rule::Sgd { momentum, .. } => (*momentum != 0.0) as usize,
            Rule::Adam { .. } => 2,
            Rule::RmsProp { .. } | Rule::AdaGrad { .. } => 1,
        }
    }
}
