/**
 * Interoperability with the reference implementation (Python `safetensors` + numpy): files Kiln
 * writes load in Python with identical elements, files Python writes load in Kiln, and the
 * reference writer produces the very same bytes as Kiln for the same tensors.
 *
 * `npm test` installs numpy and safetensors into Kiln's Python environment (scripts/python.mjs) and
 * passes its interpreter as KILN_PYTHON; without them this file fails, saying how to get them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { loadTensors, saveTensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectNoLeaks, rawBytes, sampleTensors, useTempDirs } from './io-helpers.js';

const script = fileURLToPath(new URL('./fixtures/interop.py', import.meta.url));
const pythonBin = process.env.KILN_PYTHON ?? 'python3';

interface Described {
  tensors: Record<string, { dtype: string; shape: number[]; hex: string }>;
  metadata: Record<string, string>;
}

function python(...args: string[]): string {
  const r = spawnSync(pythonBin, [script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${pythonBin} interop.py ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

function describeKiln(tensors: Record<string, Tensor>): Described['tensors'] {
  const out: Described['tensors'] = {};
  for (const [name, t] of Object.entries(tensors)) out[name] = { dtype: t.dtype, shape: [...t.shape], hex: Buffer.from(rawBytes(t)).toString('hex') };
  return out;
}

const tempDir = useTempDirs();

forEachBackend(() => {
  expectNoLeaks();

  describe('Python safetensors interop', () => {
    it('has a Python with numpy and safetensors (npm test installs them; scripts/python.mjs)', () => {
      const probe = spawnSync(pythonBin, ['-c', 'import safetensors.numpy, numpy'], { encoding: 'utf8' });
      expect(probe.status, `${pythonBin} cannot import safetensors and numpy: ${probe.stderr}`).toBe(0);
    });

    it('a file written by Kiln loads in Python with the same dtypes, shapes, elements and metadata', () => {
      const tensors = sampleTensors();
      const file = path.join(tempDir(), 'from-kiln.safetensors');
      saveTensors(file, tensors, { written_by: 'kiln', note: 'ünïcödé' });
      const seen = JSON.parse(python('read', file)) as Described;
      expect(seen.tensors).toEqual(describeKiln(tensors));
      expect(seen.metadata).toEqual({ written_by: 'kiln', note: 'ünïcödé' });
      kiln.dispose(tensors);
    });

    it('a file written by Python loads in Kiln with the same dtypes, shapes, elements and metadata', () => {
      const file = path.join(tempDir(), 'from-python.safetensors');
      const written = JSON.parse(python('write', file)) as Described;
      const { tensors, metadata } = loadTensors(file);
      expect(describeKiln(tensors)).toEqual(written.tensors);
      expect(metadata).toEqual(written.metadata);
      kiln.dispose(tensors);
    });

    it("the reference writer produces byte-for-byte the file Kiln wrote", () => {
      const tensors = sampleTensors();
      const dir = tempDir();
      const ours = path.join(dir, 'kiln.safetensors');
      const theirs = path.join(dir, 'reference.safetensors');
      saveTensors(ours, tensors, { format: 'np' });
      python('resave', ours, theirs);
      expect(fs.readFileSync(theirs).toString('hex')).toBe(fs.readFileSync(ours).toString('hex'));
      kiln.dispose(tensors);
    });
  });
});
