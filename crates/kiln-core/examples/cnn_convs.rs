//! GFLOP per CPU-second of the forward pass of the convolutions that SqueezeNet 1.1 and ResNet-50
//! spend their time in (bench/onnx-op-profile.mjs's rows), on the path the CPU backend picks and
//! on im2col + GEMM (`KILN_CONV_PATH=im2col`), alternating in one process: quicker than the whole
//! addon and bench while choosing a kernel or a threshold. CPU time is summed over the process's
//! threads (support/cpu_time.rs), which other processes on the machine barely move.
//! `--against=direct` compares with direct.rs instead (`KILN_CONV_PATH=direct`: not Winograd);
//! `--residual` adds a residual before the relu, as ResNet's block-closing 1x1 convolutions run.
//! The last columns are the channel-blocked kernels (device/cpu/conv/nchwc): the NCHWc forward
//! alone, its operands already blocked and packed (the reorders excluded), then the wall time of
//! to_blocked on the input and from_blocked on the output, which the ONNX layout pass runs only at
//! the edges of a chain of blocked convolutions; on 3x3 stride-1 shapes, then, the blocked forward
//! on its direct tiles and on Winograd (nchwc/winograd.rs), each forced (`KILN_CONV_PATH=direct`,
//! `winograd`), for the rule between them. Shapes with fewer than 8 input channels stay on
//! the NCHW kernels, or (up to 16, no residual) read plain NCHW and write NCHWc
//! (`forward_plain_input`, the blocked stem): that column is then its forward and the
//! from_blocked of its output. `--no-nchwc` leaves those columns out.
//! `cargo run --release -p kiln-core --example cnn_convs [-- --batch=8] [--against=direct] [--residual] [--no-nchwc] [name filters...]`
use kiln_core::device::cpu::nchwc_bench as nchwc;
use kiln_core::ops::{self, ConvParams};
use kiln_core::params::conv::Geometry;
use kiln_core::tensor::Tensor;
#[path = "support/cpu_time.rs"]
mod cpu_time;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = args.iter().find_map(|a| a.strip_prefix("--batch=")).map_or(1, |b| b.parse().expect("--batch=N"));
    let against = args.iter().find_map(|a| a.strip_prefix("--against=")).unwrap_or("im2col");
    let with_residual = args.iter().any(|a| a == "--residual");
    let with_nchwc = !args.iter().any(|a| a == "--no-nchwc");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    // (name, channels, size, out_channels, kernel, stride, padding)
    let shapes: [(&str, usize, usize, usize, usize, usize, usize); 39] = [
        ("squeezenet stem 3->64 3x3/s2 224", 3, 224, 64, 3, 2, 0),
        ("squeezenet expand1x1 16->64 55", 16, 55, 64, 1, 1, 0),
        ("squeezenet expand1x1 32->128 27", 32, 27, 128, 1, 1, 0),
        ("squeezenet expand1x1 48->192 13", 48, 13, 192, 1, 1, 0),
        ("squeezenet expand1x1 64->256 13", 64, 13, 256, 1, 1, 0),
        ("squeezenet squeeze 128->16 55", 128, 55, 16, 1, 1, 0),
        ("squeezenet squeeze 256->32 27", 256, 27, 32, 1, 1, 0),
        ("squeezenet squeeze 64->16 55", 64, 55, 16, 1, 1, 0),
        ("squeezenet 1.0 squeeze 96->16 55", 96, 55, 16, 1, 1, 0),
        ("squeezenet squeeze 128->32 27", 128, 27, 32, 1, 1, 0),
        ("squeezenet squeeze 256->48 13", 256, 13, 48, 1, 1, 0),
        ("squeezenet squeeze 384->48 13", 384, 13, 48, 1, 1, 0),
        ("squeezenet squeeze 384->64 13", 384, 13, 64, 1, 1, 0),
        ("squeezenet squeeze 512->64 13", 512, 13, 64, 1, 1, 0),
        ("squeezenet expand3x3 16->64 55", 16, 55, 64, 3, 1, 1),
        ("squeezenet expand3x3 32->128 27", 32, 27, 128, 3, 1, 1),
        ("squeezenet expand3x3 48->192 13", 48, 13, 192, 3, 1, 1),
        ("squeezenet expand3x3 64->256 13", 64, 13, 256, 3, 1, 1),
        ("squeezenet conv10 512->1000 13", 512, 13, 1000, 1, 1, 0),
        ("resnet50 stem 3->64 7x7/s2 224", 3, 224, 64, 7, 2, 3),
        ("resnet50 1x1 64->256 56", 64, 56, 256, 1, 1, 0),
        ("resnet50 1x1 64->64 56", 64, 56, 64, 1, 1, 0),
        ("resnet50 1x1 256->64 56", 256, 56, 64, 1, 1, 0),
        ("resnet50 1x1 512->128 28", 512, 28, 128, 1, 1, 0),
        ("resnet50 1x1 128->512 28", 128, 28, 512, 1, 1, 0),
        ("resnet50 1x1 1024->256 14", 1024, 14, 256, 1, 1, 0),
        ("resnet50 1x1 256->1024 14", 256, 14, 1024, 1, 1, 0),
        ("resnet50 1x1 2048->512 7", 2048, 7, 512, 1, 1, 0),
        ("resnet50 1x1 512->2048 7", 512, 7, 2048, 1, 1, 0),
        ("resnet50 3x3 64->64 56", 64, 56, 64, 3, 1, 1),
        ("resnet50 3x3 128->128 28", 128, 28, 128, 3, 1, 1),
        ("resnet50 3x3 256->256 14", 256, 14, 256, 3, 1, 1),
        ("resnet50 3x3 512->512 7", 512, 7, 512, 3, 1, 1),
        ("resnet50 3x3/s2 128->128 56", 128, 56, 128, 3, 2, 1),
        ("resnet50 3x3/s2 256->256 28", 256, 28, 256, 3, 2, 1),
        ("resnet50 3x3/s2 512->512 14", 512, 14, 512, 3, 2, 1),
        ("resnet50 1x1/s2 256->512 56", 256, 56, 512, 1, 2, 0),
        ("resnet50 1x1/s2 512->1024 28", 512, 28, 1024, 1, 2, 0),
        ("resnet50 1x1/s2 1024->2048 14", 1024, 14, 2048, 1, 2, 0),
    ];
    // As the imported models run them: bias and relu fused (ts/onnx/fusion/conv.ts).
    let relu = ops::Activation::new("conv2d", "relu", 0.0).unwrap();
    let columns = if with_nchwc { " | NCHWc forward, reorders excluded | to_blocked, from_blocked wall µs | 3x3 stride 1: NCHWc direct / NCHWc Winograd" } else { "" };
    println!("forward with bias{} and relu, batch {batch}, {} threads: GFLOP per CPU-second (wall ms) on the chosen path / KILN_CONV_PATH={against}{columns}", if with_residual { ", residual" } else { "" }, kiln_core::parallel::num_threads());
    for (name, c, size, o, k, stride, pad) in shapes {
        if !only.is_empty() && !only.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let x = ops::randn(&[batch, c, size, size], 0.0, 1.0, Some(7)).unwrap();
        let w = ops::randn(&[o, c, k, k], 0.0, 0.1, Some(8)).unwrap();
        let b = ops::randn(&[o], 0.0, 0.1, Some(9)).unwrap();
        let p = ConvParams { stride: [stride, stride], padding: [pad; 4], ..ConvParams::default() };
        let out = (size + 2 * pad - k) / stride + 1;
        let gflop = 2.0 * (batch * o * out * out * c * k * k) as f64 / 1e9;
        let residual = with_residual.then(|| ops::randn(&[batch, o, out, out], 0.0, 1.0, Some(10)).unwrap());
        let run = |path: &str| {
            std::env::set_var("KILN_CONV_PATH", path);
            let epilogue = ops::Epilogue { residual: residual.as_ref(), activation: Some(relu) };
            let (cpu, wall) = cpu_time::per_call(0.2, || drop(ops::conv2d_fused(&x, &w, Some(&b), &p, epilogue).unwrap()));
            format!("{:6.1} ({:.3})", gflop / cpu, wall * 1e3)
        };
        let (chosen, gemm) = (run("chosen"), run(against));
        let blocked = match with_nchwc && c >= 8 {
            true => {
                std::env::set_var("KILN_CONV_PATH", "chosen");
                let expected = ops::conv2d_fused(&x, &w, Some(&b), &p, ops::Epilogue { residual: residual.as_ref(), activation: Some(relu) }).unwrap();
                let g = Geometry { batch, channels: c, height: size, width: size, out_channels: o, out_height: out, out_width: out, kernel: [k, k], stride: [stride, stride], pad: [pad, pad], dilation: [1, 1], groups: 1 };
                blocked_columns(&g, &x, &w, &b, residual.as_ref(), relu, &expected, gflop)
            }
            false if with_nchwc && c <= nchwc::BLOCK && !with_residual => {
                std::env::set_var("KILN_CONV_PATH", "chosen");
                let expected = ops::conv2d_fused(&x, &w, Some(&b), &p, ops::Epilogue { residual: None, activation: Some(relu) }).unwrap();
                let g = Geometry { batch, channels: c, height: size, width: size, out_channels: o, out_height: out, out_width: out, kernel: [k, k], stride: [stride, stride], pad: [pad, pad], dilation: [1, 1], groups: 1 };
                plain_input_column(&g, &x, &w, &b, relu, &expected, gflop)
            }
            false => " | -".to_string(),
        };
        println!("{name:36} {chosen} / {gemm}{blocked}");
    }
    std::env::remove_var("KILN_CONV_PATH");
}

