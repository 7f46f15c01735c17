//! conv2dConcat: several convolutions of one input, their outputs concatenated on channels, as
//! SqueezeNet's fire modules (a 1x1 and a 3x3 expand of the same squeeze, then Concat) and
//! Inception's branches are built. input [N, C, H, W], filter sets i with weight
//! [O_i, C/groups_i, KH_i, KW_i] -> [N, ΣO_i, OH, OW]; every set must give the same OH x OW.
//!
//! The op exists for its forward: the device writes each set's output straight into its channel
//! slice of the result (device/cpu/conv/mod.rs `forward_concat`), so the concatenation is no pass
//! of its own over the output. When gradients are recorded and any of its tensors requires one,
//! it runs as what it means, conv2d per set then concat (each an autograd node with its own
//! exact gradient): training needs no second backward written here.

use crate::autograd;
use crate::device;
use crate::error::{fmt_shape, KilnError, Result};
use crate::ops::conv::{conv2d_fused, conv2d_geometry, Activation, ConvParams, Epilogue, Geometry};
use crate::ops::shape::concat;
use crate::layout;
use crate::params::conv::FilterSet;
use crate::tensor::Tensor;

/// One convolution of a conv2dConcat: its filters, bias, geometry and fused activation.
#[derive(Clone, Copy, Debug)]
pub struct ConvBranch<'a> {
    pub weight: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub params: ConvParams,
    pub activation: Option<Activation>,
}

/// concat([activation_i(conv2d(input, weight_i, bias_i, params_i)) for each branch], axis 1).
pub fn conv2d_concat(input: &Tensor, branches: &[ConvBranch]) -> Result<Tensor> {
    const OP: &str = "conv2dConcat";
    let sets = filter_sets(OP, input, branches, |b| conv2d_geometry(OP, input, b.weight, b.bias, &b.params))?;
    let recorded = autograd::is_enabled() && tensors(input, branches).any(|t| t.requires_grad());
    if recorded {
        let outs = branches
            .iter()
            .map(|b| conv2d_fused(input, b.weight, b.bias, &b.params, Epilogue { residual: None, activation: b.activation }))
            .collect::<Result<Vec<_>>>()?;
        return concat(&outs, 1);
    }
    let all: Vec<&Tensor> = tensors(input, branches).collect();
    device::dispatch(OP, &all)?.conv2d_concat_forward(input, &sets, OP)
}

/// The input, then each branch's weight and bias.
pub(crate) fn tensors<'a>(input: &'a Tensor, branches: &'a [ConvBranch<'a>]) -> impl Iterator<Item = &'a Tensor> {
    std::iter::once(input).chain(branches.iter().flat_map(|b| std::iter::once(b.weight).chain(b.bias)))
}

/// Each branch's checked geometry (`geometry`: conv2d's rules, or conv2dNchwc's for the blocked
/// op; errors naming the op and the branch); at least one branch, one output height and width for
/// all, and a concatenated output whose element count fits in usize.
pub(crate) fn filter_sets<'a>(op: &str, input: &Tensor, branches: &[ConvBranch<'a>], geometry: impl Fn(&ConvBranch<'a>) -> Result<Geometry>) -> Result<Vec<FilterSet<'a>>> {
    if branches.is_empty() {
        return Err(KilnError::new(op, format!("needs at least one filter set (input {} {})", input.dtype(), fmt_shape(input.shape()))));
    }
    let sets = branches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let geo = geometry(b).map_err(|e| KilnError::new(op, format!("filter set {i}: {}", e.message)))?;
            Ok(FilterSet { geo, weight: b.weight, bias: b.bias, activation: b.activation })
        })
        .collect::<Result<Vec<_>>>()?;
    let size = |s: &FilterSet| [s.geo.out_height, s.geo.out_width];
    if let Some((i, s)) = sets.iter().enumerate().find(|(_, s)| size(s) != size(&sets[0])) {
        let [h0, w0] = size(&sets[0]);
        let [h, w] = size(s);
        return Err(KilnError::new(op, format!(
            "every filter set must give the same output height and width to be concatenated on channels: set 0 gives {h0}x{w0} (weight {}), set {i} gives {h}x{w} (weight {}) from input {}",
            fmt_shape(sets[0].weight.shape()), fmt_shape(s.weight.shape()), fmt_shape(input.shape())
        )));
    }
    // Each set's own output fits (conv2d's checks); their concatenation must too, so that the
    // device's offsets into it cannot overflow (wasm32's usize is 32 bits).
    let [h, w] = size(&sets[0]);
    let channels = sets.iter().try_fold(0usize, |sum, s| sum.checked_add(s.geo.out_channels));
    if channels.and_then(|c| layout::checked_numel(op, &[sets[0].geo.batch, c, h, w]).ok()).is_none() {
        let each: Vec<String> = sets.iter().map(|s| s.geo.out_channels.to_string()).collect();
        return Err(KilnError::new(op, format!(
            "the concatenated output [{}, {} channels, {h}, {w}] has too many elements to address (input {})",
            sets[0].geo.batch, each.join(" + "), fmt_shape(input.shape())
        )));
    }
    Ok(sets)
}
