//! Recurrent layers on the device (Elman RNN with tanh or relu, LSTM, GRU), one layer and
//! direction over a whole sequence, computing what kiln-core's `recurrent` op computes
//! (ops/recurrent: PyTorch's gate order and equations, the same packed output
//! [batch, steps + states, hidden]), forward and full BPTT backward.
//!
//! Forward: the input projection of every step is one matmul (x [B·T, I] · W_ihᵀ); then per step
//! one matmul h_prev · W_hhᵀ and ONE fused cell kernel (biases, gates, nonlinearities, c and h
//! update). Backward: per step one fused cell-backward kernel (it also adds the output's gradient
//! and the gradient carried from the later step) and one matmul dGates · W_hh for dh_prev; after
//! the loop, the weight gradients are single matmuls over all steps and the bias gradients sums.
//!
//! Layouts (unlike kiln-core's step-major workspace, everything here is indexed by time, so x,
//! dx and the gate gradients line up row for row with no reordering in either direction):
//! - gates [B, T, G'·H]: activations per time (GRU keeps a 4th block, W_hn h_prev + b_hn, which
//!   backward needs because r multiplies it);
//! - hs (and cs for an LSTM) [B, T + 2, H]: row t + 1 holds the state after time t; the initial
//!   state sits in row 0 (forward) or row T + 1 (reverse), so the state before time t is row t
//!   (forward) or row t + 2 (reverse), and the states before every step are one strided view.

use super::{check_u32_range, elementwise, matmul::matmul, reduce, Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::{BinaryOp, Cell, ReduceOp};
use kiln_core::params::recurrent::Needs;
use kiln_core::{DType, KilnError, Result};

/// One layer's parameters on the device, PyTorch's layout (as kiln-core's `Weights`): w_ih
/// [G·H, I], w_hh [G·H, H], b_ih and b_hh [G·H].
pub struct GpuWeights<'a> {
    pub w_ih: &'a GpuTensor,
    pub w_hh: &'a GpuTensor,
    pub b_ih: Option<&'a GpuTensor>,
    pub b_hh: Option<&'a GpuTensor>,
}

/// What forward keeps for backward (see the module comment for the layouts).
pub struct Workspace {
    pub gates: GpuTensor,
    pub hs: GpuTensor,
    pub cs: Option<GpuTensor>,
}

/// The gradients `needs` asked for (None for the others, and for inputs the layer lacks).
pub struct RecurrentGrads {
    pub x: Option<GpuTensor>,
    pub h0: Option<GpuTensor>,
    pub c0: Option<GpuTensor>,
    pub w_ih: Option<GpuTensor>,
    pub w_hh: Option<GpuTensor>,
    pub b_ih: Option<GpuTensor>,
    pub b_hh: Option<GpuTensor>,
}

#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    steps: usize,
    hidden: usize,
}

impl Dims {
    /// The row of hs/cs holding the state before time t.
    fn prev_row(&self, t: usize, reverse: bool) -> usize {
        if reverse { t + 2 } else { t }
    }
    /// The time index of step s.
    fn time_of(&self, s: usize, reverse: bool) -> usize {
        if reverse { self.steps - 1 - s } else { s }
    }
}

/// Checks what the kernels rely on (kiln-core's op validates fully, with its messages).
fn check(cell: Cell, x: &GpuTensor, h0: &GpuTensor, c0: Option<&GpuTensor>, w: &GpuWeights) -> Result<Dims> {
    let op = cell.name();
    let mut all = vec![x, h0, w.w_ih, w.w_hh];
    all.extend(c0);
    all.extend(w.b_ih);
    all.extend(w.b_hh);
    let bad = |what: &str| KilnError::new(op, format!("{what}; got x {}, h0 {}, wIh {}, wHh {}", fmt_shape(x.shape()), fmt_shape(h0.shape()), fmt_shape(w.w_ih.shape()), fmt_shape(w.w_hh.shape())));
    if all.iter().any(|t| t.dtype() != DType::F32) {
        return Err(bad("every tensor must be float32"));
    }
    if x.rank() != 3 || w.w_hh.rank() != 2 || w.w_ih.rank() != 2 {
        return Err(bad("x must be [batch, steps, input], the weights 2-D"));
    }
    let (b, t, i) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let h = w.w_hh.shape()[1];
    let gh = cell.gates() * h;
    let fits = w.w_hh.shape()[0] == gh
        && w.w_ih.shape() == [gh, i]
        && h0.shape() == [b, h]
        && w.b_ih.is_none_or(|t| t.shape() == [gh])
        && w.b_hh.is_none_or(|t| t.shape() == [gh])
        && (cell == Cell::Lstm) == c0.is_some()
        && c0.is_none_or(|c| c.shape() == [b, h]);
    if !fits || b * t * i * h == 0 {
        return Err(bad("shapes do not fit the cell (see kiln-core's recurrent for the rules)"));
    }
    check_u32_range(op, b * (t + 2) * gh.max(i) + 4 * b * t * h)?;
    Ok(Dims { batch: b, steps: t, hidden: h })
}

