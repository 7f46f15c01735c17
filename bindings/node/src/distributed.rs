//! Distributed collectives over MPI (Open MPI through the `mpi` crate, rsmpi), built only with
//! the `mpi` feature (`kiln-mpi.node`). They work on the same registry tensors as every other op,
//! so a gradient or a parameter made by the addon can be all-reduced without leaving Rust.
//!
//! Every collective is called from the JS thread, except the gradient all-reduces that
//! DistributedDataParallel overlaps with backward on its communication thread (grad_reducer.rs).
//! MPI is initialised with `Serialized`: the two threads never call MPI at the same time. Before moving data, each collective all-gathers a small header
//! (dtype, rank of the tensor, shape) so that a mismatch between ranks becomes an Error naming
//! the op and the ranks involved on *every* rank, instead of undefined behaviour inside MPI.
//!
//! Failure: Open MPI's default handler (errors are fatal) ends the job when a rank dies, and
//! mpirun kills the rest. A watchdog thread adds a bound for the case MPI cannot see (a rank that
//! is alive but never reaches the collective): a collective that waits longer than the timeout
//! (`setTimeout`, default 300 s) prints which op and rank were stuck and calls MPI_Abort.

use crate::registry;
use kiln_core::{DType, KilnError, Tensor};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::traits::*;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    // The MPI environment; dropping it calls MPI_Finalize, which only distFinalize may do. It is
    // ManuallyDrop because glibc runs a thread-local's destructor when the process exits: after an
    // uncaught JS error, MPI_Finalize would then wait forever for ranks blocked in a collective,
    // where exiting without it makes mpirun end the job.
    static UNIVERSE: RefCell<Option<ManuallyDrop<Universe>>> = const { RefCell::new(None) };
}

/// Milliseconds since the epoch after which the running collective counts as hung (0: none running).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
/// How long one collective may wait, in milliseconds.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(300_000);
/// Whether the MPI library granted MPI_THREAD_SERIALIZED (the overlapped gradient all-reduce's
/// communication thread needs it).
pub(crate) static THREADS_SERIALIZED: AtomicBool = AtomicBool::new(false);
/// The op the watchdog names when it fires.
static RUNNING_OP: Mutex<String> = Mutex::new(String::new());

/// Most dimensions a tensor in a collective may have (the shape header is fixed-size).
const MAX_DIMS: usize = 8;
pub(crate) const HEADER: usize = 2 + MAX_DIMS;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn to_js(e: KilnError) -> Error {
    Error::new(Status::InvalidArg, e.to_string())
}

/// Runs `f` with the world communicator, or fails with a message naming `op` if init was not called.
pub(crate) fn with_world<T>(op: &str, f: impl FnOnce(&mpi::topology::SimpleCommunicator) -> std::result::Result<T, KilnError>) -> Result<T> {
    UNIVERSE.with(|u| {
        let u = u.borrow();
        let universe = u.as_ref().ok_or_else(|| {
            Error::new(Status::GenericFailure, format!("distributed.{op}: MPI is not initialised; call kiln.distributed.init() first"))
        })?;
        // The communication thread may be all-reducing gradients (grad_reducer.rs): MPI runs
        // with MPI_THREAD_SERIALIZED, so wait until it is idle before calling MPI here.
        crate::grad_reducer::wait_idle();
        let world = universe.world();
        // The whole collective, the header exchange included, runs under the watchdog.
        let _watch = Watch::start(op, &world);
        // A panic inside a collective would leave the other ranks waiting: report it as an error.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&world))) {
            Ok(r) => r.map_err(to_js),
            Err(p) => Err(Error::new(Status::GenericFailure, crate::panic_message(op, p))),
        }
    })
}

/// "allReduce (rank 1 of 4)": the prefix of every error, so a log from many ranks says who failed.
pub(crate) fn who(op: &str, world: &impl Communicator) -> String {
    format!("distributed.{op} (rank {} of {})", world.rank(), world.size())
}

/// Arms the watchdog for the duration of one collective.
pub(crate) struct Watch;
impl Watch {
    pub(crate) fn start(op: &str, world: &impl Communicator) -> Watch {
        *RUNNING_OP.lock().unwrap_or_else(|e| e.into_inner()) = who(op, world);
        DEADLINE_MS.store(now_ms() + TIMEOUT_MS.load(Ordering::Relaxed), Ordering::SeqCst);
        Watch
    }
}
impl Watch {
    /// Re-arms the deadline without disarming it on drop (the enclosing Watch disarms it).
    pub(crate) fn keep_armed(self) {
        std::mem::forget(self);
    }
}
impl Drop for Watch {
    fn drop(&mut self) {
        DEADLINE_MS.store(0, Ordering::SeqCst);
    }
}

