/**
 * A save is atomic as a unit (issue 13, class 4): whenever a saving process dies, what loads is the
 * complete old model or the complete new one, never a mix and never neither; and the litter a
 * crash leaves (staging directories, temporary files) is removed by the next save.
 *
 * Two kinds of evidence: every intermediate state of a save, built by hand and loaded; and real
 * SIGKILLs of a child process that saves in a loop, at random moments, many times
 * (KILN_SAVE_KILLS=200 for a longer run).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { BackendName } from '../../ts/index.js';
import { loadCheckpoint, loadModel, saveCheckpoint, saveModel, disposeCheckpoint } from '../../ts/io/index.js';
import { COMMIT_DIR } from '../../ts/io/commit.js';
import { forEachBackend } from '../backends.js';
import { expectNoLeaks, useTempDirs } from './io-helpers.js';

const tempDir = useTempDirs();
const LOOP = fileURLToPath(new URL('./fixtures/save-loop.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));
const KILLS = Number(process.env.KILN_SAVE_KILLS ?? 6);
/** Elements of the saved weight: 4 MB, so a save takes long enough to be killed in every phase. */
const SIZE = 1 << 20;

/** A pid that certainly belongs to no process: one that has just exited. */
const DEAD_PID = spawnSync(process.execPath, ['-e', '0']).pid!;

/** Saves version v: weight w filled with v, b with -v, config { version: v }. */
function saveVersion(dir: string, v: number, size = 4): void {
  const w = kiln.full([size], v);
  const b = kiln.full([3], -v, 'int32');
  saveModel(dir, { stateDict: { w, b }, config: { version: v } });
  kiln.dispose([w, b]);
}

/** Loads a model and returns its version, checking that weights and config all say the same one. */
function loadedVersion(dir: string): number {
  const { stateDict, config } = loadModel(dir);
  const w = Array.from(stateDict.w.dataSync());
  const b = Array.from(stateDict.b.dataSync());
  kiln.dispose(stateDict);
  const v = config.version as number;
  expect(new Set(w), `weights of version ${v}`).toEqual(new Set([v]));
  expect(b).toEqual([-v, -v, -v]);
  return v;
}

function loadedCheckpointVersion(file: string): number {
  const c = loadCheckpoint(file);
  const w = new Set(Array.from(c.model.w.dataSync()));
  const b = Array.from(c.model.b.dataSync());
  disposeCheckpoint(c);
  expect(w, `weights of epoch ${c.epoch}`).toEqual(new Set([c.epoch]));
  expect(b).toEqual([-c.epoch, -c.epoch, -c.epoch]);
  return c.epoch;
}

/**
 * Starts the save loop, waits until it has saved at least once, kills it with SIGKILL after a
 * random delay, and returns the last version it reported as saved.
 */
function killSavingChild(backend: BackendName, kind: 'model' | 'checkpoint', target: string, first: number): Promise<{ lastSaved: number; delay: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VITE_NODE, LOOP, backend, kind, target, String(first), String(SIZE)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let lastSaved = -1;
    const delay = Math.random() * 120;
    let killing = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/SAVED (\d+)\n/g)) lastSaved = Math.max(lastSaved, Number(m[1]));
      if (lastSaved >= 0 && !killing) {
        killing = true;
        setTimeout(() => child.kill('SIGKILL'), delay);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ lastSaved, delay });
      else reject(new Error(`the save loop exited by itself (code ${code}): ${err.slice(-2000)}`));
    });
  });
}

/** What a crash may legitimately leave: at most one staging directory or temporary file, and a commit in progress. */
function litter(dir: string, keep: string[]): string[] {
  return fs.readdirSync(dir).filter((f) => !keep.includes(f));
}

