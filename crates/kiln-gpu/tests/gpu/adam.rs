//! The fused Adam update against kiln-core's optim::step on the CPU, over several steps (bias
//! correction changes each step), with clipping and both weight-decay forms. The GPU side is the
//! same call on tensors that live on the GPU, so it runs the backend's copy-on-write and the
//! kernel the bindings use. Tolerance 1e-6 + 1e-5 relative.

use crate::backend::gpu_backend;
use crate::common::*;
use kiln_core::device::to_device;
use kiln_core::ops;
use kiln_core::optim::{self, GradTransform, Rule};
use kiln_core::{DType, Tensor};

fn host(t: &Tensor) -> Vec<f32> {
    vals(&to_device(t, None).unwrap())
}

#[test]
fn adam_matches_cpu_over_steps() {
    gpu_backend!(dev);
    let on = |t: &Tensor| to_device(t, Some(&dev)).unwrap();
    let shape = [33, 17];
    for (transform, decoupled) in [
        (GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 }, 0.0),
        (GradTransform { scale: 0.7, clip_value: 0.5, weight_decay: 0.01 }, 0.0),
        (GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 }, 0.1),
    ] {
        let mut p = randn(&shape, 1);
        let mut state = vec![ops::zeros(&shape, DType::F32).unwrap(), ops::zeros(&shape, DType::F32).unwrap()];
        let mut pg = on(&p);
        let mut sg: Vec<Tensor> = state.iter().map(on).collect();
        for step in 1..=3 {
            let grad = randn(&shape, 10 + step as u64);
            let rule = Rule::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: decoupled, step };
            optim::step(rule, transform, &mut p, &grad, &mut state).unwrap();
            optim::step(rule, transform, &mut pg, &on(&grad), &mut sg).unwrap();
        }
        assert!(pg.device().is_some(), "the update stayed on the GPU");
        let what = format!("adam {transform:?} decay {decoupled}");
        assert_close(&format!("{what}: param"), &host(&pg), &vals(&p), 1e-6, 1e-5);
        assert_close(&format!("{what}: m"), &host(&sg[0]), &vals(&state[0]), 1e-7, 1e-5);
        assert_close(&format!("{what}: v"), &host(&sg[1]), &vals(&state[1]), 1e-9, 1e-5);
    }
}

#[test]
fn adam_is_copy_on_write() {
    gpu_backend!(dev);
    let on = |t: &Tensor| to_device(t, Some(&dev)).unwrap();
    let p = randn(&[10], 1);
    let mut pg = on(&p);
    let alias = pg.clone();
    let mut state = vec![on(&ops::zeros(&[10], DType::F32).unwrap()), on(&ops::zeros(&[10], DType::F32).unwrap())];
    let rule = Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step: 1 };
    let t = GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 };
    optim::step(rule, t, &mut pg, &on(&randn(&[10], 2)), &mut state).unwrap();
    assert_eq!(host(&alias), vals(&p), "the alias kept the old values");
    assert!(host(&pg).iter().zip(vals(&p)).all(|(a, b)| a != &b), "the parameter moved");
    let e = optim::step(rule, t, &mut pg, &on(&randn(&[11], 2)), &mut state).unwrap_err().to_string();
    assert!(e.starts_with("adam:") && e.contains("[11]") && e.contains("[10]"), "{e}");
}
