export { TensorBoard, type TensorBoardOptions } from './callback.js';
export { SummaryWriter } from './writer.js';
export { crc32c, maskedCrc32c, tfRecord } from './tfrecord.js';
