/**
 * The collector interface every managed heap implements, its tunables, and the statistics
 * every collector keeps the same way.
 *
 * A collector owns its heap: the memory it maps (spans, semispaces, arenas), the objects in it
 * (object.ts's layout) and all its metadata (mark bits, grey stack, card table, free lists),
 * every byte of it in the process's emulated memory, reached with loads and stores. It is told
 * of the roots (roots.ts) and of every pointer store (writeField, where its write barrier runs).
 *
 * Contracts:
 * - allocate returns an object with its header written, every field 0 and its data zeroed, or
 *   0 when the heap cannot grow even after a full collection (the runtime then aborts the
 *   process with "out of memory"). It may collect first; a moving collector then updates every
 *   root slot and field, so a reference kept anywhere else is stale after the call.
 * - A collection frees every object not reachable from the roots (refcount without its cycle
 *   collector: every object whose count reached 0), and leaves the reachable ones intact.
 * - Misuse the runtime cannot see (a corrupt header found while tracing) throws GcAbort, which
 *   ends the process alone with SIGABRT and the message in the kernel log.
 */
import type { GcReport, UserCpu } from '../../kernel/proc/uapi.ts';
import { CLOCK_MONOTONIC, TIMESPEC_BYTES } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import type { RootSet } from './roots.ts';

/** A misuse of the managed heap, or a corrupt one: the process ends with SIGABRT. */
export class GcAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GcAbort';
  }
}

export type CollectionKind = 'minor' | 'full';

/** The tunables of every collector, in one table (each collector reads those it knows). */
export interface GcTunables {
  /** Go's GOGC: the next collection starts when the heap reaches live * (1 + gogc/100); -1 turns the pacer off. */
  gogc: number;
  /** The smallest heap goal (Go's 4 MiB minimum heap), bytes. */
  minHeapBytes: number;
  /** Mark in slices between mutator steps (mark-sweep), with the write barrier on. */
  incremental: boolean;
  /** Work of one incremental mark slice: object bytes scanned. */
  markSliceBytes: number;
  /** Debug switch: skip the write barrier (a test shows a live object freed without it). */
  barrier: boolean;
  /** The generational collector's nursery (one semispace), bytes. */
  nurseryBytes: number;
  /** Minor collections an object survives in the nursery before promotion. */
  promotionAge: number;
  /** CPython's gc thresholds: allocations minus deallocations for generation 0, then collections of the younger generation. */
  thresholds: readonly [number, number, number];
  /** Run the refcount collector's cycle detection (off: refcounting alone, which leaks cycles). */
  cycleCollector: boolean;
  /** The most bytes the heap may hold from the kernel (0: no limit but the kernel's). */
  maxHeapBytes: number;
}

export const DEFAULT_TUNABLES: Readonly<GcTunables> = {
  gogc: 100,
  minHeapBytes: 4 << 20,
  incremental: false,
  markSliceBytes: 64 << 10,
  barrier: true,
  nurseryBytes: 1 << 20,
  promotionAge: 2,
  thresholds: [700, 10, 10],
  cycleCollector: true,
  maxHeapBytes: 0,
};

/** What a collector is given: the C library (mmap, munmap, madvise, clock), the CPU, the roots. */
export interface CollectorEnv {
  libc: Libc;
  cpu: UserCpu;
  roots: RootSet;
  tunables: Readonly<GcTunables>;
  stats: GcStats;
}

export interface Collector {
  readonly name: string;
  /** Objects may move (references outside root slots and fields go stale at allocation). */
  readonly moving: boolean;
  allocate(nptrs: number, dataBytes: number, type: number): number;
  /** Store `ref` into field `i` of `obj` with the write barrier (the runtime checked bounds). */
  writeField(obj: number, i: number, ref: number): void;
  /** A root slot changed from `oldRef` to `newRef` (refcount counts roots; tracing collectors leave it out). */
  rootStored?(oldRef: number, newRef: number): void;
  /** Collect now; finishes an incremental cycle in progress first. */
  collect(kind: CollectionKind): void;
  /** Is `addr` an allocated object of this heap (not free memory, not inside an object)? */
  isObject(addr: number): boolean;
  /** Call `fn` for every allocated object (reachable or not yet reclaimed), in address order. */
  forEachObject(fn: (obj: number) => void): void;
  /** Unmap the whole heap (process exit). */
  destroy(): void;
  /** Throws GcAbort naming the broken rule when the heap's own structures are inconsistent. */
  checkInvariants(): void;
}

