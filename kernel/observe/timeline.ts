/**
 * The timeline: the whole machine sampled every fixed interval of emulated time, for reports.
 * Each sample records memory composition (pages, by the frame categories below), the page
 * cache's dirty and writeback pages, rates over the interval (faults, swap in and out, file pages
 * read and written, per emulated second), CPU utilization, TLB hit rate, run-queue length,
 * every live process's RSS, and the managed heap of every live process that has one (its
 * runtime's last vmlab_gc_report: heap and live bytes, collections so far). Samples are taken
 * by observer clock events: they read the machine and change nothing, so a run with a timeline
 * is the run without one.
 *
 * Frame maps: every physical frame classified by owner and type, run-length encoded. The
 * timeline keeps one at the sample with the most memory in use (the fewest free frames) and one
 * at each time asked for with frameMapAt(); takeFrameMap() draws one on demand (the run's end).
 */
import type { PageFrames } from '../mm/page.ts';
import {
  NIL,
  PG_ANON,
  PG_BUDDY,
  PG_FILE,
  PG_PAGETABLE,
  PG_PCP,
  PG_SHMEM,
  PG_SLAB,
  PG_SWAPCACHE,
  PG_TAIL,
} from '../mm/page.ts';
import type { Kernel } from '../proc/kernel.ts';
import type { GcReport } from '../proc/uapi.ts';

/** Frame categories, in legend order; a frame's category code is its index here. */
export const FRAME_CATEGORIES = [
  'free',
  'free (per-CPU list)',
  'kernel',
  'slab',
  'page table',
  'anonymous',
  'anonymous, in the swap cache',
  'swap cache',
  'shared memory',
  'file',
] as const;
export type FrameCategory = (typeof FRAME_CATEGORIES)[number];

export const FC_FREE = 0; // in a buddy free block (head or tail frame)
export const FC_PCP = 1; // free, parked on a per-CPU list (not in MemFree, as in Linux)
export const FC_KERNEL = 2; // reserved (kernel image, firmware) or allocated kernel data
export const FC_SLAB = 3;
export const FC_PAGETABLE = 4;
export const FC_ANON = 5; // anonymous memory of one process (owner = pid)
export const FC_ANON_SWAPCACHE = 6; // mapped anonymous memory that also has a swap slot (owner = pid)
export const FC_SWAPCACHE = 7; // anonymous page that only the swap cache holds (mapped nowhere)
export const FC_SHMEM = 8; // shared anonymous memory
export const FC_FILE = 9; // page cache (owner = inode number)
const NR_CATEGORIES = FRAME_CATEGORIES.length;

/**
 * Classify every frame of `pages` into `codes` (one FC_* per frame; codes.length == pages.count).
 * A free buddy block's head carries PG_BUDDY and its order; its other 2^order - 1 frames carry no
 * flags and are free too. Frames with no owner flag outside a free block (there should be none)
 * count as kernel.
 */
export function classifyFrames(pages: PageFrames, codes: Uint8Array): void {
  const n = pages.count;
  let pfn = 0;
  while (pfn < n) {
    const f = pages.flags[pfn]!;
    if (f & PG_BUDDY) {
      const end = Math.min(n, pfn + 2 ** pages.order[pfn]!);
      codes.fill(FC_FREE, pfn, end);
      pfn = end;
      continue;
    }
    codes[pfn] = frameCategory(f, pages.mapcount[pfn]!);
    pfn++;
  }
}

/** The category of a frame that is not in a free buddy block, from its flags and map count. */
function frameCategory(f: number, mapcount: number): number {
  if (f & PG_PCP) return FC_PCP;
  if (f & PG_FILE) return FC_FILE;
  if (f & PG_ANON) {
    if (f & PG_SHMEM) return FC_SHMEM;
    if (!(f & PG_SWAPCACHE)) return FC_ANON;
    return mapcount > 0 ? FC_ANON_SWAPCACHE : FC_SWAPCACHE;
  }
  if (f & PG_SLAB) return FC_SLAB;
  if (f & PG_PAGETABLE) return FC_PAGETABLE;
  return FC_KERNEL;
}

