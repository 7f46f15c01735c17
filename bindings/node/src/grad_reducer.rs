//! Gradient averaging for DistributedDataParallel, overlapped with backward (PyTorch DDP's
//! reducer, over MPI). Parameters are grouped into buckets of about `bucket_bytes`, in *reverse*
//! parameter order, because backward finishes the last layers first. Each parameter's leaf gets a
//! gradient-ready hook (kiln-core's autograd calls it once the leaf's last contribution is
//! accumulated); the hook copies the gradient into its bucket's buffer, and a full bucket goes to
//! the communication thread, which all-reduces it with MPI while backward computes the rest.
//! `finish` (syncGradients) sends the buckets that are not yet full, waits for all of them and
//! sets the averaged gradients back.
//!
//! Buckets are launched strictly in bucket order on every rank (a bucket that is full early waits
//! for the ones before it), so the ranks' MPI calls always match. The packing, the MPI call and
//! the division are the same as in the after-backward path (`distAllReduceGrads`), so both give
//! bit-identical gradients. MPI runs with MPI_THREAD_SERIALIZED: the communication thread and the
//! JS thread never call MPI at the same time, because every other collective first waits until
//! the communication thread is idle (`wait_idle`).

use crate::distributed::{agree, resolve, who, with_world, Watch, HEADER, THREADS_SERIALIZED};
use kiln_core::autograd::GradReadyHook;
use kiln_core::{DType, KilnError, Tensor};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

type KResult<T> = std::result::Result<T, KilnError>;

/// Parameters grouped for one all-reduce each: `ranges[b]` indexes the leaves in bucket order
/// (reverse parameter order); every bucket holds whole parameters (at least one, even if larger).
struct BucketPlan {
    ranges: Vec<Range<usize>>,
    /// Elements of each bucket.
    lens: Vec<usize>,
}

impl BucketPlan {
    fn new(numels: &[usize], bucket_bytes: f64) -> BucketPlan {
        let per_bucket = ((bucket_bytes.max(4.0) as usize) / 4).max(1);
        let (mut ranges, mut lens) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < numels.len() {
            let (mut end, mut len) = (start, 0);
            while end < numels.len() && (end == start || len + numels[end] <= per_bucket) {
                len += numels[end];
                end += 1;
            }
            ranges.push(start..end);
            lens.push(len);
            start = end;
        }
        BucketPlan { ranges, lens }
    }
}

/// The model's float32 leaves in bucket order (reverse of `params`), checked.
fn leaves_in_bucket_order(op: &str, world: &impl Communicator, params: &[u32]) -> KResult<Vec<Tensor>> {
    let mut leaves = Vec::with_capacity(params.len());
    for (i, &h) in params.iter().enumerate().rev() {
        let t = resolve(h)?;
        if t.dtype() != DType::F32 || t.device().is_some() || t.grad_meta().is_none_or(|m| !m.is_leaf()) {
            return Err(KilnError::new(&who(op, world), format!("parameter {i} must be a float32 CPU leaf tensor that requires gradients, got {} {:?}", t.dtype().name(), t.shape())));
        }
        leaves.push(t);
    }
    Ok(leaves)
}

/// Every rank must hold the same model: agrees on the parameter count and total size (so a
/// mismatch fails every rank instead of mismatching all-reduces).
fn agree_on_model(op: &str, world: &impl Communicator, leaves: KResult<Vec<Tensor>>) -> KResult<Vec<Tensor>> {
    let signature = leaves.as_ref().map_err(|e| e.clone()).map(|ts| {
        let mut h = [0i64; HEADER];
        h[1] = 2;
        h[2] = ts.len() as i64;
        h[3] = ts.iter().map(|t| t.numel() as i64).sum();
        h
    });
    agree(op, world, signature)?;
    leaves
}