/// A bias on the device, or zeros when the layer has none.
fn bias_or_zeros(dev: &GpuDevice, b: Option<&GpuTensor>, len: usize) -> Result<GpuTensor> {
    match b {
        Some(b) => b.contiguous(dev),
        None => GpuTensor::from_f32(dev, &vec![0.0; len], &[len]),
    }
}

/// Rows [start, start + count) of a contiguous [B, R, W] tensor as a [B, count, W] view.
fn rows(t: &GpuTensor, start: usize, count: usize) -> GpuTensor {
    let (r, w) = (t.shape()[1], t.shape()[2]);
    GpuTensor::from_parts(t.buffer_arc(), &[t.shape()[0], count, w], &[r * w, w, 1], t.offset() + start * w, t.dtype())
}

/// Row `row` of a contiguous [B, R, W] tensor as a [B, W] view.
fn row(t: &GpuTensor, row: usize) -> GpuTensor {
    let (r, w) = (t.shape()[1], t.shape()[2]);
    GpuTensor::from_parts(t.buffer_arc(), &[t.shape()[0], w], &[r * w, 1], t.offset() + row * w, t.dtype())
}

/// Forward over the sequence: x [B, T, I] (any strides), h0 [B, H], c0 [B, H] (LSTM only) ->
/// the packed output [B, T + states, H] and the workspace backward needs.
pub fn recurrent(dev: &GpuDevice, cell: Cell, x: &GpuTensor, h0: &GpuTensor, c0: Option<&GpuTensor>, w: &GpuWeights, reverse: bool) -> Result<(GpuTensor, Workspace)> {
    let op = cell.name();
    let d = check(cell, x, h0, c0, w)?;
    let Dims { batch: b, steps: t_len, hidden: h } = d;
    let gh = cell.gates() * h;
    let input = x.shape()[2];

    // The input projection of every step in one matmul: [B·T, G·H], row b·T + t.
    let x2 = x.contiguous(dev)?.reshape(dev, &[(b * t_len) as isize, input as isize])?;
    let xproj = matmul(dev, &x2, w.w_ih, false, true)?;
    let (b_ih, b_hh) = (bias_or_zeros(dev, w.b_ih, gh)?, bias_or_zeros(dev, w.b_hh, gh)?);
    let gate_blocks = if cell == Cell::Gru { 4 } else { cell.gates() };
    let gates = GpuTensor::empty(dev, op, &[b, t_len, gate_blocks * h], DType::F32)?;
    let first = if reverse { t_len + 1 } else { 0 };
    let hs = GpuTensor::empty(dev, op, &[b, t_len + 2, h], DType::F32)?;
    place(dev, op, h0, &hs, first)?;
    let cs = match c0 {
        Some(c0) => {
            let cs = GpuTensor::empty(dev, op, &[b, t_len + 2, h], DType::F32)?;
            place(dev, op, c0, &cs, first)?;
            Some(cs)
        }
        None => None,
    };

    let (kernel, source): (&str, fn() -> String) = match cell {
        Cell::RnnTanh | Cell::RnnRelu => ("recurrent:rnn_forward", rnn_forward_source),
        Cell::Lstm => ("recurrent:lstm_forward", lstm_forward_source),
        Cell::Gru => ("recurrent:gru_forward", gru_forward_source),
    };
    for s in 0..t_len {
        let t = d.time_of(s, reverse);
        let hproj = matmul(dev, &row(&hs, d.prev_row(t, reverse)), w.w_hh, false, true)?;
        let params = Params::default().words([b, t_len, h, t, d.prev_row(t, reverse), (cell == Cell::RnnRelu) as usize]).upload(dev, op)?;
        let mut buffers = vec![params.buffer(), xproj.buffer(), hproj.buffer(), b_ih.buffer(), b_hh.buffer(), gates.buffer(), hs.buffer()];
        if let Some(cs) = &cs {
            buffers.push(cs.buffer());
        }
        dev.dispatch(op, kernel, source, &buffers, dev.groups_1d(b * h))?;
    }

    // The packed output: h at each time, then the final h (and c).
    let states = cell.states();
    let out = GpuTensor::empty(dev, op, &[b, t_len + states, h], DType::F32)?;
    let last = if reverse { 1 } else { t_len };
    let params = Params::default().words([b, t_len, h, states, last]).upload(dev, op)?;
    let cs_buffer = cs.as_ref().map_or(hs.buffer(), |c| c.buffer());
    dev.dispatch(op, "recurrent:pack", pack_source, &[params.buffer(), hs.buffer(), cs_buffer, out.buffer()], dev.groups_1d(out.numel()))?;
    Ok((out, Workspace { gates, hs, cs }))
}

