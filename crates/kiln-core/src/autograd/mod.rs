//! Reverse-mode autograd. An op that has an input requiring gradients records a `Node` on its
//! output: the op's name, edges to its inputs' gradient slots, and a backward closure. The closure
//! receives only *detached* saved tensors (never the output itself), so the graph has no cycles and
//! is freed with the last tensor that refers to it; `backward` consumes each closure (FnOnce), which
//! frees the saved tensors as soon as the pass is done. Both the walk (`run_backward`) and the
//! freeing (`teardown.rs`) are iterative, so a graph of any depth is safe.

pub mod reduce_to;
mod teardown;

use crate::error::{fmt_shape, KilnError, Result};
use crate::ops;
use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub use reduce_to::sum_to_shape;

/// A backward closure: (gradient of the output, saved tensors, which inputs need a gradient)
/// -> one gradient per input (None where the input needs none; closures may skip computing those).
pub type BackwardFn =
    Box<dyn FnOnce(&Tensor, &[Tensor], &[bool]) -> Result<Vec<Option<Tensor>>> + Send>;

/// Called with a leaf's accumulated gradient as soon as `backward` has added the leaf's last
/// contribution (PyTorch's post-accumulate-grad hook), while the rest of the graph is still being
/// walked: data-parallel training starts a bucket's all-reduce from it (overlap with backward).
pub type GradReadyHook = Arc<dyn Fn(&Tensor) + Send + Sync>;

/// The autograd state of one tensor.
pub struct GradMeta {
    /// The op that produced this tensor; None for a leaf (a parameter).
    grad_fn: Option<Node>,
    /// Accumulated gradient of a leaf.
    grad: Mutex<Option<Tensor>>,
    /// A leaf's gradient-ready hook (one slot: its owner, e.g. a DDP reducer, replaces it).
    on_grad_ready: Mutex<Option<GradReadyHook>>,
}

struct Node {
    name: &'static str,
    inputs: Vec<Option<Arc<GradMeta>>>,
    /// Shapes of the inputs, to check the gradients a backward closure returns.
    input_shapes: Vec<Vec<usize>>,
    /// Taken (and so freed) together with the closure when backward runs.
    saved: Mutex<Vec<Tensor>>,
    backward: Mutex<Option<BackwardFn>>,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record gradients on this thread (false inside `noGrad`).
pub fn is_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Turns recording on or off; returns the previous setting.
pub fn set_enabled(enabled: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(enabled))
}

impl GradMeta {
    pub fn leaf() -> Arc<GradMeta> {
        Arc::new(GradMeta {
            grad_fn: None,
            grad: Mutex::new(None),
            on_grad_ready: Mutex::new(None),
        })
    }

    pub fn is_leaf(&self) -> bool {
        self.grad_fn.is_none()
    }

    pub fn grad(&self) -> Option<Tensor> {
        self.grad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }

    /// Sets (or with None removes) the hook `backward` calls once this leaf's gradient is final
    /// in that pass. It runs on the thread that runs backward; the gradient it gets is the
    /// accumulated one (what `grad()` returns from then on).
    pub fn set_grad_ready_hook(&self, hook: Option<GradReadyHook>) {
        *self.on_grad_ready.lock().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// The hook set by `set_grad_ready_hook`, if any (its owner checks it is still its own
    /// before removing it).
    pub fn grad_ready_hook(&self) -> Option<GradReadyHook> {
        self.on_grad_ready.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds `grad` to the accumulated gradient, then tells the hook the leaf is final.
    fn accumulate_final(&self, grad: Tensor) -> Result<()> {
        let total = match self.grad() {
            Some(existing) => ops::binary(ops::BinaryOp::Add, &existing, &grad)?,
            None => grad,
        };
        self.set_grad(Some(total.clone()));
        if let Some(hook) = self.grad_ready_hook() {
            hook(&total);
        }
        Ok(())
    }
}

/// Attaches a gradient node to `output` if recording is on and any input requires gradients.
/// `saved` are detached here; `backward` must capture only plain values (shapes, flags).
pub fn record(
    name: &'static str,
    inputs: &[&Tensor],
    saved: &[&Tensor],
    output: Tensor,
    backward: impl FnOnce(&Tensor, &[Tensor], &[bool]) -> Result<Vec<Option<Tensor>>> + Send + 'static,
) -> Tensor {
    if !is_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
        return output;
    }
    let node = Node {
        name,
        inputs: inputs.iter().map(|t| t.grad_meta().cloned()).collect(),
        input_shapes: inputs.iter().map(|t| t.shape().to_vec()).collect(),
        saved: Mutex::new(saved.iter().map(|t| t.detach()).collect()),
        backward: Mutex::new(Some(Box::new(backward))),
    };
    output.with_grad_meta(Some(Arc::new(GradMeta {
        grad_fn: Some(node),
        grad: Mutex::new(None),
        on_grad_ready: Mutex::new(None),
    })))
}

/// Back-propagates from `root`: accumulates d(root)/d(leaf) into every leaf's `grad`.
/// `seed` is the gradient of root (default: 1 for a single-element root).
pub fn backward(root: &Tensor, seed: Option<&Tensor>) -> Result<()> {
    let (root_meta, seed) = root_and_seed("backward", root, seed)?;
    let previous = set_enabled(false);
    let result = run_backward(root_meta, seed, None);
    set_enabled(previous);
    result.map(|_| ())
}

/// Checks the root and its seed gradient (default: 1 for a single-element root).
fn root_and_seed(
    op: &'static str,
    root: &Tensor,
    seed: Option<&Tensor>,
) -> Result<(Arc<GradMeta>, Tensor)> {
    let root_meta = root.grad_meta().cloned().ok_or_else(|| {
        KilnError::new(op, "the tensor does not require gradients (no parameter with requiresGrad led to it, or it was made under noGrad)")
    })?;
    let seed = match seed {
        Some(s) => {
            if s.dtype() != crate::DType::F32 {
                return Err(KilnError::new(op, format!("the gradient must be float32, got {} {}", s.dtype(), fmt_shape(s.shape()))));
            }
            if s.shape() != root.shape() {
                return Err(KilnError::new(op, format!("gradient shape {} does not match the tensor's shape {}", fmt_shape(s.shape()), fmt_shape(root.shape()))));
            }
            s.detach()
        }
        // The implicit seed 1 is made where the root lives.
        None if root.numel() == 1 => crate::device::to_device(&ops::full(root.shape(), 1.0, root.dtype())?, root.device().as_ref())?,
        None => {
            return Err(KilnError::new(op, format!(
                "needs a gradient argument for a non-scalar tensor of shape {} (or reduce it to one element first)",
                fmt_shape(root.shape())
            )))
        }
    };
    Ok((root_meta, seed))
}

/// d(root)/d(input) for each of `inputs`, returned rather than accumulated (PyTorch's
/// `torch.autograd.grad`): no leaf's `grad` changes, and only the part of the graph that leads
/// to an input is walked, so asking for a saliency map does not compute the weights' gradients.
/// An input the root does not depend on gets None. Inputs may be leaves or intermediate tensors.
pub fn gradients(
    root: &Tensor,
    seed: Option<&Tensor>,
    inputs: &[&Tensor],
) -> Result<Vec<Option<Tensor>>> {
    const OP: &str = "gradients";
    let mut targets = Vec::with_capacity(inputs.len());
    for (i, t) in inputs.iter().enumerate() {
        let meta = t.grad_meta().ok_or_else(|| {
            KilnError::new(OP, format!("input {i} ({} {}) does not require gradients: call setRequiresGrad() on it before the forward pass", t.dtype(), fmt_shape(t.shape())))
        })?;
        targets.push(key(meta));
    }
    let (root_meta, seed) = root_and_seed(OP, root, seed)?;
    let previous = set_enabled(false);
    let result = run_backward(root_meta, seed, Some(&targets));
    set_enabled(previous);
    let found = result?;
    Ok(targets.iter().map(|k| found.get(k).cloned()).collect())
}

fn key(m: &Arc<GradMeta>) -> usize {
    Arc::as_ptr(m) as usize
}

/// The walk. Without `targets`, leaves accumulate their gradients (backward). With `targets`
/// (keys of GradMetas), nothing is accumulated: the targets' gradients are returned, and only
/// nodes that lead to a target run (their other inputs are marked as not needing a gradient).
fn run_backward(
    root: Arc<GradMeta>,
    seed: Tensor,
    targets: Option<&[usize]>,
) -> Result<HashMap<usize, Tensor>> {
    // Topological order by iterative DFS (deep graphs, e.g. long unrolled RNNs, would overflow
    // a recursive one).
    let mut order: Vec<Arc<GradMeta>> = Vec::new();
    let mut visited: HashMap<usize, ()> = HashMap::new();
    let mut stack: Vec<(Arc<GradMeta>, bool)> = vec![(root.clone(), false)];
    while let Some((meta, children_done)) = stack.pop() {
        if children_done {
            order.push(meta);
            continue;
        }
        if visited.insert(key(&meta), ()).is_some() {
            continue;
        }
        stack.push((meta.clone(), true));
        if let Some(node) = &meta.grad_fn {
            for input in node.inputs.iter().flatten() {
                if !visited.contains_key(&key(input)) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }

    // `order` lists inputs before the tensors made from them, so one forward pass over it finds
    // every tensor from which a target can be reached.
    let leads_to_target: Option<HashSet<usize>> = targets.map(|targets| {
        let mut reach: HashSet<usize> = targets.iter().copied().collect();
        for meta in &order {
            let leads = meta.grad_fn.as_ref().is_some_and(|node| {
                node.inputs
                    .iter()
                    .flatten()
                    .any(|i| reach.contains(&key(i)))
            });
            if leads {
                reach.insert(key(meta));
            }
        }
        reach
    });
    let needed = |m: &Arc<GradMeta>| leads_to_target.as_ref().is_none_or(|r| r.contains(&key(m)));

    // How many graph edges still lead into each leaf: at 0 its gradient is final and is
    // accumulated at once (not when the walk reaches the leaf itself, which a depth-first order
    // may put long after its last consumer), so a gradient-ready hook can start work on it while
    // the rest of the graph is walked. Only backward (no targets) accumulates into leaves.
    let mut pending_edges: HashMap<usize, usize> = HashMap::new();
    if targets.is_none() {
        for meta in &order {
            for input in meta.grad_fn.iter().flat_map(|n| n.inputs.iter().flatten()) {
                if input.is_leaf() {
                    *pending_edges.entry(key(input)).or_default() += 1;
                }
            }
        }
    }

    let mut found: HashMap<usize, Tensor> = HashMap::new();
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(key(&root), seed);
    for meta in order.iter().rev() {
        let Some(grad) = grads.remove(&key(meta)) else {
            release_leaves(meta, &mut pending_edges, &mut grads)?;
            continue;
        };
        if let Some(targets) = targets {
            if targets.contains(&key(meta)) {
                found.insert(key(meta), grad.clone());
            }
            if !needed(meta) || meta.grad_fn.is_none() {
                continue;
            }
        }
        let Some(node) = &meta.grad_fn else {
            // Only a leaf that is the root itself (nothing leads into it) still has a gradient here.
            meta.accumulate_final(grad)?;
            continue;
        };
        let backward = node.backward.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| {
            KilnError::new("backward", format!("the graph through '{}' was already used by an earlier backward(); run the forward pass again", node.name))
        })?;
        let saved = std::mem::take(&mut *node.saved.lock().unwrap_or_else(|e| e.into_inner()));
        let needs: Vec<bool> = node
            .inputs
            .iter()
            .map(|i| i.as_ref().is_some_and(needed))
            .collect();
        let input_grads = backward(&grad, &saved, &needs)?;
        drop(saved);
        for (((input, g), shape), &need) in node
            .inputs
            .iter()
            .zip(input_grads)
            .zip(&node.input_shapes)
            .zip(&needs)
        {
            let (Some(input), Some(g), true) = (input, g, need) else {
                continue;
            };
            if g.shape() != shape.as_slice() {
                return Err(KilnError::new(
                    "backward",
                    format!(
                    "internal error: '{}' produced a gradient of shape {} for an input of shape {}",
                    node.name, fmt_shape(g.shape()), fmt_shape(shape)
                ),
                ));
            }
            let k = key(input);
            let total = match grads.remove(&k) {
                Some(existing) => ops::binary(ops::BinaryOp::Add, &existing, &g)?,
                None => g,
            };
            grads.insert(k, total);
        }
        release_leaves(meta, &mut pending_edges, &mut grads)?;
    }
    Ok(found)
}

/// Counts `meta`'s edges into leaves as done (its backward ran, or it got no gradient) and
/// accumulates every leaf that has no edge left: its gradient can no longer change in this pass.
fn release_leaves(
    meta: &GradMeta,
    pending_edges: &mut HashMap<usize, usize>,
    grads: &mut HashMap<usize, Tensor>,
) -> Result<()> {
    for input in meta.grad_fn.iter().flat_map(|n| n.inputs.iter().flatten()) {
        let Some(left) = pending_edges.get_mut(&key(input)) else {
            continue;
        };
        *left -= 1;
        if *left == 0 {
            if let Some(grad) = grads.remove(&key(input)) {
                input.accumulate_final(grad)?;
            }
        }
    }
    Ok(())
}