/** Frames per category (FRAME_CATEGORIES order). */
function countCategories(codes: Uint8Array): number[] {
  const counts = new Array<number>(NR_CATEGORIES).fill(0);
  for (let i = 0; i < codes.length; i++) counts[codes[i]!]!++;
  return counts;
}

/** A frame map: every physical frame's category and owner at one emulated time. */
export interface FrameMap {
  /** Emulated time in cycles. */
  time: number;
  /** Why it was drawn: asked for, the sample with the most memory in use, or the run's end. */
  reason: 'chosen' | 'peak' | 'end';
  /**
   * The time asked for (cycles), for a chosen map: the clock fires an event between two steps
   * of the machine, so `time` may be a little later.
   */
  askedTime?: number;
  frameCount: number;
  /**
   * Runs of frames as triples (category, owner, length), covering the frames in order:
   *   Σ length == frameCount
   * owner: the pid for anonymous frames (in the swap cache or not: the process that faulted
   * them in), the inode number for file frames, the
   * cache id for slab frames, -1 otherwise.
   */
  runs: number[];
  /** Frames per category (FRAME_CATEGORIES order); counts[FC_FREE] == buddy free pages. */
  counts: number[];
  /** Processes alive at that time, by pid. */
  processes: Array<{ pid: number; name: string }>;
  /** Page-cache files at that time (inode number and path). */
  files: Array<{ ino: number; path: string }>;
  /** Slab caches (id and name). */
  slabCaches: Array<{ id: number; name: string }>;
}

/** The frame map of `kernel` now; `codes` is scratch space of pages.count bytes. */
export function takeFrameMap(
  kernel: Kernel,
  reason: FrameMap['reason'],
  codes: Uint8Array = new Uint8Array(kernel.hw.pages.count),
): FrameMap {
  const pages = kernel.hw.pages;
  classifyFrames(pages, codes);
  const runs = encodeRuns(pages, codes);
  const processes = [...kernel.tasks.values()]
    .filter((t) => !t.kernelThread && t.mm !== null)
    .map((t) => ({ pid: t.pid, name: t.comm }))
    .sort((a, b) => a.pid - b.pid);
  const paths = new Map<number, string>();
  for (let i = 0, pfn = 0; i < runs.length; pfn += runs[i + 2]!, i += 3) {
    if (runs[i] === FC_FILE && !paths.has(runs[i + 1]!))
      paths.set(runs[i + 1]!, kernel.pageCache.fileOf(pfn)?.path ?? '');
  }
  const files = [...paths].sort((a, b) => a[0] - b[0]).map(([ino, path]) => ({ ino, path }));
  const slabCaches = kernel.hw.slab.caches().map((c) => ({ id: c.id, name: c.name }));
  return {
    time: kernel.hw.clock.now,
    reason,
    frameCount: pages.count,
    runs,
    counts: countCategories(codes),
    processes,
    files,
    slabCaches,
  };
}

/** Run-length encode (category, owner) per frame; see FrameMap.runs. */
function encodeRuns(pages: PageFrames, codes: Uint8Array): number[] {
  const runs: number[] = [];
  let code = -1;
  let owner = NIL;
  let length = 0;
  for (let pfn = 0; pfn < codes.length; pfn++) {
    const c = codes[pfn]!;
    const o = ownerOf(pages, pfn, c);
    if (c === code && o === owner) {
      length++;
      continue;
    }
    if (length > 0) runs.push(code, owner, length);
    code = c;
    owner = o;
    length = 1;
  }
  if (length > 0) runs.push(code, owner, length);
  return runs;
}

