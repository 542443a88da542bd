/**
 * A non-moving mark-sweep collector after Go's (runtime/mgc.go, mgcmark.go, mgcpacer.go,
 * mbarrier.go), over the span heap of spans.ts: size-class spans, lazy sweeping, a scavenger.
 *
 * Marking is tri-colour over the spans' mark bitmaps and a grey stack in emulated memory:
 *
 *   white = mark bit clear     grey = mark bit set, on the grey stack     black = set, scanned
 *
 * - Stop-the-world (the default): one pause marks from the roots until the grey stack is
 *   empty, then the spans become unswept; allocation sweeps them lazily.
 * - Incremental (tunables.incremental): a short pause shades the roots; then every allocation
 *   owes scan work in proportion to its bytes (Go's mutator assists) and pays it in mark slices
 *   of about markSliceBytes; when the grey stack empties, a final pause rescans the roots and
 *   ends the mark phase. Objects allocated while marking are black. The write barrier is
 *   Dijkstra's insertion barrier (Go 1.5 to 1.7): a pointer stored into a heap object while
 *   marking shades its referent, so no black object ever points at a white one. Root slots
 *   are not barriered (the shadow stack is written all the time, as a real stack is); they are
 *   treated as grey throughout and rescanned at the end, as Go did before its hybrid barrier.
 *   tunables.barrier = false switches the barrier off (a debug switch: live objects get freed).
 *
 * The pacer: a cycle starts when heapLive (slot bytes allocated since the last mark ended,
 * plus what it found marked) reaches the goal heapMarked * (1 + GOGC/100), at least
 * minHeapBytes; GOGC off (-1) collects only when asked or when the heap cannot grow. Sizes are
 * slot bytes (the size class's element size), as Go's heapLive and heapMarked count them.
 *
 * collect('minor') is a full collection: this collector has one generation. An explicit
 * collect finishes a cycle in progress, runs a full stop-the-world cycle, then sweeps every
 * span and runs the scavenger (as Go's runtime.GC sweeps before it returns).
 */

import type { GcReport, UserCpu } from '../../kernel/proc/uapi.ts';
import type { CollectionKind, Collector, CollectorEnv, GcStats, GcTunables } from './collector.ts';
import { GcAbort } from './collector.ts';
import {
  FIELD_BYTES,
  H_DATA_BYTES,
  HEADER_BYTES,
  MAX_DATA_BYTES,
  objectBytes,
  writeHeader,
} from './object.ts';
import { type RootSet, SLOT_BYTES } from './roots.ts';
import { MAX_SMALL_BYTES, SIZE_TO_CLASS, SpanHeap } from './spans.ts';

/** The collector's own tunables, beside the shared GcTunables. */
export interface MarkSweepOptions {
  /** 'freed': every slot a sweep frees is filled with 0xDB (default: $VMLAB_GC_POISON=1, else off). */
  poison: 'off' | 'freed';
  /** Bytes of one grey-stack block (Go's workbuf), at least 64. */
  greyBlockBytes: number;
  /** Grey-stack blocks the stack may map; past them a push overflows (the object is rescanned later). */
  maxGreyBlocks: number;
}

export const MARKSWEEP_DEFAULTS: Readonly<MarkSweepOptions> = {
  poison: 'off',
  greyBlockBytes: 16384,
  maxGreyBlocks: 4096,
};

/** The pacer's constants. */
const PACER = {
  /** The runway an incremental cycle's assists aim to finish within, in percent of the goal (Go's hard goal is goal + 10%). */
  assistRunwayPercent: 10,
  /** The least scan work an allocated byte owes during marking. */
  minAssistRatio: 1,
  /** The scavenger keeps the heap goal plus this much resident (Go's retainExtraPercent). */
  retainExtraPercent: 10,
} as const;

/** Objects up to this many bytes past the header are zeroed with word stores, bigger ones with a fill. */
const ZERO_BY_WORDS_BYTES = 48;

/** Counters of the collector (statistics only). */
export interface MarkSweepCounters {
  cycles: number;
  /** Pauses of incremental cycles: root scans, mark slices (assists and markSlice calls), final pauses. */
  slices: number;
  /** Root rescans at the end of incremental cycles. */
  rootRescans: number;
  /** Rescans of the marked objects after the grey stack overflowed. */
  overflowRescans: number;
  /** Full collections run because the heap could not grow. */
  memoryCollections: number;
}

