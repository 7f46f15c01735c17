//! Dequantization of weight rows into float tiles for the quantized linear and conv layers.

pub(crate) mod rows;