/** The owner id a frame map shows for frame `pfn` of category `code` (see FrameMap.runs). */
function ownerOf(pages: PageFrames, pfn: number, code: number): number {
  if (code === FC_ANON || code === FC_ANON_SWAPCACHE || code === FC_SWAPCACHE || code === FC_FILE)
    return pages.owner[pfn]!;
  if (code !== FC_SLAB) return NIL;
  const head = pages.flags[pfn]! & PG_TAIL ? pages.compoundHead[pfn]! : pfn;
  return head === NIL ? NIL : pages.owner[head]!;
}

export interface TimelineSample {
  /** Emulated time in cycles. */
  time: number;
  /** Pages in the buddy free lists (MemFree). */
  freePages: number;
  /** Free pages parked on per-CPU lists. */
  pcpPages: number;
  /** Reserved frames and kernel data outside slabs and page tables. */
  kernelPages: number;
  /** Anonymous pages mapped by processes (some of them also in the swap cache). */
  anonPages: number;
  shmemPages: number;
  /** Pages in the swap cache (SwapCached), and those of them no process maps. */
  swapCachedPages: number;
  swapCacheOnlyPages: number;
  slabPages: number;
  pageTablePages: number;
  /** Page-cache pages (Cached), of which dirty and under writeback. */
  filePages: number;
  dirtyPages: number;
  writebackPages: number;
  swapUsedPages: number;
  faultsPerSecond: number;
  majorFaultsPerSecond: number;
  swapInPerSecond: number;
  swapOutPerSecond: number;
  /** File pages read into the page cache (misses and readahead) and written back, per second. */
  fileReadPerSecond: number;
  fileWritePerSecond: number;
  cpuUtilization: number;
  tlbHitRate: number;
  runQueue: number;
  /** pid -> resident pages. */
  rss: Record<number, number>;
  /** pid -> its managed heap, for live processes that reported one. */
  gc: Record<number, GcSample>;
}

/** A managed heap at a sample: what its runtime last reported. */
export interface GcSample {
  heapBytes: number;
  liveBytes: number;
  /** Collections so far, minor and major. */
  minorCollections: number;
  majorCollections: number;
}

interface Counters {
  time: number;
  faults: number;
  major: number;
  swapIn: number;
  swapOut: number;
  fileRead: number;
  fileWrite: number;
  idle: number;
  hits: number;
  misses: number;
}

/** The sample of one runtime report. */
function gcSample(report: Readonly<GcReport>): GcSample {
  return {
    heapBytes: report.heapBytes,
    liveBytes: report.liveBytes,
    minorCollections: report.minorCollections,
    majorCollections: report.majorCollections,
  };
}

export class Timeline {
  readonly samples: TimelineSample[] = [];
  readonly intervalCycles: number;
  /** Frame maps asked for with frameMapAt() that the run reached, in the order taken. */
  readonly chosenMaps: FrameMap[] = [];
  /** Times (cycles) asked for with frameMapAt(), in the order asked. */
  readonly chosenTimes: number[] = [];
  /** The frame map at the sample with the most frames in use (the first such sample). */
  peakMap: FrameMap | null = null;
  private peakUsedPages = -1;
  private readonly kernel: Kernel;
  private readonly codes: Uint8Array;
  private last: Counters;

  constructor(kernel: Kernel, intervalCycles: number) {
    this.kernel = kernel;
    this.intervalCycles = intervalCycles;
    this.codes = new Uint8Array(kernel.hw.pages.count);
    this.last = this.counters();
    this.sample();
    this.schedule();
  }