export type Colour = 'free' | 'white' | 'grey' | 'black';

export class MarkSweepCollector implements Collector {
  readonly name = 'marksweep';
  readonly moving = false;
  readonly heap: SpanHeap;
  readonly counters: MarkSweepCounters = {
    cycles: 0,
    slices: 0,
    rootRescans: 0,
    overflowRescans: 0,
    memoryCollections: 0,
  };
  /** Go's heapLive: slot bytes allocated since the last mark ended, plus those it found marked. */
  heapLive = 0;
  /** Slot bytes the last mark found marked (Go's heapMarked). */
  heapMarked = 0;
  /** The pacer's goal (Infinity with GOGC off); a cycle starts when heapLive reaches trigger. */
  goalBytes = 0;
  private trigger = 0;
  private marking = false;
  private readonly cpu: UserCpu;
  private readonly roots: RootSet;
  private readonly tunables: Readonly<GcTunables>;
  private readonly stats: GcStats;
  private readonly report: GcReport;
  private readonly grey: GreyStack;
  /** Slot bytes marked (shaded or allocated black) in the current cycle. */
  private markedThisCycle = 0;
  /** Scan work the allocations of this cycle owe (bytes), and what one allocated byte owes. */
  private assistDebt = 0;
  private assistRatio: number = PACER.minAssistRatio;
  /** Proportional sweep (Go's sweepPagesPerByte): pages to sweep per byte allocated since sweepBasis. */
  private sweepPagesPerByte = 0;
  private sweepBasis = 0;
  private sweepStartPages = 0;
  private scavengePending = false;
  private destroyed = false;
  /** scanObject bound once, for the overflow rescan's walk over the marked objects. */
  private readonly scanMarked = (obj: number): void => {
    this.scanObject(obj);
  };

  /** RangeError for an option out of range; GcAbort when the kernel refuses the metadata. */
  constructor(env: CollectorEnv, options: Partial<MarkSweepOptions> = {}) {
    const poisonEnv = env.libc.ctx.env.VMLAB_GC_POISON;
    const o: MarkSweepOptions = {
      ...MARKSWEEP_DEFAULTS,
      ...(poisonEnv === '1' ? { poison: 'freed' as const } : {}),
      ...options,
    };
    checkOptions(o);
    this.cpu = env.cpu;
    this.roots = env.roots;
    this.tunables = env.tunables;
    this.stats = env.stats;
    this.report = env.stats.report;
    this.heap = new SpanHeap(env.libc, this.report, {
      poison: o.poison,
      maxHeapBytes: env.tunables.maxHeapBytes,
    });
    this.grey = new GreyStack(this.heap, o.greyBlockBytes, o.maxGreyBlocks);
    this.setGoal();
  }

  // ---- allocation ----

  /**
   * A new object (header written, fields and data zero), or 0 when the heap cannot grow even
   * after a full collection. Runs the pacer's cycle start and the mark assists first.
   */
  allocate(nptrs: number, dataBytes: number, type: number): number {
    const bytes = objectBytes(nptrs, dataBytes);
    if (this.heapLive >= this.trigger) this.pacerTrigger();
    if (this.marking) this.assist(bytes);
    const heap = this.heap;
    let obj = bytes <= MAX_SMALL_BYTES ? heap.nextFreeFast(SIZE_TO_CLASS[bytes >>> 4]!) : 0;
    if (obj === 0) {
      obj = this.allocateSlow(bytes);
      if (obj === 0) return 0;
    }
    if (heap.needZero) this.zero(obj + HEADER_BYTES, bytes - HEADER_BYTES);
    if (this.marking) this.allocateBlack();
    writeHeader(this.cpu, obj, nptrs, type, dataBytes);
    const elem = heap.lastElemBytes;
    this.heapLive += elem;
    this.report.objectsAllocated++;
    this.report.bytesAllocated += elem;
    return obj;
  }

  /** Zero `bytes` (a multiple of 8) at `at`: word stores for a small object, one fill for a big one. */
  private zero(at: number, bytes: number): void {
    if (bytes > ZERO_BY_WORDS_BYTES) {
      this.cpu.fillBytes(at, bytes, 0);
      return;
    }
    for (let off = 0; off < bytes; off += 8) this.cpu.store64(at + off, 0);
  }

