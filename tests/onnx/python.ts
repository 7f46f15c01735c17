/** The Python of Kiln's reference venv (scripts/python.mjs), which `npm test` passes as KILN_PYTHON. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const pythonBin = process.env.KILN_PYTHON ?? join(homedir(), '.cache', 'kiln', 'venv', 'bin', 'python');
