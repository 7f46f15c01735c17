// `postpack`: package.json back to the repository's form (scripts/platform-manifest.mjs).
import { setPlatformDependencies } from './platform-manifest.mjs';

setPlatformDependencies(false);
