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

/// Which gradients a BPTT computes: autograd asks only for those of inputs that require one (the
/// first layer's x needs none, which saves a GEMM; frozen weights save two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    pub x: bool,
    pub h0: bool,
    pub c0: bool,
    pub w_ih: bool,
    pub w_hh: bool,
    pub b_ih: bool,
    pub b_hh: bool,
}

/// Which optional inputs a layer has (c0, b_ih, b_hh): they set the positions of the op's
/// inputs and of their gradients, x, h0, [c0], w_ih, w_hh, [b_ih], [b_hh].
#[derive(Clone, Copy, Debug)]
pub struct Present {
    pub c0: bool,
    pub b_ih: bool,
    pub b_hh: bool,
}

impl Needs {
    /// Every gradient the layer has.
    pub fn all(present: Present) -> Needs {
        Needs { x: true, h0: true, c0: present.c0, w_ih: true, w_hh: true, b_ih: present.b_ih, b_hh: present.b_hh }
    }

    /// From autograd's per-input flags, in the op's input order.
    pub fn from_inputs(flags: &[bool], present: Present) -> Needs {
        let mut next = flags.iter().copied();
        let mut take = |has: bool| has && next.next().unwrap_or(false);
        let (x, h0, c0) = (take(true), take(true), take(present.c0));
        let (w_ih, w_hh) = (take(true), take(true));
        let (b_ih, b_hh) = (take(present.b_ih), take(present.b_hh));
        Needs { x, h0, c0, w_ih, w_hh, b_ih, b_hh }
    }
}

/// BPTT's gradients, one per input; None where not needed or the input is absent.
#[derive(Default)]
pub struct Grads {
    pub x: Option<Tensor>,
    pub h0: Option<Tensor>,
    pub c0: Option<Tensor>,
    pub w_ih: Option<Tensor>,
    pub w_hh: Option<Tensor>,
    pub b_ih: Option<Tensor>,
    pub b_hh: Option<Tensor>,
}

impl Grads {
    /// In the op's input order (absent inputs leave no slot), as autograd returns them.
    pub fn in_input_order(self, present: Present) -> Vec<Option<Tensor>> {
        let mut out = vec![self.x, self.h0];
        if present.c0 {
            out.push(self.c0);
        }
        out.extend([self.w_ih, self.w_hh]);
        if present.b_ih {
            out.push(self.b_ih);
        }
        if present.b_hh {
            out.push(self.b_hh);
        }
        out
    }
}
