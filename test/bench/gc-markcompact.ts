/**
 * The mark-compact collector on a binary-trees program (the benchmarks game's: one long-lived
 * tree, then many short-lived trees of growing depth, each built and checked), inside the
 * emulator, at several GOGC settings.
 *
 *   npx tsx test/bench/gc-markcompact.ts [maxDepth]     (default 12)
 *
 * Host figures are wall-clock (idle machine, one core); emulated figures come from the
 * machine's clock (clock_gettime inside the process) and are the same on every host.
 */
import { performance } from 'node:perf_hooks';
import type { GcReport } from '../../kernel/proc/uapi.ts';
import type { CollectorEnv } from '../../userland/gc/collector.ts';
import { MarkCompactCollector } from '../../userland/gc/markcompact.ts';
import { ManagedHeap } from '../../userland/gc/runtime.ts';
import { Libc } from '../../userland/libc/libc.ts';
import { bootTestMachine } from '../helpers/kernel.ts';

const MIN_DEPTH = 4;

interface Result {
  gogc: number;
  report: GcReport;
  hostMs: number;
  hostGcMs: number;
  emulatedNs: number;
  peakHeapBytes: number;
  checksum: number;
}

/** A complete tree of `depth` (2 fields, 8 data bytes a node), left on top of the stack. */
function buildTree(heap: ManagedHeap, depth: number): void {
  heap.alloc(2, 8);
  if (depth === 0) return;
  buildTree(heap, depth - 1);
  heap.set(heap.top(1), 0, heap.top());
  heap.pop();
  buildTree(heap, depth - 1);
  heap.set(heap.top(1), 1, heap.top());
  heap.pop();
}

function checkTree(heap: ManagedHeap, node: number): number {
  const left = heap.get(node, 0);
  if (left === 0) return 1;
  return 1 + checkTree(heap, left) + checkTree(heap, heap.get(node, 1));
}

/** Time every collection on the host too: wrap the statistics' begin/end. */
function timedFactory(hostGc: { ms: number; start: number }) {
  return (env: CollectorEnv) => {
    const begin = env.stats.begin.bind(env.stats);
    const end = env.stats.end.bind(env.stats);
    env.stats.begin = (kind) => {
      hostGc.start = performance.now();
      begin(kind);
    };
    env.stats.end = () => {
      hostGc.ms += performance.now() - hostGc.start;
      return end();
    };
    return new MarkCompactCollector(env);
  };
}

function run(maxDepth: number, gogc: number): Result {
  const m = bootTestMachine({ memoryMiB: 64 });
  const hostGc = { ms: 0, start: 0 };
  let result: Result | undefined;
  const t0 = performance.now();
  m.start(function* (ctx) {
    const heap = new ManagedHeap(new Libc(ctx), {
      collector: timedFactory(hostGc),
      tunables: { gogc, minHeapBytes: 256 << 10 },
    });
    const start = heap.stats.nowNs();
    let checksum = 0;
    let peak = 0;
    buildTree(heap, maxDepth); // long-lived
    for (let depth = MIN_DEPTH; depth <= maxDepth; depth += 2) {
      const iterations = 1 << (maxDepth - depth + MIN_DEPTH);
      for (let i = 0; i < iterations; i++) {
        buildTree(heap, depth);
        checksum += checkTree(heap, heap.top());
        heap.pop();
        peak = Math.max(peak, heap.report().heapBytes);
        yield;
      }
    }
    checksum += checkTree(heap, heap.top());
    const emulatedNs = heap.stats.nowNs() - start;
    result = {
      gogc,
      report: { ...heap.report() },
      hostMs: 0,
      hostGcMs: 0,
      emulatedNs,
      peakHeapBytes: peak,
      checksum,
    };
    heap.destroy();
    return 0;
  });
  m.runToEnd();
  if (result === undefined) throw new Error('gc-markcompact bench: the program did not finish');
  result.hostMs = performance.now() - t0;
  result.hostGcMs = hostGc.ms;
  return result;
}

const maxDepth = Number(process.argv[2] ?? 12);
const mb = (bytes: number) => bytes / (1 << 20);
console.log(`binary trees, depths ${MIN_DEPTH}..${maxDepth}, markcompact, minHeapBytes 256 KiB`);
console.log(
  [
    'GOGC',
    'objects',
    'GCs',
    'peak heap MiB',
    'Mobj/s host',
    'Mobj/s emul',
    'GC % host',
    'GC % emul',
    'max pause ms emul',
    'MiB mark+move/s host',
    'MiB mark+move/s emul',
    'MiB heap walked/s emul',
  ].join(' | '),
);
run(Math.max(MIN_DEPTH, maxDepth - 2), 100); // warm the JIT up
for (const gogc of [50, 100, 200, 400]) {
  const r = run(maxDepth, gogc);
  const rep = r.report;
  const work = mb(rep.bytesMarked + rep.bytesMoved);
  console.log(
    [
      gogc,
      rep.objectsAllocated,
      rep.majorCollections,
      mb(r.peakHeapBytes).toFixed(2),
      (rep.objectsAllocated / r.hostMs / 1000).toFixed(3),
      (rep.objectsAllocated / (r.emulatedNs / 1e9) / 1e6).toFixed(3),
      ((100 * r.hostGcMs) / r.hostMs).toFixed(1),
      ((100 * rep.pauseTotalNs) / r.emulatedNs).toFixed(1),
      (rep.pauseMaxNs / 1e6).toFixed(3),
      (work / (r.hostGcMs / 1000)).toFixed(1),
      (work / (rep.pauseTotalNs / 1e9)).toFixed(1),
      (mb(rep.bytesMarked + rep.bytesFreed) / (rep.pauseTotalNs / 1e9)).toFixed(1),
    ].join(' | '),
  );
  console.log(
    `  checksum ${r.checksum}; marked ${mb(rep.bytesMarked).toFixed(1)} MiB, moved ${mb(rep.bytesMoved).toFixed(1)} MiB (${rep.objectsMoved} objects), freed ${rep.objectsFreed} objects; mark ${((100 * rep.markNs) / rep.pauseTotalNs).toFixed(0)}% of GC time; host ${r.hostMs.toFixed(0)} ms, emulated ${(r.emulatedNs / 1e6).toFixed(1)} ms`,
  );
}
