/**
 * The sliding mark-compact collector (Lisp-2, after Knuth's and Jonkers's presentations and
 * Jones & Lins ch. 5): one contiguous heap where allocation bumps a pointer, and a stop-the-world
 * collection that marks from the roots, then slides every live object toward the heap's start
 * in address order, in three more passes over the heap:
 *
 *   mark      from the root slots, with an explicit mark stack; the mark bit is the header's
 *             GC_MARK. A full stack sets an overflow flag; the heap is then walked and every
 *             marked object scanned again until no push was lost.
 *   pass 1    computeForwarding: walk in address order; a live object's new address (the sum
 *             of the live bytes below it) goes in its aux word, with GC_FORWARDED. The first
 *             object of each run of dead ones becomes a skip record (GC_FREE, aux = the next
 *             live object or the bump pointer), so passes 2 and 3 jump over dead runs.
 *   pass 2    updatePointers: every root slot and every field of a live object gets the aux of
 *             the object it points at.
 *   pass 3    slide: each live object is copied to its new address (always downward, so a
 *             forward copy is a correct memmove), its gc byte and aux word cleared; the
 *             object-start bitmap is rebuilt.
 *
 * Everything is in the process's emulated memory, in one reservation (PROT_NONE, MAP_NORESERVE)
 * committed from the front of each part as the heap grows:
 *
 *   base                  bitmapBase                       heapStart                         heapEnd
 *   +---------------------+--------------------------------+---------------------------------+
 *   | mark stack          | object-start bitmap            | heap                            |
 *   | markStackBytes,     | 1 bit per 16 heap bytes;       | objects back to back,           |
 *   | 8 bytes a reference | committed to cover the heap's  | [heapStart, bump) used,         |
 *   | (committed at once) | committed part                 | [heapStart, committedEnd) RW    |
 *   +---------------------+--------------------------------+---------------------------------+
 *
 *   bit (a - heapStart) / 16 of the bitmap is 1  <=>  an object's header is at a
 *   bytes of objects from heapStart to bump       ==  bump - heapStart  (they tile it exactly)
 *   objectsAllocated - objectsFreed               ==  objects in [heapStart, bump)
 *   heapBytes == markStackBytes + (bitmapCommitEnd - bitmapBase) + (committedEnd - heapStart)
 *   bitmapCommitEnd >= bitmapBase + pageUp((committedEnd - heapStart) / 128)
 *
 * Committing is mmap(MAP_FIXED, PROT_READ|PROT_WRITE) over the reservation (charged to the
 * commit limit, so the kernel can refuse it); giving memory back after a collection is
 * mmap(MAP_FIXED, PROT_NONE, MAP_NORESERVE) over the tail, which frees its frames and its charge
 * at once, as HotSpot uncommits. A hysteresis keeps the pacer's goal plus retainPercent
 * committed, and gives back only runs of at least releaseMinBytes.
 *
 * The gc byte: GC_MARK, GC_FORWARDED and GC_FREE during a collection only; 0 in every header
 * outside one, and aux 0.
 */
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type UserCpu,
} from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import {
  type CollectionKind,
  type Collector,
  type CollectorEnv,
  GcAbort,
  type GcStats,
} from './collector.ts';
import {
  FIELD_BYTES,
  GC_FORWARDED,
  GC_FREE,
  GC_MARK,
  H_AUX,
  H_DATA_BYTES,
  H_GC,
  H_NPTRS,
  HEADER_BYTES,
  OBJECT_ALIGN,
  objectBytes,
  storeField,
  writeHeader,
} from './object.ts';
import type { RootSet } from './roots.ts';

/** The collector's own tunables (the shared ones come from GcTunables). */
export interface MarkCompactTunables {
  /** Address space reserved for the heap when GcTunables.maxHeapBytes is 0 (halved until the kernel grants it). */
  reserveBytes: number;
  /** The mark stack: 8 bytes per reference; a fuller stack falls back to rescanning the heap. */
  markStackBytes: number;
  /** The heap commits at least this much more when it grows. */
  growBytes: number;
  /** Committed bytes kept above the pacer's goal after a collection, percent of the goal (Go's retainExtraPercent). */
  retainPercent: number;
  /** Memory is given back only when at least this many bytes are above what is kept. */
  releaseMinBytes: number;
}

