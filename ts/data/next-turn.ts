/**
 * Runs a callback on a later turn of the event loop, in Node and in browsers: Node's setImmediate,
 * or a MessageChannel message where there is none (a page or a worker). Not setTimeout(0): browsers
 * clamp nested timeouts to 4 ms, which would cost every prefetched batch 4 ms.
 */

type Cancel = () => void;

const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
const clearImmediateFn = (globalThis as { clearImmediate?: (t: unknown) => void }).clearImmediate;
// The browser's MessageChannel (Node's typings describe its own, with another port API).
interface Port {
  onmessage: (() => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}
const Channel = (globalThis as unknown as { MessageChannel: new () => { port1: Port; port2: Port } }).MessageChannel;

/** Calls `callback` on a later turn; the returned function cancels it if it has not run yet. */
export function onNextTurn(callback: () => void): Cancel {
  if (immediate !== undefined && clearImmediateFn !== undefined) {
    const timer = immediate(callback);
    return () => clearImmediateFn(timer);
  }
  let cancelled = false;
  const channel = new Channel();
  channel.port1.onmessage = () => {
    channel.port1.close();
    if (!cancelled) callback();
  };
  channel.port2.postMessage(null);
  return () => {
    cancelled = true;
    channel.port1.close();
  };
}
