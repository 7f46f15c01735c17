//! Tensor data in and out: typed arrays to tensors, tensors back to typed arrays (a tensor on a
//! device is downloaded first, and the caller waits for it), and what a tensor is.

use kiln_core::storage::Element;
use kiln_core::{DType, Result, Tensor};
use kiln_registry::{self as registry, register};

type H = u32;

pub fn from_f32(data: Vec<f32>, shape: Vec<usize>) -> Result<H> {
    Ok(register(Tensor::from_vec(data, &shape)?))
}

pub fn from_i32(data: Vec<i32>, shape: Vec<usize>) -> Result<H> {
    Ok(register(Tensor::from_vec(data, &shape)?))
}

pub fn from_bool(mut data: Vec<u8>, shape: Vec<usize>) -> Result<H> {
    data.iter_mut().for_each(|b| *b = (*b != 0) as u8);
    Ok(register(Tensor::from_vec::<u8>(data, &shape)?))
}

pub fn from_i8(data: Vec<i8>, shape: Vec<usize>) -> Result<H> {
    Ok(register(Tensor::from_vec(data, &shape)?))
}

/// The elements of `h`, which must have dtype `want` ("data" is the op the user called).
fn read<T: Element>(h: H, want: DType) -> Result<Vec<T>> {
    // Named "data", the method the user called (t.data(), dataSync()), not the entry.
    let t = registry::with(|r| r.get(h).cloned()).map_err(|e| registry::name_entry(e, "data"))?;
    t.expect_dtype("data", want)?;
    let downloaded;
    let t = match t.device() {
        Some(device) => {
            downloaded = device.download(&t)?;
            &downloaded
        }
        None => &t,
    };
    // Fallible: an expanded view may stand for more elements than memory holds.
    t.elements::<T>("data")
}

pub fn read_f32(h: H) -> Result<Vec<f32>> {
    read(h, DType::F32)
}

pub fn read_i32(h: H) -> Result<Vec<i32>> {
    read(h, DType::I32)
}

pub fn read_bool(h: H) -> Result<Vec<u8>> {
    read(h, DType::Bool)
}

pub fn read_i8(h: H) -> Result<Vec<i8>> {
    read(h, DType::I8)
}

/// Dimensions as f64: one of 2^32 or more comes back whole.
pub fn shape(h: H) -> Result<Vec<f64>> {
    registry::with(|r| Ok(r.get(h)?.shape().iter().map(|&d| d as f64).collect()))
}

pub fn dtype_of(h: H) -> Result<String> {
    registry::with(|r| Ok(r.get(h)?.dtype().name().to_string())).map_err(|e| registry::name_entry(e, "dtype"))
}
