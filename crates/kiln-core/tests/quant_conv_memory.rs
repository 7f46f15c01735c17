//! The quantized convolutions never hold their whole f32 weight: the peak working memory of a
//! layer whose f32 filters are 4.7 MB stays far below that. In a test binary of its own: the
//! peak counter is process-wide, so no other test may allocate while it measures.
use kiln_core::ops::{self, ConvParams};
use kiln_core::storage::{live_memory, peak_bytes, reset_peak_bytes};

/// Peak bytes above what is live before the call.
fn peak_of(f: impl FnOnce() -> kiln_core::Tensor) -> usize {
    let base = live_memory().1;
    reset_peak_bytes();
    drop(f());
    peak_bytes() - base
}

#[test]
fn working_memory_stays_far_below_the_f32_weight() {
    // 512 filters of 256 channels x 3x3 on an 8x8 image: the f32 weight (4.7 MB) dwarfs the
    // input (64 KB), the output (128 KB) and the im2col band (590 KB).
    let (out, channels) = (512, 256);
    let x = ops::randn(&[1, channels, 8, 8], 0.0, 1.0, Some(1)).unwrap();
    let w = ops::randn(&[out, channels * 9], 0.0, 1.0, Some(2)).unwrap();
    let f32_weight = out * channels * 9 * 4;
    let (q, s) = ops::quantize_int8(&w).unwrap();
    let (p4, s4) = ops::quantize_int4(&w, 32).unwrap();
    drop(w);
    let p = ConvParams { padding: [1; 4], ..Default::default() };
    let q8 = peak_of(|| ops::conv2d_q8(&x, &q, &s, None, [3, 3], &p).unwrap());
    let q4 = peak_of(|| ops::conv2d_q4(&x, &p4, &s4, None, [3, 3], &p, 32).unwrap());
    // What expanding the weight whole first costs: at least the f32 weight (the check that this
    // measurement can see a dequantized weight at all).
    let whole = peak_of(|| {
        let d = ops::dequantize_int8(&q, &s).unwrap().reshape(&[out as isize, channels as isize, 3, 3]).unwrap();
        ops::conv2d(&x, &d, None, &p).unwrap()
    });
    assert!(whole >= f32_weight, "dequantize-then-conv2d peaked at {whole} bytes, below the weight's {f32_weight}");
    for (name, peak) in [("conv2dQ8", q8), ("conv2dQ4", q4)] {
        assert!(peak < f32_weight / 2, "{name} peaked at {peak} bytes; the f32 weight is {f32_weight}");
    }
}
