/**
 * What the kernel shows of a managed heap, independent of any collector: a program publishes
 * GcReports of its own with vmlab_gc_report, and /proc/PID/gc (hand-written expected bytes,
 * read through open() and read() inside the machine and rendered from the host), the run
 * summary (JSON and text), the timeline's samples and the HTML report's data show them. A
 * process that never publishes one has no /proc/PID/gc (ENOENT) and no GC lines.
 */
import { describe, expect, it } from 'vitest';
import { formatNs, gcSummary, renderGcSummary, renderSummary, summarize } from '../kernel/boot/cmd-run.ts';
import { renderReport } from '../kernel/boot/report.ts';
import type { LoadedWorkload } from '../kernel/boot/workload.ts';
import { GC_FILE_FIELDS, gcPauses, pausePercentiles, renderGc } from '../kernel/observe/procgc.ts';
import { renderProc } from '../kernel/observe/procpid.ts';
import { Timeline } from '../kernel/observe/timeline.ts';
import { GC_PAUSES_KEPT } from '../kernel/proc/task.ts';
import {
  EINVAL,
  ENOENT,
  type GcReport,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine } from './helpers/kernel.ts';

/** Pause lengths (ns) the publisher reports, one per report after the first. */
const PAUSES = [700, 100, 300, 1000, 200, 900, 400, 600, 500, 800];
const STEP_NS = 1_000_000;

/** The report after pause `i` (0-based; -1: the heap was just made, no pause yet). */
function reportAfter(i: number): GcReport {
  const done = PAUSES.slice(0, i + 1);
  return {
    collector: 'handmade',
    heapBytes: (1 + i) * 1024 * 1024 + 512,
    liveBytes: 150 * 1024 * (i + 1),
    nextGcBytes: 300 * 1024 * (i + 1),
    minorCollections: Math.max(0, i + 1 - Math.floor((i + 1) / 3)),
    majorCollections: Math.floor((i + 1) / 3),
    pauseTotalNs: done.reduce((a, b) => a + b, 0),
    pauseMaxNs: done.length === 0 ? 0 : Math.max(...done),
    lastPauseNs: done.at(-1) ?? 0,
    objectsAllocated: 12345 * (i + 1) + 6,
    bytesAllocated: 987654 * (i + 1) + 3,
    objectsFreed: 10000 * (i + 1),
    bytesFreed: 800000 * (i + 1),
    objectsMoved: 500 * (i + 1),
    bytesMoved: 16000 * (i + 1),
    objectsPromoted: 123 * (i + 1) + 4,
    bytesMarked: 204800 * (i + 1),
    markNs: 432 * (i + 1) + 1,
    barrierStores: 7777 * (i + 1) + 7,
    barrierHits: 33 * (i + 1) + 3,
  };
}

/** The last report, worked out by hand. */
const LAST: GcReport = {
  collector: 'handmade',
  heapBytes: 10 * 1024 * 1024 + 512, // 10240 kB
  liveBytes: 1536000, // 1500 kB
  nextGcBytes: 3072000, // 3000 kB
  minorCollections: 7,
  majorCollections: 3,
  pauseTotalNs: 5500,
  pauseMaxNs: 1000,
  lastPauseNs: 800,
  objectsAllocated: 123456,
  bytesAllocated: 9876543, // 9645.06 kB
  objectsFreed: 100000,
  bytesFreed: 8000000, // 7812.5 kB
  objectsMoved: 5000,
  bytesMoved: 160000, // 156.25 kB
  objectsPromoted: 1234,
  bytesMarked: 2048000, // 2000 kB
  markNs: 4321,
  barrierStores: 77777,
  barrierHits: 333,
};

/** /proc/PID/gc after the last report; the pauses sorted are 100 .. 1000 (nearest rank of 10). */
const EXPECTED_GC_FILE = [
  'Collector:\thandmade',
  'Heap:\t   10240 kB',
  'Live:\t    1500 kB',
  'NextGc:\t    3000 kB',
  'MinorCollections:\t7',
  'MajorCollections:\t3',
  'PauseTotal_ns:\t5500',
  'PauseMax_ns:\t1000',
  'PauseLast_ns:\t800',
  'PausesKept:\t10',
  'PauseP50_ns:\t500',
  'PauseP90_ns:\t900',
  'PauseP99_ns:\t1000',
  'PauseKeptMax_ns:\t1000',
  'ObjectsAllocated:\t123456',
  'Allocated:\t    9645 kB',
  'ObjectsFreed:\t100000',
  'Freed:\t    7812 kB',
  'ObjectsMoved:\t5000',
  'Moved:\t     156 kB',
  'ObjectsPromoted:\t1234',
  'Marked:\t    2000 kB',
  'Mark_ns:\t4321',
  'BarrierStores:\t77777',
  'BarrierHits:\t333',
  '',
].join('\n');

