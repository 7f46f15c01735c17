/**
 * Kiln's CommonJS entry (`require('kiln-ml')`): the ES entry (index.ts) itself, loaded with Node's
 * require() of an ES module (Node 20.19+, 22.12+), so a program that mixes `import` and `require`
 * still has one Kiln: one engine, one set of tensors. Its types are index.ts's.
 *
 *   const kiln = require('kiln-ml');
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).matmul(kiln.eye(2)).relu());
 */

// Older Nodes fail inside require() with ERR_REQUIRE_ESM, which does not say what to do.
if (!(process.features as { require_module?: boolean }).require_module) {
  throw new Error(
    `require('kiln-ml') needs Node 20.19+ or 22.12+, which can require() an ES module (this is ${process.version}); ` +
      "upgrade Node, or use `import * as kiln from 'kiln-ml'` / `await import('kiln-ml')`",
  );
}

export * from './index.js';
