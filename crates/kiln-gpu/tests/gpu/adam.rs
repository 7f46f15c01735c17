//! The fused Adam update against kiln-core's optim::step, over several steps (bias correction
//! changes each step), with clipping and both weight-decay forms. Tolerance 1e-6 + 1e-5 relative.

use crate::common::*;
use kiln_core::ops;
use kiln_core::optim::{self, GradTransform, Rule};
use kiln_core::DType;
use kiln_gpu::kernels::adam::adam_step;

#[test]
fn adam_matches_cpu_over_steps() {
    let dev = gpu!();
    let shape = [33, 17];
    for (transform, decoupled) in [
        (GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 }, 0.0),
        (GradTransform { scale: 0.7, clip_value: 0.5, weight_decay: 0.01 }, 0.0),
        (GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 }, 0.1),
    ] {
        let mut p = randn(&shape, 1);
        let mut state = vec![ops::zeros(&shape, DType::F32).unwrap(), ops::zeros(&shape, DType::F32).unwrap()];
        let mut pg = up(dev, &p);
        let mut sg = vec![up(dev, &state[0]), up(dev, &state[1])];
        for step in 1..=3 {
            let grad = randn(&shape, 10 + step as u64);
            let rule = Rule::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: decoupled, step };
            optim::step(rule, transform, &mut p, &grad, &mut state).unwrap();
            adam_step(dev, rule, transform, &mut pg, &up(dev, &grad), &mut sg).unwrap();
        }
        let what = format!("adam {transform:?} decay {decoupled}");
        assert_close(&format!("{what}: param"), &down(dev, &pg), &vals(&p), 1e-6, 1e-5);
        assert_close(&format!("{what}: m"), &down(dev, &sg[0]), &vals(&state[0]), 1e-7, 1e-5);
        assert_close(&format!("{what}: v"), &down(dev, &sg[1]), &vals(&state[1]), 1e-9, 1e-5);
    }
}

#[test]
fn adam_is_copy_on_write() {
    let dev = gpu!();
    let p = randn(&[10], 1);
    let mut pg = up(dev, &p);
    let alias = pg.clone();
    let mut state = vec![up(dev, &ops::zeros(&[10], DType::F32).unwrap()), up(dev, &ops::zeros(&[10], DType::F32).unwrap())];
    let rule = Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step: 1 };
    let t = GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 };
    adam_step(dev, rule, t, &mut pg, &up(dev, &randn(&[10], 2)), &mut state).unwrap();
    assert_eq!(down(dev, &alias), vals(&p), "the alias kept the old values");
    assert!(down(dev, &pg).iter().zip(vals(&p)).all(|(a, b)| a != &b), "the parameter moved");
    let e = adam_step(dev, rule, t, &mut pg, &up(dev, &randn(&[11], 2)), &mut state).unwrap_err().to_string();
    assert!(e.starts_with("adam:") && e.contains("[11]") && e.contains("[10]"), "{e}");
}