export const MARKCOMPACT_TUNABLES: Readonly<MarkCompactTunables> = {
  reserveBytes: 1 << 30,
  markStackBytes: 64 << 10,
  growBytes: 256 << 10,
  retainPercent: 10,
  releaseMinBytes: 256 << 10,
};

/** The largest heap reservation: heap offsets stay below 2^31, so they shift as 32-bit values. */
export const MAX_RESERVE_BYTES = 2 ** 31;
/** The smallest reservation tried before the constructor gives up. */
const MIN_RESERVE_BYTES = 64 << 10;
/** Heap bytes one bitmap byte covers (8 bits, one per OBJECT_ALIGN bytes). */
const BYTES_PER_BITMAP_BYTE = 8 * OBJECT_ALIGN;
/** Bytes moved by one loadBytes/storeBytes pair while sliding. */
const COPY_CHUNK_BYTES = 4096;
const RW = PROT_READ | PROT_WRITE;
const COMMIT_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const DECOMMIT_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;

/** RangeError naming the first tunable out of its range. */
export function checkMarkCompactTunables(t: Readonly<MarkCompactTunables>): void {
  const within = (name: keyof MarkCompactTunables, min: number, max: number) => {
    const v = t[name];
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw new RangeError(`markcompact tunable ${name}: ${v} is not a whole number from ${min} to ${max}`);
  };
  within('reserveBytes', MIN_RESERVE_BYTES, MAX_RESERVE_BYTES);
  within('markStackBytes', FIELD_BYTES, 1 << 30);
  within('growBytes', 0, MAX_RESERVE_BYTES);
  within('retainPercent', 0, 1000);
  within('releaseMinBytes', 0, MAX_RESERVE_BYTES);
}

export class MarkCompactCollector implements Collector {
  readonly name = 'markcompact';
  readonly moving = true;
  private readonly libc: Libc;
  private readonly cpu: UserCpu;
  private readonly roots: RootSet;
  private readonly stats: GcStats;
  private readonly gogc: number;
  private readonly minHeapBytes: number;
  private readonly tunables: Readonly<MarkCompactTunables>;
  private readonly pageBytes: number;

  /** The reservation: [base, base + reservedBytes). */
  private readonly base: number;
  private readonly reservedBytes: number;
  /** The mark stack: [base, base + 8 * markStackSlots); stackTop entries in use (0 outside a mark). */
  private readonly markStackSlots: number;
  private stackTop = 0;
  private overflowed = false;
  /** Heap walks that rescanned the marked objects after the mark stack overflowed (a statistic). */
  overflowRescans = 0;
  /** The bitmap: [bitmapBase, bitmapCommitEnd) committed, enough for [heapStart, committedEnd). */
  private readonly bitmapBase: number;
  private bitmapCommitEnd: number;
  /** heapStart <= bump <= committedEnd <= heapEnd; all but bump page-aligned, bump 16-aligned. */
  private readonly heapStart: number;
  private readonly heapEnd: number;
  private bump: number;
  private committedEnd: number;
  /** Every byte of [max(bump, zeroFrom), committedEnd) is zero (fresh pages, or never used since). */
  private zeroFrom: number;
  /** Used heap bytes at which the pacer collects (Infinity with gogc -1). */
  private goalBytes: number;
  /** allocLimit == min(committedEnd, heapStart + goalBytes): the fast path's one compare. */
  private allocLimit: number;
  private collecting = false;

  /** Scratch for sliding and for counting bitmap bits: constant, allocated once. */
  private readonly chunk = new Uint8Array(COPY_CHUNK_BYTES);
  /** views[k] = chunk's first 16 * k bytes (object sizes and their pieces are multiples of 16). */
  private readonly views: Uint8Array[] = [];