  /** The slow path: the span's bitmap, a refill, a large span; then a full collection and one retry. */
  private allocateSlow(bytes: number): number {
    const obj = this.allocateFromSpans(bytes);
    if (obj !== 0) return obj;
    this.counters.memoryCollections++;
    this.collectEverything();
    return this.allocateFromSpans(bytes);
  }

  private allocateFromSpans(bytes: number): number {
    const heap = this.heap;
    if (bytes > MAX_SMALL_BYTES) {
      this.sweepCredit();
      return heap.allocLarge(bytes);
    }
    const cls = SIZE_TO_CLASS[bytes >>> 4]!;
    const obj = heap.nextFree(cls);
    if (obj !== 0) return obj;
    this.sweepCredit();
    return heap.refill(cls) ? heap.nextFree(cls) : 0;
  }

  /** The object just allocated during a mark phase is black (Go's gcmarknewobject). */
  private allocateBlack(): void {
    const heap = this.heap;
    if (heap.markSlot(heap.lastSpan, heap.lastIndex)) this.markedThisCycle += heap.lastElemBytes;
  }

  /**
   * Sweep in proportion to allocation (Go's deductSweepCredit) so that the sweep ends before
   * the next trigger; once it has ended, run the scavenger the last mark left pending.
   */
  private sweepCredit(): void {
    const heap = this.heap;
    const owed = this.sweepPagesPerByte * (this.heapLive - this.sweepBasis);
    while (heap.unsweptSpans > 0 && this.sweepStartPages - heap.unsweptPages < owed) heap.sweepOne('credit');
    if (heap.unsweptSpans === 0 && this.scavengePending) this.scavenge();
  }

  // ---- the write barrier ----

  /** Store `ref` into field `i` of `obj`; while marking, Dijkstra's barrier shades `ref`. */
  writeField(obj: number, i: number, ref: number): void {
    this.cpu.store64(obj + HEADER_BYTES + FIELD_BYTES * i, ref);
    if (this.marking && this.tunables.barrier) this.barrier(ref);
  }

  private barrier(ref: number): void {
    this.report.barrierStores++;
    if (ref === 0) return;
    const shaded = this.shade(ref);
    if (shaded < 0)
      throw new GcAbort(`writeField: 0x${ref.toString(16)} is not an object of the marksweep heap`);
    if (shaded > 0) this.report.barrierHits++;
  }

  // ---- cycles ----

  /** Collect now: a cycle in progress is finished, a full one runs, every span is swept, the scavenger runs. */
  collect(_kind: CollectionKind): void {
    this.collectEverything();
    this.scavenge();
    this.stats.publish();
  }

  private collectEverything(): void {
    this.stopTheWorld();
    this.heap.finishSweep('collect');
  }

  /**
   * Give back every free page (Go's debug.FreeOSMemory): a full collection, then the scavenger
   * with nothing to retain.
   */
  releaseMemory(): void {
    this.collectEverything();
    this.scavengePending = false;
    this.heap.scavenge(0);
    this.stats.publish();
  }

  private pacerTrigger(): void {
    if (this.tunables.incremental) this.startCycle();
    else this.stopTheWorld();
  }

  /** A full stop-the-world cycle (a cycle in progress is finished first); the sweep is left lazy. */
  private stopTheWorld(): void {
    if (this.marking) this.finishCycle();
    this.heap.finishSweep('cycleStart');
    this.stats.begin('full');
    const t0 = this.stats.nowNs();
    this.beginMark();
    this.scanRoots();
    this.drainAll();
    this.report.markNs += this.stats.nowNs() - t0;
    this.markTermination('stopTheWorld');
    this.stats.end();
  }

  /**
   * Begin an incremental cycle now (what the pacer does when heapLive reaches the goal, with
   * tunables.incremental): the sweep left is finished, then a short pause shades the roots.
   * GcAbort when a cycle is in progress.
   */
  startCycle(): void {
    if (this.marking) throw new GcAbort('marksweep: a cycle began inside another');
    this.heap.finishSweep('cycleStart');
    this.stats.begin('slice');
    this.beginMark();
    this.scanRoots();
    this.endSlice();
  }

  /**
   * One mark slice of about `budgetBytes` of scanning (header and fields of each grey object),
   * what an allocation assist runs; when nothing grey is left, the final pause ends the cycle.
   * False when no cycle is in progress.
   */
  markSlice(budgetBytes: number): boolean {
    if (!this.marking) return false;
    this.stats.begin('slice');
    const work = this.drain(budgetBytes);
    this.assistDebt = Math.max(0, this.assistDebt - work);
    if (this.grey.depth === 0) this.markTermination('incremental');
    this.endSlice();
    return true;
  }

