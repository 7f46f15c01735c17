// A small static server for the browser demo: serves the repository on 127.0.0.1 (the page at
// /examples/web/, the bundle at /dist-web/, the model at /out/mnist/model/), with the MIME types
// browsers need (application/wasm for WebAssembly.instantiateStreaming, text/javascript for modules)
// and, unless --no-isolation, the two headers that make a page cross-origin isolated
// (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp): only such
// a page may share memory with workers, which Kiln's threaded WASM build needs.
//
//   npm run web                                  # builds dist-web/ and serves on http://127.0.0.1:8080/
//   node scripts/serve-web.mjs --port 0 --no-build   # any free port; prints the URL
//   node scripts/serve-web.mjs --no-isolation        # no COOP/COEP: Kiln runs single-threaded
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { ROOT } from './lib.mjs';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

/** The headers that make a page cross-origin isolated (and allow SharedArrayBuffer). */
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/**
 * Starts the server; resolves to { server, url } once it listens. `mounts` maps URL prefixes
 * ('/model/') to other directories; `isolated` sends COOP/COEP.
 */
export function serve({ port = 8080, host = '127.0.0.1', root = ROOT, isolated = true, mounts = {} } = {}) {
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (path === '/') {
      res.writeHead(302, { location: '/examples/web/' }).end();
      return;
    }
    const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix));
    const base = mount ? mounts[mount] : root;
    let file = normalize(join(base, mount ? path.slice(mount.length) : path));
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    let st;
    try {
      st = statSync(file);
      if (st.isDirectory()) {
        file = join(file, 'index.html');
        st = statSync(file);
      }
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file)] ?? 'application/octet-stream',
      'content-length': st.size,
      'cache-control': 'no-cache',
      ...(isolated ? ISOLATION : {}),
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      resolve({ server, url: `http://${host}:${p}/` });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--port');
  const port = i >= 0 ? Number(args[i + 1]) : Number(process.env.PORT ?? 8080);
  if (!args.includes('--no-build')) {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  const { url } = await serve({ port, isolated: !args.includes('--no-isolation') });
  console.log(`serving ${ROOT} at ${url} (the demo: ${url}examples/web/); Ctrl-C stops`);
}
