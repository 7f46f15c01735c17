//! The fused attention's working memory (tensors and kernel scratch, through the storage peak
//! counter) grows linearly with the sequence length. In a test binary of its own: the peak counter
//! is process-wide, so no other test may allocate while it measures.
use kiln_core::autograd;
use kiln_core::ops::attention::{attention, AttentionOptions};
use kiln_core::ops;
use kiln_core::storage::{live_memory, peak_bytes, reset_peak_bytes};

/// Peak bytes above the inputs during one forward and backward pass of length t.
fn peak_of(t: usize) -> usize {
    let input = |seed| ops::randn(&[1, 2, t, 16], 0.0, 1.0, Some(seed)).unwrap().set_requires_grad(true).unwrap();
    let (q, k, v) = (input(1), input(2), input(3));
    let base = live_memory().1;
    reset_peak_bytes();
    {
        let out = attention(&q, &k, &v, None, &AttentionOptions { causal: true, ..Default::default() }).unwrap();
        autograd::backward(&out, Some(&out.detach())).unwrap();
    }
    peak_bytes() - base
}

#[test]
fn working_memory_is_linear_in_sequence_length() {
    let (short, long) = (peak_of(512), peak_of(2048));
    let input_bytes = 3 * 2 * 2048 * 16 * 4;
    // 4x the length -> at most ~4x the memory; the 2048x2048 scores alone would be 32 MB per head.
    assert!((long as f64) < 4.5 * short as f64, "peak {short} -> {long} bytes for 4x the length");
    assert!(long < 4 * input_bytes, "peak {long} bytes at T = 2048 (inputs {input_bytes})");
}
