// The platform packages in kiln-ml's published manifest. As napi-rs projects do (`napi
// pre-publish`), the repository's package.json lists no optionalDependencies: the platform
// packages are not on the registry until a release publishes them, and `npm ci` in a clone would
// fail on them. `prepack` adds one per npm/<platform>/ at kiln-ml's version; `postpack` removes them.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

const MANIFEST = join(ROOT, 'package.json');

/** `{ 'kiln-ml-linux-x64-gnu': '0.1.0', ... }`: every npm/<platform>/package.json, at kiln-ml's version. */
export function platformDependencies() {
  const { name, version } = JSON.parse(readFileSync(MANIFEST, 'utf8'));
  const deps = {};
  for (const dir of readdirSync(join(ROOT, 'npm')).sort()) {
    const sub = JSON.parse(readFileSync(join(ROOT, 'npm', dir, 'package.json'), 'utf8'));
    if (sub.name !== `${name}-${dir}` || sub.version !== version) {
      throw new Error(`npm/${dir}/package.json: expected ${name}-${dir}@${version}, found ${sub.name}@${sub.version}`);
    }
    deps[sub.name] = version;
  }
  return deps;
}

/** Adds (true) or removes (false) the platform packages in package.json's optionalDependencies. */
export function setPlatformDependencies(add) {
  const text = readFileSync(MANIFEST, 'utf8');
  const pkg = JSON.parse(text);
  if (add) pkg.optionalDependencies = platformDependencies();
  else delete pkg.optionalDependencies;
  const next = JSON.stringify(pkg, null, 2) + '\n';
  if (next !== text) writeFileSync(MANIFEST, next);
}
