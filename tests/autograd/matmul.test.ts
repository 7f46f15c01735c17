/** Gradients of matmul: the four transpose combinations, batched with broadcasting, vectors. */
import { it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { gradCheck, uniform } from '../gradcheck.js';

forEachBackend(() => {
  for (const transposeA of [false, true]) {
    for (const transposeB of [false, true]) {
      it(`transposeA ${transposeA}, transposeB ${transposeB}: 2-D and batched`, async () => {
        const a2 = uniform(transposeA ? [5, 3] : [3, 5], 1);
        const b2 = uniform(transposeB ? [4, 5] : [5, 4], 2);
        await gradCheck('matmul 2-D', [a2, b2], ([a, b]) => kiln.matmul(a, b, transposeA, transposeB));
        const a3 = uniform(transposeA ? [2, 5, 3] : [2, 3, 5], 3);
        const b3 = uniform(transposeB ? [2, 4, 5] : [2, 5, 4], 4);
        await gradCheck('matmul batched', [a3, b3], ([a, b]) => a.matmul(b, transposeA, transposeB));
        // a batched operand with a shared 2-D one: the 2-D gradient sums over the batch
        await gradCheck('matmul batched @ 2-D', [a3, b2], ([a, b]) => kiln.matmul(a, b, transposeA, transposeB));
      });
    }
  }

  it('batch dims broadcast: [2,1,3,4] @ [3,4,2] and [1,3,4] @ [2,1,4,2]', async () => {
    await gradCheck('matmul [2,1,3,4]@[3,4,2]', [uniform([2, 1, 3, 4], 5), uniform([3, 4, 2], 6)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('matmul [1,3,4]@[2,1,4,2]', [uniform([1, 3, 4], 7), uniform([2, 1, 4, 2], 8)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('matmul 2-D @ batched', [uniform([3, 4], 9), uniform([2, 4, 2], 10)], ([a, b]) => kiln.matmul(a, b));
  });

  it('vector cases: [K]@[K,N], [M,K]@[K], [K]@[K], [K]@[B,K,N]', async () => {
    await gradCheck('vector @ matrix', [uniform([4], 11), uniform([4, 3], 12)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('matrix @ vector', [uniform([3, 4], 13), uniform([4], 14)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('vector @ vector', [uniform([4], 15), uniform([4], 16)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('vector @ batched', [uniform([4], 17), uniform([2, 4, 3], 18)], ([a, b]) => kiln.matmul(a, b));
    await gradCheck('batched @ vector', [uniform([2, 3, 4], 19), uniform([4], 20)], ([a, b]) => kiln.matmul(a, b));
  });

  it('non-contiguous operands (a transposed view) and one side constant', async () => {
    await gradCheck('matmul of views', [uniform([5, 3], 21), uniform([4, 5], 22)], ([a, b]) => kiln.matmul(a.transpose(), b.transpose()));
    await gradCheck('matmul wrt a only', [uniform([3, 5], 23), uniform([5, 4], 24)], ([a, b]) => kiln.matmul(a, b), { wrt: [0] });
    await gradCheck('matmul wrt b only', [uniform([3, 5], 23), uniform([5, 4], 24)], ([a, b]) => kiln.matmul(a, b), { wrt: [1] });
    await gradCheck('x @ x', [uniform([4, 4], 25)], ([a]) => kiln.matmul(a, a));
  });
});
