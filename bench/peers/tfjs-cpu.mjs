// @tensorflow/tfjs-backend-cpu: kernels in plain JavaScript.
import { tfjsPeer } from './tfjs.mjs';

export default tfjsPeer({
  id: 'tfjs-cpu',
  column: 'tfjs-cpu',
  backend: 'cpu',
  pkg: '@tensorflow/tfjs-backend-cpu',
  describe: (v) => `@tensorflow/tfjs-backend-cpu ${v} (pure JS)`,
});
