/** The native backend: kiln-core through the N-API addon (the platform package; see native-binary.ts). */

import type { Backend } from './backend.js';
import { describeFailure, loadNativeBinary, type NativeResult } from './native-binary.js';

let result: NativeResult | undefined;

/** The addon load, tried once per process (a failed dlopen does not get better on a retry). */
export function nativeLoadResult(): NativeResult {
  return (result ??= loadNativeBinary());
}

/** The native backend; throws, saying where Kiln looked and what to install, when no binary loads. */
export function loadNative(): Backend {
  const r = nativeLoadResult();
  if (!r.ok) throw new Error(`kiln: ${describeFailure(r)}`);
  return r.addon as Backend;
}
