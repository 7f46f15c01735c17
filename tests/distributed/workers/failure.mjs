// A rank that fails mid-run (tests/distributed/failure.test.ts). Every rank all-reduces in a
// loop; at step 3 rank 1 fails in the way the first argument names:
//   kill   SIGKILL itself (a crashed or OOM-killed process)
//   throw  throw an uncaught Error (a bug in the training script)
//   stuck  stop calling collectives (a hang), with a 2 s collective timeout on every rank
// The survivors must not hang: the job ends with an error. "finished" is printed only if the
// loop ran to completion, which it must not.
import * as kiln from '../../../dist/index.js';

const mode = process.argv[2];
const { rank } = kiln.distributed.init();
if (mode === 'stuck') kiln.distributed.setTimeout(2);
const x = kiln.ones([1024]);
for (let step = 0; step < 100_000; step++) {
  if (rank === 1 && step === 3) {
    if (mode === 'kill') process.kill(process.pid, 'SIGKILL');
    if (mode === 'throw') throw new Error('rank 1 failed on purpose');
    if (mode === 'stuck') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  }
  kiln.distributed.allReduce(x).dispose();
}
console.log('finished');
kiln.distributed.finalize();
