//! The recurrent layers' parameters: which cell runs at every step, and one layer's weights.

use crate::error::{KilnError, Result};
use crate::tensor::Tensor;

/// The cell run at every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    RnnTanh,
    /// h' = relu(W_ih x + b_ih + W_hh h + b_hh)
    RnnRelu,
    /// Gates i, f, g, o (PyTorch's order); c' = f c + i g, h' = o tanh(c').
    Lstm,
    /// Gates r, z, n (PyTorch's order); n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    /// h' = (1 - z) n + z h.
    Gru,
}

impl Cell {
    pub const ALL: &'static [Cell] = &[Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru];

    /// The name used in errors and in the op table (code = index in ALL).
    pub fn name(self) -> &'static str {
        match self {
            Cell::RnnTanh => "rnnTanh",
            Cell::RnnRelu => "rnnRelu",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }

    /// Gate blocks stacked in the weights: W_ih is [gates * hidden, input].
    pub fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// State tensors carried between steps (h, and c for an LSTM).
    pub fn states(self) -> usize {
        if self == Cell::Lstm { 2 } else { 1 }
    }

    pub fn from_code(code: u32) -> Result<Cell> {
        Cell::ALL.get(code as usize).copied().ok_or_else(|| {
            KilnError::new("recurrent", format!("unknown cell code {code} (0 rnnTanh, 1 rnnRelu, 2 lstm, 3 gru)"))
        })
    }
}

/// One layer's parameters, PyTorch's layout: w_ih [G·H, I], w_hh [G·H, H], b_ih and b_hh [G·H]
/// (G = cell.gates()).
pub struct Weights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: Option<&'a Tensor>,
    pub b_hh: Option<&'a Tensor>,
}
