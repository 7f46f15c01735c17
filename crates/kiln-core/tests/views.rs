//! Views (reshape, permute, slice, expand, squeeze) against index arithmetic done by hand.
use kiln_core::Tensor;

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect(), shape).unwrap()
}

#[test]
fn permute_is_a_view_and_reads_transposed() {
    let t = iota(&[2, 3]);
    let p = t.permute(&[1, 0]).unwrap();
    assert!(p.shares_storage(&t));
    assert!(!p.is_contiguous());
    assert_eq!(p.shape(), &[3, 2]);
    assert_eq!(p.to_vec::<f32>().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
    assert!(t.permute(&[0, 0]).is_err());
}

#[test]
fn reshape_views_contiguous_and_copies_otherwise() {
    let t = iota(&[2, 3, 4]);
    let r = t.reshape(&[6, -1]).unwrap();
    assert_eq!(r.shape(), &[6, 4]);
    assert!(r.shares_storage(&t));
    let p = t.permute(&[2, 1, 0]).unwrap();
    let rp = p.reshape(&[-1]).unwrap();
    assert!(!rp.shares_storage(&t));
    let want: Vec<f32> = (0..4).flat_map(|k| (0..3).flat_map(move |j| (0..2).map(move |i| (i * 12 + j * 4 + k) as f32))).collect();
    assert_eq!(rp.to_vec::<f32>().unwrap(), want);
    assert!(t.reshape(&[5, -1]).is_err());
    assert!(t.reshape(&[-1, -1]).is_err());
}

#[test]
fn slice_offsets_and_bounds() {
    let t = iota(&[4, 5]);
    let s = t.slice(&[1, 2], &[2, -1]).unwrap();
    assert_eq!(s.shape(), &[2, 3]);
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![7., 8., 9., 12., 13., 14.]);
    // A slice of a transposed view.
    let st = t.permute(&[1, 0]).unwrap().slice(&[0, 1], &[2, 2]).unwrap();
    assert_eq!(st.to_vec::<f32>().unwrap(), vec![5., 10., 6., 11.]);
    let err = t.slice(&[3, 0], &[2, 1]).unwrap_err();
    assert!(err.to_string().starts_with("slice:"), "{err}");
}

#[test]
fn expand_uses_zero_strides() {
    let t = iota(&[3, 1]);
    let e = t.expand(&[2, 3, 4]).unwrap();
    assert_eq!(e.strides()[0], 0);
    assert_eq!(e.strides()[2], 0);
    let v = e.to_vec::<f32>().unwrap();
    assert_eq!(v.len(), 24);
    assert_eq!(&v[..8], &[0., 0., 0., 0., 1., 1., 1., 1.]);
    assert!(t.expand(&[3, 2, 1]).is_err());
}

#[test]
fn squeeze_and_unsqueeze() {
    let t = iota(&[1, 3, 1]);
    assert_eq!(t.squeeze(&[]).unwrap().shape(), &[3]);
    assert_eq!(t.squeeze(&[-1]).unwrap().shape(), &[1, 3]);
    assert!(t.squeeze(&[1]).is_err());
    assert_eq!(t.unsqueeze(3).unwrap().shape(), &[1, 3, 1, 1]);
    assert_eq!(t.unsqueeze(-1).unwrap().shape(), &[1, 3, 1, 1]);
}

#[test]
fn wrong_data_length_is_an_error() {
    let err = Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).unwrap_err();
    assert!(err.to_string().contains("[2, 3]"), "{err}");
}
