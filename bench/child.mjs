// Runs one workload of one peer in a process of its own and prints its peak resident set size, so
// one library's memory does not count against another's. Started by run.mjs for workloads with a
// `child` field:
//   node --expose-gc bench/child.mjs <peer module, e.g. kiln> <kind, e.g. mlpTrain> '<params JSON>'
// Prints one JSON line: { peakRSS, loadedRSS, maxRSS, seconds }: kilobytes (peak at the end, and
// peak after loading the library, before the workload), and what the workload function returned.
//
// Why VmHWM and not only process.resourceUsage().maxRSS: on Linux a child started by Node (libuv
// forks, then execs) inherits in its maxRSS the parent's resident size at the fork, so a child of
// the benchmark process would report at least the benchmark process's RSS (a 40 MB script spawned
// by a 440 MB parent reports 413 MB). /proc/self/status VmHWM is the high-water mark of this
// process image only (it starts fresh at exec) and equals maxRSS for a child of a small parent.
// maxRSS is printed too; peakRSS is VmHWM where /proc exists, else maxRSS.
import { readFileSync } from 'node:fs';

function peakKb() {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m);
    if (m) return Number(m[1]);
  } catch {
    // not Linux: fall back to getrusage
  }
  return process.resourceUsage().maxRSS;
}

const [peerName, kind, paramsJson] = process.argv.slice(2);
const peer = (await import(`./peers/${peerName}.mjs`)).default;
await peer.init();
// A peer that computes in a process of its own (PyTorch's Python server) reports that process's
// peak (`peakRSS()`, kilobytes); this Node process only drives it.
const peakOfPeer = async () => (peer.peakRSS ? await peer.peakRSS() : peakKb());
const loadedRSS = await peakOfPeer();
const fn = peer.workloads[kind];
if (!fn) throw new Error(`${peerName} has no workload '${kind}'`);
const seconds = await fn.call(peer, JSON.parse(paramsJson));
const peakRSS = await peakOfPeer();
await peer.close?.();
console.log(JSON.stringify({ peakRSS, loadedRSS, maxRSS: process.resourceUsage().maxRSS, seconds }));
