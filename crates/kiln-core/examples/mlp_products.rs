//! The matrix products of one mlp-train step (bench/workloads.mjs: 784-512-10, batch 128) and
//! nothing else: no JavaScript, no allocation, no autograd, on Kiln's pool. The control of
//! bench/step-controls.mjs: a spread the bench's step shows and this loop beside it does not
//! comes from what the step adds around its products.
//! Prints one JSON line: per measurement of about `seconds`, the wall and process CPU
//! milliseconds per step.
//! `cargo run --release -p kiln-core --example mlp_products -- [seconds, default 0.7] [runs, default 5]`
//!
//! Controls for the two-thread spread (issue 18; bench/README.md "Where the two-thread products'
//! CPU goes"), environment variables:
//! - `MLP_PRODUCTS_DETAIL=1`: one JSON line per measurement as well: each thread's CPU and its
//!   time queued for a CPU (/proc's schedstat), the CPU it ran on, each CPU's steal time (the
//!   hypervisor running something else on it), and, in a build with the `wait-stats` feature,
//!   each thread's CPU spent waiting on the other (`--features wait-stats`).
//! - `MLP_PRODUCTS_ONE=1`: every measurement on two threads is followed by one on the calling
//!   thread alone (`parallel`'s inline path), in the same process and the same seconds.
//! - `MLP_PRODUCTS_PIN=1`: the caller pinned to CPU 0, the pool's worker to CPU 1.
//! - `MLP_PRODUCTS_BUFFERS=vec|page|huge`: the operands as plain Vecs, 4 KiB aligned, or 2 MiB
//!   aligned with `madvise(MADV_HUGEPAGE)`; `MLP_PRODUCTS_FRESH=1` allocates them again for
//!   every measurement (another placement each time).
use kiln_core::cpu_clock::process_ns;
use kiln_core::device::cpu::gemm_avx512::{self, MatRef};
use std::time::Instant;

const BATCH: usize = 128;
const INPUTS: usize = 784;
const HIDDEN: usize = 512;
const CLASSES: usize = 10;

/// Row-major `rows x cols` operand, optionally read transposed.
fn view(data: &[f32], cols: usize, transposed: bool) -> MatRef {
    let (rs, cs) = if transposed { (1, cols as isize) } else { (cols as isize, 1) };
    MatRef { ptr: data.as_ptr(), rs, cs }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// A buffer of floats placed as `MLP_PRODUCTS_BUFFERS` says.
struct Floats {
    ptr: *mut f32,
    len: usize,
    layout: Option<std::alloc::Layout>,
    /// Owns the memory `ptr` points to for the "vec" placement.
    _vec: Vec<f32>,
}

impl Floats {
    fn new(values: Vec<f32>, placement: &str) -> Floats {
        let align = match placement {
            "page" => 4096,
            "huge" => 2 << 20,
            _ => {
                let mut vec = values;
                return Floats { ptr: vec.as_mut_ptr(), len: vec.len(), layout: None, _vec: vec };
            }
        };
        let bytes = (values.len() * 4).next_multiple_of(align);
        let layout = std::alloc::Layout::from_size_align(bytes, align).expect("layout");
        // SAFETY: non-zero size; the copy stays inside the allocation.
        unsafe {
            let ptr = std::alloc::alloc_zeroed(layout) as *mut f32;
            assert!(!ptr.is_null(), "mlp_products: out of memory");
            if placement == "huge" {
                extern "C" {
                    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
                }
                const MADV_HUGEPAGE: i32 = 14;
                madvise(ptr as *mut _, bytes, MADV_HUGEPAGE);
            }
            std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len());
            Floats { ptr, len: values.len(), layout: Some(layout), _vec: Vec::new() }
        }
    }

    fn get(&self) -> &[f32] {
        // SAFETY: ptr holds len initialized floats.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn ptr(&mut self) -> *mut f32 {
        self.ptr
    }
}

impl Drop for Floats {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated with this layout in `new`.
            unsafe { std::alloc::dealloc(self.ptr as *mut u8, layout) };
        }
    }
}

/// The step's operands.
struct Operands {
    x: Floats,
    w1: Floats,
    w2: Floats,
    h: Floats,
    y: Floats,
    dy: Floats,
    dh: Floats,
    dw1: Floats,
    dw2: Floats,
}