/// A leaf's current gradient as it goes into a bucket (zeros when it has none on this rank:
/// another rank may have one).
fn pack(leaf: &Tensor, out: &mut [f32]) {
    match leaf.grad().and_then(|g| g.to_vec::<f32>()) {
        Some(g) => out.copy_from_slice(&g),
        None => out.fill(0.0),
    }
}

/// The summed bucket divided by the world size, set back as its leaves' gradients.
fn unpack(leaves: &[Tensor], summed: &[f32], world_size: usize) -> KResult<()> {
    let n = world_size as f32;
    let mut offset = 0;
    for t in leaves {
        let values: Vec<f32> = summed[offset..offset + t.numel()].iter().map(|v| v / n).collect();
        offset += t.numel();
        t.grad_meta().expect("checked leaf").set_grad(Some(Tensor::from_vec(values, t.shape())?));
    }
    Ok(())
}

/// One bucket's sum over ranks: the single MPI call both paths make.
fn all_reduce_bucket(world: &SimpleCommunicator, send: &[f32]) -> Vec<f32> {
    let mut recv = vec![0f32; send.len()];
    world.all_reduce_into(send, &mut recv[..], SystemOperation::sum());
    recv
}

/// Averages `leaves`' gradients (bucket order) across ranks after backward, one MPI call per
/// bucket; returns the number of buckets.
fn all_reduce_after_backward(op: &str, world: &SimpleCommunicator, leaves: &[Tensor], bucket_bytes: f64) -> KResult<u32> {
    let plan = BucketPlan::new(&leaves.iter().map(Tensor::numel).collect::<Vec<_>>(), bucket_bytes);
    for (range, &len) in plan.ranges.iter().zip(&plan.lens) {
        let mut send = vec![0f32; len];
        let mut offset = 0;
        for t in &leaves[range.clone()] {
            pack(t, &mut send[offset..offset + t.numel()]);
            offset += t.numel();
        }
        // Each bucket gets the full timeout (a large model's sync may take long in total).
        Watch::start(op, world).keep_armed();
        unpack(&leaves[range.clone()], &all_reduce_bucket(world, &send), world.size() as usize)?;
    }
    Ok(plan.ranges.len() as u32)
}

/// Averages the accumulated gradients of `params` (leaf handles, the same model on every rank)
/// across ranks after backward, bucket by bucket (the path without overlap). Returns how many
/// MPI all-reduce calls were made.
#[napi(js_name = "distAllReduceGrads")]
pub fn dist_all_reduce_grads(params: Vec<u32>, bucket_bytes: f64) -> Result<u32> {
    const OP: &str = "allReduceGradients";
    with_world(OP, |world| {
        let leaves = agree_on_model(OP, world, leaves_in_bucket_order(OP, world, &params))?;
        all_reduce_after_backward(OP, world, &leaves, bucket_bytes)
    })
}

// ---- the communication thread ----

struct Job {
    bucket: usize,
    values: Vec<f32>,
    reply: Sender<Done>,
}

struct Done {
    bucket: usize,
    summed: Vec<f32>,
    seconds: f64,
}

/// The thread that runs the overlapped all-reduces, and how many jobs it has not finished.
struct CommThread {
    jobs: Mutex<Sender<Job>>,
    in_flight: Arc<(Mutex<usize>, Condvar)>,
}

static COMM: OnceLock<CommThread> = OnceLock::new();

fn comm_thread() -> &'static CommThread {
    COMM.get_or_init(|| {
        let (jobs, queue) = channel::<Job>();
        let in_flight: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let counter = in_flight.clone();
        std::thread::Builder::new()
            .name("kiln-mpi-comm".into())
            .spawn(move || {
                let world = SimpleCommunicator::world();
                for job in queue {
                    let start = Instant::now();
                    let watch = Watch::start("DistributedDataParallel (overlapped all-reduce)", &world);
                    let summed = all_reduce_bucket(&world, &job.values);
                    drop(watch);
                    // A receiver that is gone (a reducer dropped mid-round) just discards the result.
                    let _ = job.reply.send(Done { bucket: job.bucket, summed, seconds: start.elapsed().as_secs_f64() });
                    let (count, idle) = &*counter;
                    *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                    idle.notify_all();
                }
            })
            .expect("kiln: cannot start the MPI communication thread");
        CommThread { jobs: Mutex::new(jobs), in_flight }
    })
}

