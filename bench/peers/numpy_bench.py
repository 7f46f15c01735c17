"""numpy side of the Kiln benchmarks: runs one workload and prints one JSON line.

Usage: python3 numpy_bench.py '{"kind": "matmul", "params": {"n": 256}, "target": 0.7, "repeats": 3}'
       python3 numpy_bench.py --info
Timing follows bench/timing.mjs: warm up, calibrate a batch to ~target seconds, best of `repeats`.
BLAS threads are set by the caller (OPENBLAS_NUM_THREADS etc. in the environment).
"""
import json
import sys

import numpy as np
from bench_timing import measure

def time_call(fn, target, repeats):
    """Best seconds per call (bench_timing.measure; numpy's calls are never slower than target)."""
    return min(measure(fn, target, repeats, 1))


def matmul(params):
    n = params["n"]
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return lambda: np.matmul(a, b)


def add(params):
    # A Python-level loop of np.add calls: includes the interpreter's per-call cost.
    size = params["size"]
    rng = np.random.default_rng(5)
    a = rng.standard_normal(size, dtype=np.float32)
    b = rng.standard_normal(size, dtype=np.float32)
    return lambda: np.add(a, b)


WORKLOADS = {"matmul": matmul, "add": add}


def info():
    blas = "?"
    try:
        cfg = np.show_config(mode="dicts")
        dep = cfg["Build Dependencies"]["blas"]
        blas = f"{dep.get('name', '?')} {dep.get('version', '')}".strip()
    except Exception:  # older numpy: no mode="dicts"
        pass
    return {"numpy": np.__version__, "blas": blas, "python": sys.version.split()[0], "workloads": sorted(WORKLOADS)}


def main():
    if sys.argv[1:] == ["--info"]:
        print(json.dumps(info()))
        return
    spec = json.loads(sys.argv[1])
    make = WORKLOADS.get(spec["kind"])
    if make is None:
        print(json.dumps({"error": f"no numpy workload {spec['kind']}"}))
        return
    fn = make(spec["params"])
    seconds = time_call(fn, spec.get("target", 0.7), spec.get("repeats", 3))
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
