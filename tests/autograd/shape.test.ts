/**
 * Gradients of the views (reshape transpose permute slice expand squeeze unsqueeze contiguous)
 * and of the ops that move elements (concat stack split gather scatterAdd pad).
 */
import { it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { Ti } from '../helpers.js';
import { gradCheck, uniform } from '../gradcheck.js';
import { nd } from '../reference.js';

forEachBackend(() => {
  const x = uniform([2, 3, 4], 1);

  it('reshape (with -1, to rank 1, of a non-contiguous input), flatten, clone', async () => {
    await gradCheck('reshape [4,-1]', [x], ([t]) => t.reshape([4, -1]));
    await gradCheck('reshape [24]', [x], ([t]) => kiln.reshape(t, [24]));
    await gradCheck('reshape of a transpose', [x], ([t]) => t.transpose().reshape([6, 4]));
    await gradCheck('flatten', [x], ([t]) => t.flatten());
    await gradCheck('clone', [x], ([t]) => t.clone());
  });

  it('transpose (default and perm) and permute', async () => {
    await gradCheck('transpose()', [x], ([t]) => t.transpose());
    await gradCheck('transpose 2-D', [uniform([3, 5], 2)], ([t]) => kiln.transpose(t));
    await gradCheck('transpose [1,0,2]', [x], ([t]) => t.transpose([1, 0, 2]));
    await gradCheck('permute [2,0,1]', [x], ([t]) => kiln.permute(t, [2, 0, 1]));
    await gradCheck('permute twice', [x], ([t]) => t.permute([2, 0, 1]).permute([0, 2, 1]));
  });

  it('slice: interior, to the end (-1 and omitted size), of a permuted view', async () => {
    await gradCheck('slice interior', [x], ([t]) => t.slice([1, 0, 1], [1, 2, 2]));
    await gradCheck('slice to end', [x], ([t]) => kiln.slice(t, [0, 1, 1], [-1, -1, 3]));
    await gradCheck('slice omitted size', [x], ([t]) => t.slice([1, 1, 0]));
    await gradCheck('slice of permute', [x], ([t]) => t.permute([2, 1, 0]).slice([1, 0, 0], [2, 3, 1]));
    await gradCheck('overlapping slices summed', [x], ([t]) => t.slice([0, 0, 0], [2, 2, 4]).add(t.slice([0, 1, 0], [2, 2, 4])));
  });

  it('expand / broadcastTo: size-1 dims and new leading dims', async () => {
    await gradCheck('expand [3,1] -> [2,3,4]', [uniform([3, 1], 3)], ([t]) => t.expand([2, 3, 4]));
    await gradCheck('broadcastTo [4] -> [3,4]', [uniform([4], 4)], ([t]) => t.broadcastTo([3, 4]));
    await gradCheck('expand [] -> [2,2]', [uniform([], 5)], ([t]) => kiln.expand(t, [2, 2]));
  });

  it('squeeze (all, one axis), unsqueeze, expandDims', async () => {
    const y = uniform([3, 1, 4, 1], 6);
    await gradCheck('squeeze()', [y], ([t]) => t.squeeze());
    await gradCheck('squeeze(1)', [y], ([t]) => kiln.squeeze(t, 1));
    await gradCheck('squeeze([-1])', [y], ([t]) => t.squeeze([-1]));
    await gradCheck('unsqueeze(0)', [x], ([t]) => t.unsqueeze(0));
    await gradCheck('unsqueeze(-1)', [x], ([t]) => kiln.unsqueeze(t, -1));
    await gradCheck('expandDims(2)', [x], ([t]) => t.expandDims(2));
  });

  it('contiguous of a contiguous and of a permuted input', async () => {
    await gradCheck('contiguous', [x], ([t]) => t.contiguous());
    await gradCheck('contiguous of permute', [x], ([t]) => kiln.contiguous(t.permute([1, 0, 2])));
  });

  it('concat along each axis, of 3 tensors and of a view', async () => {
    await gradCheck('concat axis 0', [uniform([2, 3], 7), uniform([1, 3], 8)], ([a, b]) => kiln.concat([a, b], 0));
    await gradCheck('concat axis 1', [uniform([2, 3], 9), uniform([2, 1], 10)], ([a, b]) => kiln.concat([a, b], 1));
    await gradCheck('concat axis -1 of 3', [uniform([2, 2, 1], 11), uniform([2, 2, 3], 12), uniform([2, 2, 2], 13)], (ts) => kiln.concat(ts, -1));
    await gradCheck('concat same tensor twice', [uniform([2, 3], 14)], ([a]) => kiln.concat([a, a.transpose().transpose()], 0));
    await gradCheck('concat with a constant', [uniform([2, 3], 15), uniform([2, 3], 16)], ([a, b]) => kiln.concat([a, b], 1), { wrt: [0] });
  });

  it('stack along a new axis at each position', async () => {
    for (const axis of [0, 1, 2, -1]) {
      await gradCheck(`stack axis ${axis}`, [uniform([2, 3], 17), uniform([2, 3], 18)], ([a, b]) => kiln.stack([a, b], axis));
    }
  });

  it('split by sizes and by count; the parts used differently', async () => {
    await gradCheck('split sizes [1,3] axis 2', [x], ([t]) => {
      const [p, q] = t.split([1, 3], 2);
      return p.mul(q);
    });
    await gradCheck('split count 2 axis 0', [x], ([t]) => {
      const [p, q] = kiln.split(t, 2, 0);
      return p.sub(q.mul(2));
    });
    await gradCheck('split, one part unused', [x], ([t]) => t.split([2, 1], 1)[1].exp());
  });

  it('gather on each axis, with repeated and multi-dimensional indices', async () => {
    const idx = Ti(nd([3], [2, 0, 2]));
    await gradCheck('gather axis 1 (repeats)', [x], ([t]) => t.gather(idx, 1));
    await gradCheck('gather axis 0', [x], ([t]) => kiln.gather(t, Ti(nd([3], [1, 1, 0])), 0));
    await gradCheck('gather axis -1', [x], ([t]) => t.gather(Ti(nd([2], [3, 0])), -1));
    await gradCheck('gather 2-D indices', [x], ([t]) => t.gather(Ti(nd([2, 2], [0, 2, 1, 2])), 1));
    await gradCheck('indexSelect', [x], ([t]) => t.indexSelect(2, Ti(nd([4], [3, 3, 3, 1]))));
  });

  it('scatterAdd: gradient for base and updates, with repeated indices', async () => {
    const idx = Ti(nd([3], [2, 0, 2]));
    await gradCheck('scatterAdd axis 1', [uniform([2, 5], 19), uniform([2, 3], 20)], ([base, up]) => kiln.scatterAdd(base, idx, up, 1));
    await gradCheck('scatterAdd axis 0', [uniform([4, 2], 21), uniform([3, 2], 22)], ([base, up]) => base.scatterAdd(idx, up, 0));
    await gradCheck('scatterAdd updates only', [uniform([2, 5], 23), uniform([2, 3], 24)], ([base, up]) => kiln.scatterAdd(base, idx, up, 1), { wrt: [1] });
  });

  it('pad: before/after on each dim, non-zero value, zero padding on a dim', async () => {
    await gradCheck('pad [[1,0],[2,1]] value 0.5', [uniform([2, 3], 25)], ([t]) => kiln.pad(t, [[1, 0], [2, 1]], 0.5));
    await gradCheck('pad [[0,0],[0,2],[1,1]]', [x], ([t]) => t.pad([[0, 0], [0, 2], [1, 1]]));
  });

  it('a chain of views, then a reduction (as a layer reshaping its activations)', async () => {
    await gradCheck('chain', [x], ([t]) =>
      t.permute([1, 0, 2]).reshape([3, 8]).slice([0, 2], [3, 4]).unsqueeze(0).expand([2, 3, 4]).sum(0),
    );
  });
});
