/**
 * The Kiln version recorded in models saved from a browser. A page cannot read package.json, so
 * scripts/build-web.mjs writes the version into the bundle (esbuild's `define` replaces
 * `__KILN_VERSION__`); compiled any other way the identifier is undeclared and this says 'unknown'.
 */

declare const __KILN_VERSION__: string | undefined;

/** Kiln's package version as built into the browser bundle, or 'unknown'. */
export function kilnVersion(): string {
  return typeof __KILN_VERSION__ === 'string' ? __KILN_VERSION__ : 'unknown';
}
