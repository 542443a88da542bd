/**
 * The reference-counting managed heap inside the emulator: the same binary-trees and
 * allocation loop as gc-marksweep.bench.ts (a stretch tree of depth max + 1, a long-lived tree
 * of depth max, then 2^(max - d + 4) trees of depth d for d = 4, 6, ..., max, each walked once;
 * nodes of two pointer fields), with and without the cycle collector, and the cost of the
 * count updates alone: a loop storing one of two objects in a field, each store one increment
 * and one decrement (barrierStores); and rings of 64 nodes dropped as soon as built (garbage
 * only the cycle collector frees: without it the heap grows). Figures are per second of host CPU time
 * (process.cpuUsage); pauses are emulated, from the heap's report.
 *
 *   npx tsx test/bench/run.ts gc-refcount                 (depth 16, cycle collector on and off)
 *   npx tsx test/bench/gc-refcount.bench.ts [depth] [on|off] [threshold0]
 *
 * The walk's node count is checked against the trees built, and with the cycle collector every
 * object must be freed by the end (trees have no cycles: counting alone frees each one when it
 * is popped; the rings need the final full collection).
 */
import { pathToFileURL } from 'node:url';
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import type { GcReport, UserMain } from '../../kernel/proc/uapi.ts';
import type { GcTunables } from '../../userland/gc/collector.ts';
import { RefcountCollector } from '../../userland/gc/refcount.ts';
import { ManagedHeap } from '../../userland/gc/runtime.ts';
import { Libc } from '../../userland/libc/libc.ts';
import type { BenchFigure } from './run.ts';

const MIN_DEPTH = 4;
const MACHINE_BYTES = 96 << 20;
const FAST_PATH_OBJECTS = 1_000_000;
const STORE_LOOP_STORES = 1_000_000;
const RINGS = 2000;
const RING_NODES = 64;

/** A tree of `depth` below a new node, left on the shadow stack; the node. */
function bottomUpTree(heap: ManagedHeap, depth: number): number {
  if (depth === 0) return heap.alloc(2, 0);
  bottomUpTree(heap, depth - 1);
  bottomUpTree(heap, depth - 1);
  const node = heap.alloc(2, 0);
  heap.set(node, 0, heap.top(2));
  heap.set(node, 1, heap.top(1));
  heap.setSlot(heap.depth() - 3, node);
  heap.pop(2);
  return node;
}

/** Nodes of the tree under `node`. */
function itemCheck(heap: ManagedHeap, node: number): number {
  const left = heap.get(node, 0);
  return left === 0 ? 1 : 1 + itemCheck(heap, left) + itemCheck(heap, heap.get(node, 1));
}

interface TreesOut {
  nodes: number;
  peakHeapBytes: number;
}

function binaryTrees(maxDepth: number, out: TreesOut): (heap: ManagedHeap) => Generator<void, void, void> {
  return function* (heap) {
    const sample = (): void => {
      out.peakHeapBytes = Math.max(out.peakHeapBytes, heap.report().heapBytes);
    };
    const stretch = bottomUpTree(heap, maxDepth + 1);
    out.nodes += itemCheck(heap, stretch);
    sample();
    heap.pop();
    const longLived = bottomUpTree(heap, maxDepth);
    for (let d = MIN_DEPTH; d <= maxDepth; d += 2) {
      const iterations = 1 << (maxDepth - d + MIN_DEPTH);
      for (let i = 0; i < iterations; i++) {
        out.nodes += itemCheck(heap, bottomUpTree(heap, d));
        heap.pop();
        if ((i & 63) === 0) {
          sample();
          yield;
        }
      }
    }
    out.nodes += itemCheck(heap, longLived);
    heap.pop();
  };
}

function expectedNodes(maxDepth: number): number {
  let n = 2 ** (maxDepth + 2) - 1 + 2 ** (maxDepth + 1) - 1;
  for (let d = MIN_DEPTH; d <= maxDepth; d += 2) n += 2 ** (maxDepth - d + MIN_DEPTH) * (2 ** (d + 1) - 1);
  return n;
}

