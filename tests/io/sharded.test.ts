/**
 * Sharded checkpoints (Hugging Face's `model.safetensors.index.json` beside its shards): written by
 * Python (fixtures/sharded.py) they load in Kiln, as tensors and into a model; written by Kiln
 * they check out in Python (every shard holds exactly what the index maps to it, total_size is
 * right) with the same elements; broken indexes give errors naming the index or shard.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn } from '../../ts/index.js';
import { HF_INDEX_FILE, loadPyTorchWeights, loadShardedTensors, loadTensors, savePyTorchWeights, saveShardedTensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectNoLeaks, expectSameTensors, rawBytes, sampleTensors, useTempDirs, pythonScript } from './io-helpers.js';

const python = pythonScript('sharded.py');

const tempDir = useTempDirs();
/** Python's checkpoint, written once for the file: <dir>/sharded/ and <dir>/single.safetensors. */
let fromPython: Promise<string> | undefined;
const pythonCheckpoint = () =>
  (fromPython ??= (async () => {
    const dir = tempDir();
    await python('write', dir);
    return dir;
  })());

/** A copy of Python's sharded directory, for tests that break it. */
async function shardedCopy(): Promise<string> {
  const dir = path.join(tempDir(), 'ckpt');
  fs.cpSync(path.join(await pythonCheckpoint(), 'sharded'), dir, { recursive: true });
  return dir;
}

function editIndex(dir: string, edit: (index: { weight_map: Record<string, string> }) => unknown): string {
  const file = path.join(dir, HF_INDEX_FILE);
  const index = JSON.parse(fs.readFileSync(file, 'utf8'));
  const replaced = edit(index) ?? index;
  fs.writeFileSync(file, JSON.stringify(replaced));
  return file;
}

