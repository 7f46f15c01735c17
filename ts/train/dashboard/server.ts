/**
 * Dashboard for Node: serves the live view on 127.0.0.1 (a random free port by default) while
 * `fit` runs and prints its URL. The page gets the run's events over Server-Sent Events
 * (/events; a page opened late first receives everything so far), draws them with the view
 * component (view.ts, compiled to dist/) and uPlot served from node_modules: nothing from a CDN.
 *
 *   await kiln.fit(model, data, { ..., dashboard: true });            // prints http://127.0.0.1:PORT/
 *   await kiln.fit(model, data, { ..., callbacks: [new kiln.train.Dashboard({ port: 6006, keepOpen: true })] });
 */

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import type { TrainingContext } from '../callbacks.js';
import { DashboardCallback, type DashboardOptions } from './callback.js';
import type { DashboardEvent } from './events.js';

/** Options of Node's {@link Dashboard}: the shared dashboard options plus where and how long the page is served. */
export interface ServedDashboardOptions extends DashboardOptions {
  /** Port on 127.0.0.1 (default 0: a random free port). */
  port?: number;
  /** Keep serving after fit ends (call `close()` when done); by default the server stops with fit. */
  keepOpen?: boolean;
  /** Print the URL when training begins (default true). */
  printUrl?: boolean;
}

/** The compiled view module: beside this file in dist/, or dist/'s twin when running from ts/ sources. */
function viewModulePath(): string {
  const here = fileURLToPath(new URL('./view.js', import.meta.url));
  if (existsSync(here)) return here;
  const twin = here.replace(/([\\/])ts([\\/]train[\\/]dashboard[\\/]view\.js)$/, '$1dist$2');
  if (existsSync(twin)) return twin;
  throw new Error(`Dashboard: the compiled view (${here} or ${twin}) is missing; build Kiln first (npm run setup)`);
}

function uplotDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
}

function page(title: string): string {
  const escaped = title.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escaped}</title>
<link rel="stylesheet" href="/vendor/uPlot.min.css">
<script type="importmap">{ "imports": { "uplot": "/vendor/uPlot.esm.js" } }</script>
<style>body{margin:16px;background:#fafafa}</style></head>
<body><div id="dashboard"></div>
<script type="module">
import { mountDashboard } from '/view.js';
const view = mountDashboard(document.getElementById('dashboard'), { title: ${JSON.stringify(title)} });
window.kilnDashboard = view;
const source = new EventSource('/events');
source.onmessage = (m) => {
  const event = JSON.parse(m.data);
  view.handle(event);
  if (event.type === 'end') source.close();
};
</script></body></html>
`;
}

/**
 * A training callback for Node that serves the live dashboard on http://127.0.0.1 while `fit`
 * runs and prints its URL. Pages receive the run's events over Server-Sent Events; a page opened
 * late is first sent everything so far. The server stops when training ends unless `keepOpen`.
 */
export class Dashboard extends DashboardCallback {
  private server: Server | null = null;
  private readonly clients = new Set<ServerResponse>();
  private history: DashboardEvent[] = [];
  /** The page's address once training has begun (http://127.0.0.1:PORT/). */
  url = '';

  /** Validates the port (an integer in [0, 65535]); the server itself starts in `onTrainBegin`. */
  constructor(private readonly served: ServedDashboardOptions = {}) {
    super(served, (raw) => deflateSync(raw));
    const port = served.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Dashboard: port must be an integer in [0, 65535], got ${port}`);
  }

  /** Starts the server (once; a kept-open server serves the next fit too) and prints the URL. */
  override async onTrainBegin(ctx?: TrainingContext): Promise<void> {
    this.history = [];
    if (this.server === null) await this.listen();
    if (this.served.printUrl !== false) console.log(`Dashboard: ${this.url}`);
    super.onTrainBegin(ctx);
  }

  /** Sends the end event, then stops the server unless `keepOpen` was set. */
  override async onTrainEnd(ctx?: TrainingContext): Promise<void> {
    super.onTrainEnd(ctx);
    if (!this.served.keepOpen) await this.close();
  }

  /** Stops serving: open pages keep what they show. */
  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const res of this.clients) res.end();
    this.clients.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  protected publish(event: DashboardEvent): void {
    this.history.push(event);
    const frame = `data: ${JSON.stringify(event)}\n\n`;
    for (const res of this.clients) res.write(frame);
  }

  private async listen(): Promise<void> {
    const view = viewModulePath();
    const vendor = uplotDir();
    const files: Record<string, [string, string]> = {
      '/view.js': [view, 'text/javascript'],
      '/vendor/uPlot.esm.js': [join(vendor, 'uPlot.esm.js'), 'text/javascript'],
      '/vendor/uPlot.min.css': [join(vendor, 'uPlot.min.css'), 'text/css'],
    };
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0]!;
      // Unless kept open, no connection keeps the process alive once training is over (or has thrown).
      if (!this.served.keepOpen) req.socket.unref();
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(this.options.title ?? 'Kiln training'));
      } else if (path === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        for (const event of this.history) res.write(`data: ${JSON.stringify(event)}\n\n`);
        this.clients.add(res);
        req.on('close', () => this.clients.delete(res));
      } else if (files[path]) {
        const [file, type] = files[path]!;
        res.writeHead(200, { 'content-type': type }).end(readFileSync(file));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`Dashboard: cannot listen on 127.0.0.1:${this.served.port ?? 0}: ${e.message}`)));
      server.listen(this.served.port ?? 0, '127.0.0.1', () => resolve());
    });
    if (!this.served.keepOpen) server.unref();
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }
}