/// Copies `src` [B, H] (any strides) into row `at` of the contiguous [B, R, H] `dst`.
fn place(dev: &GpuDevice, op: &str, src: &GpuTensor, dst: &GpuTensor, at: usize) -> Result<()> {
    let (b, h) = (src.shape()[0], src.shape()[1]);
    let params = Params::default().words([b, h, src.offset(), src.strides()[0], src.strides()[1], dst.shape()[1], at]).upload(dev, op)?;
    dev.dispatch(op, "recurrent:place", place_source, &[params.buffer(), src.buffer(), dst.buffer()], dev.groups_1d(b * h))
}

/// Full BPTT from the gradient `g` of the packed output [B, T + states, H]. `x` and the weights
/// are the forward's. The time loop runs whatever `needs` asks; the matmuls and sums after it
/// run only for the gradients it asks for (a first layer's x needs none).
#[allow(clippy::too_many_arguments)]
pub fn recurrent_backward(dev: &GpuDevice, cell: Cell, x: &GpuTensor, w: &GpuWeights, ws: &Workspace, g: &GpuTensor, reverse: bool, needs: Needs) -> Result<RecurrentGrads> {
    let op = cell.name();
    let (b, t_len, h) = (x.shape()[0], x.shape()[1], w.w_hh.shape()[1]);
    let d = Dims { batch: b, steps: t_len, hidden: h };
    let (gh, states) = (cell.gates() * h, cell.states());
    if g.dtype() != DType::F32 || g.shape() != [b, t_len + states, h] || ws.hs.shape() != [b, t_len + 2, h] {
        return Err(KilnError::new(op, format!("the output gradient must be float32 [{b}, {}, {h}] (the forward's), got {} {}", t_len + states, g.dtype(), fmt_shape(g.shape()))));
    }
    let g = g.contiguous(dev)?;
    // dL/dh carried into the next (earlier) step, seeded with the final state's gradient; for a
    // GRU the kernel also leaves the direct path dh·z in it. dc likewise for an LSTM.
    let carry = elementwise::copy(dev, &row(&g, t_len))?;
    let dc = if cell == Cell::Lstm { Some(elementwise::copy(dev, &row(&g, t_len + 1))?) } else { None };
    let dgates = GpuTensor::empty(dev, op, &[b, t_len, gh], DType::F32)?;
    // The hidden side's gate gradients: a GRU's n block differs (d(W_hn h + b_hn) = da_n·r).
    let dgates_h = if cell == Cell::Gru { GpuTensor::empty(dev, op, &[b, t_len, gh], DType::F32)? } else { dgates.clone() };

    let (kernel, source): (&str, fn() -> String) = match cell {
        Cell::RnnTanh | Cell::RnnRelu => ("recurrent:rnn_backward", rnn_backward_source),
        Cell::Lstm => ("recurrent:lstm_backward", lstm_backward_source),
        Cell::Gru => ("recurrent:gru_backward", gru_backward_source),
    };
    // dh_prev's matmul part from the step processed last (None before the first).
    let mut mm: Option<GpuTensor> = None;
    for s in (0..t_len).rev() {
        let t = d.time_of(s, reverse);
        let params = Params::default()
            .words([b, t_len, h, t, d.prev_row(t, reverse), (cell == Cell::RnnRelu) as usize, mm.is_some() as usize, t_len + states])
            .upload(dev, op)?;
        // Before the first step the matmul part is 0; the binding still needs a buffer.
        let mm_buffer = mm.as_ref().map_or(params.buffer(), |m| m.buffer());
        let buffers: Vec<&wgpu::Buffer> = match cell {
            Cell::RnnTanh | Cell::RnnRelu => vec![params.buffer(), ws.gates.buffer(), g.buffer(), mm_buffer, carry.buffer(), dgates.buffer()],
            Cell::Lstm => {
                let cs = ws.cs.as_ref().expect("an LSTM workspace has cs");
                let dc = dc.as_ref().expect("an LSTM carries dc");
                vec![params.buffer(), ws.gates.buffer(), cs.buffer(), g.buffer(), mm_buffer, carry.buffer(), dc.buffer(), dgates.buffer()]
            }
            Cell::Gru => vec![params.buffer(), ws.gates.buffer(), ws.hs.buffer(), g.buffer(), mm_buffer, carry.buffer(), dgates.buffer(), dgates_h.buffer()],
        };
        dev.dispatch(op, kernel, source, &buffers, dev.groups_1d(b * h))?;
        mm = Some(matmul(dev, &row(&dgates_h, t), w.w_hh, false, false)?);
    }
    let mm = mm.expect("at least one step");
    let h0 = if needs.h0 { Some(elementwise::binary(dev, BinaryOp::Add, &carry, &mm)?) } else { None };

    let all = (b * t_len) as isize;
    let input = x.shape()[2];
    let dg2 = dgates.reshape(dev, &[all, gh as isize])?;
    let dgh2 = dgates_h.reshape(dev, &[all, gh as isize])?;
    let dx = if needs.x { Some(matmul(dev, &dg2, w.w_ih, false, false)?.reshape(dev, &[b as isize, t_len as isize, input as isize])?) } else { None };
    let w_ih = if needs.w_ih { Some(matmul(dev, &dg2, &x.contiguous(dev)?.reshape(dev, &[all, input as isize])?, true, false)?) } else { None };
    let w_hh = if needs.w_hh {
        // The state before each time, in time order: one strided view of hs, copied contiguous.
        let h_prev = rows(&ws.hs, if reverse { 2 } else { 0 }, t_len).contiguous(dev)?.reshape(dev, &[all, h as isize])?;
        Some(matmul(dev, &dgh2, &h_prev, true, false)?)
    } else {
        None
    };
    let sum_rows = |m: &GpuTensor| reduce::reduce(dev, ReduceOp::Sum, m, &[0], false);
    let b_ih = if needs.b_ih && w.b_ih.is_some() { Some(sum_rows(&dg2)?) } else { None };
    let b_hh = if needs.b_hh && w.b_hh.is_some() { Some(sum_rows(&dgh2)?) } else { None };
    let c0 = dc.filter(|_| needs.c0);
    Ok(RecurrentGrads { x: dx, h0, c0, w_ih, w_hh, b_ih, b_hh })
}

