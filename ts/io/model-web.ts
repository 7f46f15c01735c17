/**
 * Saved models in a browser, in the same two files as Node's directories (model-format.ts):
 *
 *   await kiln.saveModel('indexeddb://mnist', { stateDict: model.stateDict(), config });
 *   const { stateDict, config } = await kiln.loadModel('indexeddb://mnist');
 *   await kiln.saveModel('downloads://', saved);        // the user gets config.json and model.safetensors
 *   const remote = await kiln.loadModel('/models/mnist/'); // a URL serving those two files
 *
 * A directory written by Node's saveModel, served over HTTP, loads here; the two downloaded files
 * put in one directory load in Node.
 */

import type { Tensor } from '../tensor.js';
import { CONFIG_FILE, WEIGHTS_FILE, decodeWeights, encodeModel, parseConfig, type SavedModel } from './model-format.js';
import { getModelFiles, putModelFiles } from './indexeddb.js';
import { kilnVersion } from './version-web.js';

export { CONFIG_FILE, MODEL_FORMAT_VERSION, WEIGHTS_FILE, type SavedModel } from './model-format.js';

const INDEXEDDB = 'indexeddb://';
const DOWNLOADS = 'downloads://';

/** The IndexedDB key of 'indexeddb://<name>', checked. */
function storeName(op: string, where: string): string {
  const name = where.slice(INDEXEDDB.length);
  if (name === '') throw new Error(`${op}: '${where}' names no model: write 'indexeddb://<name>'`);
  return name;
}

/** Offers `bytes` as a download named `file` through a temporary link (needs a page's document). */
function download(op: string, file: string, bytes: Uint8Array, type: string): void {
  const doc = (globalThis as { document?: { createElement(tag: 'a'): { href: string; download: string; click(): void } } }).document;
  if (doc === undefined) throw new Error(`${op}: 'downloads://' needs a page (there is no document here, e.g. in a worker); use 'indexeddb://<name>'`);
  // The encoders build their output in a fresh ArrayBuffer (never shared memory), which Blob needs.
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
  const link = doc.createElement('a');
  link.href = url;
  link.download = file;
  link.click();
  // Revoked later, not at once: the browser reads the Blob after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Saves a model from a browser: `destination` is `'indexeddb://<name>'` (kept in the page's
 * origin; replaces an earlier save of that name in one transaction) or `'downloads://'` (the user
 * receives `config.json` and `model.safetensors`, the files of Node's saved-model directory).
 * `config` is plain JSON describing the architecture. The tensors are read, not taken.
 */
export async function saveModel(destination: string, model: { stateDict: Record<string, Tensor>; config: object }): Promise<void> {
  const op = 'saveModel';
  if (typeof destination !== 'string') throw new Error(`${op}: destination must be a string ('indexeddb://<name>' or 'downloads://'), got ${typeof destination}`);
  if (destination.startsWith(INDEXEDDB)) {
    const name = storeName(op, destination);
    await putModelFiles(op, name, encodeModel(op, model, kilnVersion()));
    return;
  }
  if (destination.startsWith(DOWNLOADS)) {
    if (destination !== DOWNLOADS) {
      throw new Error(`${op}: '${destination}': a download keeps the file names loadModel looks for (${CONFIG_FILE}, ${WEIGHTS_FILE}), so write just 'downloads://'`);
    }
    const files = encodeModel(op, model, kilnVersion());
    download(op, CONFIG_FILE, files.config, 'application/json');
    download(op, WEIGHTS_FILE, files.weights, 'application/octet-stream');
    return;
  }
  throw new Error(`${op}: cannot save to '${destination}': in a browser the destinations are 'indexeddb://<name>' and 'downloads://'`);
}

/** GETs one file of a saved model; HTTP failures name the URL and the status. */
async function fetchBytes(op: string, url: URL): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`${op}: cannot fetch '${url.href}' (${(e as Error).message})`, { cause: e });
  }
  if (!response.ok) throw new Error(`${op}: GET '${url.href}' answered HTTP ${response.status} ${response.statusText}`.trimEnd());
  return new Uint8Array(await response.arrayBuffer());
}

/** The saved model's base URL with a trailing slash, relative URLs resolved against the page. */
function modelBaseUrl(op: string, source: string): URL {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  try {
    const url = new URL(source, page);
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return url;
  } catch {
    throw new Error(`${op}: '${source}' is neither 'indexeddb://<name>' nor a URL${page === undefined ? ' (relative URLs need a page)' : ''}`);
  }
}

/**
 * Loads a model in a browser: from `'indexeddb://<name>'`, or from a URL of a directory that serves
 * `config.json` and `model.safetensors` (as Node's saveModel writes them; relative URLs resolve
 * against the page). Returns `{ stateDict, config }`; the caller owns the tensors
 * (`kiln.dispose(result.stateDict)` after loading them into a module).
 */
export async function loadModel(source: string): Promise<SavedModel> {
  const op = 'loadModel';
  if (typeof source !== 'string') throw new Error(`${op}: source must be a string ('indexeddb://<name>' or a URL), got ${typeof source}`);
  if (source.startsWith(INDEXEDDB)) {
    const files = await getModelFiles(op, storeName(op, source));
    const config = parseConfig(op, files.config, `${source} ${CONFIG_FILE}`, kilnVersion());
    return decodeWeights(op, config, files.weights, `${source} ${WEIGHTS_FILE}`, source);
  }
  if (source.startsWith(DOWNLOADS)) {
    throw new Error(`${op}: a page cannot read its downloads back; load from 'indexeddb://<name>' or from the URL that serves the files`);
  }
  const base = modelBaseUrl(op, source);
  const [configUrl, weightsUrl] = [new URL(CONFIG_FILE, base), new URL(WEIGHTS_FILE, base)];
  // config.json first: it says whether this is a saved model at all before the large download.
  const config = parseConfig(op, await fetchBytes(op, configUrl), configUrl.href, kilnVersion());
  return decodeWeights(op, config, await fetchBytes(op, weightsUrl), weightsUrl.href, base.href);
}