  /** Allocation of `bytes` during marking owes scan work; pay it in slices. */
  private assist(bytes: number): void {
    this.assistDebt += bytes * this.assistRatio;
    if (this.assistDebt >= this.tunables.markSliceBytes) this.markSlice(this.tunables.markSliceBytes);
  }

  /** The final pause of an incremental cycle, now. */
  private finishCycle(): void {
    this.stats.begin('slice');
    this.markTermination('incremental');
    this.endSlice();
  }

  private endSlice(): void {
    this.stats.endMarkSlice();
    this.counters.slices++;
  }

  private beginMark(): void {
    if (this.heap.unsweptSpans !== 0) throw new GcAbort('marksweep: marking began with spans unswept');
    this.marking = true;
    this.trigger = Number.POSITIVE_INFINITY;
    this.markedThisCycle = 0;
    this.assistDebt = 0;
    const runway = (this.goalBytes * PACER.assistRunwayPercent) / 100;
    this.assistRatio = Math.max(PACER.minAssistRatio, this.heapMarked / Math.max(1, runway));
  }

  /**
   * End the mark phase: (incremental) rescan the roots, drain the grey stack, then every span
   * becomes unswept, heapLive restarts from what was marked, the next goal is set.
   */
  private markTermination(kind: 'incremental' | 'stopTheWorld'): void {
    if (kind === 'incremental') {
      this.scanRoots();
      this.counters.rootRescans++;
    }
    this.drainAll();
    this.marking = false;
    const heap = this.heap;
    heap.flushCache();
    heap.startSweepCycle();
    this.heapMarked = this.markedThisCycle;
    this.heapLive = this.heapMarked;
    this.report.liveBytes = this.heapMarked;
    this.setGoal();
    this.sweepBasis = this.heapLive;
    this.sweepStartPages = heap.unsweptPages;
    const distance = this.trigger - this.heapLive;
    this.sweepPagesPerByte = Number.isFinite(distance) ? heap.unsweptPages / Math.max(1, distance) : 0;
    this.scavengePending = true;
    this.counters.cycles++;
    if (kind === 'incremental') this.stats.countCollection('full');
  }

  /** goal = heapMarked * (1 + GOGC/100), at least minHeapBytes; none with GOGC off. */
  private setGoal(): void {
    const t = this.tunables;
    if (t.gogc < 0) {
      this.goalBytes = Number.POSITIVE_INFINITY;
      this.report.nextGcBytes = 0;
    } else {
      this.goalBytes = Math.max(
        t.minHeapBytes,
        this.heapMarked + Math.floor((this.heapMarked * t.gogc) / 100),
      );
      this.report.nextGcBytes = this.goalBytes;
    }
    this.trigger = this.goalBytes;
  }

  /** Run the scavenger: keep the goal (or, with GOGC off, what is live) plus retainExtraPercent. */
  private scavenge(): void {
    this.scavengePending = false;
    const keep = Number.isFinite(this.goalBytes) ? this.goalBytes : this.heapMarked;
    this.heap.scavenge(Math.floor((keep * (100 + PACER.retainExtraPercent)) / 100));
  }

  // ---- marking ----

  /** Shade every root (globals and the live shadow stack). */
  private scanRoots(): void {
    const cpu = this.cpu;
    const base = this.roots.base;
    const n = this.roots.slotCount();
    for (let i = 0; i < n; i++) {
      const ref = cpu.load64(base + SLOT_BYTES * i);
      if (ref !== 0 && this.shade(ref) < 0)
        throw new GcAbort(`marksweep: root slot ${i} holds 0x${ref.toString(16)}, not an object`);
    }
  }

  /**
   * Grey `ref` if it is white: 1 when it was, 0 when it was marked already, -1 when it is not
   * an allocated object. GcAbort when its header does not fit its slot.
   */
  private shade(ref: number): number {
    const heap = this.heap;
    const index = heap.objectIndex(ref);
    if (index < 0) return -1;
    if (!heap.markSlot(heap.foundSpan, index)) return 0;
    const elem = heap.foundElemBytes;
    const nptrs = this.cpu.load16(ref);
    const dataBytes = this.cpu.load32(ref + H_DATA_BYTES);
    if (dataBytes > MAX_DATA_BYTES || HEADER_BYTES + FIELD_BYTES * nptrs + dataBytes > elem)
      throw new GcAbort(
        `marksweep: the object at 0x${ref.toString(16)} has a corrupt header (${nptrs} fields, ${dataBytes} data bytes in a ${elem}-byte slot)`,
      );
    this.markedThisCycle += elem;
    this.report.bytesMarked += elem;
    this.grey.push(ref);
    return 1;
  }

