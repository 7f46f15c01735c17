/** The native backend: kiln-core through the N-API addon built from bindings/node. */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';

/** Where scripts/build-native.mjs puts the addon (same relative path from ts/ and dist/). */
const ADDON_PATH = fileURLToPath(new URL('../../bindings/node/kiln.node', import.meta.url));

export function loadNative(): Backend {
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `kiln: the native addon is not built (${ADDON_PATH} is missing). ` +
        'Run `npm run build` (it needs cargo; `npm test` and `npm start` do this for you).',
    );
  }
  const require = createRequire(import.meta.url);
  return require(ADDON_PATH) as Backend;
}
