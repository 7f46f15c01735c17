/**
 * Checkpoints: a round trip with a real Adam state that resumes training bit-identically, schedule
 * state with Infinity, checkCompatible's report, corrupt and foreign files, atomic overwrite, and
 * flat memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { checkCompatible, compareStateDicts, disposeCheckpoint, loadCheckpoint, loadTensors, saveCheckpoint, saveTensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { expectNoLeaks, expectSameTensors, rawBytes, useTempDirs } from './io-helpers.js';

const tempDir = useTempDirs();

/** One step of minimizing sum(p²) + sum(q) with `opt`. */
function trainStep(opt: kiln.optim.Optimizer, p: Tensor, q: Tensor): void {
  opt.zeroGrad();
  kiln.tidy(() => p.square().sum().add(q.sum()).backward());
  opt.step();
}

/** A tiny model (p [3], q [2, 2]) with an Adam optimizer that has taken one step. */
function trainedSetup() {
  kiln.setSeed(1);
  const p = kiln.randn([3]).setRequiresGrad();
  const q = kiln.randn([2, 2]).setRequiresGrad();
  const opt = new kiln.optim.Adam([p, q], { lr: 1e-3 });
  trainStep(opt, p, q);
  const schedule = new kiln.optim.ReduceLROnPlateau(opt, { patience: 2 });
  return { p, q, opt, schedule, dispose: () => { opt.dispose(); kiln.dispose([p, q]); } };
}

/** A detached copy, as a fresh leaf parameter. */
const copyParam = (t: Tensor) => kiln.tensor(t.dataSync() as Float32Array, [...t.shape]).setRequiresGrad();

