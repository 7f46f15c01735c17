//! The quantized layers have no GPU kernels: with their float32 tensors on the GPU (the int8
//! weights cannot live there) each entry is an Error naming the op and the device (the `Device`
//! trait's default), never a panic and never a silent copy to the CPU. The same calls on CPU
//! tensors succeed, so the refusal is about the device alone.

use crate::backend::gpu_backend;
use crate::common::randn;
use kiln_core::device::to_device;
use kiln_core::ops::{self, ConvParams};
use kiln_core::{DType, Tensor};

#[test]
fn quantized_layers_on_the_gpu_are_refused_naming_the_op_and_the_device() {
    gpu_backend!(dev);
    let w = randn(&[6, 8], 1);
    let (q8, s8) = ops::quantize_int8(&w).unwrap();
    let (q4, s4) = ops::quantize_int4(&w, 4).unwrap();
    let x = randn(&[3, 8], 2);
    let image = randn(&[1, 2, 5, 5], 3);
    let (qc, sc) = ops::quantize_int8(&randn(&[6, 8], 4)).unwrap(); // 6 filters of 2 channels x 2x2
    let bias = randn(&[6], 5);
    let conv = ConvParams::default();
    type Call<'a> = (&'a str, Box<dyn Fn(&[Tensor]) -> kiln_core::Result<Tensor> + 'a>);
    let calls: Vec<(Vec<&Tensor>, Call)> = vec![
        (vec![&x, &q8, &s8, &bias], ("linearQ8", Box::new(|t| ops::linear_q8(&t[0], &t[1], &t[2], Some(&t[3]))))),
        (vec![&x, &q8, &s8, &bias], ("linearW8A8", Box::new(|t| ops::linear_w8a8(&t[0], &t[1], &t[2], Some(&t[3]))))),
        (vec![&x, &q4, &s4], ("linearQ4", Box::new(|t| ops::linear_q4(&t[0], &t[1], &t[2], None, 4)))),
        (vec![&image, &qc, &sc, &bias], ("conv2dQ8", Box::new(|t| ops::conv2d_q8(&t[0], &t[1], &t[2], Some(&t[3]), [2, 2], &conv)))),
        (vec![&image, &qc, &sc], ("conv2dW8A8", Box::new(|t| ops::conv2d_w8a8(&t[0], &t[1], &t[2], None, [2, 2], &conv)))),
        (vec![&w], ("quantizeInt8", Box::new(|t| Ok(ops::quantize_int8(&t[0])?.0)))),
        (vec![&w], ("quantizeInt4", Box::new(|t| Ok(ops::quantize_int4(&t[0], 4)?.0)))),
        (vec![&q8, &s8], ("dequantizeInt8", Box::new(|t| ops::dequantize_int8(&t[0], &t[1])))),
        (vec![&q4, &s4], ("dequantizeInt4", Box::new(|t| ops::dequantize_int4(&t[0], &t[1], 8, 4)))),
    ];
    for (inputs, (op, call)) in &calls {
        let on_cpu: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
        assert!(call(&on_cpu).is_ok(), "{op} on the CPU");
        let on_gpu: Vec<Tensor> = inputs.iter().map(|t| if t.dtype() == DType::I8 { (*t).clone() } else { to_device(t, Some(&dev)).unwrap() }).collect();
        let message = call(&on_gpu).err().unwrap_or_else(|| panic!("{op} on the GPU: expected an error")).to_string();
        assert!(message.starts_with(&format!("{op}:")) && message.contains("gpu device") && message.contains(".to('cpu')"), "{message}");
    }
}