  /**
   * Reserves the heap's address space and commits the mark stack. Throws GcAbort when the
   * kernel grants no reservation, RangeError for a tunable out of range.
   */
  constructor(env: CollectorEnv, options: Partial<MarkCompactTunables> = {}) {
    this.libc = env.libc;
    this.cpu = env.cpu;
    this.roots = env.roots;
    this.stats = env.stats;
    this.gogc = env.tunables.gogc;
    this.minHeapBytes = env.tunables.minHeapBytes;
    this.tunables = { ...MARKCOMPACT_TUNABLES, ...options };
    checkMarkCompactTunables(this.tunables);
    this.pageBytes = this.libc.getpagesize();
    for (let k = 0; k <= COPY_CHUNK_BYTES / OBJECT_ALIGN; k++)
      this.views.push(this.chunk.subarray(0, k * OBJECT_ALIGN));

    const stackBytes = this.pageUp(this.tunables.markStackBytes);
    this.markStackSlots = Math.floor(stackBytes / FIELD_BYTES);
    const heapWanted = this.heapReserveFor(env.tunables.maxHeapBytes, stackBytes);
    const { base, heapBytes } = this.reserve(stackBytes, heapWanted);
    this.base = base;
    this.bitmapBase = base + stackBytes;
    this.bitmapCommitEnd = this.bitmapBase;
    this.heapStart = this.bitmapBase + this.bitmapBytesFor(heapBytes);
    this.heapEnd = this.heapStart + heapBytes;
    this.reservedBytes = this.heapEnd - base;
    this.bump = this.heapStart;
    this.committedEnd = this.heapStart;
    this.zeroFrom = this.heapStart;
    if (!this.commit(base, stackBytes)) {
      this.libc.munmap(base, this.reservedBytes);
      throw new GcAbort(
        `markcompact: cannot commit a mark stack of ${stackBytes} bytes (errno ${this.libc.errno})`,
      );
    }
    this.goalBytes = this.gogc === -1 ? Number.POSITIVE_INFINITY : this.minHeapBytes;
    this.allocLimit = this.heapStart;
    this.publishSizes();
  }

  /**
   * A new object: header written, fields and data zero. Bumps the pointer when the object fits
   * under the pacer's goal and the committed heap; otherwise the slow path collects or grows.
   * 0 when even after a full collection it does not fit.
   */
  allocate(nptrs: number, dataBytes: number, type: number): number {
    const size = objectBytes(nptrs, dataBytes);
    const obj = this.bump;
    if (obj + size > this.allocLimit) return this.allocateSlow(nptrs, dataBytes, type);
    this.bump = obj + size;
    this.initObject(obj, size, nptrs, dataBytes, type);
    return obj;
  }

  /** No barrier: a stop-the-world collector needs none. */
  writeField(obj: number, i: number, ref: number): void {
    storeField(this.cpu, obj, i, ref);
  }

  /** A full collection; 'minor' is one too (one generation). */
  collect(_kind: CollectionKind): void {
    this.collectFull();
  }

  /** O(1): inside [heapStart, bump), 16-aligned, and its bit in the object-start bitmap set. */
  isObject(addr: number): boolean {
    if (!(addr >= this.heapStart && addr < this.bump)) return false;
    const off = addr - this.heapStart;
    if ((off & (OBJECT_ALIGN - 1)) !== 0) return false;
    return this.startBit(off) !== 0;
  }

  /** Every object from heapStart to bump, in address order (a walk by header sizes). */
  forEachObject(fn: (obj: number) => void): void {
    for (let obj = this.heapStart; obj < this.bump; obj = this.nextObject(obj, 'forEachObject')) fn(obj);
  }

  /** Unmaps the reservation (mark stack, bitmap, heap) in one call. */
  destroy(): void {
    if (this.libc.munmap(this.base, this.reservedBytes) !== 0)
      throw new GcAbort(`markcompact: munmap of the heap failed (errno ${this.libc.errno})`);
    this.bump = this.heapStart;
    this.committedEnd = this.heapStart;
    this.bitmapCommitEnd = this.bitmapBase;
    this.allocLimit = this.heapStart;
    this.stats.report.heapBytes = 0;
  }