/// The NCHWc columns of one shape: forward GFLOP per CPU-second (wall ms) on operands blocked and
/// packed beforehand, then the reorders' wall µs; a mismatch with the NCHW path's output is
/// reported, not timed past.
fn blocked_columns(g: &Geometry, x: &Tensor, w: &Tensor, b: &Tensor, residual: Option<&Tensor>, relu: ops::Activation, expected: &Tensor, gflop: f64) -> String {
    let (in_plane, out_plane) = (g.height * g.width, g.out_height * g.out_width);
    let to_blocked = |t: &Tensor, channels: usize, plane: usize| {
        let mut blocked = vec![0.0; nchwc::blocked_len(g.batch, channels, plane)];
        nchwc::to_blocked(&t.to_vec::<f32>().unwrap(), g.batch, channels, plane, &mut blocked);
        blocked
    };
    let xb = to_blocked(x, g.channels, in_plane);
    let rb = residual.map(|r| to_blocked(r, g.out_channels, out_plane));
    let mut wb = vec![0.0; nchwc::packed_filters_len(g)];
    nchwc::pack_filters(g, &w.to_vec::<f32>().unwrap(), &mut wb);
    let mut bb = vec![0.0; g.out_channels.div_ceil(nchwc::BLOCK) * nchwc::BLOCK];
    bb[..g.out_channels].copy_from_slice(&b.to_vec::<f32>().unwrap());
    let mut yb = vec![0.0; nchwc::blocked_len(g.batch, g.out_channels, out_plane)];
    // Winograd's filter transform made once, as the ops keep it with the packed filters.
    let u = nchwc::winograd_filters(g, &wb);
    let mut forward = || nchwc::forward(g, &xb, &wb, u.as_deref(), Some(&bb), rb.as_deref(), Some(relu), &mut yb);
    forward();
    let mut y = vec![0.0; g.batch * g.out_channels * out_plane];
    nchwc::from_blocked(&yb, g.batch, g.out_channels, out_plane, &mut y);
    let worst = y.iter().zip(expected.to_vec::<f32>().unwrap()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
    if worst > 1e-3 {
        return format!(" | NCHWc output differs from the NCHW path's (relative {worst:e})");
    }
    // The blocked path the rule picks, then (3x3 stride 1) the direct tiles and Winograd forced.
    let mut time = |path: &str| {
        std::env::set_var("KILN_CONV_PATH", path);
        let (cpu, wall) = cpu_time::per_call(0.2, || nchwc::forward(g, &xb, &wb, u.as_deref(), Some(&bb), rb.as_deref(), Some(relu), &mut yb));
        format!("{:6.1} ({:.3})", gflop / cpu, wall * 1e3)
    };
    let chosen = time("chosen");
    let winograd = match g.kernel == [3, 3] && g.stride == [1, 1] {
        true => format!(" | {} / {}", time("direct"), time("winograd")),
        false => String::new(),
    };
    std::env::set_var("KILN_CONV_PATH", "chosen");
    let x_flat = x.to_vec::<f32>().unwrap();
    let mut x_blocked = vec![0.0; xb.len()];
    let (_, to_wall) = cpu_time::per_call(0.1, || nchwc::to_blocked(&x_flat, g.batch, g.channels, in_plane, &mut x_blocked));
    let (_, from_wall) = cpu_time::per_call(0.1, || nchwc::from_blocked(&yb, g.batch, g.out_channels, out_plane, &mut y));
    format!(" | {chosen} | {:7.1} {:7.1}{winograd}", to_wall * 1e6, from_wall * 1e6)
}

/// The column of a shape of few input channels: the blocked forward reading x plain (a stem
/// writing NCHWc), GFLOP per CPU-second (wall ms), then its output's from_blocked wall µs.
fn plain_input_column(g: &Geometry, x: &Tensor, w: &Tensor, b: &Tensor, relu: ops::Activation, expected: &Tensor, gflop: f64) -> String {
    let out_plane = g.out_height * g.out_width;
    let xs = x.to_vec::<f32>().unwrap();
    let mut wb = vec![0.0; nchwc::packed_filters_len(g)];
    nchwc::pack_filters(g, &w.to_vec::<f32>().unwrap(), &mut wb);
    let mut bb = vec![0.0; g.out_channels.div_ceil(nchwc::BLOCK) * nchwc::BLOCK];
    bb[..g.out_channels].copy_from_slice(&b.to_vec::<f32>().unwrap());
    let mut yb = vec![0.0; nchwc::blocked_len(g.batch, g.out_channels, out_plane)];
    nchwc::forward_plain_input(g, &xs, &wb, Some(&bb), Some(relu), &mut yb);
    let mut y = vec![0.0; g.batch * g.out_channels * out_plane];
    nchwc::from_blocked(&yb, g.batch, g.out_channels, out_plane, &mut y);
    let worst = y.iter().zip(expected.to_vec::<f32>().unwrap()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
    if worst > 1e-3 {
        return format!(" | NCHWc (plain input) output differs from the NCHW path's (relative {worst:e})");
    }
    let (cpu, wall) = cpu_time::per_call(0.2, || nchwc::forward_plain_input(g, &xs, &wb, Some(&bb), Some(relu), &mut yb));
    let (_, from_wall) = cpu_time::per_call(0.1, || nchwc::from_blocked(&yb, g.batch, g.out_channels, out_plane, &mut y));
    format!(" | plain input {:6.1} ({:.3}) | from_blocked {:7.1}", gflop / cpu, wall * 1e3, from_wall * 1e6)
}
