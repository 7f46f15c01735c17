"""The timing policy of bench/timing.mjs for the Python peers (numpy_bench.py, pytorch_bench.py)."""
import time

WARMUP = 0.15
CALIBRATE = 0.1


def measure(fn, target, repeats, slow_repeats):
    """Seconds per call in each of `repeats` measurements of ~`target` seconds after a warm-up and
    a calibration; a call slower than `target` gets `slow_repeats` single calls instead."""
    now = time.perf_counter
    t0 = now()
    calls = 0
    while True:
        fn()
        calls += 1
        if now() - t0 >= WARMUP:
            break
    if (now() - t0) / calls > target:
        runs = []
        for _ in range(slow_repeats):
            t0 = now()
            fn()
            runs.append(now() - t0)
        return runs
    n = 1
    while True:
        t0 = now()
        for _ in range(n):
            fn()
        t = now() - t0
        if t >= CALIBRATE:
            break
        n *= 2
    iters = max(1, int(-(-target * n // t)))
    runs = []
    for _ in range(repeats):
        t0 = now()
        for _ in range(iters):
            fn()
        runs.append((now() - t0) / iters)
    return runs
