//! SGD (plain, momentum, dampening, Nesterov), RMSProp and AdaGrad against kiln-core's
//! optim::step over several steps, with and without the gradient transform (global-norm scale,
//! clip by value, L2 decay). The GPU side is the same call on tensors that live on the GPU (the
//! backend's path). Tolerance 1e-6 absolute + 1e-5 relative.

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
fn optimizers_match_cpu_over_steps() {
    gpu_backend!(dev);
    let on = |t: &Tensor| to_device(t, Some(&dev)).unwrap();
    let shape = [29, 13];
    let plain = GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 };
    let clipped = GradTransform { scale: 0.8, clip_value: 0.6, weight_decay: 0.02 };
    let sgd = |momentum: f32, dampening: f32, nesterov: bool| move |step: u32| Rule::Sgd { lr: 0.05, momentum, dampening, nesterov, first_step: step == 1 };
    let rules: Vec<(&str, Box<dyn Fn(u32) -> Rule>)> = vec![
        ("sgd", Box::new(sgd(0.0, 0.0, false))),
        ("momentum", Box::new(sgd(0.9, 0.0, false))),
        ("dampened", Box::new(sgd(0.8, 0.3, false))),
        ("nesterov", Box::new(sgd(0.9, 0.0, true))),
        ("rmsprop", Box::new(|_| Rule::RmsProp { lr: 0.01, alpha: 0.9, eps: 1e-8 })),
        ("adagrad", Box::new(|_| Rule::AdaGrad { lr: 0.1, eps: 1e-10 })),
        ("adam", Box::new(|step| Rule::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step })),
    ];
    for (name, rule) in &rules {
        for transform in [plain, clipped] {
            let mut p = randn(&shape, 1);
            let count = rule(1).state_count();
            let mut state: Vec<_> = (0..count).map(|_| ops::zeros(&shape, DType::F32).unwrap()).collect();
            let mut pg = on(&p);
            let mut sg: Vec<Tensor> = state.iter().map(on).collect();
            for step in 1..=3 {
                let grad = randn(&shape, 10 + step as u64);
                optim::step(rule(step), transform, &mut p, &grad, &mut state).unwrap();
                optim::step(rule(step), transform, &mut pg, &on(&grad), &mut sg).unwrap();
            }
            let what = format!("{name} {transform:?}");
            assert_close(&format!("{what}: param"), &host(&pg), &vals(&p), 1e-6, 1e-5);
            for (k, (g, c)) in sg.iter().zip(&state).enumerate() {
                assert_close(&format!("{what}: state {k}"), &host(g), &vals(c), 1e-7, 1e-5);
            }
        }
    }
    let mut pg = on(&randn(&[4], 1));
    let e = optim::step(Rule::AdaGrad { lr: 0.1, eps: 1e-10 }, plain, &mut pg, &on(&randn(&[4], 2)), &mut []).unwrap_err().to_string();
    assert!(e.starts_with("adagrad: expected 1 state tensors of shape [4]"), "{e}");
}
