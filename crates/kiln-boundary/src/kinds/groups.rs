//! Argument groups: values that travel together (a convolution's geometry, an optimizer's
//! hyper-parameters, attention's options) cross as one JS object with named fields instead of a
//! long positional list, which no compiler checked across the bindings and TypeScript
//! (`conv2dQ4` once took 16 positional numbers).
//!
//! `group!` declares each once: the Rust struct the body receives, the TypeScript interface of
//! the same name (the manifest lists its fields; tests/boundary/contract.test.ts compares them
//! with ts/backends/backend.ts), and the reading of every field by its own kind, so a bad field is
//! an error naming the entry, the argument and the field:
//! `conv2d: argument 'geometry.stride' must be a pair of non-negative integers, got undefined`.

use super::{wrong_kind, Count, Flag, Kind, Number, Scalar};
use crate::js::JsArg;
use kiln_core::{KilnError, Result};

/// `N` non-negative integers as a JS array `[a, b, ...]` (strides, paddings, kernel sizes).
pub struct Counts<const N: usize>;
impl<const N: usize> Kind for Counts<N> {
    type Value = [usize; N];
    const TS: &'static str = ["", "[number]", "[number, number]", "", "[number, number, number, number]"][N];
    const EXPECTED: &'static str = ["", "", "a pair of non-negative integers", "", "four non-negative integers"][N];
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<[usize; N]> {
        let items = v.elements().filter(|items| items.len() == N).ok_or_else(|| wrong_kind::<Self>(entry, arg, &v.describe()))?;
        let mut out = [0; N];
        for (slot, item) in out.iter_mut().zip(&items) {
            let x = item.number().ok_or_else(|| wrong_kind::<Self>(entry, arg, &format!("an array holding {}", item.describe())))?;
            *slot = Count::from_number(entry, arg, x).map_err(|_| wrong_kind::<Self>(entry, arg, &format!("an array holding {x}")))? as usize;
        }
        Ok(out)
    }
}

/// `[height, width]`.
pub type Pair = Counts<2>;
/// `[top, bottom, left, right]`.
pub type Quad = Counts<4>;

/// A field's error, which names the field alone, made to name the argument too
/// ('stride' -> 'geometry.stride'). Only on the error path: reading a group allocates nothing.
fn in_group(mut e: KilnError, arg: &str, field: &str) -> KilnError {
    e.message = e.message.replacen(&format!("argument '{field}'"), &format!("argument '{}.{field}'", super::js_name(arg)), 1);
    e
}

/// Declares a group: `Name { rust_field: Kind as "jsField", ... }`.
macro_rules! group {
    ($($(#[$doc:meta])* $name:ident { $($field:ident: $kind:ty as $js:literal),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $(pub $field: <$kind as Kind>::Value),*
        }
        impl Kind for $name {
            type Value = $name;
            const TS: &'static str = stringify!($name);
            const EXPECTED: &'static str = concat!("an object { ", $($js, " "),* , "}");
            const FIELDS: &'static [(&'static str, &'static str)] = &[$(($js, <$kind as Kind>::TS)),*];
            fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<$name> {
                let field = |js: &str| v.field(js).ok_or_else(|| wrong_kind::<Self>(entry, arg, &v.describe()));
                Ok($name { $($field: <$kind as Kind>::read(entry, $js, &field($js)?).map_err(|e| in_group(e, arg, $js))?),* })
            }
        }
    )*};
}

group! {
    /// A 2-D convolution's geometry (conv2d, convTranspose2d and the quantized convolutions).
    ConvGeometry { stride: Pair as "stride", padding: Quad as "padding", dilation: Pair as "dilation", groups: Count as "groups" }

    /// A max-pooling window.
    MaxPoolWindow { kernel: Pair as "kernel", stride: Pair as "stride", padding: Quad as "padding", dilation: Pair as "dilation" }

    /// An average-pooling window; `countIncludePad` counts the padding in each average.
    AvgPoolWindow { kernel: Pair as "kernel", stride: Pair as "stride", padding: Quad as "padding", count_include_pad: Flag as "countIncludePad" }

    /// What every optimizer does to a gradient before its rule: scale it (1 / loss scale),
    /// clip it to [-clipValue, clipValue] (Infinity: off), add weightDecay * param.
    GradTransform { scale: Number as "scale", clip_value: Number as "clipValue", weight_decay: Number as "weightDecay" }

    /// SGD's hyper-parameters; `firstStep`: the momentum buffer starts as the gradient.
    SgdStepOptions { lr: Number as "lr", momentum: Number as "momentum", dampening: Number as "dampening", nesterov: Flag as "nesterov", first_step: Flag as "firstStep" }

    /// Adam's hyper-parameters; `decoupledDecay` > 0 is AdamW; `step` counts from 1.
    AdamStepOptions { lr: Number as "lr", beta1: Number as "beta1", beta2: Number as "beta2", eps: Number as "eps", decoupled_decay: Number as "decoupledDecay", step: Count as "step" }

    /// RMSprop's hyper-parameters.
    RmspropStepOptions { lr: Number as "lr", alpha: Number as "alpha", eps: Number as "eps" }

    /// AdaGrad's hyper-parameters.
    AdagradStepOptions { lr: Number as "lr", eps: Number as "eps" }

    /// Fused attention's options: scale NaN for 1/sqrt(D); dropout in [0, 1); seed negative to
    /// draw from the global generator.
    FusedAttentionOptions { causal: Flag as "causal", scale: Number as "scale", dropout: Number as "dropout", seed: Number as "seed" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::js::Fake::{self, *};

    fn pair(a: f64, b: f64) -> Fake {
        List(vec![Num(a), Num(b)])
    }

    fn geometry(stride: Fake) -> Fake {
        Object(vec![("stride", stride), ("padding", List(vec![Num(0.0); 4])), ("dilation", pair(1.0, 1.0)), ("groups", Num(1.0))])
    }

    #[test]
    fn a_group_reads_its_fields_by_name() {
        let g = ConvGeometry::read("conv2d", "geometry", &geometry(pair(2.0, 3.0))).unwrap();
        assert_eq!(g, ConvGeometry { stride: [2, 3], padding: [0; 4], dilation: [1, 1], groups: 1 });
    }

    #[test]
    fn a_bad_field_names_the_entry_the_argument_and_the_field() {
        let e = ConvGeometry::read("conv2d", "geometry", &geometry(pair(2.5, 1.0))).unwrap_err().to_string();
        assert_eq!(e, "conv2d: argument 'geometry.stride' must be a pair of non-negative integers, got an array holding 2.5");
        let e = ConvGeometry::read("conv2d", "geometry", &geometry(Num(2.0))).unwrap_err().to_string();
        assert_eq!(e, "conv2d: argument 'geometry.stride' must be a pair of non-negative integers, got 2");
        let e = ConvGeometry::read("conv2d", "geometry", &Object(vec![])).unwrap_err().to_string();
        assert_eq!(e, "conv2d: argument 'geometry.stride' must be a pair of non-negative integers, got undefined");
        let e = AdamStepOptions::read("adamStep", "options", &Str("fast")).unwrap_err().to_string();
        assert_eq!(e, "adamStep: argument 'options' must be an object { lr beta1 beta2 eps decoupledDecay step }, got a string");
    }

    #[test]
    fn the_manifest_lists_a_group_with_its_fields() {
        assert_eq!(ConvGeometry::TS, "ConvGeometry");
        assert_eq!(ConvGeometry::FIELDS[1], ("padding", "[number, number, number, number]"));
        assert_eq!(AvgPoolWindow::FIELDS[3], ("countIncludePad", "boolean"));
    }
}