  /**
   * The bounds, the tiling of [heapStart, bump) by sane headers with clear gc bytes and aux
   * words, the bitmap against the walk, the statistics against the heap. GcAbort naming the
   * first broken rule.
   */
  checkInvariants(): void {
    const fail = (rule: string): never => {
      throw new GcAbort(`markcompact checkInvariants: ${rule}`);
    };
    const page = this.pageBytes;
    if (this.collecting || this.stackTop !== 0) fail('a collection is in progress');
    if (!(this.heapStart <= this.bump && this.bump <= this.committedEnd && this.committedEnd <= this.heapEnd))
      fail(
        `bounds: start 0x${hex(this.heapStart)} bump 0x${hex(this.bump)} committed 0x${hex(this.committedEnd)}`,
      );
    if ((this.bump - this.heapStart) % OBJECT_ALIGN !== 0) fail('bump is not 16-aligned');
    if ((this.committedEnd - this.heapStart) % page !== 0) fail('committedEnd is not page-aligned');
    if (this.bitmapCommitEnd < this.bitmapBase + this.bitmapBytesFor(this.committedEnd - this.heapStart))
      fail('the committed bitmap does not cover the committed heap');
    if (this.allocLimit !== Math.min(this.committedEnd, this.heapStart + this.goalBytes))
      fail('allocLimit is not min(committedEnd, heapStart + goal)');
    if (this.zeroFrom < this.heapStart || this.zeroFrom > this.committedEnd)
      fail('zeroFrom outside the committed heap');
    let objects = 0;
    for (let obj = this.heapStart; obj < this.bump; obj = this.nextObject(obj, 'checkInvariants')) {
      const gc = this.cpu.load8(obj + H_GC);
      if (gc !== 0) fail(`the object at 0x${hex(obj)} has gc bits 0x${gc.toString(16)} outside a collection`);
      if (this.cpu.load64(obj + H_AUX) !== 0) fail(`the object at 0x${hex(obj)} has a stale aux word`);
      if (this.startBit(obj - this.heapStart) === 0) fail(`the object at 0x${hex(obj)} has no bitmap bit`);
      objects++;
    }
    const bits = this.countStartBits();
    if (bits !== objects) fail(`the bitmap has ${bits} bits set for ${objects} objects`);
    const r = this.stats.report;
    if (r.objectsAllocated - r.objectsFreed !== objects)
      fail(`${r.objectsAllocated} allocated - ${r.objectsFreed} freed objects, but ${objects} in the heap`);
    if (r.bytesAllocated - r.bytesFreed !== this.bump - this.heapStart)
      fail(
        `${r.bytesAllocated} allocated - ${r.bytesFreed} freed bytes, but ${this.bump - this.heapStart} used`,
      );
    if (r.heapBytes !== this.heapBytesNow())
      fail(`heapBytes ${r.heapBytes}, but ${this.heapBytesNow()} committed`);
  }

  // ---- allocation ----

  /** Zero what a reused stretch still holds, write the header, set the start bit, count. */
  private initObject(obj: number, size: number, nptrs: number, dataBytes: number, type: number): void {
    if (obj < this.zeroFrom) this.zeroStale(obj, size);
    writeHeader(this.cpu, obj, nptrs, type, dataBytes);
    this.setStartBit(obj - this.heapStart);
    const r = this.stats.report;
    r.objectsAllocated++;
    r.bytesAllocated += size;
  }

  /** Zero the part of [obj + 16, obj + size) below zeroFrom (memory a collection freed). */
  private zeroStale(obj: number, size: number): void {
    const end = Math.min(obj + size, this.zeroFrom);
    if (end > obj + HEADER_BYTES) this.cpu.fillBytes(obj + HEADER_BYTES, end - obj - HEADER_BYTES, 0);
    this.zeroFrom = Math.max(this.zeroFrom, obj + size);
  }