impl CommThread {
    fn submit(&self, job: Job) {
        *self.in_flight.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        // The thread lives as long as the process, so the send cannot fail.
        let _ = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    }
}

/// Blocks until the communication thread has no all-reduce running or queued, so that the
/// caller may call MPI itself (MPI_THREAD_SERIALIZED). Every collective calls it first.
pub(crate) fn wait_idle() {
    if let Some(comm) = COMM.get() {
        let (count, idle) = &*comm.in_flight;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = idle.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

// ---- the reducer ----

/// What the hooks fill during one backward (a *round*, ended by `finish`).
struct Round {
    /// Each bucket's send buffer (taken when the bucket is launched).
    buffers: Vec<Option<Vec<f32>>>,
    /// How many of each bucket's leaves are ready.
    ready: Vec<usize>,
    /// Which leaves reported (bucket order).
    reported: Vec<bool>,
    /// The next bucket to launch: buckets go to the communication thread in order.
    next_launch: usize,
    /// A leaf reported twice (several backward passes before one syncGradients): the launched
    /// buckets are stale, and finish falls back to the after-backward path.
    stale: bool,
    replies: Sender<Done>,
}

impl Round {
    fn new(plan: &BucketPlan, leaves: usize, replies: Sender<Done>) -> Round {
        Round {
            buffers: plan.lens.iter().map(|&len| Some(vec![0f32; len])).collect(),
            ready: vec![0; plan.lens.len()],
            reported: vec![false; leaves],
            next_launch: 0,
            stale: false,
            replies,
        }
    }

    /// Sends every bucket from `next_launch` on whose leaves are all ready (`all`: every bucket).
    fn launch_ready(&mut self, plan: &BucketPlan, all: bool) {
        while self.next_launch < plan.ranges.len() && (all || self.ready[self.next_launch] == plan.ranges[self.next_launch].len()) {
            let b = self.next_launch;
            let values = self.buffers[b].take().expect("a bucket is launched once");
            comm_thread().submit(Job { bucket: b, values, reply: self.replies.clone() });
            self.next_launch += 1;
        }
    }
}

struct Reducer {
    leaves: Vec<Tensor>,
    plan: Arc<BucketPlan>,
    /// Each leaf's bucket and offset in it (bucket order).
    slots: Vec<(usize, usize)>,
    round: Arc<Mutex<Round>>,
    replies: Receiver<Done>,
    reply_to: Sender<Done>,
    bucket_bytes: f64,
    world_size: usize,
    /// The hooks it set, so that dropping it removes them only where no newer reducer replaced them.
    hooks: Vec<GradReadyHook>,
}

thread_local! {
    // Indexed by reducer id; a freed reducer leaves None (ids are not reused).
    static REDUCERS: RefCell<Vec<Option<Reducer>>> = const { RefCell::new(Vec::new()) };
}

impl Reducer {
    fn new(leaves: Vec<Tensor>, bucket_bytes: f64, world_size: usize) -> Reducer {
        let plan = Arc::new(BucketPlan::new(&leaves.iter().map(Tensor::numel).collect::<Vec<_>>(), bucket_bytes));
        let mut slots = vec![(0, 0); leaves.len()];
        for (b, range) in plan.ranges.iter().enumerate() {
            let mut offset = 0;
            for i in range.clone() {
                slots[i] = (b, offset);
                offset += leaves[i].numel();
            }
        }
        let (reply_to, replies) = channel();
        let round = Arc::new(Mutex::new(Round::new(&plan, leaves.len(), reply_to.clone())));
        let hooks: Vec<GradReadyHook> = (0..leaves.len()).map(|i| hook(i, slots[i], leaves[i].numel(), &round, &plan)).collect();
        for (leaf, hook) in leaves.iter().zip(&hooks) {
            leaf.grad_meta().expect("checked leaf").set_grad_ready_hook(Some(hook.clone()));
        }
        Reducer { leaves, plan, slots, round, replies, reply_to, bucket_bytes, world_size, hooks }
    }

    /// Whether `leaves` (this step's parameters, bucket order) are the ones the hooks watch.
    fn watches(&self, leaves: &[Tensor]) -> bool {
        self.leaves.len() == leaves.len()
            && self.leaves.iter().zip(leaves).all(|(a, b)| match (a.grad_meta(), b.grad_meta()) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            })
    }

    /// Ends the round: launches what is left (unless `discard`), waits for every launched bucket
    /// and sets the averages back. None when the round is stale or discarded (nothing is set).
    /// `called`: when syncGradients was called (its wait counts from there).
    fn finish(&mut self, discard: bool, called: Instant) -> KResult<Option<SyncStats>> {
        let (launched, in_backward, stale) = {
            let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
            let in_backward = round.next_launch;
            let stale = round.stale || discard;
            if !stale {
                // Leaves that did not report (no gradient in this pass) go in as they are.
                for (i, leaf) in self.leaves.iter().enumerate() {
                    if !round.reported[i] {
                        let (b, offset) = self.slots[i];
                        if let Some(buffer) = round.buffers[b].as_mut() {
                            pack(leaf, &mut buffer[offset..offset + leaf.numel()]);
                        }
                    }
                }
                round.launch_ready(&self.plan, true);
            }
            let launched = round.next_launch;
            *round = Round::new(&self.plan, self.leaves.len(), self.reply_to.clone());
            (launched, in_backward, stale)
        };
        let mut results: Vec<Option<Vec<f32>>> = vec![None; self.plan.ranges.len()];
        let mut communication = 0.0;
        for _ in 0..launched {
            let done = self.replies.recv().map_err(|_| KilnError::new("DistributedDataParallel.syncGradients", "the MPI communication thread stopped"))?;
            communication += done.seconds;
            results[done.bucket] = Some(done.summed);
        }
        let wait = called.elapsed().as_secs_f64();
        if stale {
            return Ok(None);
        }
        for (range, summed) in self.plan.ranges.iter().zip(results) {
            unpack(&self.leaves[range.clone()], &summed.expect("every bucket was launched"), self.world_size)?;
        }
        Ok(Some(SyncStats { buckets: self.plan.ranges.len() as u32, overlapped: true, launched_in_backward: in_backward as u32, communication_ms: communication * 1e3, wait_ms: wait * 1e3 }))
    }
}

impl Drop for Reducer {
    /// Removes its hooks (where they are still its own), so the parameters and the bucket
    /// buffers the hooks hold are freed with the model.
    fn drop(&mut self) {
        for (leaf, ours) in self.leaves.iter().zip(&self.hooks) {
            let meta = leaf.grad_meta().expect("checked leaf");
            if meta.grad_ready_hook().is_some_and(|h| Arc::ptr_eq(&h, ours)) {
                meta.set_grad_ready_hook(None);
            }
        }
    }
}

/// The hook of leaf `i`: copies its final gradient into its bucket and launches what is full.
fn hook(i: usize, (bucket, offset): (usize, usize), numel: usize, round: &Arc<Mutex<Round>>, plan: &Arc<BucketPlan>) -> GradReadyHook {
    let (round, plan) = (round.clone(), plan.clone());
    Arc::new(move |grad: &Tensor| {
        let mut round = round.lock().unwrap_or_else(|e| e.into_inner());
        if round.reported[i] || round.stale {
            round.stale = true;
            return;
        }
        round.reported[i] = true;
        let Some(buffer) = round.buffers[bucket].as_mut() else {
            round.stale = true;
            return;
        };
        match grad.to_vec::<f32>() {
            Some(g) if g.len() == numel => buffer[offset..offset + numel].copy_from_slice(&g),
            // Not a float32 gradient of the leaf's size: let the after-backward path report it.
            _ => {
                round.stale = true;
                return;
            }
        }
        round.ready[bucket] += 1;
        round.launch_ready(&plan, false);
    })
}

/// How one syncGradients went: `communicationMs` is the all-reduce time on the communication
/// thread, `waitMs` how long syncGradients blocked for it (the rest was hidden behind backward).
#[napi(object)]
pub struct SyncStats {
    pub buckets: u32,
    /// False when the round fell back to the after-backward path (e.g. two backward passes).
    pub overlapped: bool,
    /// Buckets that were full, and so started, before syncGradients was called.
    pub launched_in_backward: u32,
    pub communication_ms: f64,
    pub wait_ms: f64,
}

/// Attaches gradient-ready hooks to `params` (leaf handles, the same model on every rank) so
/// their buckets are all-reduced during backward. Returns the reducer's id for distReducerFinish.
#[napi(js_name = "distReducerCreate")]
pub fn dist_reducer_create(params: Vec<u32>, bucket_bytes: f64) -> Result<u32> {
    const OP: &str = "DistributedDataParallel";
    with_world(OP, |world| {
        let leaves = leaves_in_bucket_order(OP, world, &params).and_then(|leaves| {
            if THREADS_SERIALIZED.load(Ordering::Relaxed) {
                return Ok(leaves);
            }
            Err(KilnError::new(&who(OP, world), "overlapping the gradient all-reduce with backward needs MPI_THREAD_SERIALIZED, which this MPI library does not provide; pass { overlap: false }"))
        });
        let leaves = agree_on_model(OP, world, leaves)?;
        let reducer = Reducer::new(leaves, bucket_bytes, world.size() as usize);
        Ok(REDUCERS.with(|r| {
            let mut r = r.borrow_mut();
            r.push(Some(reducer));
            (r.len() - 1) as u32
        }))
    })
}

/// Ends a round of reducer `id`: every parameter's gradient becomes its mean over the ranks.
/// `params` are this step's parameters. If they are not the ones the hooks watch (a parameter
/// was replaced) or a leaf reported twice (several backward passes), the gradients are averaged
/// after backward instead (same buckets, same result), and the hooks move to `params`.
#[napi(js_name = "distReducerFinish")]
pub fn dist_reducer_finish(id: u32, params: Vec<u32>) -> Result<SyncStats> {
    const OP: &str = "DistributedDataParallel.syncGradients";
    let called = Instant::now();
    with_world(OP, |world| {
        let current = leaves_in_bucket_order(OP, world, &params)?;
        REDUCERS.with(|r| {
            let mut reducers = r.borrow_mut();
            let reducer = reducers.get_mut(id as usize).and_then(Option::as_mut).ok_or_else(|| KilnError::new(OP, format!("no reducer {id} (the model was disposed)")))?;
            let same = reducer.watches(&current);
            if let Some(stats) = reducer.finish(!same, called)? {
                return Ok(stats);
            }
            let buckets = all_reduce_after_backward(OP, world, &current, reducer.bucket_bytes)?;
            let communication_ms = called.elapsed().as_secs_f64() * 1e3;
            if !same {
                *reducer = Reducer::new(current, reducer.bucket_bytes, reducer.world_size);
            }
            Ok(SyncStats { buckets, overlapped: false, launched_in_backward: 0, communication_ms, wait_ms: communication_ms })
        })
    })
}

/// Frees reducer `id` (DistributedDataParallel.dispose): waits for its buckets still being
/// all-reduced, discards them, and removes its hooks. Freeing twice does nothing.
#[napi(js_name = "distReducerFree")]
pub fn dist_reducer_free(id: u32) -> Result<()> {
    let taken = REDUCERS.with(|r| r.borrow_mut().get_mut(id as usize).and_then(Option::take));
    if let Some(mut reducer) = taken {
        reducer.finish(true, Instant::now()).map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
    }
    Ok(())
}