// ---- WGSL ---------------------------------------------------------------------------------------
//
// Cell kernels run one thread per (batch row b, hidden unit j). Forward parameter words: 0 B,
// 1 T, 2 H, 3 t (the time), 4 the hs/cs row of the previous state, 5 relu (RNN). Backward adds
// 6 has_mm (0 on the first backward step) and 7 rows of the packed gradient (T + states).

fn header(bindings: &[(&str, bool)]) -> String {
    let mut s = String::from("@group(0) @binding(0) var<storage, read> params: array<u32>;\n");
    for (i, (name, write)) in bindings.iter().enumerate() {
        let access = if *write { "read_write" } else { "read" };
        s.push_str(&format!("@group(0) @binding({}) var<storage, {access}> {name}: array<f32>;\n", i + 1));
    }
    s.push_str(super::table::PRELUDE);
    s
}

/// The thread's (b, j) and the common indices; `body` follows.
fn cell_kernel(bindings: &[(&str, bool)], body: &str) -> String {
    format!(
        "{header}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let idx = {LINEAR_INDEX};
  let B = params[0];
  let T = params[1];
  let H = params[2];
  let t = params[3];
  if (idx >= B * H) {{ return; }}
  let b = idx / H;
  let j = idx % H;
  let bt = b * T + t;                       // this time's row in x, gates, dgates
  let prev = (b * (T + 2u) + params[4]) * H + j; // the previous state in hs / cs
  let next = (b * (T + 2u) + t + 1u) * H + j;    // the new state
{body}
}}
",
        header = header(bindings)
    )
}