function allocationLoop(objects: number): (heap: ManagedHeap) => Generator<void, void, void> {
  return function* (heap) {
    for (let i = 0; i < objects; i++) {
      heap.alloc(2, 0);
      heap.pop();
      if ((i & 4095) === 0) yield;
    }
  };
}

/**
 * `stores` field stores alternating two referents, each one increment and one decrement; the
 * emulated nanoseconds they took go to `out.emulatedNs`.
 */
function storeLoop(
  stores: number,
  out: { emulatedNs: number },
): (heap: ManagedHeap) => Generator<void, void, void> {
  return function* (heap) {
    const holder = heap.alloc(1, 0);
    const a = heap.alloc(0, 8);
    const b = heap.alloc(0, 8);
    const t0 = heap.stats.nowNs();
    for (let i = 0; i < stores; i++) {
      heap.set(holder, 0, (i & 1) === 0 ? a : b);
      if ((i & 4095) === 0) yield;
    }
    out.emulatedNs = heap.stats.nowNs() - t0;
    heap.pop(3);
  };
}

/** `rings` rings of `size` nodes, each dropped once built: garbage that only the cycle collector frees. */
function ringLoop(
  rings: number,
  size: number,
  out: TreesOut,
): (heap: ManagedHeap) => Generator<void, void, void> {
  return function* (heap) {
    for (let r = 0; r < rings; r++) {
      heap.alloc(1, 16);
      heap.push(heap.top());
      for (let i = 1; i < size; i++) {
        const node = heap.alloc(1, 16);
        heap.set(node, 0, heap.top(1));
        heap.setSlot(heap.depth() - 2, node);
        heap.pop();
      }
      heap.set(heap.top(1), 0, heap.top());
      heap.pop(2);
      if ((r & 15) === 0) {
        out.peakHeapBytes = Math.max(out.peakHeapBytes, heap.report().heapBytes);
        yield;
      }
    }
    heap.collect('full');
  };
}

interface GcRun {
  seconds: number;
  report: GcReport;
}

/** Run `body` on a refcount heap in a fresh machine; host CPU seconds of the body and the final report. */
function runOnHeap(
  tunables: Partial<GcTunables>,
  body: (heap: ManagedHeap) => Generator<void, void, void>,
): GcRun {
  let report: GcReport | undefined;
  let seconds = 0;
  const main: UserMain = function* (ctx) {
    const heap = new ManagedHeap(new Libc(ctx), { collector: (env) => new RefcountCollector(env), tunables });
    const t0 = process.cpuUsage();
    yield* body(heap);
    const used = process.cpuUsage(t0);
    seconds = (used.user + used.system) / 1e6;
    report = { ...heap.report() };
    if (report.objectsFreed !== report.objectsAllocated && tunables.cycleCollector !== false)
      throw new Error('objects left in the heap');
    heap.destroy();
    return 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: MACHINE_BYTES }), {
    loader: (path) =>
      path === '/bin/gc-bench' ? { path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 } : undefined,
  });
  const task = m.kernel.spawn('/bin/gc-bench', ['gc-bench']);
  if (typeof task === 'number') throw new Error(`spawn failed: ${task}`);
  m.kernel.run();
  if (task.waitStatus !== 0 || report === undefined)
    throw new Error(`bench program ended with status ${task.waitStatus}: ${m.kernel.log.at(-1)?.text ?? ''}`);
  return { seconds, report };
}

const label = (cycles: boolean): string => `cycle collector ${cycles ? 'on' : 'off'}`;

