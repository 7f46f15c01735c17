// One rank of the collectives test (tests/distributed/collectives.test.ts runs it under mpirun).
// Rank r contributes x_r[i] = 10 r + i + 0.5 (shape [4, 3]); the test checks every result
// against the same formula computed in plain JS. Prints one JSON line per rank.
import * as kiln from '../../../dist/index.js';

const { rank, worldSize } = kiln.distributed.init();
const values = (r) => Array.from({ length: 12 }, (_, i) => 10 * r + i + 0.5);
const x = kiln.tensor(values(rank), [4, 3]);
const xi = kiln.tensor(values(rank).map(Math.floor), [4, 3], 'int32');

const read = (t) => ({ shape: t.shape, dtype: t.dtype, data: Array.from(t.dataSync()) });
const error = (fn) => {
  try {
    fn();
    return null;
  } catch (e) {
    return e.message;
  }
};

const out = {
  rank,
  worldSize,
  sum: read(kiln.distributed.allReduce(x)),
  mean: read(kiln.distributed.allReduce(x, 'mean')),
  max: read(kiln.distributed.allReduce(x, 'max')),
  min: read(kiln.distributed.allReduce(x, 'min')),
  intSum: read(kiln.distributed.allReduce(xi, 'sum')),
  broadcast: read(kiln.distributed.broadcast(x, worldSize - 1)),
  allGather: read(kiln.distributed.allGather(x)),
  reduceScatter: read(kiln.distributed.reduceScatter(x, 'sum')),
  // Errors: every rank must throw (none may be left waiting), and the job must go on afterwards.
  shapeMismatch: error(() => kiln.distributed.allReduce(rank === 0 ? kiln.zeros([2, 2]) : kiln.zeros([4]))),
  badOp: error(() => kiln.distributed.allReduce(x, 'median')),
  badDtype: error(() => kiln.distributed.allReduce(kiln.tensor([true, false]))),
  badRoot: error(() => kiln.distributed.broadcast(x, worldSize)),
  uneven: error(() => kiln.distributed.reduceScatter(kiln.zeros([worldSize + 1]))),
  notTensor: error(() => kiln.distributed.allGather([1, 2])),
};
kiln.distributed.barrier();
out.afterErrors = read(kiln.distributed.allReduce(kiln.ones([2])));
console.log(JSON.stringify(out));
kiln.distributed.finalize();