forEachBackend(() => {
  expectNoLeaks();

  describe('sharded checkpoints', () => {
    it('a 3-shard checkpoint written by Python loads with the same tensors as its single-file twin', async () => {
      const dir = await pythonCheckpoint();
      const sharded = loadShardedTensors(path.join(dir, 'sharded', HF_INDEX_FILE));
      const single = loadTensors(path.join(dir, 'single.safetensors'));
      expectSameTensors(sharded.tensors, single.tensors);
      expect(sharded.metadata.total_size).toBe(String(8 * 4 * 2 + 8 * 4 * 5 + 8 + 2 * 8 * 2 + 2 * 4));
      kiln.dispose([sharded.tensors, single.tensors]);
    });

    it('loadPyTorchWeights takes the directory of a sharded checkpoint and loads a model from it', async () => {
      const dir = await pythonCheckpoint();
      const fromShards = new nn.Sequential(new nn.Linear(4, 8), new nn.BatchNorm1d(8), new nn.Linear(8, 2));
      const fromSingle = new nn.Sequential(new nn.Linear(4, 8), new nn.BatchNorm1d(8), new nn.Linear(8, 2));
      loadPyTorchWeights(fromShards, path.join(dir, 'sharded'));
      loadPyTorchWeights(fromSingle, path.join(dir, 'single.safetensors'));
      expectSameTensors(fromShards.stateDict(), fromSingle.stateDict());
      expect((fromShards.layers[1] as nn.BatchNorm1d).numBatchesTracked).toBe(11);
      fromShards.dispose();
      fromSingle.dispose();
    });

    it('saveShardedTensors writes shards Python reads back, each holding what the index says', async () => {
      const tensors = sampleTensors();
      const dir = path.join(tempDir(), 'out');
      saveShardedTensors(dir, tensors, { maxShardBytes: 40 });
      const files = fs.readdirSync(dir).sort();
      expect(files.length).toBeGreaterThan(3);
      expect(files.filter((f) => f !== HF_INDEX_FILE).every((f, i, all) => f === `model-${String(i + 1).padStart(5, '0')}-of-${String(all.length).padStart(5, '0')}.safetensors`)).toBe(true);
      const seen = JSON.parse(await python('read', dir)) as Record<string, [string, number[], string]>;
      expect(Object.keys(seen).sort()).toEqual(Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        expect(seen[name][1], name).toEqual([...t.shape]);
        expect(seen[name][2], name).toBe(Buffer.from(rawBytes(t)).toString('hex'));
      }
      const back = loadShardedTensors(path.join(dir, HF_INDEX_FILE));
      expectSameTensors(back.tensors, tensors);
      kiln.dispose([tensors, back.tensors]);
    });

    it('savePyTorchWeights with maxShardBytes writes a sharded PyTorch checkpoint that Python checks and Kiln loads back', async () => {
      const model = new nn.Sequential(new nn.Linear(4, 8), new nn.BatchNorm1d(8), new nn.Linear(8, 2));
      const dir = path.join(tempDir(), 'pt');
      savePyTorchWeights(dir, model, { maxShardBytes: 64, dtype: 'F16' });
      const seen = JSON.parse(await python('read', dir)) as Record<string, [string, number[], string]>;
      expect(seen['1.num_batches_tracked'].slice(0, 2)).toEqual(['I64', []]);
      expect(seen['0.weight'].slice(0, 2)).toEqual(['F16', [8, 4]]);
      expect(fs.readdirSync(dir).length).toBeGreaterThan(3);
      const again = new nn.Sequential(new nn.Linear(4, 8), new nn.BatchNorm1d(8), new nn.Linear(8, 2));
      loadPyTorchWeights(again, dir);
      // F16 rounding is the only difference: every weight within F16's relative step (2^-11).
      const a = again.stateDict();
      for (const [name, t] of Object.entries(model.stateDict())) {
        const x = t.dataSync();
        const y = a[name].dataSync();
        x.forEach((v, i) => expect(Math.abs(y[i] - v), name).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 1e-7));
      }
      model.dispose();
      again.dispose();
    });

    it('a shard outside the index\'s directory, a missing shard, or a tensor in the wrong shard is a clear error', async () => {
      let dir = await shardedCopy();
      let index = editIndex(dir, (i) => { i.weight_map['0.bias'] = '../model-00001-of-00003.safetensors'; });
      expect(() => loadShardedTensors(index)).toThrow(/loadShardedTensors: '.*' is not a valid sharded-checkpoint index: weight_map\['0.bias'\] is '..\/model-00001-of-00003.safetensors', which is not a file name in the index's directory/);

      dir = await shardedCopy();
      fs.rmSync(path.join(dir, 'model-00002-of-00003.safetensors'));
      expect(() => loadShardedTensors(path.join(dir, HF_INDEX_FILE))).toThrow(/loadShardedTensors: cannot read '.*model-00002-of-00003.safetensors': the file does not exist/);

      dir = await shardedCopy();
      index = editIndex(dir, (i) => { i.weight_map['2.bias'] = 'model-00001-of-00003.safetensors'; });
      expect(() => loadShardedTensors(index)).toThrow(/maps '2.bias' to shard 'model-00001-of-00003.safetensors', which does not hold it/);

      dir = await shardedCopy();
      index = editIndex(dir, () => ({ metadata: {} }));
      expect(() => loadShardedTensors(index)).toThrow(/it has no "weight_map" object/);

      dir = await shardedCopy();
      index = editIndex(dir, (i) => { delete i.weight_map['2.bias']; });
      expect(() => loadShardedTensors(index)).toThrow(/shard 'model-00003-of-00003.safetensors' holds '2.bias', which '.*' does not map to it/);
    });

    it('a corrupt shard is reported by its file name', async () => {
      const dir = await shardedCopy();
      const shard = path.join(dir, 'model-00003-of-00003.safetensors');
      fs.writeFileSync(shard, fs.readFileSync(shard).subarray(0, 30));
      expect(() => loadShardedTensors(path.join(dir, HF_INDEX_FILE))).toThrow(/loadShardedTensors: shard '.*model-00003-of-00003.safetensors' is not a valid safetensors file/);
    });
  });
});
