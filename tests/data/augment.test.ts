/** Augmentations on small hand-made NCHW batches. */
import { describe, expect, it } from 'vitest';
import { compose, gaussianNoise, randomCropWithPadding, randomFlipHorizontal } from '../../ts/data/index.js';
import { expectThrows } from '../helpers.js';

/** n images [c, h, w] whose pixel values encode (image, channel, row, col) as i*1000 + ch*100 + y*10 + x. */
function coded(n: number, c: number, h: number, w: number): { x: Float32Array; shape: number[] } {
  const x = new Float32Array(n * c * h * w);
  let k = 0;
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let col = 0; col < w; col++) x[k++] = i * 1000 + ch * 100 + y * 10 + col;
  return { x, shape: [n, c, h, w] };
}

/** Image i of a batch. */
const image = (x: Float32Array, shape: number[], i: number) => Array.from(x.subarray(i * shape[1] * shape[2] * shape[3], (i + 1) * shape[1] * shape[2] * shape[3]));

describe('randomFlipHorizontal', () => {
  it('p = 1 mirrors every row of every channel; p = 0 copies', () => {
    const { x, shape } = coded(1, 2, 2, 3);
    expect(Array.from(randomFlipHorizontal(1, { seed: 0 })(x, shape))).toEqual([2, 1, 0, 12, 11, 10, 102, 101, 100, 112, 111, 110]);
    const same = randomFlipHorizontal(0, { seed: 0 })(x, shape);
    expect(same).not.toBe(x);
    expect(same).toEqual(x);
  });

  it('flips about a fraction p of the images, whole images, reproducibly', () => {
    const { x, shape } = coded(400, 2, 2, 2);
    const flip = randomFlipHorizontal(0.3, { seed: 7 });
    const out = flip(x, shape);
    let flipped = 0;
    for (let i = 0; i < 400; i++) {
      const orig = image(x, shape, i);
      const got = image(out, shape, i);
      const mirrored = [orig[1], orig[0], orig[3], orig[2], orig[5], orig[4], orig[7], orig[6]];
      if (got.join() === mirrored.join()) flipped++;
      else expect(got).toEqual(orig);
    }
    expect(flipped).toBeGreaterThan(90);
    expect(flipped).toBeLessThan(150);
    expect(randomFlipHorizontal(0.3, { seed: 7 })(x, shape), 'same seed, same flips').toEqual(out);
    expect(flip(x, shape), 'the next call draws new flips').not.toEqual(out);
  });
});

describe('randomCropWithPadding', () => {
  it('shifts each image by at most pad, filling the border, all channels alike', () => {
    const { x, shape } = coded(300, 2, 3, 3);
    const out = randomCropWithPadding(1, { seed: 1, fill: -1 })(x, shape);
    const shiftsSeen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const got = image(out, shape, i);
      // find the shift (dy, dx) that explains the image
      let match: string | undefined;
      for (let dy = -1; dy <= 1 && !match; dy++) {
        for (let dx = -1; dx <= 1 && !match; dx++) {
          const want: number[] = [];
          for (let ch = 0; ch < 2; ch++) {
            for (let y = 0; y < 3; y++) {
              for (let c = 0; c < 3; c++) {
                const sy = y + dy;
                const sx = c + dx;
                want.push(sy >= 0 && sy < 3 && sx >= 0 && sx < 3 ? i * 1000 + ch * 100 + sy * 10 + sx : -1);
              }
            }
          }
          if (want.join() === got.join()) match = `${dy},${dx}`;
        }
      }
      expect(match, `image ${i} is not a shift of the input: ${got}`).toBeDefined();
      shiftsSeen.add(match!);
    }
    expect(shiftsSeen.size, 'all 9 shifts occur').toBe(9);
  });

  it('a hand-checked shift, pad 0 is the identity, and shifts larger than the image leave only fill', () => {
    const x = Float32Array.from([1, 2, 3, 4]); // [1, 1, 2, 2]
    expect(randomCropWithPadding(0, { seed: 3 })(x, [1, 1, 2, 2])).toEqual(x);
    const crop = randomCropWithPadding(2, { seed: 4 });
    const outs = new Set<string>();
    for (let k = 0; k < 200; k++) outs.add(Array.from(crop(x, [1, 1, 2, 2])).join());
    expect(outs.has('0,0,0,0'), 'a shift of 2 moves a 2x2 image out entirely').toBe(true);
    expect(outs.has('4,0,0,0'), 'dy = dx = 1 shows pixel (1, 1) at (0, 0)').toBe(true);
    expect(outs.has('0,0,0,1'), 'dy = dx = -1 shows pixel (0, 0) at (1, 1)').toBe(true);
    expect(outs.size, 'the 9 shifts within the image, plus all-fill for the rest').toBe(10);
  });
});

describe('gaussianNoise', () => {
  it('adds zero-mean noise of the given std, reproducibly', () => {
    const x = new Float32Array(20000).fill(3);
    const out = gaussianNoise(0.5, { seed: 2 })(x, [5, 1, 40, 100]);
    let mean = 0;
    for (const v of out) mean += v;
    mean /= out.length;
    let variance = 0;
    for (const v of out) variance += (v - mean) ** 2;
    variance /= out.length;
    expect(mean).toBeCloseTo(3, 1);
    expect(Math.sqrt(variance)).toBeCloseTo(0.5, 1);
    expect(gaussianNoise(0.5, { seed: 2 })(x, [5, 1, 40, 100])).toEqual(out);
    expect(gaussianNoise(0, { seed: 2 })(x, [5, 1, 40, 100])).toEqual(x);
    expect(x[0], 'input untouched').toBe(3);
  });
});

describe('compose and errors', () => {
  it('applies transforms in order', () => {
    const x = Float32Array.from([1, 2, 3, 4]);
    const flipTwice = compose(randomFlipHorizontal(1), randomFlipHorizontal(1));
    expect(flipTwice(x, [1, 1, 2, 2])).toEqual(x);
    const empty = compose()(x, [1, 1, 2, 2]);
    expect(empty).toEqual(x);
    expect(empty).not.toBe(x);
  });

  it('rejects non-NCHW shapes and bad parameters', () => {
    const flip = randomFlipHorizontal(0.5, { seed: 0 });
    expectThrows(() => flip(new Float32Array(4), [4]), 'randomFlipHorizontal', 'NCHW', '[1, 28, 28]');
    expectThrows(() => flip(new Float32Array(5), [1, 1, 2, 2]), '5 values do not match shape [1, 1, 2, 2]');
    expectThrows(() => randomFlipHorizontal(2), 'p must be a probability');
    expectThrows(() => randomCropWithPadding(-1), 'pad must be a non-negative integer');
    expectThrows(() => gaussianNoise(-0.1), 'std must be a non-negative number');
    expectThrows(() => compose(flip, 3 as never), 'argument 1 is not a transform');
  });
});