/** Read a whole file at `path` inside the machine: its text, or -errno from open. */
function readFile(ctx: UserContext, path: string): string | number {
  const { sys, cpu } = ctx;
  const fd = sys.open(path, O_RDONLY);
  if (fd < 0) return fd;
  const buf = sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bytes = new Uint8Array(4096);
  let text = '';
  for (let n = sys.read(fd, buf, 4096); n > 0; n = sys.read(fd, buf, 4096)) {
    cpu.loadBytes(buf, bytes, 0, n);
    text += new TextDecoder().decode(bytes.subarray(0, n));
  }
  sys.close(fd);
  sys.munmap(buf, 4096);
  return text;
}

interface Seen {
  /** /proc/self/gc before any report (-ENOENT expected) and after the last. */
  before?: string | number;
  after?: string | number;
  /** What vmlab_gc_report said to a malformed report. */
  refused?: number;
}

/**
 * publisher: the first report (no pause), then one report per pause in PAUSES, each STEP_NS
 * of emulated time after the last, then the last report by hand (LAST); reads /proc/self/gc
 * before and after; then sleeps STEP_NS and exits.
 */
function publisher(seen: Seen): UserMain {
  return function* (ctx) {
    const { sys } = ctx;
    seen.before = readFile(ctx, '/proc/self/gc');
    seen.refused = sys.vmlab_gc_report({ ...reportAfter(-1), heapBytes: -1 });
    sys.vmlab_gc_report(reportAfter(-1));
    for (let i = 0; i < PAUSES.length - 1; i++) {
      yield* sys.nanosleep(STEP_NS);
      sys.vmlab_gc_report(reportAfter(i));
    }
    yield* sys.nanosleep(STEP_NS);
    sys.vmlab_gc_report(LAST);
    seen.after = readFile(ctx, '/proc/self/gc');
    yield* sys.nanosleep(STEP_NS);
    return 0;
  };
}

/** plain: no managed heap; reads /proc/self/gc. */
function plain(seen: Seen): UserMain {
  return function* (ctx) {
    seen.before = readFile(ctx, '/proc/self/gc');
    yield* ctx.sys.nanosleep(STEP_NS);
    return 0;
  };
}

/** Run a publisher and a plain process side by side, with a timeline sampling every 500 µs. */
function runBoth() {
  const m = bootTestMachine({ memoryMiB: 16 });
  const seenPub: Seen = {};
  const seenPlain: Seen = {};
  const timeline = new Timeline(m.kernel, 500_000);
  const pub = m.start(publisher(seenPub), { name: 'publisher' });
  const other = m.start(plain(seenPlain), { name: 'plain' });
  // From the host, half a step after the last report (the publisher is still alive then).
  const host: { text?: string | Uint8Array } = {};
  const at = (PAUSES.length + 0.5) * STEP_NS;
  m.clock.schedule(at, 'read gc', () => (host.text = renderProc(m.kernel, `/proc/${pub.pid}/gc`)), {
    observer: true,
  });
  m.runToEnd();
  timeline.sample();
  return { m, pub, other, seenPub, seenPlain, timeline, host };
}

