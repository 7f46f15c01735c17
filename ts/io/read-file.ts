/**
 * Reading a file that someone else may have handed us (Node only). Only a regular file of bounded
 * size is read: a symlink to /dev/zero would otherwise grow without limit, a FIFO would block
 * `open` forever waiting for a writer, and a directory is never what the caller meant. Every
 * refusal is an Error naming the caller, the file and the reason.
 */

import fs from 'node:fs';

/**
 * The default ceiling for one file: 2^31 - 1 bytes, which is also the most Node reads into one
 * buffer in a single call on every platform it supports. Callers pass smaller limits for small
 * files (a config.json).
 */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

/** What a stat says the path is, in words for an error message. */
function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device (such as /dev/zero)';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

function explainErrno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'the file does not exist';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'ELOOP') return 'it is a symbolic link loop';
  return (e as Error).message;
}

/**
 * Reads the whole of `file`, which must be a regular file (symlinks to one are fine) of at most
 * `maxBytes` bytes. `op` names the public function in errors:
 * "loadModel: cannot read 'x': it is a FIFO (named pipe), not a regular file".
 */
export function readRegularFile(op: string, file: string, maxBytes = MAX_FILE_BYTES): Uint8Array {
  const cannot = (why: string, cause?: unknown): never => {
    throw new Error(`${op}: cannot read '${file}': ${why}`, cause === undefined ? undefined : { cause });
  };
  let fd: number | undefined;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking; the fstat
    // below then refuses it. Checking the opened descriptor (not the path) leaves no window for
    // the path to be swapped between the check and the read.
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    } catch (e) {
      return cannot(explainErrno(e), e);
    }
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) cannot(`it is ${kindOf(stat)}, not a regular file`);
    if (stat.size > maxBytes) cannot(`it is ${stat.size} bytes, more than the ${maxBytes}-byte limit for this file`);
    const out = new Uint8Array(stat.size);
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, done);
      if (n === 0) cannot(`it shrank while being read (${done} of ${stat.size} bytes)`);
      done += n;
    }
    // One more byte would mean the file grew while being read: refuse a moving target.
    if (fs.readSync(fd, new Uint8Array(1), 0, 1, done) !== 0) cannot('it grew while being read');
    return out;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
