/**
 * Kiln's CommonJS entry (`require('kiln-ml')`): the same module as the ES entry (index.ts), loaded
 * with Node's require() of an ES module (Node 20.19+, 22.12+), so a program that mixes `import`
 * and `require` still has one Kiln: one engine, one set of tensors.
 *
 *   const kiln = require('kiln-ml');
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).matmul(kiln.eye(2)).relu());
 */

type Kiln = typeof import('./index.js');

function loadEsm(): Kiln {
  try {
    return require('./index.js') as Kiln;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_REQUIRE_ESM') {
      throw new Error(
        `require('kiln-ml') needs Node 20.19+ or 22.12+ (this is ${process.version}, which cannot require() an ES module); ` +
          "upgrade Node, or use `import * as kiln from 'kiln-ml'` / `await import('kiln-ml')`",
      );
    }
    throw e;
  }
}

const kiln: Kiln = loadEsm();
export = kiln;
