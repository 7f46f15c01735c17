//! The geometry of a 2-D pooling call, checked once (Plan) by the op and read by every device's kernels.

use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

/// The window of a 2-D pooling: sizes are (height, width); padding is (top, bottom, left, right),
/// so TensorFlow's asymmetric "same" padding is expressible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
}

/// Where one axis's windows fall on the input: window `o` starts at `o * stride - pad_before`;
/// `taps(o)` says which of its taps are inside the input.
#[derive(Clone, Debug)]
pub struct AxisPlan {
    pub len: usize,
    pub out: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_before: usize,
    pub kernel: usize,
}

impl AxisPlan {
    /// Taps of window `o` that land inside the input: j in [lo, hi).
    pub fn taps(&self, o: usize) -> (usize, usize) {
        let start = (o * self.stride) as isize - self.pad_before as isize;
        let d = self.dilation as isize;
        let lo = if start < 0 { (-start + d - 1) / d } else { 0 };
        let last = self.len as isize - 1 - start; // taps at offset <= last are inside
        let hi = if last < 0 { 0 } else { (last / d + 1).min(self.kernel as isize) };
        (lo as usize, hi.max(lo) as usize)
    }

    /// Output positions whose tap `j` lands inside the input: o in [lo, hi).
    pub fn outputs_for_tap(&self, j: usize) -> (usize, usize) {
        // input index = o * stride + j * dilation - pad_before, must be in [0, len).
        let shift = (j * self.dilation) as isize - self.pad_before as isize;
        let s = self.stride as isize;
        let lo = if shift < 0 { (-shift + s - 1) / s } else { 0 };
        let last = self.len as isize - 1 - shift;
        let hi = if last < 0 { 0 } else { (last / s + 1).min(self.out as isize) };
        (lo as usize, hi.max(lo) as usize)
    }
}

/// The checked geometry of one pooling call (shared with device kernels).
#[derive(Clone, Debug)]
pub struct Plan {
    pub planes: usize,
    pub rows: AxisPlan,
    pub cols: AxisPlan,
}

impl Plan {
    pub fn new(op: &str, x: &Tensor, p: &Pool2d) -> Result<Plan> {
        let describe = || format!("{} {}", x.dtype(), fmt_shape(x.shape()));
        let &[n, c, h, w] = x.shape() else {
            return Err(KilnError::new(op, format!("expected a float32 [batch, channels, height, width] tensor, got {}", describe())));
        };
        if x.dtype() != DType::F32 {
            return Err(KilnError::new(op, format!("expected a float32 [batch, channels, height, width] tensor, got {}", describe())));
        }
        Plan::for_dims(op, [n, c, h, w], &describe, p)
    }

    /// The plan of a pooling over `dims` [N, C, H, W] (N·C planes), the input named by
    /// `describe` in messages: also that of a blocked input [N, Cb, H, W, 16] (Cb planes of
    /// 16-value pixels; ops/conv_nchwc.rs).
    pub fn for_dims(op: &str, dims: [usize; 4], describe: &dyn Fn() -> String, p: &Pool2d) -> Result<Plan> {
        let window = format!(
            "kernel {}x{}, stride {}x{}, padding (top {}, bottom {}, left {}, right {}), dilation {}x{}",
            p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.padding[2], p.padding[3], p.dilation[0], p.dilation[1]
        );
        if p.kernel.contains(&0) || p.stride.contains(&0) || p.dilation.contains(&0) {
            return Err(KilnError::new(op, format!("kernel, stride and dilation must be >= 1, got {window}")));
        }
        let s = dims;
        let axis = |a: usize| -> Result<AxisPlan> {
            let len = s[2 + a];
            let (before, after) = (p.padding[2 * a], p.padding[2 * a + 1]);
            let extent = p.dilation[a].checked_mul(p.kernel[a] - 1).and_then(|e| e.checked_add(1));
            let padded = len.checked_add(before).and_then(|l| l.checked_add(after));
            let (Some(extent), Some(padded)) = (extent, padded) else {
                return Err(KilnError::new(op, format!("{window} overflows for input {}", describe())));
            };
            if extent > padded {
                return Err(KilnError::new(op, format!(
                    "the window ({window}) spans {extent} {} but the padded input {} has only {padded}",
                    if a == 0 { "rows" } else { "columns" }, describe()
                )));
            }
            Ok(AxisPlan { len, out: (padded - extent) / p.stride[a] + 1, stride: p.stride[a], dilation: p.dilation[a], pad_before: before, kernel: p.kernel[a] })
        };
        let plan = Plan { planes: s[0] * s[1], rows: axis(0)?, cols: axis(1)? };
        // A window that sees only padding has no maximum and no average of real values.
        for (a, ax) in [&plan.rows, &plan.cols].into_iter().enumerate() {
            if let Some(o) = (0..ax.out).find(|&o| { let (lo, hi) = ax.taps(o); lo >= hi }) {
                return Err(KilnError::new(op, format!(
                    "output {} {o} of input {} covers only padding ({window}); reduce the padding",
                    if a == 0 { "row" } else { "column" }, describe()
                )));
            }
        }
        Ok(plan)
    }

    pub fn in_plane(&self) -> usize {
        self.rows.len * self.cols.len
    }

    pub fn out_plane(&self) -> usize {
        self.rows.out * self.cols.out
    }

    pub fn out_shape(&self, x: &Tensor) -> [usize; 4] {
        [x.shape()[0], x.shape()[1], self.rows.out, self.cols.out]
    }

    /// For every kernel column that reads the input: (first output column, output columns, first
    /// input column), in kernel-column order (the tie rule of max pooling depends on it).
    pub fn column_runs(&self) -> Vec<(usize, usize, usize)> {
        (0..self.cols.kernel)
            .map(|kx| {
                let (lo, hi) = self.cols.outputs_for_tap(kx);
                (lo, hi - lo, (lo * self.cols.stride + kx * self.cols.dilation).saturating_sub(self.cols.pad_before))
            })
            .filter(|&(_, n, _)| n > 0)
            .collect()
    }

    /// For an output row: the input rows its window reads.
    pub fn input_rows(&self, oy: usize) -> impl Iterator<Item = usize> + '_ {
        let (lo, hi) = self.rows.taps(oy);
        (lo..hi).map(move |ky| oy * self.rows.stride + ky * self.rows.dilation - self.rows.pad_before)
    }
}
