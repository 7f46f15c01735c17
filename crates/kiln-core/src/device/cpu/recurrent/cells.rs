//! The fused per-step gate kernels. Each works on one time step of the whole batch: `gates` is
//! [batch, G·hidden] (gate blocks side by side, PyTorch's order), states are [batch, hidden].
//!
//! Forward kernels turn the gates' pre-activations into activations *in place*, and backward
//! kernels turn those activations into the gradients of the pre-activations, again in place: the
//! activations are exactly what backward needs, and the buffer is then the left operand of the
//! weight-gradient GEMMs, so one buffer serves the whole step's life.
//!
//! Every kernel is compiled per instruction set (`multiversion!`) with branch-free math, so the
//! inner loops over `hidden` vectorize. Each batch row goes through a `*_row` function whose
//! slices are separate arguments: that tells the compiler they do not alias (it keeps this
//! through inlining). With the slices split inside one loop body it did not vectorize, and the
//! LSTM step ran at ~45 ns per element instead of ~7.

use crate::math::{sigmoid, tanh};
use crate::multiversion;

multiversion! {
    /// Elman RNN: gates = pre-activation -> activation; h = the same values.
    pub fn rnn_forward(gates: &mut [f32], h: &mut [f32], relu: bool) {
        if relu {
            for (a, hv) in gates.iter_mut().zip(h.iter_mut()) {
                *a = a.max(0.0);
                *hv = *a;
            }
        } else {
            for (a, hv) in gates.iter_mut().zip(h.iter_mut()) {
                *a = tanh(*a);
                *hv = *a;
            }
        }
    }
}