describe('/proc/PID/gc', () => {
  it('lists every report field, then the kept pauses’ count and percentiles, in status style', () => {
    const { m, pub, seenPub, host } = runBoth();
    expect(pub.waitStatus).toBe(0);
    expect(seenPub.refused).toBe(-EINVAL);
    expect(seenPub.after).toBe(EXPECTED_GC_FILE);
    // The host renders the same bytes while the process lives; once reaped it has no /proc directory.
    expect(host.text).toBe(EXPECTED_GC_FILE);
    expect(renderProc(m.kernel, `/proc/${pub.pid}/gc`)).toBeUndefined();
    expect(renderGc(pub)).toBe(EXPECTED_GC_FILE);
  });

  it('is absent (ENOENT) for a process that never published a report', () => {
    const { m, other, seenPub, seenPlain } = runBoth();
    expect(seenPub.before).toBe(-ENOENT);
    expect(seenPlain.before).toBe(-ENOENT);
    expect(renderProc(m.kernel, `/proc/${other.pid}/gc`)).toBeUndefined();
  });

  it('names every numeric GcReport field once', () => {
    const fields = GC_FILE_FIELDS.map(([, f]) => f);
    const numeric = Object.keys(LAST).filter((k) => k !== 'collector');
    expect([...fields].sort()).toEqual([...numeric].sort());
    expect(new Set(GC_FILE_FIELDS.map(([k]) => k)).size).toBe(GC_FILE_FIELDS.length);
  });

  it('keeps the latest pauses only, and leaves out reports that follow no pause', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    const n = GC_PAUSES_KEPT + 10;
    const t = m.start(function* ({ sys }) {
      sys.vmlab_gc_report({ ...LAST, pauseTotalNs: 0, lastPauseNs: 0 });
      for (let i = 1; i <= n; i++) {
        sys.vmlab_gc_report({ ...LAST, pauseTotalNs: (i * (i + 1)) / 2, lastPauseNs: i });
        if (i % 256 === 0) yield;
      }
      return 0;
    });
    m.runToEnd();
    const { lengthsNs, timesCycles } = gcPauses(t);
    expect(lengthsNs).toHaveLength(GC_PAUSES_KEPT);
    expect(timesCycles).toHaveLength(GC_PAUSES_KEPT);
    expect(lengthsNs[0]).toBe(n - GC_PAUSES_KEPT + 1);
    expect(lengthsNs.at(-1)).toBe(n);
    for (let i = 1; i < timesCycles.length; i++)
      expect(timesCycles[i]).toBeGreaterThanOrEqual(timesCycles[i - 1]!);
    const text = renderGc(t)!;
    expect(text).toContain(`PausesKept:\t${GC_PAUSES_KEPT}\n`);
    // Nearest rank over 11 .. 4106 (rank r is 10 + r): the 2048th, the 3687th (ceil(0.9 * 4096)), the 4056th (ceil(0.99 * 4096)).
    expect(text).toContain(`PauseP50_ns:\t${10 + 2048}\n`);
    expect(text).toContain(`PauseP90_ns:\t${10 + 3687}\n`);
    expect(text).toContain(`PauseP99_ns:\t${10 + 4056}\n`);
    expect(text).toContain(`PauseKeptMax_ns:\t${n}\n`);
  });
});

describe('pause percentiles', () => {
  it('are nearest-rank, and all 0 without pauses', () => {
    expect(pausePercentiles([])).toEqual({ count: 0, p50Ns: 0, p90Ns: 0, p99Ns: 0, maxNs: 0 });
    expect(pausePercentiles([42])).toEqual({ count: 1, p50Ns: 42, p90Ns: 42, p99Ns: 42, maxNs: 42 });
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 .. 1, unsorted
    expect(pausePercentiles(hundred)).toEqual({ count: 100, p50Ns: 50, p90Ns: 90, p99Ns: 99, maxNs: 100 });
    expect(hundred[0]).toBe(100); // the input is not sorted in place
    expect(pausePercentiles([5, 1, 3])).toEqual({ count: 3, p50Ns: 3, p90Ns: 5, p99Ns: 5, maxNs: 5 });
  });
});

describe('the run summary', () => {
  const workload = { path: 'test', dir: '.', workload: {} } as unknown as LoadedWorkload;

  it('carries the last report and the pause percentiles of each process with a heap, in JSON', () => {
    const { m, pub, other } = runBoth();
    const s = summarize(m, workload);
    const p = s.processes.find((x) => x.pid === pub.pid)!;
    expect(p.gc).toEqual({ ...LAST, pausesKept: 10, pauseP50Ns: 500, pauseP99Ns: 1000 });
    expect(gcSummary(pub)).toEqual(p.gc);
    expect(s.processes.find((x) => x.pid === other.pid)).not.toHaveProperty('gc');
    expect(
      JSON.parse(JSON.stringify(s)).processes.find((x: { pid: number }) => x.pid === pub.pid).gc.collector,
    ).toBe('handmade');
  });

  it('prints a managed-heap row per process that had one, and none without', () => {
    const { m, pub } = runBoth();
    const s = summarize(m, workload);
    const lines = renderGcSummary(s);
    expect(lines[0]).toBe('');
    expect(lines[1]).toBe('managed heaps:');
    expect(lines[2]).toMatch(
      /^ {2}PID NAME {13}COLLECTOR {5}MINOR MAJOR {2}PAUSE-TOTAL {4}PAUSE-MAX {6}HEAP {6}LIVE/,
    );
    expect(lines).toHaveLength(4);
    // 10 MiB + 512 prints as 10M, 1536000 bytes as 1.5M.
    expect(lines[3]!.trim().split(/\s+/)).toEqual([
      String(pub.pid),
      'publisher',
      'handmade',
      '7',
      '3',
      '5500',
      'ns',
      '1000',
      'ns',
      '10M',
      '1.5M',
      '100000',
      '5000',
      '1234',
      '333',
    ]);
    const all = renderSummary(s);
    expect(all).toContain('managed heaps:');
    expect(all.indexOf('managed heaps:')).toBeLessThan(all.indexOf('system:'));
    const none = renderSummary({ ...s, processes: s.processes.filter((x) => x.gc === undefined) });
    expect(none).not.toContain('managed heaps:');
  });

  it('prints emulated times in ns, µs or ms', () => {
    expect(formatNs(0)).toBe('0 ns');
    expect(formatNs(9999)).toBe('9999 ns');
    expect(formatNs(10_000)).toBe('10.0 us');
    expect(formatNs(2_345_678)).toBe('2345.7 us');
    expect(formatNs(12_345_678)).toBe('12.35 ms');
  });
});

