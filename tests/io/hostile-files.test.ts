/**
 * Loading files someone else handed over (issue 13, class 5): loaders read only regular files of
 * bounded size (a symlink to /dev/zero, a FIFO, a directory: clear errors, no hang, no growth), the
 * IDX reader does not inflate a gzip bomb, safetensors with unaligned data offsets load from disk,
 * checkpoint metadata is bounded, and the CRC-32 in Kiln's files catches corrupted weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { crc32 as zlibCrc32, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { loadCheckpoint, loadModel, loadTensors, saveCheckpoint, saveModel, saveTensors } from '../../ts/io/index.js';
import { readRegularFile } from '../../ts/io/read-file.js';
import { crc32 } from '../../ts/checksum.js';
import { parseIdx, readIdx } from '../../ts/data/idx-file.js';
import { forEachBackend } from '../backends.js';
import { expectThrows, prng } from '../helpers.js';
import { expectNoLeaks, useTempDirs } from './io-helpers.js';

const tempDir = useTempDirs();

/** A saved model directory with a small state dict. */
function savedModel(): string {
  const dir = path.join(tempDir(), 'model');
  const w = kiln.tensor(Float32Array.from([1, 2, 3, 4]), [2, 2]);
  saveModel(dir, { stateDict: { w }, config: { kind: 'test' } });
  w.dispose();
  return dir;
}

/** Replaces `file` by a FIFO, a symlink to /dev/zero or a directory. */
function replaceWith(file: string, kind: 'fifo' | 'zero' | 'dir'): void {
  fs.rmSync(file);
  if (kind === 'fifo') execFileSync('mkfifo', [file]);
  else if (kind === 'zero') fs.symlinkSync('/dev/zero', file);
  else fs.mkdirSync(file);
}

const KIND_WORDS = { fifo: 'a FIFO (named pipe), not a regular file', zero: 'a character device (such as /dev/zero), not a regular file', dir: 'a directory' };