fn spawn_watchdog() {
    std::thread::Builder::new()
        .name("kiln-mpi-watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(100));
            let deadline = DEADLINE_MS.load(Ordering::SeqCst);
            if deadline != 0 && now_ms() > deadline {
                let op = RUNNING_OP.lock().map(|s| s.clone()).unwrap_or_default();
                let secs = TIMEOUT_MS.load(Ordering::Relaxed) as f64 / 1000.0;
                eprintln!("kiln: {op} waited more than {secs} s for the other ranks (one is stuck or gone); aborting the job");
                // SAFETY: MPI is initialised (the watchdog starts after MPI_Init); MPI_Abort is the
                // standard's way out of a job that cannot continue and does not return.
                unsafe { mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 1) };
                std::process::abort();
            }
        })
        .expect("kiln: cannot start the MPI watchdog thread");
}

#[napi(object)]
pub struct DistInfo {
    pub rank: i32,
    pub world_size: i32,
}

/// Initialises MPI (once; later calls return the same rank and size).
#[napi(js_name = "distInit")]
pub fn dist_init() -> Result<DistInfo> {
    UNIVERSE.with(|u| {
        let mut u = u.borrow_mut();
        if u.is_none() {
            let (universe, provided) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                .ok_or_else(|| Error::new(Status::GenericFailure, "distributed.init: MPI was already initialised and finalised in this process"))?;
            THREADS_SERIALIZED.store(matches!(provided, mpi::Threading::Serialized | mpi::Threading::Multiple), Ordering::Relaxed);
            *u = Some(ManuallyDrop::new(universe));
            spawn_watchdog();
        }
        let world = u.as_ref().expect("set above").world();
        Ok(DistInfo { rank: world.rank(), world_size: world.size() })
    })
}

/// Whether distInit has run (and distFinalize has not).
#[napi(js_name = "distInitialized")]
pub fn dist_initialized() -> bool {
    UNIVERSE.with(|u| u.borrow().is_some())
}

/// Calls MPI_Finalize. Collectives fail afterwards; MPI cannot be initialised again.
#[napi(js_name = "distFinalize")]
pub fn dist_finalize() {
    // Gradient buckets still being all-reduced (a backward without syncGradients) finish first.
    crate::grad_reducer::wait_idle();
    if let Some(universe) = UNIVERSE.with(|u| u.borrow_mut().take()) {
        drop(ManuallyDrop::into_inner(universe));
    }
}

/// Sets how long one collective may wait for the other ranks before the job is aborted.
#[napi(js_name = "distSetTimeout")]
pub fn dist_set_timeout(seconds: f64) -> Result<()> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(Error::new(Status::InvalidArg, format!("distributed.setTimeout: seconds must be a positive number, got {seconds}")));
    }
    TIMEOUT_MS.store((seconds * 1000.0) as u64, Ordering::Relaxed);
    Ok(())
}

#[napi(js_name = "distBarrier")]
pub fn dist_barrier() -> Result<()> {
    with_world("barrier", |world| {
        world.barrier();
        Ok(())
    })
}

/// dtype code, number of dims, dims (zero-padded): what every rank must agree on.
fn header(op: &str, world: &impl Communicator, t: &Tensor) -> std::result::Result<[i64; HEADER], KilnError> {
    let code = match t.dtype() {
        DType::F32 => 0,
        DType::I32 => 1,
        other => return Err(KilnError::new(&who(op, world), format!("supports float32 and int32 tensors, got {}", other.name()))),
    };
    if t.device().is_some() {
        return Err(KilnError::new(&who(op, world), "the tensor lives on a GPU device; move it to the CPU first"));
    }
    if t.rank() > MAX_DIMS {
        return Err(KilnError::new(&who(op, world), format!("supports tensors of at most {MAX_DIMS} dimensions, got shape {:?}", t.shape())));
    }
    let mut h = [0i64; HEADER];
    h[0] = code;
    h[1] = t.rank() as i64;
    for (i, &d) in t.shape().iter().enumerate() {
        h[2 + i] = d as i64;
    }
    Ok(h)
}

fn describe(h: &[i64]) -> String {
    let dtype = if h[0] == 0 { "float32" } else if h[0] == 1 { "int32" } else { "unsupported dtype" };
    format!("{dtype} {:?}", &h[2..2 + (h[1].clamp(0, MAX_DIMS as i64) as usize)])
}

