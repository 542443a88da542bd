/**
 * The generational collector inside the emulator: the allocation fast path alone, then
 * binary-trees (the Benchmarks Game program: a stretch tree of depth max+1, a long-lived tree
 * of depth max, and 2^(max - d + 4) trees of each depth d = 4, 6, .., max built and checked),
 * every node an object of 2 fields in the managed heap. Prints objects allocated per second
 * of host CPU time (this process's user + system time, steadier than the wall clock on a
 * shared machine) and of emulated time, and the minor and full pauses (emulated).
 *
 *   npx tsx test/bench/gc-generational.ts [maxDepth=16] [nurseryKiB=1024] [promotionAge=2]
 */
import { performance } from 'node:perf_hooks';
import type { GcReport } from '../../kernel/proc/uapi.ts';
import type { GcTunables } from '../../userland/gc/collector.ts';
import { GenerationalCollector } from '../../userland/gc/generational.ts';
import { ManagedHeap } from '../../userland/gc/runtime.ts';
import { Libc } from '../../userland/libc/libc.ts';
import { bootTestMachine } from '../helpers/kernel.ts';

const MIN_DEPTH = 4;

/** Seconds of CPU this process has used. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
const FAST_PATH_OBJECTS = 1 << 20;

interface Pauses {
  minor: number[];
  full: number[];
}

/** Bookkeeping of the pauses: after each allocation, a collection that ended is filed by kind. */
class PauseLog {
  readonly pauses: Pauses = { minor: [], full: [] };
  private minors = 0;
  private fulls = 0;
  constructor(private readonly r: Readonly<GcReport>) {
    this.minors = r.minorCollections;
    this.fulls = r.majorCollections;
  }

  note(): void {
    const r = this.r;
    if (r.majorCollections !== this.fulls) this.pauses.full.push(r.lastPauseNs);
    else if (r.minorCollections !== this.minors) this.pauses.minor.push(r.lastPauseNs);
    this.minors = r.minorCollections;
    this.fulls = r.majorCollections;
  }
}

/** A tree of `depth` on top of the shadow stack (one slot). */
function bottomUp(heap: ManagedHeap, log: PauseLog, depth: number): void {
  if (depth > 0) {
    bottomUp(heap, log, depth - 1);
    bottomUp(heap, log, depth - 1);
  }
  heap.alloc(2, 0);
  log.note();
  if (depth === 0) return;
  const node = heap.top();
  heap.set(node, 0, heap.top(2));
  heap.set(node, 1, heap.top(1));
  heap.setSlot(heap.depth() - 3, node);
  heap.pop(2);
}

/** Nodes of the tree at `node` (reads only: no allocation, the references stay valid). */
function check(heap: ManagedHeap, node: number): number {
  const left = heap.get(node, 0);
  return left === 0 ? 1 : 1 + check(heap, left) + check(heap, heap.get(node, 1));
}

interface Result {
  fastPathWallPerSec: number;
  fastPathHostPerSec: number;
  fastPathEmulatedPerSec: number;
  nodes: number;
  hostSeconds: number;
  emulatedSeconds: number;
  report: GcReport;
  pauses: Pauses;
}

