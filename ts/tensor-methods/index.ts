/**
 * Loads every tensor-method family, so `x.matmul(w)` and friends exist. Imported for its effect by
 * core-api.ts, which both package entries (index.ts, browser.ts) re-export.
 */

import './autograd.js';
import './elementwise.js';
import './reduce.js';
import './linalg.js';
import './shape.js';
