//! Times the recurrent op's forward and backward on the bench's LSTM shape (batch 32, 32 steps,
//! input 64, hidden 128): `cargo run --release -p kiln-core --example recurrent_step`.
//! Other sizes: `DIMS=batch,steps,input,hidden cargo run ...`.
use kiln_core::ops::{self, Cell, Weights};
use kiln_core::{autograd, Tensor};
use std::time::Instant;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 0.1, Some(seed)).unwrap()
}

fn main() {
    let dims: Vec<usize> = std::env::var("DIMS").map(|d| d.split(',').map(|x| x.trim().parse().expect("DIMS: four integers")).collect()).unwrap_or_else(|_| vec![32, 32, 64, 128]);
    let [b, t, i, h] = dims[..] else { panic!("DIMS: expected batch,steps,input,hidden") };
    for cell in [Cell::Lstm, Cell::Gru, Cell::RnnTanh] {
        let gh = cell.gates() * h;
        let x = rand(&[b, t, i], 1);
        let h0 = rand(&[b, h], 2);
        let c0 = (cell == Cell::Lstm).then(|| rand(&[b, h], 3));
        let ws: Vec<Tensor> = [vec![gh, i], vec![gh, h], vec![gh], vec![gh]].iter().enumerate().map(|(k, s)| rand(s, 10 + k as u64).set_requires_grad(true).unwrap()).collect();
        let w = Weights { w_ih: &ws[0], w_hh: &ws[1], b_ih: Some(&ws[2]), b_hh: Some(&ws[3]) };
        let (mut fwd, mut bwd) = (f64::MAX, f64::MAX);
        for _ in 0..30 {
            let t0 = Instant::now();
            let out = ops::recurrent(cell, &x, &h0, c0.as_ref(), &w, false).unwrap();
            let t1 = Instant::now();
            let seed = ops::full(out.shape(), 1.0, kiln_core::DType::F32).unwrap();
            let t2 = Instant::now();
            autograd::backward(&out, Some(&seed)).unwrap();
            let t3 = Instant::now();
            fwd = fwd.min((t1 - t0).as_secs_f64());
            bwd = bwd.min((t3 - t2).as_secs_f64());
            ws.iter().for_each(|p| p.zero_grad());
        }
        println!("{:8} forward {:.2} ms, backward {:.2} ms", cell.name(), fwd * 1e3, bwd * 1e3);
    }
}
