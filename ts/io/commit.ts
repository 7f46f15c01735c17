/**
 * Writing several files into a directory as one unit (Node only): after a crash at any moment the
 * directory holds either the complete old set or the complete new set, never a mix and never
 * neither. saveModel uses it for model.safetensors + config.json.
 *
 * How: the new files are written and flushed in a private staging directory
 * `.kiln-save.<pid>.<random>.tmp`, which is then renamed to `.kiln-commit`. That one rename is the
 * commit point. Afterwards each file is renamed from `.kiln-commit` to its place and the empty
 * `.kiln-commit` is removed. A reader takes each file from `.kiln-commit` while it is there and
 * from its place otherwise; since files only ever move from `.kiln-commit` to their place, each
 * name resolves to the new version as soon as the commit rename happened, and to the old version
 * before it. The next save first finishes an interrupted commit, then removes the staging
 * directories of crashed saves.
 *
 * Two processes saving into the same directory at the same moment are not supported (one of the
 * two saves wins or the second fails with an error; neither corrupts the other's files).
 */

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDirectory } from './files.js';
import { removeStaleTemporaries, temporaryName } from './stale.js';

/** The committed-but-not-yet-moved set of files (see the file comment). */
export const COMMIT_DIR = '.kiln-commit';
const STAGING = 'kiln-save';

function writeAndFlush(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'wx');
  try {
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Moves the files of a committed set into place and removes `.kiln-commit`. Safe to repeat after a
 * crash at any point of an earlier call.
 */
export function finishCommit(dir: string): void {
  const commit = path.join(dir, COMMIT_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(commit);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) fs.renameSync(path.join(commit, name), path.join(dir, name));
  syncDirectory(dir);
  fs.rmdirSync(commit);
  syncDirectory(dir);
}

/**
 * Writes `files` (base name -> bytes) into `dir` as one unit (see the file comment). `dir` must
 * exist. Errors name `op`; on an error before the commit point the old files are untouched.
 */
export function writeFilesAsUnit(op: string, dir: string, files: Record<string, Uint8Array>): void {
  try {
    finishCommit(dir);
  } catch (e) {
    throw new Error(`${op}: cannot finish the interrupted earlier save in '${dir}' (${(e as Error).message})`, { cause: e });
  }
  removeStaleTemporaries(dir, STAGING);
  const staging = path.join(dir, temporaryName(STAGING, randomBytes(6).toString('hex')));
  try {
    fs.mkdirSync(staging);
    for (const [name, bytes] of Object.entries(files)) writeAndFlush(path.join(staging, name), bytes);
    syncDirectory(staging);
    fs.renameSync(staging, path.join(dir, COMMIT_DIR));
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(`${op}: could not write the files in '${dir}' (${(e as Error).message}); the previous save there is unchanged`, { cause: e });
  }
  syncDirectory(dir);
  try {
    finishCommit(dir);
  } catch (e) {
    // Committed: loaders already see the new files; the next save finishes the move.
    throw new Error(`${op}: the save in '${dir}' is complete and loads, but moving its files into place failed (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Reads the current complete version of `name` in `dir` with `read`: from `.kiln-commit` while a
 * commit is being finished, else from its place. If the file moves between the two (a saver
 * finishing its commit right now), the read is retried at its place.
 */
export function readCommitted<T>(dir: string, name: string, read: (file: string) => T): T {
  const pending = path.join(dir, COMMIT_DIR, name);
  if (fs.existsSync(pending)) {
    try {
      return read(pending);
    } catch (e) {
      if (fs.existsSync(pending)) throw e;
    }
  }
  return read(path.join(dir, name));
}

/** Whether `name` exists in its committed version (see readCommitted). */
export function existsCommitted(dir: string, name: string): boolean {
  return fs.existsSync(path.join(dir, COMMIT_DIR, name)) || fs.existsSync(path.join(dir, name));
}