describe('the timeline', () => {
  it('samples each live heap as its runtime last reported it, and stops when the process ends', () => {
    const { pub, other, timeline } = runBoth();
    const withHeap = timeline.samples.filter((x) => x.gc[pub.pid] !== undefined);
    expect(withHeap.length).toBeGreaterThanOrEqual(2 * PAUSES.length - 2);
    const reports = [-1, ...PAUSES.slice(0, -1).map((_, i) => i)].map(reportAfter).concat([LAST]);
    for (const x of withHeap) {
      const g = x.gc[pub.pid]!;
      // Some report the publisher sent, the latest one before the sample.
      const sent = reports.find((r) => r.heapBytes === g.heapBytes)!;
      expect(g).toEqual({
        heapBytes: sent.heapBytes,
        liveBytes: sent.liveBytes,
        minorCollections: sent.minorCollections,
        majorCollections: sent.majorCollections,
      });
    }
    // Over time the heap only grows here, and the last samples while alive see the last report.
    const heaps = withHeap.map((x) => x.gc[pub.pid]!.heapBytes);
    expect(heaps).toEqual([...heaps].sort((a, b) => a - b));
    expect(heaps.at(-1)).toBe(LAST.heapBytes);
    expect(new Set(heaps).size).toBe(reports.length);
    for (const x of timeline.samples) expect(x.gc[other.pid]).toBeUndefined();
    expect(timeline.samples.at(-1)!.gc).toEqual({}); // both have exited
  });
});

describe('the HTML report', () => {
  const workload = { path: 'test', dir: '.', workload: {} } as unknown as LoadedWorkload;
  const dataOf = (html: string) =>
    JSON.parse(html.split('<script type="application/json" id="data">')[1]!.split('</script>')[0]!);

  it('has a managed-heap section: heap and live MiB per sample, every kept pause, a row per heap', () => {
    const { m, pub, timeline } = runBoth();
    const html = renderReport({
      title: 'gc',
      workloadText: 'processes: []',
      args: [],
      summary: summarize(m, workload),
      timeline,
      kernel: m.kernel,
    });
    expect(html).toContain('id="gc-heap"');
    expect(html).toContain('id="gc-pauses"');
    const data = dataOf(html);
    const g = data.gc;
    expect(g.heap.map((h: { pid: number }) => h.pid)).toEqual([pub.pid]);
    const heap = g.heap[0].values as Array<number | null>;
    expect(heap).toHaveLength(data.t.length);
    const mib = (b: number) => b / (1024 * 1024);
    timeline.samples.forEach((x, i) => {
      expect(heap[i]).toBe(x.gc[pub.pid] === undefined ? null : mib(x.gc[pub.pid]!.heapBytes));
      expect(g.live[0].values[i]).toBe(x.gc[pub.pid] === undefined ? null : mib(x.gc[pub.pid]!.liveBytes));
    });
    // The ten pauses, in µs, at the times their reports came (emulated ms, increasing).
    expect(g.pauses.series).toHaveLength(1);
    expect(g.pauses.series[0].values).toEqual(PAUSES.map((ns) => ns / 1000));
    expect(g.pauses.t).toHaveLength(PAUSES.length);
    for (let i = 1; i < g.pauses.t.length; i++) expect(g.pauses.t[i]).toBeGreaterThan(g.pauses.t[i - 1]);
    expect(g.pauses.t[1] - g.pauses.t[0]).toBeCloseTo(STEP_NS / 1e6, 1);
    expect(g.rows).toHaveLength(1);
    expect(g.rows[0]).toMatchObject({
      pid: pub.pid,
      name: 'publisher',
      collector: 'handmade',
      majorCollections: 3,
    });
    expect(g.rows[0].pauses).toEqual({ count: 10, p50Ns: 500, p90Ns: 900, p99Ns: 1000, maxNs: 1000 });
  });

  it('has no managed-heap section when no process had a heap', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    const timeline = new Timeline(m.kernel, 500_000);
    m.start(plain({}));
    m.runToEnd();
    timeline.sample();
    const html = renderReport({
      title: 'no gc',
      workloadText: 'processes: []',
      args: [],
      summary: summarize(m, workload),
      timeline,
      kernel: m.kernel,
    });
    expect(dataOf(html).gc).toBeNull();
    expect(html).not.toContain('id="gc-heap"');
  });
});
