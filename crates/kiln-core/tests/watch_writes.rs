//! Tensor::watch_writes: in-place writes of a watched tensor are counted (storage::watched_writes),
//! through copy-on-write and assign (float32 and int32); others are not. The ONNX importer compares the count between
//! runs to know when its folded and packed weights are stale. One test in its own binary: the
//! count is process-wide.

use kiln_core::storage::watched_writes;
use kiln_core::Tensor;

#[test]
fn in_place_writes_of_watched_tensors_are_counted_through_copy_on_write_and_assign() {
    let mut w = Tensor::from_vec(vec![1.0f32; 4], &[4]).unwrap();
    let mut other = Tensor::from_vec(vec![5.0f32; 4], &[4]).unwrap();
    let start = watched_writes();
    other.data_mut_f32("test").unwrap()[0] = 2.0;
    assert_eq!(watched_writes(), start, "an unwatched tensor's write is not counted");

    w.watch_writes();
    w.data_mut_f32("test").unwrap()[0] = 2.0;
    assert_eq!(watched_writes(), start + 1);

    // Shared with a view: the write copies w's buffer first; the copy is watched too.
    let shared = w.clone();
    w.data_mut_f32("test").unwrap()[0] = 3.0;
    assert_eq!(watched_writes(), start + 2);
    assert!(!w.shares_storage(&shared));
    w.data_mut_f32("test").unwrap()[0] = 4.0;
    assert_eq!(watched_writes(), start + 3, "the copied buffer stays watched");

    w.assign(&other).unwrap();
    assert_eq!(watched_writes(), start + 4);
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![2.0, 5.0, 5.0, 5.0]);

    // An int32 constant (an ONNX Reshape target the importer keeps) written by assign: counted,
    // and the new values are the tensor's own, not shared with the source.
    let mut shape = Tensor::from_vec(vec![2i32, 3], &[2]).unwrap();
    let source = Tensor::from_vec(vec![3i32, 2], &[2]).unwrap();
    shape.watch_writes();
    shape.assign(&source).unwrap();
    assert_eq!(watched_writes(), start + 5);
    assert_eq!(shape.to_vec::<i32>().unwrap(), vec![3, 2]);
    assert!(!shape.shares_storage(&source));
}
