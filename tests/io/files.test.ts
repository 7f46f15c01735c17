/**
 * Files: saveTensors/loadTensors, and writeFileAtomic's promise that a failed or crashed write
 * leaves the previous file intact and no temporary files behind (except after a hard crash).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { encodeSafetensors, loadTensors, saveTensors, writeFileAtomic } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { expectNoLeaks, expectSameTensors, sampleTensors, useTempDirs } from './io-helpers.js';

const tempDir = useTempDirs();
const OLD = new TextEncoder().encode('the old content, which must survive');

/** A directory holding `name` with the OLD content. */
function dirWithOldFile(name = 'target.bin'): { dir: string; file: string } {
  const dir = tempDir();
  const file = path.join(dir, name);
  fs.writeFileSync(file, OLD);
  return { dir, file };
}

forEachBackend(() => {
  expectNoLeaks();
  afterEach(() => {
    vi.restoreAllMocks();
  });

  describe('saveTensors / loadTensors', () => {
    it('round trip through a file; the file holds exactly the encoded bytes', () => {
      const tensors = sampleTensors();
      const file = path.join(tempDir(), 'weights.safetensors');
      saveTensors(file, tensors, { note: 'hi' });
      expect(new Uint8Array(fs.readFileSync(file))).toEqual(encodeSafetensors(tensors, { note: 'hi' }));
      const back = loadTensors(file);
      expectSameTensors(back.tensors, tensors);
      expect(back.metadata).toEqual({ note: 'hi' });
      kiln.dispose([tensors, back.tensors]);
    });

    it('loading a missing file, a directory, or a corrupt file names the file', () => {
      const dir = tempDir();
      const missing = path.join(dir, 'nope.safetensors');
      expectThrows(() => loadTensors(missing), `loadTensors: cannot read '${missing}': the file does not exist`);
      expectThrows(() => loadTensors(dir), `loadTensors: cannot read '${dir}': it is a directory`);
      const bad = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(bad, 'definitely not tensors');
      expectThrows(() => loadTensors(bad), `loadTensors: '${bad}' is not a valid safetensors file: the header size field says`);
    });

    it('bad tensors are rejected before the file is touched', () => {
      const { file } = dirWithOldFile('w.safetensors');
      const gone = kiln.ones([2]);
      gone.dispose();
      expectThrows(() => saveTensors(file, { w: gone }), "saveTensors: tensor 'w' is disposed");
      expect(fs.readFileSync(file)).toEqual(Buffer.from(OLD));
    });
  });

  describe('writeFileAtomic', () => {
    it('creates and replaces files, leaving no temporary files', () => {
      const { dir, file } = dirWithOldFile();
      writeFileAtomic(file, Uint8Array.from([1, 2, 3]));
      expect(Array.from(fs.readFileSync(file))).toEqual([1, 2, 3]);
      writeFileAtomic(path.join(dir, 'new.bin'), new Uint8Array(0));
      expect(fs.readFileSync(path.join(dir, 'new.bin')).length).toBe(0);
      expect(fs.readdirSync(dir).sort()).toEqual(['new.bin', 'target.bin']);
    });

    it('a write that fails half way (disk full) leaves the old file intact and removes the temporary file', () => {
      const { dir, file } = dirWithOldFile();
      const realWrite = fs.writeSync;
      let calls = 0;
      vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buffer: Uint8Array, offset: number, length: number) => {
        if (++calls > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        return realWrite(fd, buffer, offset, Math.min(length, 10));
      }) as typeof fs.writeSync);
      const err = expectThrows(() => writeFileAtomic(file, new Uint8Array(1000).fill(7)), `could not write '${file}'`, 'ENOSPC', 'any previous file there is unchanged');
      expect((err.cause as Error).message).toContain('ENOSPC');
      expect(calls).toBe(2);
      expect(fs.readFileSync(file)).toEqual(Buffer.from(OLD));
      expect(fs.readdirSync(dir)).toEqual(['target.bin']);
    });

    it('a failing fsync or rename also leaves the old file intact', () => {
      const { dir, file } = dirWithOldFile();
      vi.spyOn(fs, 'fsyncSync').mockImplementationOnce(() => {
        throw new Error('EIO: i/o error, fsync');
      });
      expectThrows(() => writeFileAtomic(file, new Uint8Array(100)), 'EIO');
      vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
        throw new Error('EXDEV: cross-device link not permitted, rename');
      });
      expectThrows(() => writeFileAtomic(file, new Uint8Array(100)), 'EXDEV');
      expect(fs.readFileSync(file)).toEqual(Buffer.from(OLD));
      expect(fs.readdirSync(dir)).toEqual(['target.bin']);
    });

    it.skipIf(process.getuid?.() === 0)('a read-only directory: the write fails and the old file is intact (skipped as root)', () => {
      const { dir, file } = dirWithOldFile();
      fs.chmodSync(dir, 0o555);
      try {
        expectThrows(() => writeFileAtomic(file, new Uint8Array(10)), `could not write '${file}'`);
      } finally {
        fs.chmodSync(dir, 0o755);
      }
      expect(fs.readFileSync(file)).toEqual(Buffer.from(OLD));
    });

    it('a missing directory is reported as such', () => {
      const file = path.join(tempDir(), 'no', 'such', 'dir', 'x.bin');
      expectThrows(() => writeFileAtomic(file, new Uint8Array(1)), `cannot write '${file}': the directory`, 'does not exist');
    });

    it('a process killed mid-write (SIGKILL) leaves the old file intact', async () => {
      const { dir, file } = dirWithOldFile();
      const script = fileURLToPath(new URL('./fixtures/crash-write.ts', import.meta.url));
      const viteNode = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));
      const result = await new Promise<{ signal: string | null; out: string }>((resolve) => {
        execFile(process.execPath, [viteNode, script, file, String(1 << 20)], { timeout: 30_000 }, (error, stdout) => {
          resolve({ signal: (error as { signal?: string } | null)?.signal ?? null, out: stdout });
        });
      });
      expect(result.out).not.toContain('NOT CRASHED');
      expect(result.signal).toBe('SIGKILL');
      expect(fs.readFileSync(file)).toEqual(Buffer.from(OLD));
      // The half-written temporary file is what a crash leaves; it is hidden and never the target.
      const leftovers = fs.readdirSync(dir).filter((f) => f !== 'target.bin');
      expect(leftovers.length).toBe(1);
      expect(leftovers[0]).toMatch(/^\.target\.bin\.\d+\.[0-9a-f]+\.tmp$/);
      expect(fs.statSync(path.join(dir, leftovers[0])).size).toBeLessThan(1 << 20);
    });
  });
});
