/**
 * Issue 14: the TypeScript `Backend` interface agrees with the one Rust declaration of each entry
 * (crates/kiln-boundary). The checker is also run on deliberately broken copies of backend.ts, so
 * this test cannot pass by checking nothing.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { contractMismatches, type ManifestEntry } from './contract.js';

const BACKEND_TS = readFileSync(fileURLToPath(new URL('../../ts/backends/backend.ts', import.meta.url)), 'utf8');

async function manifestOf(name: 'native' | 'wasm'): Promise<ManifestEntry[]> {
  await kiln.setBackend(name);
  return JSON.parse(backend().impl.boundaryManifest()) as ManifestEntry[];
}

describe('the Backend interface and the Rust entry table', () => {
  let manifest: ManifestEntry[];
  beforeAll(async () => {
    manifest = await manifestOf('native');
  });

  it('the addon and the WASM module expand the same table', async () => {
    expect(manifest.length).toBeGreaterThan(40);
    expect(await manifestOf('wasm')).toEqual(manifest);
  });

  it('backend.ts declares every entry with its name, arity and kinds', () => {
    expect(contractMismatches(manifest, BACKEND_TS)).toEqual([]);
  });

  it('the check catches a renamed entry, a missing argument, a wrong kind and a wrong result', () => {
    const matmul = 'matmul(a: Handle, b: Handle, transposeA: boolean, transposeB: boolean): Handle;';
    expect(BACKEND_TS).toContain(matmul);
    const mutate = (to: string) => contractMismatches(manifest, BACKEND_TS.replace(matmul, to));
    expect(mutate('matMul(a: Handle, b: Handle, transposeA: boolean, transposeB: boolean): Handle;')).toEqual([
      'matmul: declared in the Rust table but not a method of Backend in backend.ts',
    ]);
    expect(mutate('matmul(a: Handle, b: Handle, transposeA: boolean): Handle;')).toEqual([
      'matmul: backend.ts declares 3 parameters, the Rust table 4 (a, b, transposeA, transposeB)',
    ]);
    expect(mutate('matmul(a: Handle, b: Handle, transposeA: boolean, transposeB: number): Handle;')).toEqual([
      "matmul: parameter 4 ('transposeB') is number in backend.ts, boolean in the Rust table ('transposeB')",
    ]);
    expect(mutate('matmul(a: Handle, b: number, transposeA: boolean, transposeB: boolean): Handle;')).toEqual([
      "matmul: parameter 2 ('b') is number in backend.ts, Handle in the Rust table ('b')",
    ]);
    expect(mutate('matmul(a: Handle, b: Handle, transposeA: boolean, transposeB: boolean): boolean;')).toEqual([
      'matmul: returns boolean in backend.ts, Handle in the Rust table',
    ]);
  });

  it('the check catches a group field renamed, retyped, missing or extra', () => {
    const stride = '  stride: [number, number];\n  padding: [number, number, number, number];\n  dilation: [number, number];\n  groups: number;';
    expect(BACKEND_TS).toContain(stride);
    const mutate = (to: string) => contractMismatches(manifest, BACKEND_TS.replace(stride, to));
    expect(mutate(stride.replace('stride:', 'strides:'))).toEqual([
      "ConvGeometry: field 'stride' of the Rust table is missing in backend.ts",
      "ConvGeometry: field 'strides' of backend.ts is not in the Rust table",
    ]);
    expect(mutate(stride.replace('groups: number', 'groups: boolean'))).toEqual(["ConvGeometry: field 'groups' is boolean in backend.ts, number in the Rust table"]);
    expect(mutate(`${stride}\n  bias: number;`)).toEqual(["ConvGeometry: field 'bias' of backend.ts is not in the Rust table"]);
    expect(contractMismatches(manifest, BACKEND_TS.replace('export interface ConvGeometry {', 'export interface ConvShape {'))).toEqual([
      'ConvGeometry: a group of the Rust table but not an interface in backend.ts',
    ]);
  });

  it('the table covers the entries that cross lists, strings, typed arrays and groups', () => {
    const kinds = new Set(manifest.flatMap((e) => e.args.map(([, , kind]) => kind)));
    for (const kind of ['Dims', 'Ints', 'Handles', 'DTypeName', 'MaybeSeed', 'F32Data', 'ConvGeometry', 'AdamStepOptions']) expect(kinds).toContain(kind);
    const names = new Set(manifest.map((e) => e.name));
    for (const name of ['fromF32', 'readF32', 'shape', 'reshape', 'concat', 'split', 'full', 'randn', 'gradients', 'quantizeInt4', 'conv2dQ4']) expect(names).toContain(name);
  });

  it('the check catches an entry added to the table but not to backend.ts', () => {
    const added: ManifestEntry = { name: 'softsignX', args: [['x', 'Handle', 'Handle']], returns: 'Handle' };
    expect(contractMismatches([...manifest, added], BACKEND_TS)).toEqual([
      'softsignX: declared in the Rust table but not a method of Backend in backend.ts',
    ]);
  });
});