/// The pre-activation of gate block k: input projection + both biases + recurrent projection.
const PRE: &str = "
fn pre(k: u32, bt: u32, b: u32, j: u32, H: u32, G: u32) -> f32 {
  let c = k * H + j;
  return xproj[bt * G * H + c] + b_ih[c] + hproj[b * G * H + c] + b_hh[c];
}
";

const FORWARD_BINDINGS: [(&str, bool); 6] = [("xproj", false), ("hproj", false), ("b_ih", false), ("b_hh", false), ("gates", true), ("hs", true)];

fn rnn_forward_source() -> String {
    let body = "
  let a = pre(0u, bt, b, j, H, 1u);
  let act = select(kiln_tanh(a), max(a, 0.0), params[5] != 0u);
  gates[bt * H + j] = act;
  hs[next] = act;";
    format!("{}{PRE}", cell_kernel(&FORWARD_BINDINGS, body))
}

fn lstm_forward_source() -> String {
    let mut bindings = FORWARD_BINDINGS.to_vec();
    bindings.push(("cs", true));
    let body = "
  // Gates i, f, g, o (PyTorch's order); c = f c_prev + i g, h = o tanh(c).
  let ig = kiln_sigmoid(pre(0u, bt, b, j, H, 4u));
  let fg = kiln_sigmoid(pre(1u, bt, b, j, H, 4u));
  let gg = kiln_tanh(pre(2u, bt, b, j, H, 4u));
  let og = kiln_sigmoid(pre(3u, bt, b, j, H, 4u));
  let c = fg * cs[prev] + ig * gg;
  cs[next] = c;
  hs[next] = og * kiln_tanh(c);
  let g0 = bt * 4u * H + j;
  gates[g0] = ig;
  gates[g0 + H] = fg;
  gates[g0 + 2u * H] = gg;
  gates[g0 + 3u * H] = og;";
    format!("{}{PRE}", cell_kernel(&bindings, body))
}

fn gru_forward_source() -> String {
    let body = "
  // Gates r, z, n (PyTorch's order); n = tanh(x_n + b_in + r (W_hn h + b_hn)), h = (1 - z) n + z h_prev.
  let r = kiln_sigmoid(pre(0u, bt, b, j, H, 3u));
  let z = kiln_sigmoid(pre(1u, bt, b, j, H, 3u));
  let c = 2u * H + j;
  let hn = hproj[b * 3u * H + c] + b_hh[c];
  let n = kiln_tanh(xproj[bt * 3u * H + c] + b_ih[c] + r * hn);
  hs[next] = (1.0 - z) * n + z * hs[prev];
  let g0 = bt * 4u * H + j;
  gates[g0] = r;
  gates[g0 + H] = z;
  gates[g0 + 2u * H] = n;
  gates[g0 + 3u * H] = hn;";
    format!("{}{PRE}", cell_kernel(&FORWARD_BINDINGS, body))
}

/// dL/dh of this step: what the later step carried (and the final state's gradient), the matmul
/// part of dh_prev from the later step, and the output's gradient at this time.
const DH: &str = "
  var dh = carry[idx] + g[(b * params[7] + t) * H + j];
  if (params[6] != 0u) { dh = dh + mm[idx]; }";

