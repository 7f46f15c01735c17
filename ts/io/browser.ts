/**
 * The browser-safe part of io (no file system): safetensors bytes, state-dict checks, and saved
 * models in IndexedDB, downloads and URLs (model-web.ts; the same files as Node's directories).
 */

export { encodeSafetensors, decodeSafetensors, type DecodedSafetensors } from './safetensors.js';
export type { SafetensorsDtype, FloatStorage, StorageOptions } from './safetensors-dtypes.js';
export { pytorchStateDict, loadPyTorchStateDict, type LoadPyTorchOptions } from './pytorch.js';
export { saveModel, loadModel, MODEL_FORMAT_VERSION, WEIGHTS_FILE, CONFIG_FILE, type SavedModel } from './model-web.js';
export { checkCompatible, compareStateDicts, type StateDictDiff } from './compat.js';
export type { JsonValue, JsonObject } from './json.js';