export type CollectorFactory = (env: CollectorEnv) => Collector;

/**
 * The statistics of one managed heap, kept the same way by every collector: counters the
 * collector adds to, pauses timed on the emulated clock with clock_gettime, and a report to
 * the kernel (vmlab_gc_report) after each collection, which /proc/PID/gc and the run summary
 * show.
 *
 *   a pause = the emulated time from begin() to end(): a whole collection, or one mark slice
 */
export class GcStats {
  readonly report: GcReport;
  private readonly libc: Libc;
  /** libc static storage for clock_gettime's struct timespec. */
  private readonly timespec: number;
  private pauseStart = -1;
  private pauseKind: CollectionKind | 'slice' = 'full';

  constructor(libc: Libc, collector: string) {
    this.libc = libc;
    this.timespec = libc.staticData(TIMESPEC_BYTES);
    if (this.timespec === -1) throw new GcAbort('gc: no static storage for the clock');
    this.report = {
      collector,
      heapBytes: 0,
      liveBytes: 0,
      nextGcBytes: 0,
      minorCollections: 0,
      majorCollections: 0,
      pauseTotalNs: 0,
      pauseMaxNs: 0,
      lastPauseNs: 0,
      objectsAllocated: 0,
      bytesAllocated: 0,
      objectsFreed: 0,
      bytesFreed: 0,
      objectsMoved: 0,
      bytesMoved: 0,
      objectsPromoted: 0,
      bytesMarked: 0,
      markNs: 0,
      barrierStores: 0,
      barrierHits: 0,
    };
  }

  /** Emulated time now, in nanoseconds (CLOCK_MONOTONIC). */
  nowNs(): number {
    const sys = this.libc.ctx.sys;
    if (sys.clock_gettime(CLOCK_MONOTONIC, this.timespec) !== 0)
      throw new GcAbort('gc: clock_gettime failed');
    const cpu = this.libc.ctx.cpu;
    return cpu.load64(this.timespec) * 1e9 + cpu.load64(this.timespec + 8);
  }

  /** A pause begins: a collection of `kind`, or one incremental mark slice. */
  begin(kind: CollectionKind | 'slice'): void {
    if (this.pauseStart >= 0) throw new GcAbort(`gc: a ${kind} pause began inside a ${this.pauseKind} pause`);
    this.pauseKind = kind;
    this.pauseStart = this.nowNs();
  }

  /**
   * The pause ends: count the collection (a slice counts none; the collector counts the cycle
   * it finishes with countCollection) and report to the kernel. The pause's length in ns.
   */
  end(): number {
    return this.finishPause('pause');
  }

  /** An incremental mark slice ends: as end(), its length also counted as marking time (markNs). */
  endMarkSlice(): number {
    return this.finishPause('mark-slice');
  }

  private finishPause(what: 'pause' | 'mark-slice'): number {
    if (this.pauseStart < 0) throw new GcAbort('gc: a pause ended that never began');
    const ns = this.nowNs() - this.pauseStart;
    if (what === 'mark-slice') this.report.markNs += ns;
    this.pauseStart = -1;
    const r = this.report;
    if (this.pauseKind === 'minor') r.minorCollections++;
    else if (this.pauseKind === 'full') r.majorCollections++;
    r.pauseTotalNs += ns;
    if (ns > r.pauseMaxNs) r.pauseMaxNs = ns;
    r.lastPauseNs = ns;
    this.publish();
    return ns;
  }

  /** Count a full collection that ended outside a begin/end pair (an incremental cycle's end). */
  countCollection(kind: CollectionKind): void {
    if (kind === 'minor') this.report.minorCollections++;
    else this.report.majorCollections++;
  }

  /** Is a pause in progress? */
  inPause(): boolean {
    return this.pauseStart >= 0;
  }

  /** Send the report to the kernel now. */
  publish(): void {
    this.libc.ctx.sys.vmlab_gc_report(this.report);
  }
}