impl Operands {
    fn new(placement: &str) -> Operands {
        let fill = |n: usize, s: f32| (0..n).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * s).collect::<Vec<f32>>();
        let f = |v: Vec<f32>| Floats::new(v, placement);
        Operands {
            x: f(fill(BATCH * INPUTS, 1.0)),
            w1: f(fill(INPUTS * HIDDEN, 0.05)),
            w2: f(fill(HIDDEN * CLASSES, 0.05)),
            h: f(vec![0f32; BATCH * HIDDEN]),
            y: f(vec![0f32; BATCH * CLASSES]),
            dy: f(fill(BATCH * CLASSES, 0.1)),
            dh: f(vec![0f32; BATCH * HIDDEN]),
            dw1: f(vec![0f32; INPUTS * HIDDEN]),
            dw2: f(vec![0f32; HIDDEN * CLASSES]),
        }
    }

    /// One step's five products: forward h = x w1, y = h w2; backward dw2 = hᵀ dy, dh = dy w2ᵀ,
    /// dw1 = xᵀ dh.
    fn step(&mut self, threads: usize) {
        let o = self;
        // SAFETY: every view addresses its own buffer's elements; outputs do not overlap inputs.
        unsafe {
            gemm_avx512::gemm(BATCH, HIDDEN, INPUTS, o.h.ptr(), HIDDEN, false, view(o.x.get(), INPUTS, false), view(o.w1.get(), HIDDEN, false), 1.0, threads);
            gemm_avx512::gemm(BATCH, CLASSES, HIDDEN, o.y.ptr(), CLASSES, false, view(o.h.get(), HIDDEN, false), view(o.w2.get(), CLASSES, false), 1.0, threads);
            *o.dy.ptr() += *o.y.ptr() * 1e-9;
            gemm_avx512::gemm(HIDDEN, CLASSES, BATCH, o.dw2.ptr(), CLASSES, false, view(o.h.get(), HIDDEN, true), view(o.dy.get(), CLASSES, false), 1.0, threads);
            gemm_avx512::gemm(BATCH, HIDDEN, CLASSES, o.dh.ptr(), HIDDEN, false, view(o.dy.get(), CLASSES, false), view(o.w2.get(), CLASSES, true), 1.0, threads);
            gemm_avx512::gemm(INPUTS, HIDDEN, BATCH, o.dw1.ptr(), HIDDEN, false, view(o.x.get(), INPUTS, true), view(o.dh.get(), HIDDEN, false), 1.0, threads);
        }
    }
}

/// Per thread of this process: (name, on-CPU ns, ns queued for a CPU, the CPU it last ran on).
fn thread_stats() -> Vec<(String, u64, u64, i64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return out };
    for entry in dir.flatten() {
        let path = entry.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        let sched: Vec<u64> = read("schedstat").split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let stat = read("stat");
        // Fields after the command's closing parenthesis; "processor" is field 39 of stat.
        let cpu = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(36)?.parse().ok()).unwrap_or(-1);
        let tid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let name = if tid == std::process::id() { "main".to_string() } else { read("comm").trim().to_string() };
        if sched.len() >= 2 && (name == "main" || name.starts_with("kiln-pool")) {
            out.push((name, sched[0], sched[1], cpu));
        }
    }
    out.sort();
    out
}

/// Steal ticks (USER_HZ) of each CPU so far, from /proc/stat.
fn steal_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).map(|l| l.split_whitespace().nth(8).and_then(|v| v.parse().ok()).unwrap_or(0)).collect()
}

/// Per wait slot (0 the caller, 1 the worker): (wall ns, CPU ns) spent waiting so far.
#[cfg(feature = "wait-stats")]
fn waits() -> Vec<(u64, u64)> {
    kiln_core::native_pool::waits::totals().into_iter().take(2).map(|(w, c, _)| (w, c)).collect()
}

#[cfg(not(feature = "wait-stats"))]
fn waits() -> Vec<(u64, u64)> {
    Vec::new()
}

/// Pins thread `tid` to `cpu`.
fn pin(tid: u32, cpu: usize) {
    extern "C" {
        fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    }
    let mask: [u64; 16] = std::array::from_fn(|i| if i == cpu / 64 { 1 << (cpu % 64) } else { 0 });
    // SAFETY: the mask is a valid cpu_set_t of 1024 bits.
    let r = unsafe { sched_setaffinity(tid as i32, std::mem::size_of_val(&mask), mask.as_ptr()) };
    assert_eq!(r, 0, "mlp_products: sched_setaffinity({tid}, {cpu}) failed");
}