  /**
   * The slow path: collect when the pacer says so, grow the committed heap when the object
   * still does not fit, and collect once more (if not yet) before failing with 0.
   */
  private allocateSlow(nptrs: number, dataBytes: number, type: number): number {
    const size = objectBytes(nptrs, dataBytes);
    let collected = false;
    if (this.bump + size - this.heapStart > this.goalBytes) {
      this.collectFull();
      collected = true;
    }
    if (!this.ensureCommitted(this.bump + size)) {
      if (collected) return 0;
      this.collectFull();
      if (!this.ensureCommitted(this.bump + size)) return 0;
    }
    const obj = this.bump;
    this.bump = obj + size;
    this.initObject(obj, size, nptrs, dataBytes, type);
    return obj;
  }

  /** Is [heapStart, end) committed, growing it if needed? false when the reservation, maxHeapBytes or the kernel says no. */
  private ensureCommitted(end: number): boolean {
    if (end <= this.committedEnd) return true;
    if (end > this.heapEnd) return false;
    const need = this.pageUp(end - this.heapStart) + this.heapStart;
    const roomy = Math.min(
      this.heapEnd,
      this.pageUp(this.committedEnd + this.tunables.growBytes - this.heapStart) + this.heapStart,
    );
    if (roomy > need && this.growTo(roomy)) return true;
    return this.growTo(need);
  }

  /**
   * Commit the heap up to `end` and the bitmap that covers it; false when the kernel refuses
   * (a bitmap piece committed for it stays: it is zero, counted, and trimmed by releaseTail).
   */
  private growTo(end: number): boolean {
    const bitmapEnd = this.bitmapBase + this.bitmapBytesFor(end - this.heapStart);
    if (bitmapEnd > this.bitmapCommitEnd) {
      if (!this.commit(this.bitmapCommitEnd, bitmapEnd - this.bitmapCommitEnd)) return false;
      this.bitmapCommitEnd = bitmapEnd;
    }
    const committed = this.commit(this.committedEnd, end - this.committedEnd);
    if (committed) this.committedEnd = end;
    this.updateLimit();
    this.publishSizes();
    return committed;
  }

  // ---- collection ----

  /** Mark, compute forwarding addresses, update pointers, slide; then pace and give memory back. */
  private collectFull(): void {
    if (this.collecting) throw new GcAbort('markcompact: a collection began inside a collection');
    this.collecting = true;
    this.stats.begin('full');
    const markStart = this.stats.nowNs();
    this.markFromRoots();
    this.stats.report.markNs += this.stats.nowNs() - markStart;
    const oldBump = this.bump;
    const newBump = this.computeForwarding();
    this.updatePointers();
    this.slide(oldBump);
    this.bump = newBump;
    this.zeroFrom = Math.max(this.zeroFrom, oldBump);
    this.collecting = false;
    this.paceNext();
    this.releaseTail();
    this.stats.end();
  }

  /** Mark everything the roots reach; rescan the marked objects while the mark stack overflowed. */
  private markFromRoots(): void {
    this.stackTop = 0;
    this.overflowed = false;
    const n = this.roots.slotCount();
    for (let i = 0; i < n; i++) {
      const ref = this.cpu.load64(this.roots.slotAddress(i));
      if (ref !== 0) this.markRef(ref, 0, i);
    }
    this.drainMarkStack();
    while (this.overflowed) {
      this.overflowed = false;
      this.overflowRescans++;
      this.rescanMarked();
    }
  }

  /** Mark `ref` (found in field `index` of `owner`, or root slot `index` when owner is 0) and push it. */
  private markRef(ref: number, owner: number, index: number): void {
    if (!this.isObject(ref)) throw this.badReference(ref, owner, index);
    const gc = this.cpu.load8(ref + H_GC);
    if (gc === GC_MARK) return;
    if (gc !== 0)
      throw new GcAbort(
        `markcompact: the object at 0x${hex(ref)} has gc bits 0x${gc.toString(16)} before marking`,
      );
    this.cpu.store8(ref + H_GC, GC_MARK);
    this.stats.report.bytesMarked += this.sizeAt(ref);
    if (this.stackTop === this.markStackSlots) {
      this.overflowed = true;
      return;
    }
    this.cpu.store64(this.base + FIELD_BYTES * this.stackTop++, ref);
  }

