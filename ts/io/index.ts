/**
 * Saving and loading: safetensors bytes (browser-safe), files written atomically, saved models
 * (a directory with weights and config) and training checkpoints.
 *
 *   kiln.io.saveModel('out/mlp', { stateDict, config: { layers: [784, 512, 10] } });
 *   const { stateDict, config } = kiln.io.loadModel('out/mlp');
 */

export { encodeSafetensors, decodeSafetensors, type DecodedSafetensors } from './safetensors.js';
export type { SafetensorsDtype, FloatStorage, StorageOptions } from './safetensors-dtypes.js';
export { writeFileAtomic, saveTensors, loadTensors } from './files.js';
export { saveModel, loadModel, MODEL_FORMAT_VERSION, WEIGHTS_FILE, CONFIG_FILE, type SavedModel } from './model.js';
export { saveCheckpoint, loadCheckpoint, disposeCheckpoint, CHECKPOINT_FORMAT_VERSION, type Checkpoint } from './checkpoint.js';
export { pytorchStateDict, loadPyTorchStateDict, type LoadPyTorchOptions } from './pytorch.js';
export { loadPyTorchWeights, savePyTorchWeights, loadShardedTensors, saveShardedTensors, HF_INDEX_FILE, HF_WEIGHTS_FILE, type LoadPyTorchWeightsOptions } from './hf-checkpoint.js';
export { checkCompatible, compareStateDicts, type StateDictDiff } from './compat.js';
export type { JsonValue, JsonObject } from './json.js';