fn pin_threads() {
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let tid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if tid == std::process::id() {
            pin(tid, 0);
        } else if comm.starts_with("kiln-pool") {
            pin(tid, 1);
        }
    }
}

/// One measurement's detail line.
fn detail(mode: &str, steps: usize, wall_ms: f64, cpu_ms: f64, before: &(Vec<(String, u64, u64, i64)>, Vec<u64>, Vec<(u64, u64)>)) -> String {
    let (threads, steal, waited) = (thread_stats(), steal_ticks(), waits());
    let per = |ns: u64| ns as f64 / 1e6 / steps as f64;
    let mut parts = Vec::new();
    for (name, run, queued, cpu) in &threads {
        if let Some((_, run0, queued0, _)) = before.0.iter().find(|t| &t.0 == name) {
            parts.push(format!("\"{name}\":{{\"cpu_ms\":{:.3},\"queued_ms\":{:.3},\"on_cpu\":{cpu}}}", per(run - run0), per(queued - queued0)));
        }
    }
    let steal: Vec<String> = steal.iter().zip(&before.1).map(|(a, b)| format!("{}", (a - b) * 10)).collect();
    let waits: Vec<String> = waited.iter().zip(&before.2).map(|(a, b)| format!("[{:.3},{:.3}]", per(a.0 - b.0), per(a.1 - b.1))).collect();
    format!(
        "{{\"mode\":\"{mode}\",\"wall_ms\":{wall_ms:.4},\"cpu_ms\":{cpu_ms:.4},{},\"steal_ms_per_cpu\":[{}],\"wait_wall_cpu_ms\":[{}]}}",
        parts.join(","),
        steal.join(","),
        waits.join(",")
    )
}

fn main() {
    if !gemm_avx512::cpu_supports() {
        println!("{{\"error\":\"mlp_products: no AVX-512F on this CPU\"}}");
        return;
    }
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(0.7);
    let runs = args.get(1).copied().unwrap_or(5.0) as usize;
    let threads = kiln_core::parallel::num_threads();
    let placement = std::env::var("MLP_PRODUCTS_BUFFERS").unwrap_or_else(|_| "vec".into());
    let (detailed, one_too, fresh) = (env_flag("MLP_PRODUCTS_DETAIL"), env_flag("MLP_PRODUCTS_ONE"), env_flag("MLP_PRODUCTS_FRESH"));
    let mut ops = Operands::new(&placement);
    // Calibrate: steps per measurement of about `seconds` (the first step starts the pool).
    let t0 = Instant::now();
    let mut n = 0usize;
    while t0.elapsed().as_secs_f64() < 0.1 {
        ops.step(threads);
        n += 1;
    }
    if env_flag("MLP_PRODUCTS_PIN") {
        pin_threads();
    }
    let steps = ((n as f64) * seconds / t0.elapsed().as_secs_f64()).ceil() as usize;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        if fresh {
            ops = Operands::new(&placement);
            ops.step(threads);
        }
        let modes: &[&str] = if one_too { &["two", "one"] } else { &["two"] };
        for &mode in modes {
            let before = (thread_stats(), steal_ticks(), waits());
            let (t, c) = (Instant::now(), process_ns());
            if mode == "two" {
                (0..steps).for_each(|_| ops.step(threads));
            } else {
                kiln_core::native_pool::on_this_thread(|| (0..steps).for_each(|_| ops.step(1)));
            }
            let wall_ms = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
            let cpu_ms = (process_ns() - c) as f64 / 1e6 / steps as f64;
            if detailed {
                println!("{}", detail(mode, steps, wall_ms, cpu_ms, &before));
            }
            if mode == "two" {
                wall.push(format!("{wall_ms:.4}"));
                cpu.push(format!("{cpu_ms:.4}"));
            }
        }
    }
    std::hint::black_box(ops.dw1.get());
    println!("{{\"threads\":{threads},\"steps\":{steps},\"wall_ms\":[{}],\"cpu_ms\":[{}]}}", wall.join(","), cpu.join(","));
}
