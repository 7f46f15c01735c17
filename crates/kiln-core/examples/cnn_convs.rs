//! GFLOP per CPU-second of the forward pass of the convolutions that SqueezeNet 1.1 and ResNet-50
//! spend their time in (bench/onnx-op-profile.mjs's rows), on the path the CPU backend picks and
//! on im2col + GEMM (`KILN_CONV_PATH=im2col`), alternating in one process: quicker than the whole
//! addon and bench while choosing a kernel or a threshold. CPU time is summed over the process's
//! threads (support/cpu_time.rs), which other processes on the machine barely move.
//! `--against=direct` compares with direct.rs instead (`KILN_CONV_PATH=direct`: not Winograd);
//! `--residual` adds a residual before the relu, as ResNet's block-closing 1x1 convolutions run.
//! `cargo run --release -p kiln-core --example cnn_convs [-- --batch=8] [--against=direct] [--residual] [name filters...]`
use kiln_core::ops::{self, ConvParams};
#[path = "support/cpu_time.rs"]
mod cpu_time;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = args.iter().find_map(|a| a.strip_prefix("--batch=")).map_or(1, |b| b.parse().expect("--batch=N"));
    let against = args.iter().find_map(|a| a.strip_prefix("--against=")).unwrap_or("im2col");
    let with_residual = args.iter().any(|a| a == "--residual");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    // (name, channels, size, out_channels, kernel, stride, padding)
    let shapes: [(&str, usize, usize, usize, usize, usize, usize); 35] = [
        ("squeezenet stem 3->64 3x3/s2 224", 3, 224, 64, 3, 2, 0),
        ("squeezenet expand1x1 16->64 55", 16, 55, 64, 1, 1, 0),
        ("squeezenet expand1x1 32->128 27", 32, 27, 128, 1, 1, 0),
        ("squeezenet expand1x1 48->192 13", 48, 13, 192, 1, 1, 0),
        ("squeezenet expand1x1 64->256 13", 64, 13, 256, 1, 1, 0),
        ("squeezenet squeeze 128->16 55", 128, 55, 16, 1, 1, 0),
        ("squeezenet squeeze 256->32 27", 256, 27, 32, 1, 1, 0),
        ("squeezenet squeeze 64->16 55", 64, 55, 16, 1, 1, 0),
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
    ];
    // As the imported models run them: bias and relu fused (ts/onnx/fusion/conv.ts).
    let relu = ops::Activation::new("conv2d", "relu", 0.0).unwrap();
    println!("forward with bias{} and relu, batch {batch}, {} threads: GFLOP per CPU-second (wall ms) on the chosen path / KILN_CONV_PATH={against}", if with_residual { ", residual" } else { "" }, rayon::current_num_threads());
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
        println!("{name:36} {chosen} / {gemm}");
    }
    std::env::remove_var("KILN_CONV_PATH");
}