/// Gathers every rank's header (a local error becomes code -1, so the others fail too instead of
/// waiting in the next collective) and checks that they all equal this rank's.
pub(crate) fn agree(op: &str, world: &impl Communicator, local: std::result::Result<[i64; HEADER], KilnError>) -> std::result::Result<[i64; HEADER], KilnError> {
    let mine = match &local {
        Ok(h) => *h,
        Err(_) => [-1; HEADER],
    };
    let mut all = vec![0i64; HEADER * world.size() as usize];
    world.all_gather_into(&mine[..], &mut all[..]);
    let mine = local?;
    for (r, h) in all.chunks(HEADER).enumerate() {
        if h[0] == -1 {
            return Err(KilnError::new(&who(op, world), format!("rank {r} failed before the collective (see its error)")));
        }
        if h != mine {
            return Err(KilnError::new(
                &who(op, world),
                format!("every rank must pass the same dtype and shape: this rank has {}, rank {r} has {}", describe(&mine), describe(h)),
            ));
        }
    }
    Ok(mine)
}

pub(crate) fn resolve(h: u32) -> std::result::Result<Tensor, KilnError> {
    registry::with(|r| r.get(h).cloned())
}

/// The element types collectives move: float32 and int32 (header dtype codes 0 and 1).
trait Wire: Equivalence + kiln_core::storage::Element + Default {
    /// Divides in place by the world size, for op "mean" (int32 rounds toward zero).
    fn divide(values: &mut [Self], n: usize);
}
impl Wire for f32 {
    fn divide(values: &mut [f32], n: usize) {
        values.iter_mut().for_each(|v| *v /= n as f32);
    }
}
impl Wire for i32 {
    fn divide(values: &mut [i32], n: usize) {
        values.iter_mut().for_each(|v| *v /= n as i32);
    }
}

fn values<T: Wire>(t: &Tensor) -> Vec<T> {
    t.to_vec::<T>().expect("dtype agreed in the header")
}

/// Runs `f::<f32>` or `f::<i32>` by the agreed header's dtype code.
macro_rules! by_dtype {
    ($header:expr, $f:ident ( $($arg:expr),* )) => {
        if $header[0] == 0 { $f::<f32>($($arg),*) } else { $f::<i32>($($arg),*) }
    };
}

/// Checks a reduction name on this rank: "sum", "mean", "max" or "min".
fn reduction(op_name: &str, world: &impl Communicator, op: &str) -> std::result::Result<SystemOperation, KilnError> {
    match op {
        "sum" | "mean" => Ok(SystemOperation::sum()),
        "max" => Ok(SystemOperation::max()),
        "min" => Ok(SystemOperation::min()),
        _ => Err(KilnError::new(&who(op_name, world), format!("op must be 'sum', 'mean', 'max' or 'min', got '{op}'"))),
    }
}

/// Resolves `x`, runs this rank's own checks, then agrees on dtype and shape with every rank
/// (so a failure anywhere fails every rank). Returns the tensor and the agreed header.
fn prepare(
    op: &str,
    world: &impl Communicator,
    x: f64,
    check: impl FnOnce(&Tensor) -> std::result::Result<(), KilnError>,
) -> std::result::Result<(Tensor, [i64; HEADER]), KilnError> {
    // x crosses as an f64 and is checked: napi-rs's u32 would wrap 2^32 + 1 to the handle 1.
    let local = registry::handle(op, "x", x).and_then(resolve).and_then(|t| check(&t).map(|_| t));
    let agreed = agree(op, world, local.as_ref().map_err(|e| e.clone()).and_then(|t| header(op, world, t)))?;
    Ok((local?, agreed))
}

fn all_reduce_typed<T: Wire>(world: &impl Communicator, t: &Tensor, op: SystemOperation, mean: bool) -> kiln_core::Result<Tensor> {
    let send = values::<T>(t);
    let mut recv = vec![T::default(); send.len()];
    world.all_reduce_into(&send[..], &mut recv[..], op);
    if mean {
        T::divide(&mut recv, world.size() as usize);
    }
    Tensor::from_vec(recv, t.shape())
}

/// Element-wise reduction of equal-shaped tensors across ranks: "sum", "mean", "max" or "min".
/// Every rank gets the result as a new tensor (the input is unchanged).
#[napi(js_name = "distAllReduce")]
pub fn dist_all_reduce(x: f64, op: String) -> Result<u32> {
    const OP: &str = "allReduce";
    with_world(OP, |world| {
        let (t, header) = prepare(OP, world, x, |_| reduction(OP, world, &op).map(|_| ()))?;
        let system_op = reduction(OP, world, &op)?;
        let mean = op == "mean";
        let out = by_dtype!(header, all_reduce_typed(world, &t, system_op, mean))?;
        // Sum and mean are differentiable (torch.distributed.nn's all_reduce): every rank's
        // output depends on every rank's input, so the gradient is the same all-reduce of the
        // output gradients. SyncBatchNorm's batch statistics flow back through this.
        let out = match op.as_str() {
            "sum" | "mean" => kiln_core::autograd::record("allReduce", &[&t], &[], out, move |g, _, _| Ok(vec![Some(all_reduce_in_backward(g, mean)?)])),
            _ => out,
        };
        Ok(registry::with_mut(|r| r.insert(out)))
    })
}

