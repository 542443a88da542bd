/**
 * The mark-sweep managed heap inside the emulator: binary-trees (the Computer Language
 * Benchmarks Game: a stretch tree of depth max + 1, a long-lived tree of depth max, then
 * 2^(max - d + 4) trees of depth d for d = 4, 6, ..., max, each walked once; nodes of two
 * pointer fields) and a loop of allocations dropped at once (the allocation fast path).
 * Figures are objects allocated per second of host CPU time (process.cpuUsage, which other
 * processes sharing the host's cores do not inflate, as they do wall-clock time); the pause
 * times are emulated, from the heap's report.
 *
 *   npx tsx test/bench/run.ts gc-marksweep                    (depth 16, both modes, GOGC=100)
 *   npx tsx test/bench/gc-marksweep.bench.ts [depth] [stw|incremental] [GOGC|off]
 *
 * The walk's node count is checked against the trees built (a collector that freed a live
 * node would make it wrong or abort the program).
 */
import { pathToFileURL } from 'node:url';
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import type { GcReport, UserMain } from '../../kernel/proc/uapi.ts';
import { MarkSweepCollector } from '../../userland/gc/marksweep.ts';
import { ManagedHeap } from '../../userland/gc/runtime.ts';
import { Libc } from '../../userland/libc/libc.ts';
import type { BenchFigure } from './run.ts';

const MIN_DEPTH = 4;
const MACHINE_BYTES = 96 << 20;
const FAST_PATH_OBJECTS = 1_000_000;

export type Mode = 'stw' | 'incremental';

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

/** What a binary-trees run saw: nodes walked, and the most heapBytes seen after a tree. */
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

/** The nodes binary-trees walks: every tree it builds, whole. */
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

export interface GcRun {
  /** Host CPU seconds the program's body took. */
  seconds: number;
  report: GcReport;
}

/** Run `body` on a mark-sweep heap in a fresh machine; host CPU seconds and the final report. */
export function runOnHeap(
  mode: Mode,
  gogc: number,
  body: (heap: ManagedHeap) => Generator<void, void, void>,
): GcRun {
  let report: GcReport | undefined;
  let seconds = 0;
  const main: UserMain = function* (ctx) {
    const heap = new ManagedHeap(new Libc(ctx), {
      collector: (env) => new MarkSweepCollector(env),
      tunables: { incremental: mode === 'incremental', gogc },
    });
    const t0 = process.cpuUsage();
    yield* body(heap);
    const used = process.cpuUsage(t0);
    seconds = (used.user + used.system) / 1e6;
    report = { ...heap.report() };
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

function treesFigures(depth: number, mode: Mode, gogc: number): BenchFigure[] {
  const out: TreesOut = { nodes: 0, peakHeapBytes: 0 };
  const { seconds, report } = runOnHeap(mode, gogc, binaryTrees(depth, out));
  if (out.nodes !== expectedNodes(depth))
    throw new Error(`binary-trees ${depth}: walked ${out.nodes} nodes, not ${expectedNodes(depth)}`);
  const label = `binary-trees ${depth}, ${mode}, GOGC=${gogc}`;
  return [
    { name: `${label}: objects allocated`, value: report.objectsAllocated / seconds, unit: 'objects/s' },
    { name: `${label}: collections`, value: report.majorCollections, unit: 'cycles' },
    { name: `${label}: longest pause (emulated)`, value: report.pauseMaxNs / 1e6, unit: 'ms' },
    { name: `${label}: total pause (emulated)`, value: report.pauseTotalNs / 1e6, unit: 'ms' },
    { name: `${label}: peak heap`, value: out.peakHeapBytes / 2 ** 20, unit: 'MiB' },
    { name: `${label}: host CPU time`, value: seconds, unit: 's' },
  ];
}

function fastPathFigure(mode: Mode): BenchFigure {
  const fast = runOnHeap(mode, 100, allocationLoop(FAST_PATH_OBJECTS));
  return {
    name: `alloc+pop loop (32-byte objects), ${mode}`,
    value: fast.report.objectsAllocated / fast.seconds,
    unit: 'objects/s',
  };
}

function print(f: BenchFigure): void {
  const v = f.value >= 100 ? Math.round(f.value).toLocaleString('en-US') : f.value.toFixed(2);
  console.log(`${f.name.padEnd(60)} ${v.padStart(12)} ${f.unit}`);
}

export function run(): BenchFigure[] {
  return [fastPathFigure('stw'), ...treesFigures(16, 'stw', 100), ...treesFigures(16, 'incremental', 100)];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const depth = Number(process.argv[2] ?? 16);
  const mode: Mode = process.argv[3] === 'incremental' ? 'incremental' : 'stw';
  const gogc = process.argv[4] === 'off' ? -1 : Number(process.argv[4] ?? 100);
  print(fastPathFigure(mode));
  for (const f of treesFigures(depth, mode, gogc)) print(f);
}