fn rnn_backward_source() -> String {
    let bindings = [("gates", false), ("g", false), ("mm", false), ("carry", true), ("dgates", true)];
    let body = format!(
        "{DH}
  let a = gates[bt * H + j];
  // relu'(x) = 1 for x > 0, else 0 (PyTorch's choice at 0); tanh' = 1 - y².
  dgates[bt * H + j] = select(dh * (1.0 - a * a), select(0.0, dh, a > 0.0), params[5] != 0u);
  carry[idx] = 0.0;"
    );
    cell_kernel(&bindings, &body)
}

fn lstm_backward_source() -> String {
    let bindings = [("gates", false), ("cs", false), ("g", false), ("mm", false), ("carry", true), ("dc", true), ("dgates", true)];
    let body = format!(
        "{DH}
  let g0 = bt * 4u * H + j;
  let ig = gates[g0];
  let fg = gates[g0 + H];
  let gg = gates[g0 + 2u * H];
  let og = gates[g0 + 3u * H];
  let tc = kiln_tanh(cs[next]);
  // dL/dc of this step: from the later step's c, and through h = o tanh(c).
  let dct = dc[idx] + dh * og * (1.0 - tc * tc);
  dgates[g0] = dct * gg * ig * (1.0 - ig);
  dgates[g0 + H] = dct * cs[prev] * fg * (1.0 - fg);
  dgates[g0 + 2u * H] = dct * ig * (1.0 - gg * gg);
  dgates[g0 + 3u * H] = dh * tc * og * (1.0 - og);
  dc[idx] = dct * fg;
  carry[idx] = 0.0;"
    );
    cell_kernel(&bindings, &body)
}

fn gru_backward_source() -> String {
    let bindings = [("gates", false), ("hs", false), ("g", false), ("mm", false), ("carry", true), ("dgates", true), ("dgates_h", true)];
    let body = format!(
        "{DH}
  let a0 = bt * 4u * H + j;
  let r = gates[a0];
  let z = gates[a0 + H];
  let n = gates[a0 + 2u * H];
  let hn = gates[a0 + 3u * H];
  let dan = dh * (1.0 - z) * (1.0 - n * n);
  let dar = dan * hn * r * (1.0 - r);
  let daz = dh * (hs[prev] - n) * z * (1.0 - z);
  let g0 = bt * 3u * H + j;
  dgates[g0] = dar;
  dgates[g0 + H] = daz;
  dgates[g0 + 2u * H] = dan;
  // The hidden side: its r and z blocks equal the input side's; n's is d(W_hn h + b_hn) = da_n r.
  dgates_h[g0] = dar;
  dgates_h[g0 + H] = daz;
  dgates_h[g0 + 2u * H] = dan * r;
  // The direct path h = ... + z h_prev, added by the earlier step.
  carry[idx] = dh * z;"
    );
    cell_kernel(&bindings, &body)
}

/// params: [B, H, src offset, src stride 0, src stride 1, dst rows R, dst row].
fn place_source() -> String {
    format!(
        "{header}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let idx = {LINEAR_INDEX};
  let H = params[1];
  if (idx >= params[0] * H) {{ return; }}
  let b = idx / H;
  let j = idx % H;
  dst[(b * params[5] + params[6]) * H + j] = src[params[2] + b * params[3] + j * params[4]];
}}
",
        header = header(&[("src", false), ("dst", true)])
    )
}

/// The packed output [B, T + states, H] from hs (and cs). params: [B, T, H, states, final row].
fn pack_source() -> String {
    format!(
        "{header}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let idx = {LINEAR_INDEX};
  let T = params[1];
  let H = params[2];
  let rows = T + params[3];
  if (idx >= params[0] * rows * H) {{ return; }}
  let j = idx % H;
  let r = (idx / H) % rows;
  let b = idx / (H * rows);
  let base = b * (T + 2u);
  if (r < T) {{
    out[idx] = hs[(base + r + 1u) * H + j];
  }} else if (r == T) {{
    out[idx] = hs[(base + params[4]) * H + j];
  }} else {{
    out[idx] = cs[(base + params[4]) * H + j];
  }}
}}
",
        header = header(&[("hs", false), ("cs", false), ("out", true)])
    )
}
