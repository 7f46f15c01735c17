/**
 * saveModel / loadModel: a directory with model.safetensors and config.json. Round trips, the
 * config.json layout, and a clear error (naming the file) for every way the directory can be
 * missing, incomplete or corrupt.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { encodeSafetensors, loadModel, loadTensors, saveModel } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { expectNoLeaks, expectSameTensors, sampleTensors, useTempDirs } from './io-helpers.js';

const tempDir = useTempDirs();
const CONFIG = { kind: 'mlp', layers: [784, 512, 10], activation: 'relu', dropout: 0.1, bias: true, norm: null, extra: { 'key with spaces': [1, 'two'] } };

/** A fresh directory holding a saved model. */
function savedModel(): string {
  const dir = path.join(tempDir(), 'model');
  const stateDict = sampleTensors();
  saveModel(dir, { stateDict, config: CONFIG });
  kiln.dispose(stateDict);
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => unknown): void {
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(edit(JSON.parse(fs.readFileSync(file, 'utf8')))));
}

forEachBackend(() => {
  expectNoLeaks();

  describe('round trip', () => {
    it('weights and config come back; config.json records the format and Kiln versions', () => {
      const stateDict = sampleTensors();
      const dir = path.join(tempDir(), 'nested', 'mlp');
      saveModel(dir, { stateDict, config: CONFIG });
      expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
      const file = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      expect(file).toEqual({ format: 'kiln-model', formatVersion: 1, kilnVersion: '0.1.0', saveId: expect.stringMatching(/^[0-9a-f]{16}$/), config: CONFIG });
      const loaded = loadModel(dir);
      expect(loaded.config).toEqual(CONFIG);
      expectSameTensors(loaded.stateDict, stateDict);
      // The weights file is a plain safetensors file too.
      const plain = loadTensors(path.join(dir, 'model.safetensors'));
      expectSameTensors(plain.tensors, stateDict);
      kiln.dispose([stateDict, loaded.stateDict, plain.tensors]);
    });

    it('saving again over an existing save replaces it', () => {
      const dir = savedModel();
      const w = { w: kiln.ones([2, 2]) };
      saveModel(dir, { stateDict: w, config: { version: 2 } });
      const loaded = loadModel(dir);
      expect(loaded.config).toEqual({ version: 2 });
      expectSameTensors(loaded.stateDict, w);
      kiln.dispose([w, loaded.stateDict]);
    });

    it('memory is flat over repeated save / load / dispose', () => {
      const dir = path.join(tempDir(), 'm');
      const stateDict = { a: kiln.randn([64, 64]), b: kiln.zeros([64]) };
      saveModel(dir, { stateDict, config: {} });
      const before = kiln.memory();
      for (let i = 0; i < 50; i++) kiln.dispose(loadModel(dir).stateDict);
      expect(kiln.memory()).toEqual(before);
      kiln.dispose(stateDict);
    });
  });

  describe('bad input to saveModel writes nothing', () => {
    it('config must be plain JSON', () => {
      const dir = path.join(tempDir(), 'never');
      const sd = { w: kiln.ones([1]) };
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      expectThrows(() => saveModel(dir, { stateDict: sd, config: [1, 2] }), 'saveModel: config must be a JSON object', 'an array');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: null as unknown as object }), 'saveModel: config must be a JSON object');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: { layers: [{ act: () => 1 }] } }), 'saveModel: config.layers[0].act is a function');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: { lr: NaN } }), 'saveModel: config.lr is NaN');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: { when: new Date(0) } }), 'saveModel: config.when is a Date');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: { u: undefined } }), 'saveModel: config.u is undefined');
      expectThrows(() => saveModel(dir, { stateDict: sd, config: cyclic }), 'saveModel: config.self refers back to itself');
      expect(fs.existsSync(dir)).toBe(false);
      kiln.dispose(sd);
    });

    it('a disposed tensor in the state dict', () => {
      const dir = savedModel();
      const before = fs.readFileSync(path.join(dir, 'model.safetensors'));
      const gone = kiln.ones([1]);
      gone.dispose();
      expectThrows(() => saveModel(dir, { stateDict: { w: gone }, config: {} }), "saveModel: tensor 'w' is disposed");
      expect(fs.readFileSync(path.join(dir, 'model.safetensors'))).toEqual(before);
    });

    it('a file where the directory should be', () => {
      const file = path.join(tempDir(), 'file');
      fs.writeFileSync(file, 'x');
      const sd = { w: kiln.ones([1]) };
      expectThrows(() => saveModel(file, { stateDict: sd, config: {} }), `saveModel: '${file}' exists and is not a directory`);
      kiln.dispose(sd);
    });
  });

  describe('loadModel rejects a broken directory, naming the file', () => {
    it('missing directory, or a file instead of one', () => {
      const dir = path.join(tempDir(), 'absent');
      expectThrows(() => loadModel(dir), `loadModel: the directory '${dir}' does not exist`);
      const file = path.join(tempDir(), 'f');
      fs.writeFileSync(file, '{}');
      expectThrows(() => loadModel(file), `loadModel: '${file}' is not a directory`);
    });

    it('missing config.json or model.safetensors', () => {
      const dir = savedModel();
      fs.rmSync(path.join(dir, 'model.safetensors'));
      expectThrows(() => loadModel(dir), `loadModel: '${dir}' has config.json but no model.safetensors`);
      fs.rmSync(path.join(dir, 'config.json'));
      expectThrows(() => loadModel(dir), `loadModel: '${dir}' has no config.json`);
    });

    it('config.json that is not JSON, not an object, or not from saveModel', () => {
      const dir = savedModel();
      const file = path.join(dir, 'config.json');
      const text = fs.readFileSync(file, 'utf8');
      fs.writeFileSync(file, text.slice(0, text.length / 2));
      expectThrows(() => loadModel(dir), `loadModel: '${file}' is corrupt or not from saveModel: it is not valid UTF-8 JSON`);
      fs.writeFileSync(file, Buffer.from([0x7b, 0xff, 0x7d]));
      expectThrows(() => loadModel(dir), 'not valid UTF-8 JSON');
      fs.writeFileSync(file, '[1, 2]');
      expectThrows(() => loadModel(dir), `'${file}' is corrupt or not from saveModel: it is not a JSON object`);
      fs.writeFileSync(file, JSON.stringify({ hidden_size: 768, architectures: ['BertModel'] }));
      expectThrows(() => loadModel(dir), '"format" should be "kiln-model", got undefined');
    });

    it('bad or newer format versions, and a config that is not an object', () => {
      const dir = savedModel();
      editConfig(dir, (c) => ({ ...c, formatVersion: 'one' }));
      expectThrows(() => loadModel(dir), '"formatVersion" should be a positive integer, got "one"');
      editConfig(dir, (c) => ({ ...c, formatVersion: 7, kilnVersion: '9.0.0' }));
      expectThrows(() => loadModel(dir), 'has format version 7 (written by Kiln 9.0.0)', 'reads up to version 1: upgrade Kiln');
      editConfig(dir, (c) => ({ ...c, formatVersion: 1, config: 'mlp' }));
      expectThrows(() => loadModel(dir), '"config" should be a JSON object, got "mlp"');
    });

    it('corrupt or truncated weights name model.safetensors', () => {
      const dir = savedModel();
      const weights = path.join(dir, 'model.safetensors');
      const bytes = fs.readFileSync(weights);
      fs.writeFileSync(weights, bytes.subarray(0, bytes.length - 3));
      expectThrows(() => loadModel(dir), `loadModel: '${weights}' is not a valid safetensors file`, 'the file is truncated');
      fs.writeFileSync(weights, Buffer.alloc(0));
      expectThrows(() => loadModel(dir), `'${weights}' is not a valid safetensors file: it is 0 bytes long`);
    });

    it('weights and config from two different saves (a save interrupted between the files)', () => {
      const dir = savedModel();
      const otherDir = savedModel();
      fs.copyFileSync(path.join(otherDir, 'model.safetensors'), path.join(dir, 'model.safetensors'));
      expectThrows(() => loadModel(dir), `loadModel: model.safetensors and config.json in '${dir}' come from different saves`);
    });

    it('weights rewritten by another tool (no save id) are accepted', () => {
      const dir = savedModel();
      const w = { w: kiln.ones([3]) };
      fs.writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(w));
      const loaded = loadModel(dir);
      expectSameTensors(loaded.stateDict, w);
      kiln.dispose([w, loaded.stateDict]);
    });
  });
});
