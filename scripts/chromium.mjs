// The browser for the real-browser tests (tests/browser/) and `npm run bench:web`: Debian's
// chromium, driven by playwright-core (a devDependency) through executablePath. Browser
// downloads (`npx playwright install`) cannot work here, so the system package it is.
import { existsSync } from 'node:fs';
import { run, step } from './lib.mjs';

export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';

/** Launch flags that work here as root, headless, with nothing reaching out to the network. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Installs Debian's chromium with apt-get when it is missing (as root, or through sudo). */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  step(`${CHROMIUM} is missing: installing Debian's chromium for the browser tests (apt-get update, apt-get install -y chromium; a few minutes, once)`);
  const root = process.getuid?.() === 0;
  const apt = (args) => (root ? run('apt-get', args) : run('sudo', ['apt-get', ...args]));
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'chromium']);
  if (!existsSync(CHROMIUM)) {
    console.error(`[kiln] chromium was installed but ${CHROMIUM} is still missing; set KILN_CHROMIUM to its path`);
    process.exit(1);
  }
}
