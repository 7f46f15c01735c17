//! Freeing a graph without recursion. Each recorded tensor's `GradMeta` owns its node, and the
//! node owns `Arc`s to its inputs' metas, so the graph is a chain of owners as long as the
//! computation. Rust's derived drop would free it recursively, one stack frame per node: a running
//! loss summed over 10^6 steps without `detach()` overflowed the native stack at about 200k nodes
//! and WASM's (much smaller) one at 5-20k. Here the inputs of a node being freed are moved to a
//! heap stack first; an input whose last owner this was is emptied the same way, so each `drop`
//! frees one node and the stack depth stays constant whatever the graph's depth.

use super::GradMeta;
use std::sync::Arc;

impl Drop for GradMeta {
    fn drop(&mut self) {
        let Some(node) = self.grad_fn.as_mut() else {
            return;
        };
        let mut pending: Vec<Arc<GradMeta>> = node.inputs.drain(..).flatten().collect();
        while let Some(input) = pending.pop() {
            // `into_inner` yields the meta only to the last owner (exactly one thread gets it when
            // owners drop concurrently); an input still shared elsewhere is just released.
            if let Some(mut meta) = Arc::into_inner(input) {
                if let Some(node) = meta.grad_fn.as_mut() {
                    pending.extend(node.inputs.drain(..).flatten());
                }
                // `meta` drops here with no inputs left: constant stack depth.
            }
        }
    }
}
