// The workloads: what is measured and how a time per call becomes the reported number.
//
// Each workload has a `kind`: a peer runs it if its `workloads` object has a function of that name
// (see peers/*.mjs). A peer without that function simply gets no entry for the workload. To add a
// workload (an MLP training step, conv2d, LSTM, attention), add an entry here and a function of the
// same kind to each peer that can run it.

const matmul = (n) => ({
  id: `matmul-${n}`,
  kind: 'matmul',
  params: { n },
  label: `matmul f32 ${n}x${n}`,
  unit: 'GFLOP/s',
  // 2*N^3 floating-point operations (a multiply and an add per inner step).
  value: (secondsPerCall) => (2 * n ** 3) / secondsPerCall / 1e9,
});

export const workloads = [
  matmul(64),
  matmul(256),
  matmul(1024),
  {
    id: 'add-4',
    kind: 'add',
    params: { size: 4 },
    label: 'add f32[4] (tiny op)',
    unit: 'calls/s',
    // One op call with a tiny input: measures per-call overhead, not arithmetic.
    value: (secondsPerCall) => 1 / secondsPerCall,
  },
];

/** Workloads whose id or kind contains one of the `--only` patterns (all if none). */
export function selectWorkloads(only) {
  if (only.length === 0) return workloads;
  return workloads.filter((w) => only.some((p) => w.id.includes(p) || w.kind.includes(p)));
}
