/** The browser-safe part of io (no file system): safetensors bytes and state-dict checks. */

export { encodeSafetensors, decodeSafetensors, type DecodedSafetensors } from './safetensors.js';
export type { SafetensorsDtype, FloatStorage, StorageOptions } from './safetensors-dtypes.js';
export { pytorchStateDict, loadPyTorchStateDict, type LoadPyTorchOptions } from './pytorch.js';
export { checkCompatible, compareStateDicts, type StateDictDiff } from './compat.js';
export type { JsonValue, JsonObject } from './json.js';