/// allReduce's backward: the sum (or mean) over ranks of the output gradients. It runs inside
/// backward on the JS thread; every rank's backward reaches it in the same order, as its forward
/// did, so the shapes agree without a header.
fn all_reduce_in_backward(g: &Tensor, mean: bool) -> kiln_core::Result<Tensor> {
    const OP: &str = "allReduce (backward)";
    UNIVERSE.with(|u| {
        let u = u.borrow();
        let universe = u.as_ref().ok_or_else(|| KilnError::new(&format!("distributed.{OP}"), "MPI was finalised before backward"))?;
        crate::grad_reducer::wait_idle();
        let world = universe.world();
        let _watch = Watch::start(OP, &world);
        all_reduce_typed::<f32>(&world, g, SystemOperation::sum(), mean)
    })
}

fn broadcast_typed<T: Wire>(world: &impl Communicator, t: &Tensor, root: i32) -> kiln_core::Result<Tensor> {
    let mut buf = values::<T>(t);
    world.process_at_rank(root).broadcast_into(&mut buf[..]);
    Tensor::from_vec(buf, t.shape())
}

/// Every rank gets `root`'s tensor (all ranks pass a tensor of the same dtype and shape).
#[napi(js_name = "distBroadcast")]
pub fn dist_broadcast(x: f64, root: i32) -> Result<u32> {
    const OP: &str = "broadcast";
    with_world(OP, |world| {
        let (t, header) = prepare(OP, world, x, |_| {
            if root < 0 || root >= world.size() {
                return Err(KilnError::new(&who(OP, world), format!("root must be a rank in [0, {}), got {root}", world.size())));
            }
            Ok(())
        })?;
        let out = by_dtype!(header, broadcast_typed(world, &t, root))?;
        Ok(registry::with_mut(|r| r.insert(out)))
    })
}

fn all_gather_typed<T: Wire>(world: &impl Communicator, t: &Tensor, shape: &[usize]) -> kiln_core::Result<Tensor> {
    let send = values::<T>(t);
    let mut recv = vec![T::default(); send.len() * world.size() as usize];
    world.all_gather_into(&send[..], &mut recv[..]);
    Tensor::from_vec(recv, shape)
}

/// Concatenates every rank's tensor along axis 0, in rank order: [d0, ...] -> [worldSize * d0, ...].
/// A scalar becomes a vector of worldSize values.
#[napi(js_name = "distAllGather")]
pub fn dist_all_gather(x: f64) -> Result<u32> {
    const OP: &str = "allGather";
    with_world(OP, |world| {
        let (t, header) = prepare(OP, world, x, |_| Ok(()))?;
        let size = world.size() as usize;
        let mut shape = t.shape().to_vec();
        match shape.first_mut() {
            Some(d0) => *d0 *= size,
            None => shape.push(size),
        }
        let out = by_dtype!(header, all_gather_typed(world, &t, &shape))?;
        Ok(registry::with_mut(|r| r.insert(out)))
    })
}

fn reduce_scatter_typed<T: Wire>(world: &impl Communicator, t: &Tensor, op: SystemOperation, mean: bool) -> kiln_core::Result<Tensor> {
    let size = world.size() as usize;
    let send = values::<T>(t);
    let mut recv = vec![T::default(); send.len() / size];
    world.reduce_scatter_block_into(&send[..], &mut recv[..], op);
    if mean {
        T::divide(&mut recv, size);
    }
    let mut shape = t.shape().to_vec();
    shape[0] /= size;
    Tensor::from_vec(recv, &shape)
}

/// Reduces equal-shaped tensors across ranks ("sum", "mean", "max", "min") and gives rank r the
/// r-th of worldSize equal blocks along axis 0: [d0, ...] -> [d0 / worldSize, ...].
#[napi(js_name = "distReduceScatter")]
pub fn dist_reduce_scatter(x: f64, op: String) -> Result<u32> {
    const OP: &str = "reduceScatter";
    with_world(OP, |world| {
        let size = world.size() as usize;
        let (t, header) = prepare(OP, world, x, |t| {
            reduction(OP, world, &op)?;
            match t.shape().first() {
                Some(&d0) if d0 % size == 0 => Ok(()),
                _ => Err(KilnError::new(&who(OP, world), format!("axis 0 must divide evenly by the world size {size}, got shape {:?}", t.shape()))),
            }
        })?;
        let system_op = reduction(OP, world, &op)?;
        let out = by_dtype!(header, reduce_scatter_typed(world, &t, system_op, op == "mean"))?;
        Ok(registry::with_mut(|r| r.insert(out)))
    })
}