  private drainMarkStack(): void {
    while (this.stackTop > 0) this.scanFields(this.cpu.load64(this.base + FIELD_BYTES * --this.stackTop));
  }

  private scanFields(obj: number): void {
    const n = this.cpu.load16(obj + H_NPTRS);
    this.objectEnd(obj, HEADER_BYTES + FIELD_BYTES * n, 'mark');
    for (let f = 0; f < n; f++) {
      const ref = this.cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * f);
      if (ref !== 0) this.markRef(ref, obj, f);
    }
  }

  /** After an overflow: scan every marked object again (its unmarked children get pushed). */
  private rescanMarked(): void {
    for (let obj = this.heapStart; obj < this.bump; obj = this.nextObject(obj, 'mark')) {
      if (this.cpu.load8(obj + H_GC) !== GC_MARK) continue;
      this.scanFields(obj);
      this.drainMarkStack();
    }
  }

  /**
   * Pass 1: each live object's new address into its aux word (GC_MARK | GC_FORWARDED); each
   * run of dead objects becomes one skip record at its first object. Counts the freed and the
   * moved. The new bump pointer.
   */
  private computeForwarding(): number {
    const cpu = this.cpu;
    const r = this.stats.report;
    let free = this.heapStart;
    let obj = this.heapStart;
    while (obj < this.bump) {
      if (cpu.load8(obj + H_GC) === GC_MARK) {
        const size = this.sizeAt(obj);
        cpu.store8(obj + H_GC, GC_MARK | GC_FORWARDED);
        cpu.store64(obj + H_AUX, free);
        if (free !== obj) {
          r.objectsMoved++;
          r.bytesMoved += size;
        }
        free += size;
        obj = this.objectEnd(obj, size, 'compact');
        continue;
      }
      const run = obj;
      while (obj < this.bump && cpu.load8(obj + H_GC) !== GC_MARK) {
        r.objectsFreed++;
        const size = this.sizeAt(obj);
        r.bytesFreed += size;
        obj = this.objectEnd(obj, size, 'compact');
      }
      cpu.store8(run + H_GC, GC_FREE);
      cpu.store64(run + H_AUX, obj);
    }
    return free;
  }

  /** Pass 2: every root slot and every field of a live object to its target's new address. */
  private updatePointers(): void {
    const cpu = this.cpu;
    const n = this.roots.slotCount();
    for (let i = 0; i < n; i++) {
      const va = this.roots.slotAddress(i);
      const ref = cpu.load64(va);
      if (ref !== 0) cpu.store64(va, cpu.load64(ref + H_AUX));
    }
    let obj = this.heapStart;
    while (obj < this.bump) {
      if (cpu.load8(obj + H_GC) === GC_FREE) {
        obj = cpu.load64(obj + H_AUX);
        continue;
      }
      const nptrs = cpu.load16(obj + H_NPTRS);
      for (let f = 0; f < nptrs; f++) {
        const va = obj + HEADER_BYTES + FIELD_BYTES * f;
        const ref = cpu.load64(va);
        if (ref !== 0) cpu.store64(va, cpu.load64(ref + H_AUX));
      }
      obj += objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    }
  }

  /** Pass 3: move each live object down to its aux address, clear its gc byte and aux, rebuild the bitmap. */
  private slide(oldBump: number): void {
    const cpu = this.cpu;
    cpu.fillBytes(this.bitmapBase, Math.ceil((oldBump - this.heapStart) / BYTES_PER_BITMAP_BYTE), 0);
    let obj = this.heapStart;
    while (obj < oldBump) {
      if (cpu.load8(obj + H_GC) === GC_FREE) {
        obj = cpu.load64(obj + H_AUX);
        continue;
      }
      const size = this.sizeAt(obj);
      const to = cpu.load64(obj + H_AUX);
      if (to !== obj) this.moveDown(obj, to, size);
      cpu.store8(to + H_GC, 0);
      cpu.store64(to + H_AUX, 0);
      this.setStartBit(to - this.heapStart);
      obj += size;
    }
  }

  /** memmove of `size` bytes from `from` down to `to` (to < from): a forward copy, a chunk at a time. */
  private moveDown(from: number, to: number, size: number): void {
    for (let done = 0; done < size; done += COPY_CHUNK_BYTES) {
      const n = Math.min(COPY_CHUNK_BYTES, size - done);
      this.cpu.loadBytes(from + done, this.chunk, 0, n);
      this.cpu.storeBytes(to + done, this.views[n / OBJECT_ALIGN]!);
    }
  }

  // ---- pacing and returning memory ----

  /** Go's pacer: the next collection at live * (1 + gogc/100), at least minHeapBytes; none with gogc -1. */
  private paceNext(): void {
    const live = this.bump - this.heapStart;
    const r = this.stats.report;
    r.liveBytes = live;
    this.goalBytes =
      this.gogc === -1
        ? Number.POSITIVE_INFINITY
        : Math.max(Math.floor(live + (live * this.gogc) / 100), this.minHeapBytes);
    this.updateLimit();
    r.nextGcBytes = this.gogc === -1 ? 0 : this.goalBytes;
  }

  /**
   * Give back the committed heap above what the next cycle will use: the goal (the live bytes
   * with the pacer off, at least minHeapBytes) plus retainPercent, when at least releaseMinBytes
   * are above it. The bitmap's tail goes with it.
   */
  private releaseTail(): void {
    const used = this.bump - this.heapStart;
    const goal = this.gogc === -1 ? Math.max(used, this.minHeapBytes) : this.goalBytes;
    const keepBytes = Math.max(used, goal + Math.floor((goal * this.tunables.retainPercent) / 100));
    const keepEnd = Math.min(this.committedEnd, this.heapStart + this.pageUp(keepBytes));
    if (this.committedEnd - keepEnd < Math.max(this.tunables.releaseMinBytes, 1)) return;
    if (!this.decommit(keepEnd, this.committedEnd - keepEnd)) return;
    this.committedEnd = keepEnd;
    this.zeroFrom = Math.min(this.zeroFrom, keepEnd);
    const bitmapEnd = this.bitmapBase + this.bitmapBytesFor(keepEnd - this.heapStart);
    // A bitmap tail the kernel would not take back stays committed (its bits are zero) and counted.
    if (bitmapEnd < this.bitmapCommitEnd && this.decommit(bitmapEnd, this.bitmapCommitEnd - bitmapEnd))
      this.bitmapCommitEnd = bitmapEnd;
    this.updateLimit();
    this.publishSizes();
  }

  // ---- the reservation ----

  /** Heap bytes to reserve: what maxHeapBytes leaves after the mark stack and the bitmap, or reserveBytes. */
  private heapReserveFor(maxHeapBytes: number, stackBytes: number): number {
    if (maxHeapBytes === 0) return this.pageDown(this.tunables.reserveBytes);
    const room = Math.max(0, maxHeapBytes - stackBytes);
    let heap = this.pageDown(
      Math.min(MAX_RESERVE_BYTES, Math.floor((room * BYTES_PER_BITMAP_BYTE) / (BYTES_PER_BITMAP_BYTE + 1))),
    );
    while (heap > 0 && stackBytes + this.bitmapBytesFor(heap) + heap > maxHeapBytes) heap -= this.pageBytes;
    return heap;
  }

  /** Map the reservation, halving the heap part until the kernel grants one. GcAbort when none. */
  private reserve(stackBytes: number, heapWanted: number): { base: number; heapBytes: number } {
    let heap = heapWanted;
    for (;;) {
      const total = stackBytes + this.bitmapBytesFor(heap) + heap;
      const base = this.libc.mmap(0, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (base !== -1) return { base, heapBytes: heap };
      if (heap <= MIN_RESERVE_BYTES)
        throw new GcAbort(
          `markcompact: cannot reserve ${total} bytes for the heap (errno ${this.libc.errno})`,
        );
      heap = Math.max(MIN_RESERVE_BYTES, this.pageDown(Math.floor(heap / 2)));
    }
  }

  /** Make [addr, addr + bytes) of the reservation read-write and charged; false when the kernel refuses. */
  private commit(addr: number, bytes: number): boolean {
    if (bytes === 0) return true;
    return this.libc.mmap(addr, bytes, RW, COMMIT_FLAGS, -1, 0) === addr;
  }

  /** Give [addr, addr + bytes) back: frames and charge go, the range is reserved again; false when refused. */
  private decommit(addr: number, bytes: number): boolean {
    if (bytes === 0) return true;
    return this.libc.mmap(addr, bytes, PROT_NONE, DECOMMIT_FLAGS, -1, 0) === addr;
  }

  // ---- small helpers ----

  private updateLimit(): void {
    this.allocLimit = Math.min(this.committedEnd, this.heapStart + this.goalBytes);
  }

  private heapBytesNow(): number {
    return (
      this.markStackSlots * FIELD_BYTES +
      (this.bitmapCommitEnd - this.bitmapBase) +
      (this.committedEnd - this.heapStart)
    );
  }

  private publishSizes(): void {
    this.stats.report.heapBytes = this.heapBytesNow();
    this.stats.report.nextGcBytes = this.gogc === -1 ? 0 : this.goalBytes;
  }

  /** Bitmap bytes (page-rounded) that cover `heapBytes` of heap. */
  private bitmapBytesFor(heapBytes: number): number {
    return this.pageUp(Math.ceil(heapBytes / BYTES_PER_BITMAP_BYTE));
  }

  private startBit(off: number): number {
    return (this.cpu.load8(this.bitmapBase + (off >>> 7)) >>> ((off >>> 4) & 7)) & 1;
  }

  private setStartBit(off: number): void {
    const va = this.bitmapBase + (off >>> 7);
    this.cpu.store8(va, this.cpu.load8(va) | (1 << ((off >>> 4) & 7)));
  }

  /** Set bits in the bitmap bytes that cover [heapStart, bump). */
  private countStartBits(): number {
    const bytes = Math.ceil((this.bump - this.heapStart) / BYTES_PER_BITMAP_BYTE);
    let bits = 0;
    for (let done = 0; done < bytes; done += COPY_CHUNK_BYTES) {
      const n = Math.min(COPY_CHUNK_BYTES, bytes - done);
      this.cpu.loadBytes(this.bitmapBase + done, this.chunk, 0, n);
      for (let i = 0; i < n; i++) bits += popcount8(this.chunk[i]!);
    }
    return bits;
  }

  /** Bytes of the object at `obj`, from its header. */
  private sizeAt(obj: number): number {
    return objectBytes(this.cpu.load16(obj + H_NPTRS), this.cpu.load32(obj + H_DATA_BYTES));
  }

  /** The object after `obj`; GcAbort when its header claims more than the used heap holds. */
  private nextObject(obj: number, who: string): number {
    return this.objectEnd(obj, this.sizeAt(obj), who);
  }

  /** obj + size, the end of the object at `obj`; GcAbort when that is past the used heap. */
  private objectEnd(obj: number, size: number, who: string): number {
    const next = obj + size;
    if (next > this.bump)
      throw new GcAbort(
        `markcompact ${who}: the header at 0x${hex(obj)} runs past the heap's end 0x${hex(this.bump)}`,
      );
    return next;
  }

  private badReference(ref: number, owner: number, index: number): GcAbort {
    const where = owner === 0 ? `root slot ${index}` : `field ${index} of the object at 0x${hex(owner)}`;
    return new GcAbort(`markcompact: ${where} holds 0x${hex(ref)}, not an object of the heap`);
  }

  private pageUp(bytes: number): number {
    return Math.ceil(bytes / this.pageBytes) * this.pageBytes;
  }

  private pageDown(bytes: number): number {
    return Math.floor(bytes / this.pageBytes) * this.pageBytes;
  }
}

function hex(n: number): string {
  return n.toString(16);
}

function popcount8(b: number): number {
  let v = b - ((b >>> 1) & 0x55);
  v = (v & 0x33) + ((v >>> 2) & 0x33);
  return (v + (v >>> 4)) & 0x0f;
}
