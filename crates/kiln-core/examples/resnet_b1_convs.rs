//! ResNet-50's NCHWc convolutions at one batch size as one inference runs them (each shape as
//! many times as the model has it: bench/onnx-op-profile.mjs's rows), on the blocked forward alone
//! (operands blocked and packed beforehand): wall and CPU time (the process's threads summed) per
//! pass of the whole list and per group of shapes (pixels, kernel, stride), over rounds of about
//! 0.4 s. Where the threads' split of a convolution is chosen (nchwc/kernel.rs), this is quicker
//! than the addon and the whole model, and the per-group CPU shows which layers lose to the split.
//! Run with RAYON_NUM_THREADS=1 beside the default for the one-thread figures.
//! `cargo run --release -p kiln-core --example resnet_b1_convs [-- --batch=1] [--rounds=7] [--per-shape]`
use kiln_core::cpu_clock::process_ns;
use kiln_core::device::cpu::nchwc_bench as nchwc;
use kiln_core::params::conv::{Activation, Geometry};
use std::time::Instant;

/// (group, channels, size, out_channels, kernel, stride, pad, residual, count): the 3x3 stride-1
/// shapes at 56, 28 and 14 px (Winograd, winograd.rs's own split) and the 7x7 stem are left out;
/// the 7x7 3x3 runs Winograd too, its transform kept as the model keeps it.
const SHAPES: [(&str, usize, usize, usize, usize, usize, usize, bool, usize); 20] = [
    ("56 1x1", 64, 56, 64, 1, 1, 0, false, 1),
    ("56 1x1", 64, 56, 256, 1, 1, 0, true, 3),
    ("56 1x1", 64, 56, 256, 1, 1, 0, false, 1),
    ("56 1x1", 256, 56, 64, 1, 1, 0, false, 2),
    ("56 1x1", 256, 56, 128, 1, 1, 0, false, 1),
    ("28 1x1", 128, 28, 512, 1, 1, 0, true, 4),
    ("28 1x1", 512, 28, 128, 1, 1, 0, false, 3),
    ("28 1x1", 512, 28, 256, 1, 1, 0, false, 1),
    ("14 1x1", 256, 14, 1024, 1, 1, 0, true, 6),
    ("14 1x1", 1024, 14, 256, 1, 1, 0, false, 5),
    ("14 1x1", 1024, 14, 512, 1, 1, 0, false, 1),
    ("7 1x1", 512, 7, 2048, 1, 1, 0, true, 3),
    ("7 1x1", 2048, 7, 512, 1, 1, 0, false, 2),
    ("7 3x3", 512, 7, 512, 3, 1, 1, false, 2),
    ("strided 3x3", 128, 56, 128, 3, 2, 1, false, 1),
    ("strided 3x3", 256, 28, 256, 3, 2, 1, false, 1),
    ("strided 3x3", 512, 14, 512, 3, 2, 1, false, 1),
    ("strided 1x1", 256, 56, 512, 1, 2, 0, false, 1),
    ("strided 1x1", 512, 28, 1024, 1, 2, 0, false, 1),
    ("strided 1x1", 1024, 14, 2048, 1, 2, 0, false, 1),
];

