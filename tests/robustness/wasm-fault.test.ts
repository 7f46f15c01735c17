/**
 * Issue 13, class 3: a fault inside the WASM module (a Rust panic aborts a wasm32 instance) is
 * recoverable. The faulted instance answers every call with an Error saying its tensors were lost;
 * new tensors go to a fresh instance; disposing a lost tensor is harmless, so `tidy` still frees
 * everything else in its scope and GC finalizers never throw.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend } from '../../ts/engine.js';

const FINALIZER_FIXTURE = fileURLToPath(new URL('../fixtures/wasm-finalizer-after-fault.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));

/** Panics inside Rust through the test hook, which aborts the active WASM instance. */
function faultWasm(): Error {
  try {
    (backend().impl as unknown as { debugPanic(p: boolean): boolean }).debugPanic(false);
  } catch (e) {
    return e as Error;
  }
  throw new Error('debugPanic returned without a fault');
}

describe('[wasm] after a fault', () => {
  afterAll(() => kiln.setBackend('native'));

  it('the panic is an Error naming the call; lost tensors say so; new tensors run on a fresh instance', () => {
    kiln.setBackend('wasm');
    const before = kiln.tensor([1, 2, 3]);
    const fault = faultWasm();
    expect(fault.message).toMatch(/^debugPanic: internal error in Kiln \(.*deliberate panic.*\); the WASM instance aborted/);

    expect(() => before.dataSync()).toThrow(/its tensors are lost/);
    expect(kiln.getBackend()).toBe('wasm');
    const fresh = kiln.tensor([10, 20, 30]);
    expect(Array.from(fresh.add(1).dataSync()), 'an op on the fresh instance').toEqual([11, 21, 31]);
    // A lost tensor's handle would name another tensor in the fresh instance: refused, not misread.
    expect(() => kiln.add(before, fresh)).toThrow(/add: argument 'a' was lost: the WASM instance aborted/);
    expect(() => before.dispose(), 'disposing a lost tensor').not.toThrow();
    kiln.setBackend('wasm');
    expect(kiln.memory().numTensors, 'the fresh instance holds only the live tensors').toBeGreaterThan(0);
    kiln.dispose(fresh);
  });

  it('setBackend("wasm") after a fault gives a working backend', () => {
    kiln.setBackend('wasm');
    faultWasm();
    kiln.setBackend('native');
    kiln.setBackend('wasm');
    const start = kiln.memory();
    const y = kiln.tidy(() => kiln.matmul(kiln.ones([2, 3]), kiln.ones([3, 2])));
    expect(Array.from(y.dataSync())).toEqual([3, 3, 3, 3]);
    y.dispose();
    expect(kiln.memory()).toEqual(start);
  });

  it('tidy frees every other tensor of its scope when one of them died with its instance', () => {
    kiln.setBackend('native');
    const start = kiln.memory();
    kiln.tidy(() => {
      kiln.ones([4, 4]);
      kiln.setBackend('wasm');
      kiln.ones([64, 64]); // dies with the instance below
      faultWasm();
      kiln.setBackend('native');
      kiln.zeros([8]);
    });
    expect(kiln.memory(), 'native tensors of the scope').toEqual(start);
  });

  it('a large WASM tensor collected by the GC after a fault does not exit Node', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--expose-gc', VITE_NODE, FINALIZER_FIXTURE], { timeout: 120_000 }, (error, out, err) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out, stderr: err }),
      ),
    );
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain('FINALIZED 2,2');
  });
});