  /** Take one sample now (also called at the end of a run). */
  sample(): void {
    const k = this.kernel;
    const { clock, pages } = k.hw;
    const now = clock.now;
    classifyFrames(pages, this.codes);
    const counts = countCategories(this.codes);
    const c = this.counters();
    const dt = Math.max(1, now - this.last.time) / clock.hz;
    const perSecond = (key: keyof Counters) => (c[key] - this.last[key]) / dt;
    const refs = c.hits - this.last.hits + (c.misses - this.last.misses);
    const rss: Record<number, number> = {};
    const gc: Record<number, GcSample> = {};
    for (const t of k.tasks.values()) {
      if (t.mm === null || t.kernelThread) continue;
      rss[t.pid] = t.mm.rss();
      if (t.gc !== null) gc[t.pid] = gcSample(t.gc);
    }
    this.samples.push({
      time: now,
      freePages: counts[FC_FREE]!,
      pcpPages: counts[FC_PCP]!,
      kernelPages: counts[FC_KERNEL]!,
      anonPages: counts[FC_ANON]! + counts[FC_ANON_SWAPCACHE]!,
      shmemPages: counts[FC_SHMEM]!,
      swapCachedPages: counts[FC_ANON_SWAPCACHE]! + counts[FC_SWAPCACHE]!,
      swapCacheOnlyPages: counts[FC_SWAPCACHE]!,
      slabPages: counts[FC_SLAB]!,
      pageTablePages: counts[FC_PAGETABLE]!,
      filePages: k.pageCache.nrPages,
      dirtyPages: k.pageCache.nrDirty,
      writebackPages: k.pageCache.nrWriteback,
      swapUsedPages: k.swap === null ? 0 : k.swap.usableSlots - k.swap.freeSlots,
      faultsPerSecond: perSecond('faults'),
      majorFaultsPerSecond: perSecond('major'),
      swapInPerSecond: perSecond('swapIn'),
      swapOutPerSecond: perSecond('swapOut'),
      fileReadPerSecond: perSecond('fileRead'),
      fileWritePerSecond: perSecond('fileWrite'),
      cpuUtilization: now > this.last.time ? 1 - (c.idle - this.last.idle) / (now - this.last.time) : 0,
      tlbHitRate: refs > 0 ? (c.hits - this.last.hits) / refs : 0,
      runQueue: k.sched.queued().length,
      rss,
      gc,
    });
    this.last = c;
    const used = pages.count - counts[FC_FREE]! - counts[FC_PCP]!;
    if (used > this.peakUsedPages) {
      this.peakUsedPages = used;
      this.peakMap = takeFrameMap(k, 'peak', this.codes);
    }
  }

  /**
   * Draw a frame map at emulated time `timeCycles` (now, if that has passed) with an observer
   * event. A run that ends before that time has no map for it (see chosenTimes).
   */
  frameMapAt(timeCycles: number): void {
    this.chosenTimes.push(timeCycles);
    this.kernel.hw.clock.schedule(
      timeCycles,
      'frame map',
      () => {
        this.chosenMaps.push({ ...takeFrameMap(this.kernel, 'chosen', this.codes), askedTime: timeCycles });
      },
      { observer: true },
    );
  }

  /** The running totals the rates are differences of. */
  private counters(): Counters {
    const k = this.kernel;
    const { mmu } = k.hw;
    const split = mmu.itlb !== mmu.dtlb;
    const e = k.events;
    return {
      time: k.hw.clock.now,
      faults: e.pgfault,
      major: e.pgmajfault,
      swapIn: e.pswpin,
      swapOut: e.pswpout,
      fileRead: k.pageCache.misses + k.pageCache.readaheadPages,
      fileWrite: e.nr_written,
      idle: k.idleCyclesNow(),
      hits: mmu.dtlb.hits + (split ? mmu.itlb.hits : 0),
      misses: mmu.dtlb.misses + (split ? mmu.itlb.misses : 0),
    };
  }

  private schedule(): void {
    this.kernel.hw.clock.after(
      this.intervalCycles,
      'timeline sample',
      () => {
        this.sample();
        // Keep sampling while anything may still run.
        if (this.kernel.liveTasks().length > 0 || this.kernel.hw.clock.pending() > 0) this.schedule();
      },
      { observer: true },
    );
  }
}
