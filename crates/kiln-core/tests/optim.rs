//! Fused optimizer steps against the update rules computed by hand in f64.
use kiln_core::optim::{step, GradTransform, Rule};
use kiln_core::Tensor;

fn t(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
}

fn close(got: &Tensor, want: &[f64]) {
    let got = got.to_vec::<f32>().unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6 * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
}

const PLAIN: GradTransform = GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 };

#[test]
fn adam_two_steps_match_the_formula() {
    let (p0, g) = ([0.5f64, -1.0, 2.0], [0.1f64, -0.2, 0.3]);
    let mut p = t(&[0.5, -1.0, 2.0]);
    let mut state = vec![t(&[0.0; 3]), t(&[0.0; 3])];
    let (lr, b1, b2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-8f64);
    let mut want = p0;
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    for s in 1..=2 {
        step(Rule::Adam { lr: lr as f32, beta1: b1 as f32, beta2: b2 as f32, eps: eps as f32, decoupled_decay: 0.0, step: s }, PLAIN, &mut p, &t(&[0.1, -0.2, 0.3]), &mut state).unwrap();
        for i in 0..3 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1.powi(s as i32));
            let vh = v[i] / (1.0 - b2.powi(s as i32));
            want[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    close(&p, &want);
    close(&state[0], &m);
}

#[test]
fn adamw_decays_weights_directly_and_adam_l2_through_the_gradient() {
    let mut p = t(&[1.0]);
    let mut state = vec![t(&[0.0]), t(&[0.0])];
    step(Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.5, step: 1 }, PLAIN, &mut p, &t(&[0.0]), &mut state).unwrap();
    close(&p, &[1.0 * (1.0 - 0.1 * 0.5)]);
    // L2: the decay enters the gradient, so with g = 0 Adam still moves by ~lr.
    let mut p = t(&[1.0]);
    let mut state = vec![t(&[0.0]), t(&[0.0])];
    let l2 = GradTransform { weight_decay: 0.5, ..PLAIN };
    step(Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step: 1 }, l2, &mut p, &t(&[0.0]), &mut state).unwrap();
    close(&p, &[0.9]);
}

#[test]
fn sgd_momentum_and_nesterov() {
    for nesterov in [false, true] {
        let mut p = t(&[1.0]);
        let mut state = vec![t(&[0.0])];
        let (lr, mu) = (0.1f64, 0.9f64);
        let (mut want, mut buf) = (1.0f64, 0.0f64);
        for s in 0..3 {
            let g = 0.5f64;
            step(Rule::Sgd { lr: lr as f32, momentum: mu as f32, dampening: 0.0, nesterov, first_step: s == 0 }, PLAIN, &mut p, &t(&[0.5]), &mut state).unwrap();
            buf = if s == 0 { g } else { mu * buf + g };
            want -= lr * if nesterov { g + mu * buf } else { buf };
        }
        close(&p, &[want]);
    }
    let mut p = t(&[1.0, 1.0]);
    step(Rule::Sgd { lr: 0.5, momentum: 0.0, dampening: 0.0, nesterov: false, first_step: true }, PLAIN, &mut p, &t(&[1.0, -2.0]), &mut []).unwrap();
    close(&p, &[0.5, 2.0]);
}

#[test]
fn rmsprop_adagrad_and_clipping() {
    let mut p = t(&[1.0]);
    let mut s = vec![t(&[0.0])];
    step(Rule::RmsProp { lr: 0.01, alpha: 0.99, eps: 1e-8 }, PLAIN, &mut p, &t(&[2.0]), &mut s).unwrap();
    close(&p, &[1.0 - 0.01 * 2.0 / ((0.01f64 * 4.0).sqrt() + 1e-8)]);
    let mut p = t(&[1.0]);
    let mut s = vec![t(&[0.0])];
    step(Rule::AdaGrad { lr: 0.1, eps: 1e-10 }, PLAIN, &mut p, &t(&[2.0]), &mut s).unwrap();
    step(Rule::AdaGrad { lr: 0.1, eps: 1e-10 }, PLAIN, &mut p, &t(&[2.0]), &mut s).unwrap();
    close(&p, &[1.0 - 0.1 - 0.1 * 2.0 / 8f64.sqrt()]);
    // Clip by value, then the norm scale.
    let mut p = t(&[0.0, 0.0]);
    let clip = GradTransform { scale: 0.5, clip_value: 1.0, weight_decay: 0.0 };
    step(Rule::Sgd { lr: 1.0, momentum: 0.0, dampening: 0.0, nesterov: false, first_step: true }, clip, &mut p, &t(&[10.0, 1.0]), &mut []).unwrap();
    close(&p, &[-1.0, -0.5]);
}

#[test]
fn updates_never_touch_a_shared_buffer() {
    let original = t(&[1.0, 2.0]);
    let mut p = original.clone();
    step(Rule::Sgd { lr: 1.0, momentum: 0.0, dampening: 0.0, nesterov: false, first_step: true }, PLAIN, &mut p, &t(&[1.0, 1.0]), &mut []).unwrap();
    close(&p, &[0.0, 1.0]);
    close(&original, &[1.0, 2.0]);
    assert!(step(Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step: 1 }, PLAIN, &mut p, &t(&[1.0]), &mut []).is_err());
}
