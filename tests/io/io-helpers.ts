/**
 * Helpers for the io suites: temporary directories that are removed after the file, memory checks
 * that prove loads and disposes leave nothing behind, and small sample state dicts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, expect } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';

/** A fresh temporary directory, removed (with its contents) when the test file ends. */
export function useTempDirs(): () => string {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-io-'));
    made.push(d);
    return d;
  };
}

/** Every test in the calling describe must leave kiln.memory() exactly as it found it. */
export function expectNoLeaks(): void {
  let start: ReturnType<typeof kiln.memory>;
  beforeEach(() => {
    start = kiln.memory();
  });
  afterEach(() => {
    expect(kiln.memory(), 'memory after the test (tensors leaked?)').toEqual(start);
  });
}

/** Float32, int32 and bool tensors of assorted shapes, including a scalar and size-0 tensors. */
export function sampleTensors(): Record<string, Tensor> {
  return {
    'weight': kiln.tensor(Float32Array.from([1.5, -2.25, 0, -0, 3e-39, 1e30, Infinity, -Infinity, NaN, 7, 8, 9]), [3, 4]),
    'bias': kiln.tensor(Float32Array.from([0.25, -0.5]), [2]),
    'scalar': kiln.tensor(Float32Array.from([42.5]), [], 'float32'),
    'empty': kiln.tensor(new Float32Array(0), [0, 3]),
    'counts': kiln.tensor(Int32Array.from([2147483647, -2147483648, 0, -1, 5, 6]), [2, 1, 3]),
    'int_scalar': kiln.tensor(Int32Array.from([-7]), [], 'int32'),
    'int_empty': kiln.tensor(new Int32Array(0), [4, 0]),
    'mask': kiln.tensor(Uint8Array.from([1, 0, 0, 1, 1]), [5], 'bool'),
    'bool_scalar': kiln.tensor(Uint8Array.from([1]), [], 'bool'),
    'bool_empty': kiln.tensor(new Uint8Array(0), [0], 'bool'),
    'odd.name/with:chars é': kiln.tensor(Float32Array.from([1, 2, 3]), [1, 3, 1]),
    // U+1F600 sorts after U+FF5E by code point (and UTF-8 bytes) but before it by UTF-16 code unit
    'z😀': kiln.tensor(Float32Array.from([1]), [1]),
    'z～': kiln.tensor(Float32Array.from([2]), [1]),
  };
}

/** The raw bytes of a tensor's elements, so NaN payloads and -0 compare exactly. */
export function rawBytes(t: Tensor): Uint8Array {
  const d = t.dataSync();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
}

/** Asserts two state dicts have the same names, dtypes, shapes and (bitwise) elements. */
export function expectSameTensors(actual: Record<string, Tensor>, expected: Record<string, Tensor>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, t] of Object.entries(expected)) {
    const a = actual[name];
    expect(a.dtype, `${name} dtype`).toBe(t.dtype);
    expect([...a.shape], `${name} shape`).toEqual([...t.shape]);
    expect(rawBytes(a), `${name} elements`).toEqual(rawBytes(t));
  }
}

/**
 * A runner for the Python reference script `fixtures/<name>` with Kiln's Python (KILN_PYTHON, set by
 * npm test): resolves to its stdout, rejects with its stderr. Asynchronous, so a slow numpy
 * start-up on a loaded machine never blocks the test worker.
 */
export function pythonScript(name: string): (...args: string[]) => Promise<string> {
  const script = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const python = process.env.KILN_PYTHON ?? 'python3';
  return async (...args) => {
    try {
      return (await promisify(execFile)(python, [script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;
    } catch (e) {
      throw new Error(`${python} ${name} ${args.join(' ')} failed:\n${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
    }
  };
}
