//! The W8A8 kernels' view of an int8 weight, built once per weight tensor and kept with it
//! (`Tensor::derived`): each row's Σ w (what the u8 shift of the activations adds to every dot
//! product) and, where the stored layout is not the one the panels read, the re-laid bytes.
//! Before, both were rebuilt on every call: reading the whole weight once more per call, as much
//! memory traffic as a batch-1 product itself.

use std::sync::Arc;

use super::int8_gemm::{self, Int8Rows};
use super::panels::WeightRows;
use crate::error::Result;
use crate::tensor::Tensor;

/// An int8 weight [rows, k] as the W8A8 kernels read it.
pub(crate) struct Int8Weights {
    /// The rows, k padded to a multiple of 4 with zeros; None when k already is (the stored
    /// tensor is then read as it is).
    padded: Option<Vec<i8>>,
    pub rows: usize,
    /// Weights per row that count (the padding is zero).
    pub k: usize,
    /// Σ_k w[o, k] per row.
    pub sums: Vec<i32>,
    /// 128 · sums: what the panels' u8 activations add to each product.
    pub shifts: Vec<i32>,
}

impl Int8Weights {
    /// From `q` [rows, k], row-major.
    pub fn new(q: &[i8], rows: usize, k: usize) -> Int8Weights {
        let kp = WeightRows::padded_k(k);
        let padded = (kp != k).then(|| {
            let mut out = vec![0i8; rows * kp];
            for (dst, src) in out.chunks_exact_mut(kp).zip(q.chunks_exact(k.max(1))) {
                dst[..k].copy_from_slice(src);
            }
            out
        });
        let sums = int8_gemm::weight_sums(Int8Rows { data: q, rows, k, stride: k });
        let shifts = sums.iter().map(|s| 128 * s).collect();
        Int8Weights { padded, rows, k, sums, shifts }
    }

    /// Bytes this view holds beyond the stored weight.
    fn bytes(&self) -> usize {
        self.padded.as_ref().map_or(0, Vec::len) + 8 * self.sums.len()
    }

    /// The rows for the panel kernel (k padded to 4); `stored` is the tensor's own bytes.
    pub fn panel_rows<'a>(&'a self, stored: &'a [i8]) -> WeightRows<'a> {
        let data = self.padded.as_deref().unwrap_or(stored);
        WeightRows { data, rows: self.rows, k: self.k, stride: WeightRows::padded_k(self.k) }
    }

    /// The int8 weight `q` [rows, k] as the W8A8 Linear reads it, built on first use.
    pub fn of_linear(q: &Tensor, rows: usize, k: usize) -> Result<Arc<Int8Weights>> {
        let stored = q.cpu_slice::<i8>("linearW8A8")?;
        q.derived(&[0, k], || {
            let w = Int8Weights::new(stored, rows, k);
            let bytes = w.bytes();
            Ok((w, bytes))
        })
    }

    /// A conv's int8 filters (`q` [out_channels, patch]) as the W8A8 conv reads them: re-laid by
    /// `relay` (tap-major, channels padded to 4: `k` bytes per filter), built on first use per
    /// kernel size (which, with the tensor's shape, fixes the layout).
    pub fn of_filters(q: &Tensor, rows: usize, k: usize, kernel: [usize; 2], relay: impl FnOnce(&[i8]) -> Vec<i8>) -> Result<Arc<Int8Weights>> {
        let stored = q.cpu_slice::<i8>("conv2dW8A8")?;
        q.derived(&[1, kernel[0], kernel[1], k], || {
            let laid = relay(stored);
            let mut w = Int8Weights::new(&laid, rows, k);
            // k is a multiple of 4 here (channels padded), so the re-laid rows are the panel rows.
            debug_assert!(w.padded.is_none());
            w.padded = Some(laid);
            let bytes = w.bytes();
            Ok((w, bytes))
        })
    }
}
