//! How a batch normalization call normalizes.

/// How a batch_norm call normalizes; PyTorch's `F.batch_norm(training, momentum, eps)`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm {
    /// Normalize with the batch's statistics and fold them into the running ones; otherwise use
    /// the running statistics (or the batch's, when there are none).
    pub training: bool,
    /// running ← (1 − momentum)·running + momentum·batch.
    pub momentum: f32,
    /// Added to the variance before the square root.
    pub eps: f32,
}