struct Conv {
    group: &'static str,
    geo: Geometry,
    x: Vec<f32>,
    w: Vec<f32>,
    /// The kept Winograd transform where the rule runs Winograd (7x7 3x3), as the model keeps it.
    winograd: Option<Vec<f32>>,
    b: Vec<f32>,
    r: Option<Vec<f32>>,
    y: Vec<f32>,
    count: usize,
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = args.iter().find_map(|a| a.strip_prefix("--batch=")).map_or(1, |b| b.parse().expect("--batch=N"));
    let rounds = args.iter().find_map(|a| a.strip_prefix("--rounds=")).map_or(7, |b| b.parse().expect("--rounds=N"));
    let relu = Activation::new("conv2d", "relu", 0.0).unwrap();
    // --only=TEXT: the shapes whose group contains TEXT. --switch=NAME=a|b: an environment
    // variable set to each value in turn, round by round, a result per value.
    let only = args.iter().find_map(|a| a.strip_prefix("--only=")).unwrap_or("");
    let switch: Option<(String, Vec<String>)> = args.iter().find_map(|a| a.strip_prefix("--switch=")).map(|s| {
        let (name, values) = s.split_once('=').expect("--switch=NAME=a|b");
        (name.to_string(), values.split('|').map(str::to_string).collect())
    });
    let mut convs: Vec<Conv> = SHAPES
        .iter()
        .filter(|s| s.0.contains(only))
        .map(|&(group, c, size, o, k, stride, pad, residual, count)| {
            let out = (size + 2 * pad - k) / stride + 1;
            let geo = Geometry { batch, channels: c, height: size, width: size, out_channels: o, out_height: out, out_width: out, kernel: [k, k], stride: [stride, stride], pad: [pad, pad], dilation: [1, 1], groups: 1 };
            let mut w = vec![0.0; nchwc::packed_filters_len(&geo)];
            nchwc::pack_filters(&geo, &values(o * c * k * k, 2), &mut w);
            let y_len = nchwc::blocked_len(batch, o, out * out);
            let winograd = nchwc::winograd_filters(&geo, &w);
            Conv { group, geo, x: values(nchwc::blocked_len(batch, c, size * size), 1), w, winograd, b: values(nchwc::blocked_len(1, o, 1), 3), r: residual.then(|| values(y_len, 4)), y: vec![0.0; y_len], count }
        })
        .collect();
    let groups: Vec<&str> = convs.iter().map(|c| c.group).fold(Vec::new(), |mut g, n| {
        if !g.contains(&n) {
            g.push(n);
        }
        g
    });
    // --per-shape: a row per shape (CPU ms per call, GFLOP per CPU-second) instead of per group.
    let per_shape = args.iter().any(|a| a == "--per-shape");
    let names: Vec<String> = convs.iter().map(|c| format!("{} {}->{}{}", c.group, c.geo.channels, c.geo.out_channels, if c.r.is_some() { " +r" } else { "" })).collect();
    let groups: Vec<&str> = if per_shape { names.iter().map(String::as_str).collect() } else { groups };
    let pass = |convs: &mut [Conv], per_group: &mut [(f64, f64)]| {
        for (ci, conv) in convs.iter_mut().enumerate() {
            let gi = if per_shape { ci } else { groups.iter().position(|g| *g == conv.group).unwrap() };
            let (wall, cpu) = (Instant::now(), process_ns());
            for _ in 0..conv.count {
                nchwc::forward(&conv.geo, &conv.x, &conv.w, conv.winograd.as_deref(), Some(&conv.b), conv.r.as_deref(), Some(relu), &mut conv.y);
            }
            per_group[gi].0 += wall.elapsed().as_secs_f64();
            per_group[gi].1 += (process_ns() - cpu) as f64 / 1e9;
        }
    };
    let mut scratch = vec![(0.0, 0.0); groups.len()];
    pass(&mut convs, &mut scratch);
    let values: Vec<Option<&str>> = match &switch {
        Some((_, values)) => values.iter().map(|v| Some(v.as_str())).collect(),
        None => vec![None],
    };
    // Per value: each round's (wall, CPU) per pass, and per group.
    let mut totals = vec![Vec::new(); values.len()];
    let mut per_round_groups = vec![Vec::new(); values.len()];
    for _ in 0..rounds {
        for (vi, value) in values.iter().enumerate() {
            if let (Some((name, _)), Some(value)) = (&switch, value) {
                std::env::set_var(name, value);
            }
            let mut per_group = vec![(0.0, 0.0); groups.len()];
            let (wall, cpu) = (Instant::now(), process_ns());
            let mut passes = 0;
            while wall.elapsed().as_secs_f64() < 0.4 {
                pass(&mut convs, &mut per_group);
                passes += 1;
            }
            totals[vi].push((wall.elapsed().as_secs_f64() * 1e3 / passes as f64, (process_ns() - cpu) as f64 / 1e6 / passes as f64));
            per_round_groups[vi].push(per_group.iter().map(|(w, c)| (w * 1e3 / passes as f64, c * 1e3 / passes as f64)).collect::<Vec<_>>());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    for (vi, value) in values.iter().enumerate() {
        let label = match (&switch, value) {
            (Some((name, _)), Some(value)) => format!(", {name}={value:?}"),
            _ => String::new(),
        };
        println!("batch {batch}, {} threads, {rounds} rounds{label}: median ms per pass (wall / CPU)", kiln_core::parallel::num_threads());
        let rounds = &per_round_groups[vi];
        for (gi, g) in groups.iter().enumerate() {
            let w = median(rounds.iter().map(|r| r[gi].0).collect());
            let c = median(rounds.iter().map(|r| r[gi].1).collect());
            if per_shape {
                let conv = &convs[gi];
                let flop = 2.0 * conv.geo.macs() as f64 * conv.count as f64;
                let n = conv.count as f64;
                println!("  {g:24} x{}  {:7.3} / {:7.3} per call  {:6.1} GFLOP per CPU-second", conv.count, w / n, c / n, flop / c / 1e6);
            } else {
                println!("  {g:12} {w:7.2} / {c:7.2}");
            }
        }
        let t = &totals[vi];
        let w = median(t.iter().map(|t| t.0).collect());
        let c = median(t.iter().map(|t| t.1).collect());
        println!("  {:12} {w:7.2} / {c:7.2}   (rounds' CPU {:?})", "all", t.iter().map(|t| (t.1 * 100.0).round() / 100.0).collect::<Vec<_>>());
    }
}