  /** Blacken `obj`: shade what its fields point at. The bytes scanned (header and fields). */
  private scanObject(obj: number): number {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj);
    for (let i = 0; i < nptrs; i++) {
      const ref = cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
      if (ref !== 0 && this.shade(ref) < 0)
        throw new GcAbort(
          `marksweep: field ${i} of the object at 0x${obj.toString(16)} holds 0x${ref.toString(16)}, not an object`,
        );
    }
    return HEADER_BYTES + FIELD_BYTES * nptrs;
  }

  /** Scan grey objects until `budgetBytes` are scanned or none is left; the bytes scanned. */
  private drain(budgetBytes: number): number {
    let work = 0;
    while (work < budgetBytes) {
      const obj = this.grey.pop();
      if (obj === 0) break;
      work += this.scanObject(obj);
    }
    return work;
  }

  /** Drain the grey stack; after an overflow, rescan every marked object until none overflows. */
  private drainAll(): void {
    for (;;) {
      this.drain(Number.POSITIVE_INFINITY);
      if (!this.grey.overflowed) return;
      this.grey.overflowed = false;
      this.counters.overflowRescans++;
      this.heap.forEachMarked(this.scanMarked);
    }
  }

  // ---- queries ----

  /** Is `addr` the start of an allocated slot (dead objects not yet swept included)? */
  isObject(addr: number): boolean {
    return this.heap.isObject(addr);
  }

  /** Every allocated object, dead ones not yet swept included, in address order. */
  forEachObject(fn: (obj: number) => void): void {
    this.heap.forEachObject(fn);
  }

  /** 'mark' during a mark phase, 'sweep' while spans are left to sweep, else 'idle'. */
  phase(): 'idle' | 'mark' | 'sweep' {
    if (this.marking) return 'mark';
    return this.heap.unsweptSpans > 0 ? 'sweep' : 'idle';
  }

  /** The colour of `obj` (a debugging aid: looking for grey walks the grey stack). */
  colourOf(obj: number): Colour {
    const heap = this.heap;
    const index = heap.objectIndex(obj);
    if (index < 0) return 'free';
    if (!heap.isMarked(heap.foundSpan, index)) return 'white';
    return this.grey.contains(obj) ? 'grey' : 'black';
  }

  /** Grey-stack overflows so far (pushes dropped for want of a block). */
  greyOverflows(): number {
    return this.grey.overflows;
  }

  /** Unmap the grey stack and the whole heap. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.grey.destroy();
    this.heap.destroy();
  }

  /**
   * GcAbort naming the first broken rule: the grey stack's, the pacer's, and the span heap's
   * (SpanHeap.checkInvariants). Walks the whole heap.
   */
  checkInvariants(): void {
    if (this.destroyed) throw new GcAbort('marksweep.checkInvariants: the heap is destroyed');
    if (!this.marking && this.grey.depth !== 0)
      throw new GcAbort(`marksweep.checkInvariants: ${this.grey.depth} grey objects outside a mark phase`);
    this.grey.check();
    if (this.heapLive < this.heapMarked)
      throw new GcAbort(
        `marksweep.checkInvariants: heapLive ${this.heapLive} below heapMarked ${this.heapMarked}`,
      );
    this.heap.checkInvariants(this.phase(), this.grey.mappedBytes());
  }
}

/**
 * The grey stack: objects marked and not yet scanned, in blocks of emulated memory mapped as it
 * grows (Go's workbufs), each [prev block u64 | unused u64 | refs ...]; the top block's fill is
 * a register pair (top, limit). The bottom block stays mapped between cycles.
 *
 *   depth = refs in all blocks = (top - (block + 16)) / 8 + (blocks - 1) * perBlock
 *
 * When no block can be mapped (the kernel or maxHeapBytes refuses, or maxBlocks are mapped), a push is dropped
 * and `overflowed` set: the object stays marked but unscanned until the collector rescans the
 * marked objects.
 */