forEachBackend(() => {
  expectNoLeaks();

  describe('only regular files of bounded size are read', () => {
    for (const kind of ['fifo', 'zero', 'dir'] as const) {
      it(`loadModel, loadTensors, loadCheckpoint and readIdx refuse ${KIND_WORDS[kind].split(',')[0]} at once`, () => {
        for (const name of ['model.safetensors', 'config.json']) {
          const dir = savedModel();
          replaceWith(path.join(dir, name), kind);
          expectThrows(() => loadModel(dir), 'loadModel: cannot read', name, KIND_WORDS[kind]);
        }
        const file = path.join(tempDir(), 'x.safetensors');
        fs.writeFileSync(file, '');
        replaceWith(file, kind);
        expectThrows(() => loadTensors(file), 'loadTensors: cannot read', KIND_WORDS[kind]);
        expectThrows(() => loadCheckpoint(file), 'loadCheckpoint: cannot read', KIND_WORDS[kind]);
        expectThrows(() => readIdx(file), 'readIdx: cannot read', KIND_WORDS[kind]);
      });
    }

    it('a file larger than the limit is refused before it is read', () => {
      const file = path.join(tempDir(), 'big.bin');
      fs.writeFileSync(file, new Uint8Array(1000));
      expect(readRegularFile('loadThing', file, 1000).length).toBe(1000);
      expectThrows(() => readRegularFile('loadThing', file, 999), "loadThing: cannot read '", 'it is 1000 bytes, more than the 999-byte limit');
      expectThrows(() => readRegularFile('loadThing', path.join(tempDir(), 'missing')), 'the file does not exist');
    });
  });

  describe('IDX gzip', () => {
    it('a gzip bomb (a header declaring 4 bytes, 64 MB of zeros after it) is rejected by its declared size', () => {
      const content = new Uint8Array(8 + (64 << 20));
      content.set([0, 0, 0x08, 1, 0, 0, 0, 4]);
      const bomb = gzipSync(content, { level: 9 });
      expect(bomb.length).toBeLessThan(200_000);
      expectThrows(() => parseIdx(bomb, 'bomb.gz'), "parseIdx: 'bomb.gz'", 'inflates to more than the 12 bytes its header declares', 'gzip bomb');
    });

    it('a header whose declared size exceeds the limit is refused before inflating', () => {
      const content = Uint8Array.from([0, 0, 0x0e, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2]);
      expectThrows(() => parseIdx(gzipSync(content), 'huge.gz'), "'huge.gz'", 'more than the 2147483647-byte limit');
    });

    it('a valid gzip with a long file name in its gzip header still reads', () => {
      const plain = Uint8Array.from([0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9]);
      const gz = gzipSync(plain);
      // Splice an FNAME field of 10,000 bytes into the gzip header (flag bit 3).
      const name = new Uint8Array(10_001).fill(0x61);
      name[10_000] = 0;
      const withName = new Uint8Array(gz.length + name.length);
      withName.set(gz.subarray(0, 10));
      withName[3] |= 0x08;
      withName.set(name, 10);
      withName.set(gz.subarray(10), 10 + name.length);
      expect(Array.from(parseIdx(withName, 'named.gz').data)).toEqual([7, 9]);
    });
  });

  describe('safetensors from disk', () => {
    it('unaligned data offsets (allowed by the format) load, with the right values', () => {
      // BOOL [1] first puts F32 [2] and I32 [2] at odd offsets of the data section.
      const header = JSON.stringify({ m: { dtype: 'BOOL', shape: [1], data_offsets: [0, 1] }, x: { dtype: 'F32', shape: [2], data_offsets: [1, 9] }, n: { dtype: 'I32', shape: [2], data_offsets: [9, 17] } });
      const size = Math.ceil(header.length / 8) * 8;
      const bytes = new Uint8Array(8 + size + 17).fill(0x20, 8, 8 + size);
      const view = new DataView(bytes.buffer);
      view.setBigUint64(0, BigInt(size), true);
      bytes.set(new TextEncoder().encode(header), 8);
      const data = 8 + size;
      bytes[data] = 1;
      view.setFloat32(data + 1, 1.5, true);
      view.setFloat32(data + 5, -2.25, true);
      view.setInt32(data + 9, 123456789, true);
      view.setInt32(data + 13, -7, true);
      const file = path.join(tempDir(), 'unaligned.safetensors');
      fs.writeFileSync(file, bytes);
      const { tensors } = loadTensors(file);
      expect(Array.from(tensors.m.dataSync())).toEqual([1]);
      expect(Array.from(tensors.x.dataSync())).toEqual([1.5, -2.25]);
      expect(Array.from(tensors.n.dataSync())).toEqual([123456789, -7]);
      kiln.dispose(tensors);
    });
  });

  describe('CRC-32 of the data section', () => {
    it('equals node:zlib crc32, also when computed in pieces', () => {
      const rand = prng(5);
      const bytes = Uint8Array.from({ length: 10_000 }, () => Math.floor(rand() * 256));
      expect(crc32(bytes)).toBe(zlibCrc32(bytes));
      expect(crc32(bytes.subarray(0, 3000), bytes.subarray(3000))).toBe(zlibCrc32(bytes));
      expect(crc32(new Uint8Array(0))).toBe(0);
    });

    it('a flipped bit in saved weights is detected by loadModel and loadCheckpoint', () => {
      const dir = savedModel();
      const file = path.join(dir, 'model.safetensors');
      const bytes = fs.readFileSync(file);
      bytes[bytes.length - 3] ^= 0x10;
      fs.writeFileSync(file, bytes);
      expectThrows(() => loadModel(dir), 'loadModel', 'CRC-32', 'the weights are corrupted');

      const ckpt = path.join(tempDir(), 'c.safetensors');
      const w = kiln.ones([3]);
      saveCheckpoint(ckpt, { model: { w }, epoch: 1 });
      w.dispose();
      const c = fs.readFileSync(ckpt);
      c[c.length - 1] ^= 0x01;
      fs.writeFileSync(ckpt, c);
      expectThrows(() => loadCheckpoint(ckpt), 'loadCheckpoint', 'CRC-32');
    });

    it('files without a checksum (other writers, saveTensors) still load', () => {
      const file = path.join(tempDir(), 'plain.safetensors');
      const w = kiln.ones([3]);
      saveTensors(file, { w });
      w.dispose();
      const { tensors, metadata } = loadTensors(file);
      expect(metadata).toEqual({});
      kiln.dispose(tensors);
    });
  });

  describe('checkpoint metadata is validated as strictly as the tensors', () => {
    const base = { 'kiln.format': 'kiln-checkpoint', 'kiln.format_version': '1', epoch: '1' };
    const forged: Array<[string, Record<string, string>, string]> = [
      ['a negative learning rate', { optimizer: '{"kind":"adam","step":1,"lr":-0.1,"slots":[]}' }, 'lr should be a number from 0 to 1000000, got -0.1'],
      ['an absurd learning rate', { optimizer: '{"kind":"adam","step":1,"lr":1e300,"slots":[]}' }, 'lr should be a number from 0 to 1000000, got 1e+300'],
      ['a negative step count', { optimizer: '{"kind":"adam","step":-1,"lr":0.1,"slots":[]}' }, 'step should be an integer from 0 to 2^40, got -1'],
      ['an absurd step count', { optimizer: '{"kind":"adam","step":1e15,"lr":0.1,"slots":[]}' }, 'step should be an integer from 0 to 2^40, got 1000000000000000'],
      ['an absurd per-parameter step', { optimizer: '{"kind":"adam","step":1,"lr":0.1,"steps":[3e15],"slots":[]}' }, 'steps[0] should be an integer from 0 to 2^40'],
      ['a slot count of 10^15', { optimizer: '{"kind":"adam","step":1,"lr":0.1,"slots":[1000000000000000]}' }, "the optimizer state tensor 'optimizer.0.0' is missing (metadata 'optimizer' says parameter 0 has 1000000000000000)"],
      ['an absurd epoch', { epoch: '1e15' }, "metadata 'epoch' is 1e15, an absurd count (more than 2^40)"],
    ];
    for (const [what, meta, message] of forged) {
      it(`${what} is a clear error`, () => {
        const file = path.join(tempDir(), 'forged.safetensors');
        const w = kiln.ones([2]);
        saveTensors(file, { 'model.w': w }, { ...base, ...meta });
        w.dispose();
        expectThrows(() => loadCheckpoint(file), `loadCheckpoint: '${file}' is not a usable Kiln checkpoint`, message);
      });
    }

    it('saveCheckpoint refuses the same absurd numbers', () => {
      const w = kiln.ones([2]);
      const file = path.join(tempDir(), 'never.safetensors');
      expectThrows(() => saveCheckpoint(file, { model: { w }, epoch: 1, optimizer: { kind: 'adam', step: 1, lr: Infinity, slots: [], steps: [] } }), 'saveCheckpoint: optimizer.lr should be a number from 0 to 1000000, got Infinity');
      expectThrows(() => saveCheckpoint(file, { model: { w }, epoch: 2 ** 50 }), 'saveCheckpoint: epoch 1125899906842624 is absurd');
      w.dispose();
      expect(fs.existsSync(file)).toBe(false);
    });
  });
});