forEachBackend(() => {
  describe('every intermediate state of saveModel loads as old or new', () => {
    expectNoLeaks();

    /** Two complete saves, A (version 1) and B (version 2), to assemble states from. */
    function twoSaves(): { a: string; b: string; dir: string } {
      const root = tempDir();
      const a = path.join(root, 'a');
      const b = path.join(root, 'b');
      saveVersion(a, 1);
      saveVersion(b, 2);
      const dir = path.join(root, 'target');
      fs.cpSync(a, dir, { recursive: true });
      return { a, b, dir };
    }

    it('a staging directory from a killed save (before the commit) leaves the old model; the next save removes it', () => {
      const { b, dir } = twoSaves();
      const staging = path.join(dir, `.kiln-save.${DEAD_PID}.abcdef.tmp`);
      fs.mkdirSync(staging);
      fs.writeFileSync(path.join(staging, 'model.safetensors'), fs.readFileSync(path.join(b, 'model.safetensors')).subarray(0, 100));
      expect(loadedVersion(dir)).toBe(1);
      saveVersion(dir, 3);
      expect(loadedVersion(dir)).toBe(3);
      expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    });

    it('a staging directory of a live process (a save in progress elsewhere) is left alone', () => {
      const { dir } = twoSaves();
      const staging = path.join(dir, `.kiln-save.${process.ppid}.abcdef.tmp`);
      fs.mkdirSync(staging);
      saveVersion(dir, 3);
      expect(fs.existsSync(staging)).toBe(true);
    });

    it('committed, nothing moved yet: the new model loads', () => {
      const { b, dir } = twoSaves();
      fs.cpSync(b, path.join(dir, COMMIT_DIR), { recursive: true });
      expect(loadedVersion(dir)).toBe(2);
    });

    it('committed, one file moved: the new model loads (each file from where its new version is)', () => {
      for (const moved of ['model.safetensors', 'config.json']) {
        const { b, dir } = twoSaves();
        const other = moved === 'config.json' ? 'model.safetensors' : 'config.json';
        fs.copyFileSync(path.join(b, moved), path.join(dir, moved));
        fs.mkdirSync(path.join(dir, COMMIT_DIR));
        fs.copyFileSync(path.join(b, other), path.join(dir, COMMIT_DIR, other));
        expect(loadedVersion(dir)).toBe(2);
      }
    });

    it('committed, all moved, the commit directory not yet removed: the new model loads; the next save tidies up', () => {
      const { b, dir } = twoSaves();
      fs.cpSync(b, dir, { recursive: true });
      fs.mkdirSync(path.join(dir, COMMIT_DIR));
      expect(loadedVersion(dir)).toBe(2);
      saveVersion(dir, 3);
      expect(loadedVersion(dir)).toBe(3);
      expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    });

    it('the next save finishes an interrupted commit before writing (the newest complete model is never lost)', () => {
      const { b, dir } = twoSaves();
      fs.cpSync(b, path.join(dir, COMMIT_DIR), { recursive: true });
      // A save that fails on bad input must not touch anything; the committed B still loads.
      expect(() => saveModel(dir, { stateDict: { w: 'not a tensor' as never }, config: {} })).toThrow(/saveModel/);
      expect(loadedVersion(dir)).toBe(2);
      saveVersion(dir, 3);
      expect(loadedVersion(dir)).toBe(3);
    });

    it('saveCheckpoint and saveTensors remove the temporary files of dead writers, not of live ones', () => {
      const dir = tempDir();
      const file = path.join(dir, 'ckpt.safetensors');
      const dead = path.join(dir, `.ckpt.safetensors.${DEAD_PID}.0123456789ab.tmp`);
      const live = path.join(dir, `.ckpt.safetensors.${process.ppid}.0123456789ab.tmp`);
      fs.writeFileSync(dead, new Uint8Array(1000));
      fs.writeFileSync(live, new Uint8Array(1000));
      const w = kiln.ones([2]);
      saveCheckpoint(file, { model: { w }, epoch: 1 });
      w.dispose();
      expect(fs.existsSync(dead)).toBe(false);
      expect(fs.existsSync(live)).toBe(true);
    });
  });

});

// The saving child runs on the backend under test; saving is file code above the backends, so
// the GPU adds nothing here but a device start-up per kill (about 5 s each on lavapipe).
forEachBackend((backend) => {
  describe('SIGKILL at random moments during saves', () => {
    it(`saveModel: ${KILLS} kills, each time the last complete model loads`, async () => {
      const dir = path.join(tempDir(), 'model');
      saveVersion(dir, 0, SIZE);
      for (let round = 0; round < KILLS; round++) {
        const first = (round + 1) * 1000;
        const { lastSaved, delay } = await killSavingChild(backend, 'model', dir, first);
        const v = loadedVersion(dir);
        // Output can lag behind the saves, so the loaded version may be newer than the last one
        // reported; never older, and always one the child started.
        expect(v, `round ${round}, killed ${delay.toFixed(0)} ms after a save`).toBeGreaterThanOrEqual(lastSaved);
        expect(v).toBeLessThan(first + 1000);
        // A crash leaves at most one staging directory and one commit in progress.
        expect(litter(dir, ['config.json', 'model.safetensors', COMMIT_DIR]).length).toBeLessThanOrEqual(1);
      }
      saveVersion(dir, 1, 4);
      expect(loadedVersion(dir)).toBe(1);
      expect(fs.readdirSync(dir).sort(), 'the next save removed what the crashes left').toEqual(['config.json', 'model.safetensors']);
    }, 60_000 + KILLS * 20_000);

    it(`saveCheckpoint: ${Math.ceil(KILLS / 2)} kills, each time the last complete checkpoint loads`, async () => {
      const dir = tempDir();
      const file = path.join(dir, 'ckpt.safetensors');
      for (let round = 0; round < Math.ceil(KILLS / 2); round++) {
        const first = (round + 1) * 1000;
        const { lastSaved } = await killSavingChild(backend, 'checkpoint', file, first);
        const v = loadedCheckpointVersion(file);
        expect(v).toBeGreaterThanOrEqual(lastSaved);
        expect(v).toBeLessThan(first + 1000);
        expect(litter(dir, ['ckpt.safetensors']).length).toBeLessThanOrEqual(1);
      }
      const w = kiln.full([SIZE], 7);
      const b = kiln.full([3], -7, 'int32');
      saveCheckpoint(file, { model: { w, b }, epoch: 7 });
      kiln.dispose([w, b]);
      expect(loadedCheckpointVersion(file)).toBe(7);
      expect(fs.readdirSync(dir)).toEqual(['ckpt.safetensors']);
    }, 60_000 + KILLS * 20_000);
  });
}, { except: { gpu: 'saving is the same file code as on native; a GPU start-up per killed child only costs time' } });
