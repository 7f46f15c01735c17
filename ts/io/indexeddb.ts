/**
 * Saved models in the browser's IndexedDB: one database, `kiln-models`, with one object store whose
 * records are a model's two files as bytes (the same bytes a directory save holds), keyed by the
 * model's name. One record per model, written in one transaction, so a save is all or nothing.
 */

import type { ModelFiles } from './model-format.js';

// The few IndexedDB types used here (the project compiles without the DOM library, whose globals
// would hide mistakes in the Node code).
interface Request<T> {
  result: T;
  error: { message: string } | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface OpenRequest extends Request<Database> {
  onupgradeneeded: (() => void) | null;
}
interface Database {
  createObjectStore(name: string): unknown;
  transaction(store: string, mode: 'readonly' | 'readwrite'): Transaction;
  close(): void;
}
interface Transaction {
  objectStore(name: string): Store;
  error: { message: string } | null;
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}
interface Store {
  put(value: unknown, key: string): Request<unknown>;
  get(key: string): Request<unknown>;
  getAllKeys(): Request<unknown[]>;
}

const DATABASE = 'kiln-models';
const STORE = 'models';

/** The record kept per model. */
interface StoredModel {
  config: Uint8Array;
  weights: Uint8Array;
  savedAt: string;
}

/** Resolves with a request's result; rejects with an Error that names `what`. */
function settle<T>(request: Request<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Error(`${what}: IndexedDB failed: ${request.error?.message ?? 'unknown error'}`));
  });
}

async function openDatabase(op: string): Promise<Database> {
  const idb = (globalThis as { indexedDB?: { open(name: string, version: number): OpenRequest } }).indexedDB;
  if (idb === undefined) throw new Error(`${op}: IndexedDB is not available here (it exists in browser pages and workers; in Node save to a directory)`);
  const request = idb.open(DATABASE, 1);
  request.onupgradeneeded = () => request.result.createObjectStore(STORE);
  return settle(request, op);
}

/** Runs `body` in one transaction on the store; resolves once the transaction has committed. */
async function withStore<T>(op: string, mode: 'readonly' | 'readwrite', body: (store: Store) => Request<T>): Promise<T> {
  const db = await openDatabase(op);
  try {
    const tx = db.transaction(STORE, mode);
    const result = settle(body(tx.objectStore(STORE)), op);
    // A failed request also fails the transaction, whose error is the one reported below.
    result.catch(() => {});
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(new Error(`${op}: IndexedDB transaction failed: ${tx.error?.message ?? 'aborted'}`));
    });
    return await result;
  } finally {
    db.close();
  }
}

/** Stores a model's files under `name`, replacing an earlier save of that name. */
export async function putModelFiles(op: string, name: string, files: ModelFiles): Promise<void> {
  const record: StoredModel = { config: files.config, weights: files.weights, savedAt: new Date().toISOString() };
  await withStore(op, 'readwrite', (store) => store.put(record, name));
}

/** The files stored under `name`; the error lists the names that are stored. */
export async function getModelFiles(op: string, name: string): Promise<ModelFiles> {
  const record = (await withStore(op, 'readonly', (store) => store.get(name))) as StoredModel | undefined;
  if (record === undefined) {
    const names = (await withStore(op, 'readonly', (store) => store.getAllKeys())).map(String);
    throw new Error(`${op}: no model named '${name}' in IndexedDB (saved there: ${names.length > 0 ? names.map((n) => `'${n}'`).join(', ') : 'none'})`);
  }
  return { config: record.config, weights: record.weights };
}