multiversion! {
    /// Elman RNN backward: activation -> d(pre-activation) = dh · act'(pre).
    pub fn rnn_backward(gates: &mut [f32], dh: &[f32], relu: bool) {
        if relu {
            for (a, &d) in gates.iter_mut().zip(dh) {
                // relu'(x) = 1 for x > 0, else 0 (PyTorch's choice at 0).
                *a = if *a > 0.0 { d } else { 0.0 };
            }
        } else {
            for (a, &d) in gates.iter_mut().zip(dh) {
                *a = d * (1.0 - *a * *a);
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_forward_row(i: &mut [f32], f: &mut [f32], g: &mut [f32], o: &mut [f32], cp: &[f32], cn: &mut [f32], hn: &mut [f32]) {
    let n = i.len();
    let (f, g, o, cp, cn, hn) = (&mut f[..n], &mut g[..n], &mut o[..n], &cp[..n], &mut cn[..n], &mut hn[..n]);
    for j in 0..n {
        let (ig, fg, gg, og) = (sigmoid(i[j]), sigmoid(f[j]), tanh(g[j]), sigmoid(o[j]));
        let cv = fg * cp[j] + ig * gg;
        cn[j] = cv;
        hn[j] = og * tanh(cv);
        (i[j], f[j], g[j], o[j]) = (ig, fg, gg, og);
    }
}

multiversion! {
    /// LSTM: i = σ, f = σ, g = tanh, o = σ of the pre-activations; c = f c_prev + i g,
    /// h = o tanh(c).
    pub fn lstm_forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32], hidden: usize) {
        let rows = gates.chunks_exact_mut(4 * hidden).zip(c_prev.chunks_exact(hidden)).zip(c.chunks_exact_mut(hidden)).zip(h.chunks_exact_mut(hidden));
        for (((row, cp), cn), hn) in rows {
            let (i, rest) = row.split_at_mut(hidden);
            let (f, rest) = rest.split_at_mut(hidden);
            let (g, o) = rest.split_at_mut(hidden);
            lstm_forward_row(i, f, g, o, cp, cn, hn);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_backward_row(i: &mut [f32], f: &mut [f32], g: &mut [f32], o: &mut [f32], cp: &[f32], cn: &[f32], dh: &[f32], dc: &mut [f32]) {
    let n = i.len();
    let (f, g, o, cp, cn, dh, dc) = (&mut f[..n], &mut g[..n], &mut o[..n], &cp[..n], &cn[..n], &dh[..n], &mut dc[..n]);
    for j in 0..n {
        let (ig, fg, gg, og) = (i[j], f[j], g[j], o[j]);
        let tc = tanh(cn[j]);
        // dL/dc of this step: from the next step's c, and through h = o tanh(c).
        let dct = dc[j] + dh[j] * og * (1.0 - tc * tc);
        i[j] = dct * gg * ig * (1.0 - ig);
        f[j] = dct * cp[j] * fg * (1.0 - fg);
        g[j] = dct * ig * (1.0 - gg * gg);
        o[j] = dh[j] * tc * og * (1.0 - og);
        dc[j] = dct * fg;
    }
}

multiversion! {
    /// LSTM backward through one step. In: activations i, f, g, o; c_prev and c; dh (dL/dh of
    /// this step, upstream and from the next step); dc (dL/dc from the next step). Out: the gates
    /// hold d(pre-activations); dc becomes dL/dc_prev.
    pub fn lstm_backward(gates: &mut [f32], c_prev: &[f32], c: &[f32], dh: &[f32], dc: &mut [f32], hidden: usize) {
        let rows = gates.chunks_exact_mut(4 * hidden).zip(c_prev.chunks_exact(hidden)).zip(c.chunks_exact(hidden)).zip(dh.chunks_exact(hidden)).zip(dc.chunks_exact_mut(hidden));
        for ((((row, cp), cn), dhr), dcr) in rows {
            let (i, rest) = row.split_at_mut(hidden);
            let (f, rest) = rest.split_at_mut(hidden);
            let (g, o) = rest.split_at_mut(hidden);
            lstm_backward_row(i, f, g, o, cp, cn, dhr, dcr);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_forward_row(r: &mut [f32], z: &mut [f32], n: &mut [f32], hp_r: &[f32], hp_z: &[f32], hp_n: &[f32], b_hn: &[f32], hprev: &[f32], hn: &mut [f32], h: &mut [f32]) {
    let len = r.len();
    let (z, n, hp_r, hp_z, hp_n, b_hn, hprev, hn, h) = (&mut z[..len], &mut n[..len], &hp_r[..len], &hp_z[..len], &hp_n[..len], &b_hn[..len], &hprev[..len], &mut hn[..len], &mut h[..len]);
    for j in 0..len {
        let rg = sigmoid(r[j] + hp_r[j]);
        let zg = sigmoid(z[j] + hp_z[j]);
        let hnv = hp_n[j] + b_hn[j];
        let ng = tanh(n[j] + rg * hnv);
        h[j] = (1.0 - zg) * ng + zg * hprev[j];
        (r[j], z[j], n[j]) = (rg, zg, ng);
        hn[j] = hnv;
    }
}

multiversion! {
    /// GRU. gates: the input side's pre-activations [x_r | x_z | x_n] (b_ih and the r, z blocks
    /// of b_hh already added); hproj: W_hh h_prev [h_r | h_z | h_n] without bias; b_hn: the n
    /// block of b_hh. Out: gates hold r, z, n; hn holds W_hn h_prev + b_hn (backward needs it,
    /// since r multiplies it); h = (1 - z) n + z h_prev.
    pub fn gru_forward(gates: &mut [f32], hproj: &[f32], b_hn: &[f32], h_prev: &[f32], hn: &mut [f32], h: &mut [f32], hidden: usize) {
        let rows = gates.chunks_exact_mut(3 * hidden).zip(hproj.chunks_exact(3 * hidden)).zip(h_prev.chunks_exact(hidden)).zip(hn.chunks_exact_mut(hidden)).zip(h.chunks_exact_mut(hidden));
        for ((((row, hp), hprev), hnr), hr) in rows {
            let (r, rest) = row.split_at_mut(hidden);
            let (z, n) = rest.split_at_mut(hidden);
            let (hp_r, rest) = hp.split_at(hidden);
            let (hp_z, hp_n) = rest.split_at(hidden);
            gru_forward_row(r, z, n, hp_r, hp_z, hp_n, b_hn, hprev, hnr, hr);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_backward_row(r: &mut [f32], z: &mut [f32], n: &mut [f32], hn: &mut [f32], hprev: &[f32], dh: &[f32], dh_prev: &mut [f32]) {
    let len = r.len();
    let (z, n, hn, hprev, dh, dh_prev) = (&mut z[..len], &mut n[..len], &mut hn[..len], &hprev[..len], &dh[..len], &mut dh_prev[..len]);
    for j in 0..len {
        let (rg, zg, ng, d) = (r[j], z[j], n[j], dh[j]);
        let dan = d * (1.0 - zg) * (1.0 - ng * ng);
        r[j] = dan * hn[j] * rg * (1.0 - rg);
        z[j] = d * (hprev[j] - ng) * zg * (1.0 - zg);
        n[j] = dan;
        hn[j] = dan * rg;
        dh_prev[j] = d * zg;
    }
}

multiversion! {
    /// GRU backward through one step. In: activations r, z, n; hn (W_hn h_prev + b_hn); h_prev;
    /// dh. Out: gates hold d(pre-activations) of the input side [da_r | da_z | da_n]; hn holds
    /// d(W_hn h_prev + b_hn) = da_n · r (the hidden side's n block; its r, z blocks equal the
    /// input side's); dh_prev gets the direct path dh · z (the caller adds the GEMM part).
    pub fn gru_backward(gates: &mut [f32], hn: &mut [f32], h_prev: &[f32], dh: &[f32], dh_prev: &mut [f32], hidden: usize) {
        let rows = gates.chunks_exact_mut(3 * hidden).zip(hn.chunks_exact_mut(hidden)).zip(h_prev.chunks_exact(hidden)).zip(dh.chunks_exact(hidden)).zip(dh_prev.chunks_exact_mut(hidden));
        for ((((row, hnr), hprev), dhr), dpr) in rows {
            let (r, rest) = row.split_at_mut(hidden);
            let (z, n) = rest.split_at_mut(hidden);
            gru_backward_row(r, z, n, hnr, hprev, dhr, dpr);
        }
    }
}
