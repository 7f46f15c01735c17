/**
 * nn.BasicBlock (ResNet's residual block): the forward pass against the same computation written
 * with kiln.conv2d and BatchNorm from primitive ops, torchvision's parameter names, the identity
 * and projection shortcuts, finite-difference gradients, and input validation.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, T, expectEveryTestToFreeItsTensors } from '../helpers.js';
import { gradCheck } from './gradcheck.js';

/** Training-mode batch norm from primitive ops: per-channel batch mean and biased variance. */
function batchNormPrimitive(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const c = x.shape[1];
  const mean = x.mean([0, 2, 3], true);
  const centered = x.sub(mean);
  const variance = centered.square().mean([0, 2, 3], true);
  return centered.div(variance.add(eps).sqrt()).mul(gamma.reshape([1, c, 1, 1])).add(beta.reshape([1, c, 1, 1]));
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('BasicBlock', () => {
    it('torchvision parameter names; projection only when stride or channels change', () => {
      const same = new nn.BasicBlock(4, 4, { seed: 1 });
      const down = new nn.BasicBlock(4, 8, { stride: 2, seed: 2 });
      const plain = new nn.BasicBlock(4, 4, { batchNorm: false, seed: 3 });
      expect(same.downsample).toBeNull();
      expect(Object.keys(same.stateDict()).sort()).toEqual(
        ['bn1.bias', 'bn1.runningMean', 'bn1.runningVar', 'bn1.weight', 'bn2.bias', 'bn2.runningMean', 'bn2.runningVar', 'bn2.weight', 'conv1.weight', 'conv2.weight'],
      );
      expect(down.namedParameters().map(([k]) => k)).toContain('downsample.0.weight');
      expect(down.namedParameters().map(([k]) => k)).toContain('downsample.1.weight');
      // Without BatchNorm the convolutions keep their bias.
      expect(plain.namedParameters().map(([k]) => k).sort()).toEqual(['conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight']);
      const shape = kiln.tidy(() => [...down.forward(kiln.randn([2, 4, 7, 7], { seed: 4 })).shape]);
      expect(shape).toEqual([2, 8, 4, 4]);
      [same, down, plain].forEach((m) => m.dispose());
    });

    /** The block's computation written with kiln.conv2d and primitive-op batch norm, using its parameters. */
    const composed = (block: nn.BasicBlock, x: Tensor, stride: number): Tensor => {
      const bn = (m: nn.BatchNorm2d | null, y: Tensor) => batchNormPrimitive(y, m!.weight!, m!.bias!);
      let y = kiln.conv2d(x, block.conv1.weight, { stride, padding: 1 });
      y = kiln.relu(bn(block.bn1, y));
      y = bn(block.bn2, kiln.conv2d(y, block.conv2.weight, { padding: 1 }));
      let shortcut = x;
      if (block.downsample) {
        const [proj, pbn] = block.downsample.layers as [nn.Conv2d, nn.BatchNorm2d];
        shortcut = bn(pbn, kiln.conv2d(x, proj.weight, { stride }));
      }
      return kiln.relu(y.add(shortcut));
    };

    it('forward and gradients equal relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)) from primitive ops', async () => {
      for (const [cin, cout, stride] of [[3, 3, 1], [3, 5, 2]] as const) {
        const block = new nn.BasicBlock(cin, cout, { stride, seed: 7 });
        const x = T(randND([2, cin, 6, 6], 8));
        const r = T(randND(stride === 1 ? [2, cout, 6, 6] : [2, cout, 3, 3], 9));
        const gradients = (f: (x: Tensor) => Tensor) =>
          kiln.tidy(() => {
            block.zeroGrad();
            const xg = x.clone().setRequiresGrad();
            const out = f(xg);
            out.mul(r).sum().backward();
            return [out, xg.grad!, ...block.parameters().map((p) => p.grad!.clone())];
          });
        const got = gradients((v) => block.forward(v));
        const want = gradients((v) => composed(block, v, stride));
        expect(got[0].shape).toEqual(want[0].shape);
        for (let i = 0; i < got.length; i++) assertClose(await got[i].data(), await want[i].data(), { atol: 1e-4, rtol: 1e-3 });
        block.zeroGrad();
        kiln.dispose([x, r, ...got, ...want]);
        block.dispose();
      }
    });

    it('gradients match finite differences (identity shortcut, no BatchNorm)', async () => {
      const identity = new nn.BasicBlock(2, 2, { batchNorm: false, seed: 11 });
      await gradCheck(identity, randND([2, 2, 4, 4], 12), { atol: 5e-3, rtol: 3e-2, eps: 1e-3 });
      identity.dispose();
    });

    it('validates its input and options', () => {
      const block = new nn.BasicBlock(3, 4);
      expectThrows(() => kiln.tidy(() => block.forward(kiln.zeros([1, 2, 5, 5]))), 'BasicBlock(3 -> 4)', '[1, 2, 5, 5]');
      expectThrows(() => new nn.BasicBlock(3, 4, { stride: 0 }), 'BasicBlock', 'stride');
      block.dispose();
    });
  });
});