forEachBackend(() => {
  expectNoLeaks();
  afterEach(() => {
    vi.restoreAllMocks();
  });

  describe('round trip', () => {
    it('model, Adam state, schedule (with Infinity), epoch and extra come back exactly', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'ckpt.safetensors');
      const extra = { history: { loss: [0.5, 0.25] }, seed: 42, note: 'é', nothing: null };
      saveCheckpoint(file, { model: { p: s.p, 'layer.q': s.q }, optimizer: s.opt.state(), schedule: s.schedule.state(), epoch: 3, extra });
      const ckpt = loadCheckpoint(file);
      expect(ckpt.epoch).toBe(3);
      expect(ckpt.extra).toEqual(extra);
      expect(ckpt.schedule).toEqual({ best: Infinity, badEpochs: 0, cooldownLeft: 0 });
      expectSameTensors(ckpt.model, { p: s.p, 'layer.q': s.q });
      const state = s.opt.state();
      expect({ kind: ckpt.optimizer!.kind, step: ckpt.optimizer!.step, lr: ckpt.optimizer!.lr }).toEqual({ kind: 'adam', step: 1, lr: 1e-3 });
      expect(ckpt.optimizer!.slots.map((slots) => slots.map(rawBytes))).toEqual(state.slots.map((slots) => slots.map(rawBytes)));
      // The moments after a real step are not zero, so the comparison above is not vacuous.
      expect(Array.from(state.slots[0][0].dataSync()).some((v) => v !== 0)).toBe(true);
      disposeCheckpoint(ckpt);
      s.dispose();
    });

    it('resuming from a checkpoint continues training bit-identically', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'resume.safetensors');
      saveCheckpoint(file, { model: { p: s.p, q: s.q }, optimizer: s.opt.state(), epoch: 1 });

      const ckpt = loadCheckpoint(file);
      const p2 = copyParam(ckpt.model.p);
      const q2 = copyParam(ckpt.model.q);
      const opt2 = new kiln.optim.Adam([p2, q2], { lr: 0.5 }); // lr and step come from the checkpoint
      opt2.loadState(ckpt.optimizer!);
      disposeCheckpoint(ckpt); // loadState copied what it needs
      for (let i = 0; i < 3; i++) {
        trainStep(s.opt, s.p, s.q);
        trainStep(opt2, p2, q2);
      }
      expect(opt2.stepCount).toBe(4);
      expect(rawBytes(p2)).toEqual(rawBytes(s.p));
      expect(rawBytes(q2)).toEqual(rawBytes(s.q));
      opt2.dispose();
      kiln.dispose([p2, q2]);
      s.dispose();
    });

    it('an optimizer without state tensors (plain SGD), and a checkpoint with only a model', () => {
      const p = kiln.ones([2]).setRequiresGrad();
      const opt = new kiln.optim.SGD([p], { lr: 0.1 });
      const file = path.join(tempDir(), 'sgd.safetensors');
      saveCheckpoint(file, { model: { p }, optimizer: opt.state(), epoch: 0 });
      const ckpt = loadCheckpoint(file);
      expect(ckpt.optimizer).toEqual({ kind: 'sgd', step: 0, lr: 0.1, slots: [[]], steps: [0] });
      disposeCheckpoint(ckpt);
      saveCheckpoint(file, { model: { p }, epoch: 5 });
      const bare = loadCheckpoint(file);
      expect(Object.keys(bare).sort()).toEqual(['epoch', 'model']);
      disposeCheckpoint(bare);
      opt.dispose();
      p.dispose();
    });

    it('fields an OptimizerState may gain later are kept', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'future.safetensors');
      const state = { ...s.opt.state(), futureField: [1, 1], note: 'x' } as kiln.optim.OptimizerState;
      saveCheckpoint(file, { model: {}, optimizer: state, epoch: 0 });
      const ckpt = loadCheckpoint(file);
      expect({ ...ckpt.optimizer!, slots: undefined }).toEqual({ kind: 'adam', step: 1, lr: 1e-3, steps: [1, 1], futureField: [1, 1], note: 'x', slots: undefined });
      disposeCheckpoint(ckpt);
      expectThrows(() => saveCheckpoint(file, { model: {}, optimizer: { ...state, bad: NaN } as kiln.optim.OptimizerState, epoch: 0 }), 'saveCheckpoint: optimizer.bad is NaN');
      s.dispose();
    });

    it('the file is a plain safetensors file: model.<name>, optimizer.<param>.<slot>, JSON metadata', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'layout.safetensors');
      saveCheckpoint(file, { model: { p: s.p, q: s.q }, optimizer: s.opt.state(), schedule: s.schedule.state(), epoch: 2 });
      const { tensors, metadata } = loadTensors(file);
      expect(Object.keys(tensors).sort()).toEqual(['model.p', 'model.q', 'optimizer.0.0', 'optimizer.0.1', 'optimizer.1.0', 'optimizer.1.1']);
      expect(metadata).toEqual({
        'kiln.format': 'kiln-checkpoint',
        'kiln.format_version': '1',
        'kiln.version': '0.1.0',
        epoch: '2',
        optimizer: '{"kind":"adam","step":1,"lr":0.001,"steps":[1,1],"slots":[2,2]}',
        schedule: '{"best":"Infinity","badEpochs":0,"cooldownLeft":0}',
        // The CRC-32 of the data section, checked on load (corrupt.test.ts).
        'kiln.data_crc32': expect.stringMatching(/^[0-9a-f]{8}$/),
      });
      kiln.dispose(tensors);
      s.dispose();
    });

    it('memory is flat over repeated save / load / dispose', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'mem.safetensors');
      const before = kiln.memory();
      for (let i = 0; i < 30; i++) {
        saveCheckpoint(file, { model: { p: s.p, q: s.q }, optimizer: s.opt.state(), epoch: i });
        disposeCheckpoint(loadCheckpoint(file));
      }
      expect(kiln.memory()).toEqual(before);
      s.dispose();
    });
  });

  describe('checkCompatible', () => {
    it('passes for matching state dicts and lists every difference otherwise', () => {
      const model = { 'fc1.weight': kiln.zeros([4, 3]), 'fc1.bias': kiln.zeros([4]), 'fc2.weight': kiln.zeros([2, 4]), steps: kiln.zeros([1], 'int32') };
      const same = { 'fc1.weight': kiln.ones([4, 3]), 'fc1.bias': kiln.ones([4]), 'fc2.weight': kiln.ones([2, 4]), steps: kiln.ones([1], 'int32') };
      checkCompatible(model, same);
      const other = { 'fc1.weight': kiln.zeros([3, 4]), 'fc1.bias': kiln.zeros([4]), 'head.weight': kiln.zeros([2, 4]), steps: kiln.zeros([1]) };
      expectThrows(
        () => checkCompatible(model, other),
        'checkCompatible: the checkpoint does not match the model',
        'missing from the checkpoint (1):\n    fc2.weight',
        'unexpected in the checkpoint (1):\n    head.weight',
        'shape or dtype mismatch (2):\n    fc1.weight: model float32 [4, 3], checkpoint float32 [3, 4]\n    steps: model int32 [1], checkpoint float32 [1]',
      );
      expect(compareStateDicts(model, same)).toEqual({ missing: [], unexpected: [], mismatched: [] });
      kiln.dispose([model, same, other]);
    });

    it('long lists are cut short with a count', () => {
      const model: Record<string, Tensor> = {};
      for (let i = 0; i < 30; i++) model[`layer${i}`] = kiln.zeros([1]);
      const err = expectThrows(() => checkCompatible(model, {}), 'missing from the checkpoint (30):', '... and 18 more');
      expect(err.message).not.toContain('unexpected');
      kiln.dispose(model);
    });
  });

  describe('bad input and bad files', () => {
    it('saveCheckpoint validates epoch, extra and the optimizer state', () => {
      const p = kiln.ones([1]);
      const file = path.join(tempDir(), 'never.safetensors');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: -1 }), 'saveCheckpoint: epoch must be a non-negative integer, got -1');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: 1.5 }), 'got 1.5');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: 1, extra: { f: () => 0 } }), 'saveCheckpoint: extra.f is a function');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: 1, optimizer: { kind: 'adam' } as kiln.optim.OptimizerState }), 'optimizer must be an OptimizerState');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: 1, optimizer: { kind: 'x', step: 0, lr: 1, slots: [[5 as unknown as Tensor]] } }), 'optimizer.slots[0] must be an array of tensors');
      expectThrows(() => saveCheckpoint(file, { model: { p }, epoch: 1, schedule: { t: '3' as unknown as number } }), 'schedule.t must be a number');
      expect(fs.existsSync(file)).toBe(false);
      p.dispose();
    });

    it('a failed save keeps the previous checkpoint loadable', () => {
      const s = trainedSetup();
      const file = path.join(tempDir(), 'keep.safetensors');
      saveCheckpoint(file, { model: { p: s.p }, epoch: 1 });
      vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
        throw new Error('EIO: simulated failure');
      });
      expectThrows(() => saveCheckpoint(file, { model: { p: s.p }, epoch: 2 }), 'EIO', 'any previous file there is unchanged');
      const ckpt = loadCheckpoint(file);
      expect(ckpt.epoch).toBe(1);
      disposeCheckpoint(ckpt);
      s.dispose();
    });

    it('a plain safetensors file, a missing file, a truncated checkpoint', () => {
      const dir = tempDir();
      const plain = path.join(dir, 'plain.safetensors');
      const t = { w: kiln.ones([2]) };
      saveTensors(plain, t);
      expectThrows(() => loadCheckpoint(plain), `loadCheckpoint: '${plain}' is not a usable Kiln checkpoint: its metadata has no "kiln.format": "kiln-checkpoint"`, 'use loadTensors');
      expectThrows(() => loadCheckpoint(path.join(dir, 'nope')), 'loadCheckpoint: cannot read', 'the file does not exist');
      const ckptFile = path.join(dir, 'cut.safetensors');
      saveCheckpoint(ckptFile, { model: t, epoch: 1 });
      fs.truncateSync(ckptFile, fs.statSync(ckptFile).size - 1);
      expectThrows(() => loadCheckpoint(ckptFile), `loadCheckpoint: '${ckptFile}' is not a valid safetensors file`, "tensor 'model.w'", 'truncated');
      kiln.dispose(t);
    });

    it('inconsistent metadata or tensors are rejected and nothing is left allocated', () => {
      const file = path.join(tempDir(), 'forged.safetensors');
      const base = { 'kiln.format': 'kiln-checkpoint', 'kiln.format_version': '1', epoch: '1' };
      const w = kiln.ones([2]);
      const forge = (tensors: Record<string, Tensor>, meta: Record<string, string>) => saveTensors(file, tensors, meta);
      const bad = `loadCheckpoint: '${file}' is not a usable Kiln checkpoint`;

      forge({ 'model.w': w }, { ...base, optimizer: '{"kind":"adam","step":1,"lr":0.1,"slots":[2]}' });
      expectThrows(() => loadCheckpoint(file), bad, "the optimizer state tensor 'optimizer.0.0' is missing");
      forge({ 'model.w': w, 'optimizer.0.0': w }, { ...base, optimizer: '{"kind":"adam","step":1,"lr":0.1,"slots":[2]}' });
      expectThrows(() => loadCheckpoint(file), "'optimizer.0.1' is missing");
      forge({ 'model.w': w, stray: w }, base);
      expectThrows(() => loadCheckpoint(file), "it holds the tensor 'stray', which is neither 'model.<name>' nor a listed optimizer state tensor");
      forge({ 'model.w': w }, { ...base, optimizer: '{"kind":"adam",' });
      expectThrows(() => loadCheckpoint(file), "metadata 'optimizer' is not valid JSON");
      forge({ 'model.w': w }, { ...base, optimizer: '{"kind":"adam"}' });
      expectThrows(() => loadCheckpoint(file), "metadata 'optimizer' should be {kind, step, lr, slots}");
      forge({ 'model.w': w }, { ...base, schedule: '{"t":"soon"}' });
      expectThrows(() => loadCheckpoint(file), "metadata 'schedule': 't' should be a number, got \"soon\"");
      forge({ 'model.w': w }, { ...base, epoch: '-2' });
      expectThrows(() => loadCheckpoint(file), "metadata 'epoch' should be a non-negative integer, got -2");
      const { epoch: _, ...noEpoch } = base;
      forge({ 'model.w': w }, noEpoch);
      expectThrows(() => loadCheckpoint(file), "metadata 'epoch' is missing");
      forge({ 'model.w': w }, { ...base, 'kiln.format_version': '2', 'kiln.version': '3.0.0' });
      expectThrows(() => loadCheckpoint(file), 'it has format version 2 (written by Kiln 3.0.0); this Kiln reads up to version 1: upgrade Kiln');
      w.dispose();
    });
  });
});
