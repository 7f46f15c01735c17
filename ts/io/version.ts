/** The Kiln version recorded in saved models and checkpoints (read once from package.json). */

import fs from 'node:fs';
import { PACKAGE_NAME } from '../package-name.js';

let cached: string | undefined;

/** Kiln's package version, or 'unknown' if package.json cannot be found (e.g. in a bundle). */
export function kilnVersion(): string {
  if (cached !== undefined) return cached;
  try {
    // ts/io/version.ts and dist/io/version.js both sit two levels below the package root.
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
    cached = pkg.name === PACKAGE_NAME && typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