class GreyStack {
  depth = 0;
  overflowed = false;
  overflows = 0;
  private blocks = 0;
  private block = 0;
  private top = 0;
  private floor = 0;
  private limit = 0;
  private readonly cpu: UserCpu;
  private readonly heap: SpanHeap;
  private readonly blockBytes: number;
  private readonly maxBlocks: number;

  constructor(heap: SpanHeap, blockBytes: number, maxBlocks: number) {
    this.heap = heap;
    this.cpu = heap.cpu;
    this.blockBytes = blockBytes;
    this.maxBlocks = maxBlocks;
  }

  push(ref: number): void {
    if (this.top < this.limit) {
      this.cpu.store64(this.top, ref);
      this.top += 8;
      this.depth++;
      return;
    }
    this.pushToNewBlock(ref);
  }

  /** The top reference, popped; 0 when the stack is empty. */
  pop(): number {
    if (this.top > this.floor) {
      this.top -= 8;
      this.depth--;
      return this.cpu.load64(this.top);
    }
    return this.popFromBlockBelow();
  }

  private pushToNewBlock(ref: number): void {
    const room = this.blocks < this.maxBlocks && !this.heap.overLimit(this.heap.pageRound(this.blockBytes));
    const at = room ? this.heap.mapRegion(this.blockBytes) : 0;
    if (at === 0) {
      this.overflowed = true;
      this.overflows++;
      return;
    }
    this.cpu.store64(at, this.block);
    this.enter(at, at + 16);
    this.blocks++;
    this.push(ref);
  }

  /** The top block is empty: unmap it (not the bottom one) and pop from the full one below. */
  private popFromBlockBelow(): number {
    if (this.block === 0) return 0;
    const below = this.cpu.load64(this.block);
    if (below === 0) return 0;
    this.heap.unmapRegion(this.block, this.blockBytes);
    this.blocks--;
    this.enter(below, below + this.blockBytes);
    return this.pop();
  }

  private enter(block: number, top: number): void {
    this.block = block;
    this.floor = block + 16;
    this.limit = block + this.blockBytes;
    this.top = top;
  }

  /** Is `ref` on the stack? (Walks every block.) */
  contains(ref: number): boolean {
    for (let b = this.block, end = this.top; b !== 0; b = this.cpu.load64(b), end = b + this.blockBytes) {
      for (let at = b + 16; at < end; at += 8) if (this.cpu.load64(at) === ref) return true;
    }
    return false;
  }

  /** Bytes the blocks hold from the kernel (whole pages). */
  mappedBytes(): number {
    return this.blocks * this.heap.pageRound(this.blockBytes);
  }

  /** GcAbort when the block chain and the depth disagree. */
  check(): void {
    let blocks = 0;
    let refs = 0;
    for (let b = this.block; b !== 0; b = this.cpu.load64(b)) {
      refs += blocks === 0 ? (this.top - (b + 16)) / 8 : (this.blockBytes - 16) / 8;
      if (++blocks > this.blocks) break;
    }
    if (blocks !== this.blocks || refs !== this.depth)
      throw new GcAbort(
        `marksweep.checkInvariants: grey stack of ${blocks} blocks and ${refs} refs, counted ${this.blocks} and ${this.depth}`,
      );
  }

  destroy(): void {
    for (let b = this.block; b !== 0; ) {
      const below = this.cpu.load64(b);
      this.heap.unmapRegion(b, this.blockBytes);
      b = below;
    }
    this.block = this.top = this.floor = this.limit = 0;
    this.blocks = this.depth = 0;
  }
}

/** RangeError naming the first option out of range. */
function checkOptions(o: MarkSweepOptions): void {
  if (o.poison !== 'off' && o.poison !== 'freed')
    throw new RangeError(`marksweep: poison '${String(o.poison)}' is not off or freed`);
  if (!Number.isSafeInteger(o.greyBlockBytes) || o.greyBlockBytes < 64 || o.greyBlockBytes % 8 !== 0)
    throw new RangeError(`marksweep: greyBlockBytes ${o.greyBlockBytes} is not a multiple of 8, at least 64`);
  if (!Number.isSafeInteger(o.maxGreyBlocks) || o.maxGreyBlocks < 1)
    throw new RangeError(`marksweep: maxGreyBlocks ${o.maxGreyBlocks} is not a whole number >= 1`);
}