function binaryTrees(maxDepth: number, tunables: Partial<GcTunables>): Result {
  const m = bootTestMachine({ memoryMiB: 256 });
  let result: Result | undefined;
  m.start(function* (ctx) {
    const libc = new Libc(ctx);
    const heap = new ManagedHeap(libc, { collector: (env) => new GenerationalCollector(env), tunables });
    const gc = heap.collector;
    // the fast path alone: objects nobody keeps, allocated straight from the collector
    let t0 = cpuSeconds();
    const w0 = performance.now();
    let e0 = heap.stats.nowNs();
    for (let i = 0; i < FAST_PATH_OBJECTS; i++) gc.allocate(2, 0, 0);
    const fastHost = cpuSeconds() - t0;
    const fastWall = (performance.now() - w0) / 1000;
    const fastEmulated = (heap.stats.nowNs() - e0) / 1e9;
    heap.collect('full');
    const log = new PauseLog(heap.report());
    const allocated0 = heap.report().objectsAllocated;
    t0 = cpuSeconds();
    e0 = heap.stats.nowNs();
    const stretch = maxDepth + 1;
    bottomUp(heap, log, stretch);
    const stretchNodes = check(heap, heap.top());
    heap.pop();
    bottomUp(heap, log, maxDepth);
    const longLived = heap.depth() - 1;
    let checked = stretchNodes;
    for (let d = MIN_DEPTH; d <= maxDepth; d += 2) {
      const iterations = 1 << (maxDepth - d + MIN_DEPTH);
      for (let i = 0; i < iterations; i++) {
        bottomUp(heap, log, d);
        checked += check(heap, heap.top());
        heap.pop();
      }
      yield;
    }
    checked += check(heap, heap.slot(longLived));
    const hostSeconds = cpuSeconds() - t0;
    const emulatedSeconds = (heap.stats.nowNs() - e0) / 1e9;
    const nodes = heap.report().objectsAllocated - allocated0;
    if (checked !== nodes) throw new Error(`binary-trees: checked ${checked} nodes, allocated ${nodes}`);
    result = {
      fastPathWallPerSec: FAST_PATH_OBJECTS / fastWall,
      fastPathHostPerSec: FAST_PATH_OBJECTS / fastHost,
      fastPathEmulatedPerSec: FAST_PATH_OBJECTS / fastEmulated,
      nodes,
      hostSeconds,
      emulatedSeconds,
      report: { ...heap.report() },
      pauses: log.pauses,
    };
    heap.destroy();
    return 0;
  });
  m.runToEnd();
  if (result === undefined) throw new Error(`binary-trees failed: ${m.lastLog()}`);
  return result;
}

const us = (ns: number): string => `${(ns / 1000).toFixed(1)} us`;
const rate = (n: number): string => `${(n / 1e6).toFixed(2)} M/s`;

function summary(label: string, xs: number[]): string {
  if (xs.length === 0) return `${label}: none`;
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const p50 = sorted[Math.floor(sorted.length / 2)]!;
  return `${label}: ${xs.length}, mean ${us(mean)}, median ${us(p50)}, max ${us(sorted.at(-1)!)}`;
}

const [depthArg, nurseryArg, ageArg] = process.argv.slice(2);
const maxDepth = Number(depthArg ?? 16);
const nurseryBytes = Number(nurseryArg ?? 1024) * 1024;
const promotionAge = Number(ageArg ?? 2);
const r = binaryTrees(maxDepth, { nurseryBytes, promotionAge });
const g = r.report;
console.log(
  `binary-trees depth ${maxDepth}, nursery 2 x ${nurseryBytes >> 10} KiB, promotionAge ${promotionAge}`,
);
console.log(
  `fast path (allocate, no survivors): ${rate(r.fastPathHostPerSec)} host CPU, ${rate(r.fastPathWallPerSec)} wall, ${rate(r.fastPathEmulatedPerSec)} emulated`,
);
console.log(
  `binary-trees: ${r.nodes} nodes in ${r.hostSeconds.toFixed(1)} s host CPU (${rate(r.nodes / r.hostSeconds)}), ${r.emulatedSeconds.toFixed(3)} s emulated (${rate(r.nodes / r.emulatedSeconds)})`,
);
console.log(summary('minor pauses', r.pauses.minor));
console.log(summary('full pauses', r.pauses.full));
console.log(
  `promoted ${g.objectsPromoted}, moved ${g.objectsMoved} (${(g.bytesMoved / 2 ** 20).toFixed(1)} MiB), freed ${g.objectsFreed}, marked ${(g.bytesMarked / 2 ** 20).toFixed(1)} MiB, barrier ${g.barrierStores} stores / ${g.barrierHits} hits, heap ${(g.heapBytes / 2 ** 20).toFixed(1)} MiB`,
);
