/**
 * /proc/PID/gc: a vmlab file (Linux has none) with what a process's managed runtime last told
 * the kernel through vmlab_gc_report (userland/gc), in /proc/PID/status's style: one
 * `Key:\tvalue` line per figure, sizes as `%8lu kB`, counts plain, times in nanoseconds with
 * `_ns` in the key. After the report's own pause figures come the percentiles of the pauses
 * the kernel keeps (the latest GC_PAUSES_KEPT):
 *
 *   Collector:	generational
 *   Heap:	    8192 kB
 *   ...
 *   PauseLast_ns:	48211
 *   PausesKept:	12
 *   PauseP50_ns:	39870
 *   ...
 *
 * A process that never published a report has no such file (ENOENT, as for an unknown name).
 */
import type { Task } from '../proc/task.ts';
import type { GcReport } from '../proc/uapi.ts';

type NumericField = Exclude<keyof GcReport, 'collector'>;

/** How a report field is printed: a size in kB (from bytes) or a plain number. */
type GcFieldUnit = 'kB' | 'plain';

/** The report's fields in file order: [key, field, unit]. Every numeric GcReport field is here. */
export const GC_FILE_FIELDS: ReadonlyArray<readonly [string, NumericField, GcFieldUnit]> = [
  ['Heap', 'heapBytes', 'kB'],
  ['Live', 'liveBytes', 'kB'],
  ['NextGc', 'nextGcBytes', 'kB'],
  ['MinorCollections', 'minorCollections', 'plain'],
  ['MajorCollections', 'majorCollections', 'plain'],
  ['PauseTotal_ns', 'pauseTotalNs', 'plain'],
  ['PauseMax_ns', 'pauseMaxNs', 'plain'],
  ['PauseLast_ns', 'lastPauseNs', 'plain'],
  ['ObjectsAllocated', 'objectsAllocated', 'plain'],
  ['Allocated', 'bytesAllocated', 'kB'],
  ['ObjectsFreed', 'objectsFreed', 'plain'],
  ['Freed', 'bytesFreed', 'kB'],
  ['ObjectsMoved', 'objectsMoved', 'plain'],
  ['Moved', 'bytesMoved', 'kB'],
  ['ObjectsPromoted', 'objectsPromoted', 'plain'],
  ['Marked', 'bytesMarked', 'kB'],
  ['Mark_ns', 'markNs', 'plain'],
  ['BarrierStores', 'barrierStores', 'plain'],
  ['BarrierHits', 'barrierHits', 'plain'],
];

/** Where the pause lines go: after this key. */
const PAUSES_AFTER = 'PauseLast_ns';

/**
 * The pauses a task's runtime reported, as the kernel keeps them: lengths (ns) and the
 * emulated times (cycles) their reports arrived, oldest first. A report that follows no pause
 * (the one a heap sends when it is made) says 0 and is left out:
 *   lengthsNs.length == timesCycles.length <= GC_PAUSES_KEPT
 */
export function gcPauses(task: Task): { lengthsNs: number[]; timesCycles: number[] } {
  const lengthsNs: number[] = [];
  const timesCycles: number[] = [];
  for (let i = 0; i < task.gcPausesNs.length; i++) {
    const ns = task.gcPausesNs[i]!;
    if (ns <= 0) continue;
    lengthsNs.push(ns);
    timesCycles.push(task.gcPauseTimes[i]!);
  }
  return { lengthsNs, timesCycles };
}

/** Pause percentiles: nearest rank (the smallest length with at least p% of the pauses at or below it). */
export interface PausePercentiles {
  count: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  maxNs: number;
}

/** The nearest-rank percentiles of `lengthsNs` (all 0 for no pauses); the input is not changed. */
export function pausePercentiles(lengthsNs: readonly number[]): PausePercentiles {
  const n = lengthsNs.length;
  if (n === 0) return { count: 0, p50Ns: 0, p90Ns: 0, p99Ns: 0, maxNs: 0 };
  const sorted = [...lengthsNs].sort((a, b) => a - b);
  const rank = (p: number): number => sorted[Math.max(0, Math.ceil((p / 100) * n) - 1)]!;
  return { count: n, p50Ns: rank(50), p90Ns: rank(90), p99Ns: rank(99), maxNs: sorted[n - 1]! };
}

/** /proc/PID/gc's text, or undefined when the task has no managed heap (no report yet). */
export function renderGc(task: Task): string | undefined {
  const report = task.gc;
  if (report === null) return undefined;
  const p = pausePercentiles(gcPauses(task).lengthsNs);
  let out = `Collector:\t${report.collector}\n`;
  for (const [key, field, unit] of GC_FILE_FIELDS) {
    out += gcLine(key, report[field], unit);
    if (key === PAUSES_AFTER) {
      out += gcLine('PausesKept', p.count, 'plain');
      out += gcLine('PauseP50_ns', p.p50Ns, 'plain');
      out += gcLine('PauseP90_ns', p.p90Ns, 'plain');
      out += gcLine('PauseP99_ns', p.p99Ns, 'plain');
      out += gcLine('PauseKeptMax_ns', p.maxNs, 'plain');
    }
  }
  return out;
}

/** One `Key:\tvalue` line: a size as status prints one (`%8lu kB`), or the whole number. */
function gcLine(key: string, value: number, unit: GcFieldUnit): string {
  if (unit === 'kB') return `${key}:\t${String(Math.floor(value / 1024)).padStart(8)} kB\n`;
  return `${key}:\t${Math.floor(value)}\n`;
}