/** binary-trees of `depth`; `threshold0` is generation 0's threshold (CPython's 700 by default). */
function treesFigures(depth: number, cycles: boolean, threshold0 = 700): BenchFigure[] {
  const out: TreesOut = { nodes: 0, peakHeapBytes: 0 };
  const tunables = { cycleCollector: cycles, thresholds: [threshold0, 10, 10] as const };
  const { seconds, report } = runOnHeap(tunables, binaryTrees(depth, out));
  if (out.nodes !== expectedNodes(depth))
    throw new Error(`binary-trees ${depth}: walked ${out.nodes} nodes, not ${expectedNodes(depth)}`);
  const name = `binary-trees ${depth}, ${label(cycles)}${threshold0 === 700 ? '' : `, threshold ${threshold0}`}`;
  return [
    { name: `${name}: objects allocated`, value: report.objectsAllocated / seconds, unit: 'objects/s' },
    { name: `${name}: minor collections (generations 0, 1)`, value: report.minorCollections, unit: 'cycles' },
    { name: `${name}: full collections`, value: report.majorCollections, unit: 'cycles' },
    { name: `${name}: longest pause (emulated)`, value: report.pauseMaxNs / 1e6, unit: 'ms' },
    { name: `${name}: total pause (emulated)`, value: report.pauseTotalNs / 1e6, unit: 'ms' },
    {
      name: `${name}: count updates`,
      value: report.barrierStores / report.objectsAllocated,
      unit: 'per object',
    },
    { name: `${name}: peak heap`, value: out.peakHeapBytes / 2 ** 20, unit: 'MiB' },
    { name: `${name}: host CPU time`, value: seconds, unit: 's' },
  ];
}

function fastPathFigure(cycles: boolean): BenchFigure {
  const fast = runOnHeap({ cycleCollector: cycles }, allocationLoop(FAST_PATH_OBJECTS));
  return {
    name: `alloc+pop loop (32-byte objects), ${label(cycles)}`,
    value: fast.report.objectsAllocated / fast.seconds,
    unit: 'objects/s',
  };
}

function storeFigures(): BenchFigure[] {
  const out = { emulatedNs: 0 };
  const { seconds, report } = runOnHeap({}, storeLoop(STORE_LOOP_STORES, out));
  return [
    {
      name: 'field stores (one increment, one decrement each)',
      value: STORE_LOOP_STORES / seconds,
      unit: 'stores/s',
    },
    { name: 'count updates', value: report.barrierStores / seconds, unit: 'updates/s' },
    { name: 'field store, emulated time', value: out.emulatedNs / STORE_LOOP_STORES, unit: 'ns' },
  ];
}

function ringFigures(cycles: boolean): BenchFigure[] {
  const out: TreesOut = { nodes: 0, peakHeapBytes: 0 };
  const { seconds, report } = runOnHeap({ cycleCollector: cycles }, ringLoop(RINGS, RING_NODES, out));
  const name = `${RINGS} dropped rings of ${RING_NODES}, ${label(cycles)}`;
  return [
    { name: `${name}: objects allocated`, value: report.objectsAllocated / seconds, unit: 'objects/s' },
    { name: `${name}: objects freed`, value: report.objectsFreed, unit: 'objects' },
    { name: `${name}: minor collections (generations 0, 1)`, value: report.minorCollections, unit: 'cycles' },
    { name: `${name}: full collections`, value: report.majorCollections, unit: 'cycles' },
    { name: `${name}: longest pause (emulated)`, value: report.pauseMaxNs / 1e6, unit: 'ms' },
    { name: `${name}: peak heap`, value: out.peakHeapBytes / 2 ** 20, unit: 'MiB' },
  ];
}

function print(f: BenchFigure): void {
  const v = f.value >= 100 ? Math.round(f.value).toLocaleString('en-US') : f.value.toFixed(2);
  console.log(`${f.name.padEnd(60)} ${v.padStart(12)} ${f.unit}`);
}

export function run(): BenchFigure[] {
  return [
    fastPathFigure(true),
    ...storeFigures(),
    ...ringFigures(true),
    ...ringFigures(false),
    ...treesFigures(16, true),
    ...treesFigures(16, false),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const depth = Number(process.argv[2] ?? 16);
  const cycles = process.argv[3] !== 'off';
  const threshold0 = Number(process.argv[4] ?? 700);
  print(fastPathFigure(cycles));
  for (const f of storeFigures()) print(f);
  for (const f of ringFigures(cycles)) print(f);
  for (const f of treesFigures(depth, cycles, threshold0)) print(f);
}
