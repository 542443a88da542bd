/**
 * The generational collector (VMLAB_GC=generational): a copying nursery in front of a
 * mark-compact old generation (oldspace.ts), with a card table the write barrier keeps.
 *
 * The nursery is two semispaces of tunables.nurseryBytes each, one mapping (Cheney's layout,
 * not HotSpot's eden and two survivor spaces: survivors share the allocation space). Objects
 * are bump-allocated in the current semispace; a minor collection copies the live ones
 * breadth-first into the other, with Cheney's scan pointer and no mark stack, leaving a
 * forwarding address (GC_FORWARDED, aux) in each from-space original. An object that has
 * survived tunables.promotionAge minor collections (its age is the gc byte's GC_AGE bits) is
 * copied to the old generation's top instead, where a second scan pointer walks the promoted
 * objects the same way. The roots of a minor collection are the root slots and the fields in
 * dirty cards of the old generation.
 *
 *   nursery   lo                                        lo + semi                                hi
 *             +----------------------+-------------------+-----------------------------------------+
 *             | survivors | new objs | zero              | zero                                    |
 *             +----------------------+-------------------+-----------------------------------------+
 *             curBase                top             curEnd  toBase (the semispaces swap each minor)
 *
 *   old       base                                top        (oldspace.ts: cards, block offsets)
 *             +-----------------------------------+------ ...
 *             | promoted and large objects        |
 *             +-----------------------------------+------ ...
 *
 *   nursery objects in [curBase, top) tile it:   objects(curBase .. top) = nurseryObjects
 *   the to-space is all zero outside a collection (no object, no forwarding word)
 *   old field f holds a nursery reference  =>  the card of f is dirty   (the remembered set)
 *
 * The write barrier (writeField) runs on every pointer store: a store of a nursery reference
 * into an old object marks the card of the field (barrierHits counts those). A minor
 * collection scans the fields of the dirty cards only, finding the objects that cover a card
 * through the block offset table, and cleans each card that no longer holds a nursery
 * reference afterwards.
 *
 * A full collection marks the whole heap from the roots (a mark stack in emulated memory,
 * grown with mremap), slides the old generation's live objects down (Lisp-2: plan, update
 * references, slide), rebuilding the cards of old fields that point into the nursery, then
 * evacuates the nursery with every survivor promoted, so the nursery is empty after it (a
 * survivor stays young only when the old generation cannot take it).
 *
 * When: a minor collection when the nursery cannot take an allocation; a full one instead
 * when the old generation has reached its goal, max(liveOld * (1 + gogc/100), minHeapBytes),
 * and after a minor collection whose promotions the old generation refused. Objects larger
 * than a quarter of a semispace are allocated in the old generation directly (HotSpot's
 * PretenureSizeThreshold); so is an object that finds the nursery full of survivors.
 *
 * After a minor collection the evacuated semispace is zeroed in place (the used part only),
 * or given back with madvise(MADV_DONTNEED) when a semispace is madviseSemispaceBytes or more;
 * either way the next allocation finds zeroed memory and writes only the header.
 */
import {
  type GcReport,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
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
  type GcTunables,
} from './collector.ts';
import {
  FIELD_BYTES,
  GC_AGE_MASK,
  GC_AGE_SHIFT,
  GC_FORWARDED,
  GC_FREE,
  GC_MARK,
  H_AUX,
  H_DATA_BYTES,
  H_GC,
  HEADER_BYTES,
  OBJECT_ALIGN,
  objectBytes,
} from './object.ts';
import { type BlockCopy, CARD_BYTES, CARD_CLEAN, OldSpace } from './oldspace.ts';
import type { RootSet } from './roots.ts';

/** The generational collector's own constants (the shared tunables are in GcTunables). */
export const GENERATIONAL_CONSTANTS = {
  /** Objects larger than a semispace / pretenureDivisor are allocated in the old generation. */
  pretenureDivisor: 4,
  /** Semispaces of at least this many bytes are madvised away after a minor collection; smaller ones are zeroed. */
  madviseSemispaceBytes: 4 << 20,
  /** The old generation commits memory in steps of this many bytes. */
  commitStepBytes: 64 << 10,
  /** Address space reserved for the old generation when tunables.maxHeapBytes is 0. */
  oldReserveBytes: 1 << 30,
  /** The mark stack's size between full collections, in references. */
  markStackEntries: 2048,
  /** The bounce buffer of object copies, and the card chunk a minor collection reads at once. */
  bounceBytes: 4096,
} as const;

/** The oldest age the gc byte holds (3 bits). */
const MAX_AGE = GC_AGE_MASK >>> GC_AGE_SHIFT;

/** Which survivors of a nursery evacuation go to the old generation. */
type Tenuring = 'by-age' | 'all';

/** Where an address lies (spaceOf). */
export type Space = 'nursery' | 'old' | 'none';

export class GenerationalCollector implements Collector {
  readonly name = 'generational';
  readonly moving = true;
  /** Bytes of one semispace (tunables.nurseryBytes rounded up to a page). */
  readonly semispaceBytes: number;
  /** Objects larger than this are allocated in the old generation. */
  readonly pretenureBytes: number;
  /** Dirty cards the minor collections have scanned, in all. */
  cardsScanned = 0;
  private readonly cpu: UserCpu;
  private readonly libc: Libc;
  private readonly roots: RootSet;
  private readonly tunables: Readonly<GcTunables>;
  private readonly stats: GcStats;
  private readonly report: GcReport;
  /** tunables.barrier: false skips the card marking (a debug switch). */
  private readonly barrier: boolean;
  private readonly nurseryLo: number;
  private readonly old: OldSpace;
  private readonly oldBase: number;
  private readonly oldEnd: number;
  private readonly markStack: MarkStack;
  private readonly copier: BounceBuffer;
  private readonly cardChunk: Uint8Array;
  /** The allocation semispace [curBase, curEnd) and its bump pointer. */
  private curBase: number;
  private curEnd: number;
  private top: number;
  private toBase: number;
  /** Objects in [curBase, top). */
  private nurseryObjects = 0;
  /** The old generation's goal: a full collection when its objects reach it. */
  private oldGoalBytes: number;
  /** Registers of a nursery evacuation. */
  private toTop = 0;
  private tenure: Tenuring = 'by-age';
  private promotionRefused = false;
  private survivedObjects = 0;
  private survivedBytes = 0;
  private promotedObjects = 0;
  private promotedBytes = 0;

  /** Maps the nursery, the mark stack and the old generation's reservation; GcAbort when refused. */
  constructor(env: CollectorEnv) {
    this.cpu = env.cpu;
    this.libc = env.libc;
    this.roots = env.roots;
    this.tunables = env.tunables;
    this.stats = env.stats;
    this.report = env.stats.report;
    this.barrier = env.tunables.barrier;
    const page = env.libc.getpagesize();
    const k = GENERATIONAL_CONSTANTS;
    this.semispaceBytes = Math.ceil(env.tunables.nurseryBytes / page) * page;
    this.pretenureBytes = Math.floor(this.semispaceBytes / k.pretenureDivisor);
    const max = env.tunables.maxHeapBytes;
    const fixed = 2 * this.semispaceBytes + k.markStackEntries * FIELD_BYTES;
    if (max > 0 && fixed > max)
      throw new GcAbort(
        `generational: maxHeapBytes ${max} is less than the nursery and mark stack (${fixed})`,
      );
    this.nurseryLo = mapOrAbort(env.libc, 2 * this.semispaceBytes, 'nursery');
    this.curBase = this.nurseryLo;
    this.curEnd = this.curBase + this.semispaceBytes;
    this.top = this.curBase;
    this.toBase = this.curEnd;
    this.copier = new BounceBuffer(env.cpu, k.bounceBytes);
    this.cardChunk = new Uint8Array(k.bounceBytes);
    try {
      this.markStack = new MarkStack(env.libc, k.markStackEntries);
    } catch (err) {
      env.libc.munmap(this.nurseryLo, 2 * this.semispaceBytes);
      throw err;
    }
    try {
      this.old = new OldSpace(env.libc, {
        reserveBytes: max > 0 ? max : k.oldReserveBytes,
        commitStepBytes: k.commitStepBytes,
        mayGrow: (extra) => max === 0 || this.heapBytes() + extra <= max,
        copier: this.copier,
      });
    } catch (err) {
      this.markStack.release();
      env.libc.munmap(this.nurseryLo, 2 * this.semispaceBytes);
      throw err;
    }
    this.oldBase = this.old.base;
    this.oldEnd = this.old.end;
    this.oldGoalBytes = this.goalFor(0);
    this.publishSizes();
  }

  // ---- allocation ----

  /** A zeroed object with its header written, in the nursery when it fits; 0 when the heap is exhausted. */
  allocate(nptrs: number, dataBytes: number, type: number): number {
    const bytes = objectBytes(nptrs, dataBytes);
    const obj = this.top;
    if (obj + bytes <= this.curEnd && bytes <= this.pretenureBytes) {
      this.top = obj + bytes;
      this.cpu.store32(obj, nptrs | (type << 16));
      this.cpu.store32(obj + H_DATA_BYTES, dataBytes);
      this.nurseryObjects++;
      this.report.objectsAllocated++;
      this.report.bytesAllocated += bytes;
      return obj;
    }
    return this.allocateSlow(nptrs, dataBytes, type);
  }

  /** The nursery cannot take the object: collect, or allocate it in the old generation. */
  private allocateSlow(nptrs: number, dataBytes: number, type: number): number {
    const bytes = objectBytes(nptrs, dataBytes);
    if (bytes > this.pretenureBytes) return this.allocateOld(nptrs, dataBytes, type);
    if (this.oldGoalReached(0)) this.collectFull();
    else this.collectMinor();
    if (this.top + bytes <= this.curEnd) return this.allocate(nptrs, dataBytes, type);
    return this.allocateOld(nptrs, dataBytes, type);
  }

  /** An object allocated in the old generation (zeroed here: the range may hold old bytes); 0 when refused. */
  private allocateOld(nptrs: number, dataBytes: number, type: number): number {
    const bytes = objectBytes(nptrs, dataBytes);
    const collected = this.oldGoalReached(bytes);
    if (collected) this.collectFull();
    let obj = this.old.allocate(bytes);
    if (obj === 0 && !collected) {
      this.collectFull();
      obj = this.old.allocate(bytes);
    }
    if (obj === 0) return 0;
    const cpu = this.cpu;
    cpu.fillBytes(obj, bytes, 0);
    cpu.store32(obj, nptrs | (type << 16));
    cpu.store32(obj + H_DATA_BYTES, dataBytes);
    this.report.objectsAllocated++;
    this.report.bytesAllocated += bytes;
    this.publishSizes();
    return obj;
  }

  // ---- the write barrier ----

  /** Store `ref` into field `i` of `obj`; a nursery reference stored into an old object dirties the field's card. */
  writeField(obj: number, i: number, ref: number): void {
    const field = obj + HEADER_BYTES + FIELD_BYTES * i;
    this.cpu.store64(field, ref);
    if (!this.barrier) return;
    this.report.barrierStores++;
    if (ref >= this.curBase && ref < this.curEnd && obj >= this.oldBase && obj < this.oldEnd) {
      this.old.markCard(field);
      this.report.barrierHits++;
    }
  }

  // ---- collections ----

  /** 'minor': the nursery (then a full collection if a promotion was refused); 'full': the whole heap. */
  collect(kind: CollectionKind): void {
    if (kind === 'minor') this.collectMinor();
    else this.collectFull();
  }

  private collectMinor(): void {
    this.stats.begin('minor');
    const t0 = this.stats.nowNs();
    this.evacuateNursery('by-age');
    this.report.markNs += this.stats.nowNs() - t0;
    this.report.bytesMarked += this.survivedBytes + this.promotedBytes;
    this.report.liveBytes = this.old.usedBytes() + (this.top - this.curBase);
    this.publishSizes();
    this.stats.end();
    if (this.promotionRefused) this.collectFull();
  }

  private collectFull(): void {
    this.stats.begin('full');
    const t0 = this.stats.nowNs();
    const marked = this.markHeap();
    this.report.markNs += this.stats.nowNs() - t0;
    this.report.bytesMarked += marked;
    this.report.liveBytes = marked;
    this.compactOld();
    this.evacuateNursery('all');
    this.old.shrink();
    this.markStack.shrink();
    this.oldGoalBytes = this.goalFor(this.old.usedBytes());
    this.publishSizes();
    this.stats.end();
  }

  // ---- the nursery's evacuation (Cheney) ----

  /**
   * Copy the nursery's live objects, found from the roots and the dirty cards, into the
   * to-space or (by `tenure`) the old generation; then release the from-space and swap.
   */
  private evacuateNursery(tenure: Tenuring): void {
    const fromBase = this.curBase;
    const fromTop = this.top;
    const objectsBefore = this.nurseryObjects;
    const promotedStart = this.old.top;
    this.tenure = tenure;
    this.toTop = this.toBase;
    this.promotionRefused = false;
    this.survivedObjects = this.survivedBytes = this.promotedObjects = this.promotedBytes = 0;
    this.evacuateRoots();
    this.scanDirtyCards(promotedStart);
    this.cheneyScan(promotedStart);
    this.releaseFromSpace(fromBase, fromTop);
    this.curBase = this.toBase;
    this.curEnd = this.curBase + this.semispaceBytes;
    this.top = this.toTop;
    this.toBase = fromBase;
    this.nurseryObjects = this.survivedObjects;
    const r = this.report;
    r.objectsFreed += objectsBefore - this.survivedObjects - this.promotedObjects;
    r.bytesFreed += fromTop - fromBase - this.survivedBytes - this.promotedBytes;
    r.objectsMoved += this.survivedObjects + this.promotedObjects;
    r.bytesMoved += this.survivedBytes + this.promotedBytes;
    r.objectsPromoted += this.promotedObjects;
  }

  private evacuateRoots(): void {
    const cpu = this.cpu;
    const roots = this.roots;
    const n = roots.slotCount();
    for (let i = 0; i < n; i++) {
      const slot = roots.slotAddress(i);
      const ref = cpu.load64(slot);
      if (ref >= this.curBase && ref < this.curEnd) cpu.store64(slot, this.evacuate(ref));
      else if (ref !== 0 && !this.old.contains(ref)) this.badReference(ref, slot);
    }
  }

  /** Scan the fields of every dirty card below `limit` (the old top before this evacuation). */
  private scanDirtyCards(limit: number): void {
    const chunk = this.cardChunk;
    const cards = this.old.cardsBelow(limit);
    for (let first = 0; first < cards; first += chunk.length) {
      const count = Math.min(chunk.length, cards - first);
      this.old.readCards(first, count, chunk);
      for (let k = 0; k < count; k++) if (chunk[k] !== CARD_CLEAN) this.scanCard(first + k, limit);
    }
  }

  /**
   * Evacuate the nursery objects the fields inside card `card` (and below `limit`) point at;
   * the card is cleaned unless one of them still points into the nursery (the to-space).
   */
  private scanCard(card: number, limit: number): void {
    const cpu = this.cpu;
    const old = this.old;
    const cardStart = this.oldBase + card * CARD_BYTES;
    const cardEnd = Math.min(cardStart + CARD_BYTES, limit);
    let young = false;
    for (let obj = old.objectCovering(card); obj < cardEnd; ) {
      const nptrs = cpu.load16(obj);
      const fields = obj + HEADER_BYTES;
      const end = Math.min(fields + FIELD_BYTES * nptrs, cardEnd);
      for (let f = Math.max(fields, cardStart); f < end; f += FIELD_BYTES) {
        const ref = cpu.load64(f);
        if (ref < this.curBase || ref >= this.curEnd) {
          if (ref !== 0 && !old.contains(ref)) this.badReference(ref, f);
          continue;
        }
        const to = this.evacuate(ref);
        cpu.store64(f, to);
        if (to >= this.toBase && to < this.toBase + this.semispaceBytes) young = true;
      }
      obj += objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    }
    this.cardsScanned++;
    if (!young) old.cleanCard(card);
  }

  /** Cheney's loop: scan the copies in the to-space and the promoted objects until both scans catch up. */
  private cheneyScan(promotedStart: number): void {
    let scan = this.toBase;
    let promoted = promotedStart;
    while (scan < this.toTop || promoted < this.old.top) {
      while (scan < this.toTop) scan += this.scanSurvivor(scan);
      while (promoted < this.old.top) promoted += this.scanPromoted(promoted);
    }
  }

  /** Evacuate what a to-space copy's fields point at in the from-space; its bytes. */
  private scanSurvivor(obj: number): number {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj);
    const end = obj + HEADER_BYTES + FIELD_BYTES * nptrs;
    for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
      const ref = cpu.load64(f);
      if (ref >= this.curBase && ref < this.curEnd) cpu.store64(f, this.evacuate(ref));
      else if (ref !== 0 && !this.old.contains(ref)) this.badReference(ref, f);
    }
    return objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
  }

  /** Evacuate what a promoted object's fields point at; a field left pointing into the nursery dirties its card. */
  private scanPromoted(obj: number): number {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj);
    const end = obj + HEADER_BYTES + FIELD_BYTES * nptrs;
    for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
      const ref = cpu.load64(f);
      if (ref >= this.curBase && ref < this.curEnd) {
        const to = this.evacuate(ref);
        cpu.store64(f, to);
        if (to >= this.toBase && to < this.toBase + this.semispaceBytes) this.old.markCard(f);
      } else if (ref !== 0 && !this.old.contains(ref)) this.badReference(ref, f);
    }
    return objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
  }

  /**
   * The new address of the from-space object `ref`: its forwarding address when it was
   * copied already, else a fresh copy in the old generation (old enough, or tenure 'all') or
   * the to-space, with the forwarding address left behind.
   */
  private evacuate(ref: number): number {
    const cpu = this.cpu;
    const word = cpu.load32(ref);
    const gc = word >>> 24;
    if ((gc & GC_FORWARDED) !== 0) return cpu.load64(ref + H_AUX);
    const bytes = objectBytes(word & 0xffff, cpu.load32(ref + H_DATA_BYTES));
    if (ref % OBJECT_ALIGN !== 0 || ref + bytes > this.top || (gc & GC_FREE) !== 0) this.corruptObject(ref);
    const age = ((gc & GC_AGE_MASK) >>> GC_AGE_SHIFT) + 1;
    let to = 0;
    if ((age >= this.tunables.promotionAge || this.tenure === 'all') && !this.promotionRefused)
      to = this.promote(bytes);
    if (to !== 0) {
      this.copier.copy(to, ref, bytes);
      cpu.store8(to + H_GC, 0);
    } else {
      to = this.toTop;
      if (to + bytes > this.toBase + this.semispaceBytes) this.corruptObject(ref);
      this.toTop = to + bytes;
      this.copier.copy(to, ref, bytes);
      cpu.store8(to + H_GC, Math.min(age, MAX_AGE) << GC_AGE_SHIFT);
      this.survivedObjects++;
      this.survivedBytes += bytes;
    }
    cpu.store8(ref + H_GC, gc | GC_FORWARDED);
    cpu.store64(ref + H_AUX, to);
    return to;
  }

  /** Room at the old generation's top for a promoted object; 0 when refused (the object stays young). */
  private promote(bytes: number): number {
    const to = this.old.allocate(bytes);
    if (to === 0) {
      this.promotionRefused = true;
      return 0;
    }
    this.promotedObjects++;
    this.promotedBytes += bytes;
    return to;
  }

  /** The evacuated semispace becomes zero again: filled in place, or madvised away when large. */
  private releaseFromSpace(base: number, top: number): void {
    if (top === base) return;
    if (this.semispaceBytes >= GENERATIONAL_CONSTANTS.madviseSemispaceBytes) {
      const page = this.libc.getpagesize();
      if (this.libc.madvise(base, Math.ceil((top - base) / page) * page, MADV_DONTNEED) === 0) return;
    }
    this.cpu.fillBytes(base, top - base, 0);
  }

  // ---- the full collection: mark, compact the old generation ----

  /** Mark everything reachable from the roots, young and old; the bytes marked. */
  private markHeap(): number {
    const cpu = this.cpu;
    const roots = this.roots;
    const n = roots.slotCount();
    for (let i = 0; i < n; i++) {
      const slot = roots.slotAddress(i);
      this.markRef(cpu.load64(slot), slot);
    }
    let marked = 0;
    const stack = this.markStack;
    while (stack.depth > 0) marked += this.scanMarked(stack.pop());
    return marked;
  }

  /** Mark `ref` (found at address `at`) and push it, unless null or marked already. */
  private markRef(ref: number, at: number): void {
    if (ref === 0) return;
    if ((ref < this.curBase || ref >= this.top) && !this.old.contains(ref)) this.badReference(ref, at);
    if (ref % OBJECT_ALIGN !== 0) this.badReference(ref, at);
    const gc = this.cpu.load8(ref + H_GC);
    if ((gc & GC_MARK) !== 0) return;
    this.cpu.store8(ref + H_GC, gc | GC_MARK);
    this.markStack.push(ref);
  }

  /** Mark what the marked object `obj` points at; its bytes. */
  private scanMarked(obj: number): number {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj);
    const bytes = objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    const spaceTop = obj >= this.curBase && obj < this.curEnd ? this.top : this.old.top;
    if (obj + bytes > spaceTop || (cpu.load8(obj + H_GC) & GC_FREE) !== 0) this.corruptObject(obj);
    const end = obj + HEADER_BYTES + FIELD_BYTES * nptrs;
    for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) this.markRef(cpu.load64(f), f);
    return bytes;
  }

  /**
   * Lisp-2 over the old generation: plan the new addresses, update every reference to an old
   * object (roots, marked old and young objects; old fields pointing into the nursery dirty
   * their new card), slide.
   */
  private compactOld(): void {
    const old = this.old;
    old.planCompaction();
    this.report.objectsFreed += old.deadObjects;
    this.report.bytesFreed += old.deadBytes;
    old.cleanCardsBelow(old.top);
    this.updateRoots();
    this.updateOldObjects();
    this.updateYoungObjects();
    old.slide();
    this.report.objectsMoved += old.movedObjects;
    this.report.bytesMoved += old.movedBytes;
  }

  private updateRoots(): void {
    const cpu = this.cpu;
    const n = this.roots.slotCount();
    for (let i = 0; i < n; i++) {
      const slot = this.roots.slotAddress(i);
      const ref = cpu.load64(slot);
      if (this.old.contains(ref)) cpu.store64(slot, this.old.forwardingOf(ref));
    }
  }

  private updateOldObjects(): void {
    const cpu = this.cpu;
    const old = this.old;
    for (let obj = old.base; obj < old.top; ) {
      const nptrs = cpu.load16(obj);
      if ((cpu.load8(obj + H_GC) & GC_MARK) !== 0) {
        const moveBy = old.forwardingOf(obj) - obj;
        const end = obj + HEADER_BYTES + FIELD_BYTES * nptrs;
        for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
          const ref = cpu.load64(f);
          if (old.contains(ref)) cpu.store64(f, old.forwardingOf(ref));
          else if (ref >= this.curBase && ref < this.top) old.markCard(f + moveBy);
        }
      }
      obj += objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    }
  }

  private updateYoungObjects(): void {
    const cpu = this.cpu;
    const old = this.old;
    for (let obj = this.curBase; obj < this.top; ) {
      const nptrs = cpu.load16(obj);
      const bytes = objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
      if (obj + bytes > this.top) this.corruptObject(obj);
      if ((cpu.load8(obj + H_GC) & GC_MARK) !== 0) {
        const end = obj + HEADER_BYTES + FIELD_BYTES * nptrs;
        for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
          const ref = cpu.load64(f);
          if (old.contains(ref)) cpu.store64(f, old.forwardingOf(ref));
        }
      }
      obj += bytes;
    }
  }

  // ---- the pacer and the report ----

  /** The old generation's goal after a full collection left `liveBytes` in it (Infinity with the pacer off). */
  private goalFor(liveBytes: number): number {
    const gogc = this.tunables.gogc;
    if (gogc < 0) return Number.POSITIVE_INFINITY;
    return Math.max(Math.ceil(liveBytes * (1 + gogc / 100)), this.tunables.minHeapBytes);
  }

  /** Would `extraBytes` more bring the old generation to its goal? */
  private oldGoalReached(extraBytes: number): boolean {
    const used = this.old.usedBytes() + extraBytes;
    return used > 0 && used >= this.oldGoalBytes;
  }

  /** Bytes the heap holds from the kernel: both semispaces, the old generation's commit, the mark stack. */
  heapBytes(): number {
    return 2 * this.semispaceBytes + this.old.committedBytes() + this.markStack.bytes();
  }

  private publishSizes(): void {
    this.report.heapBytes = this.heapBytes();
    this.report.nextGcBytes = Number.isFinite(this.oldGoalBytes) ? this.oldGoalBytes : 0;
  }

  // ---- queries ----

  /** Which space `addr` lies in: the nursery's allocation semispace, the old generation, or neither. */
  spaceOf(addr: number): Space {
    if (addr >= this.curBase && addr < this.curEnd) return 'nursery';
    if (addr >= this.oldBase && addr < this.oldEnd) return 'old';
    return 'none';
  }

  /** Is the card of old-space address `addr` dirty? */
  cardIsDirty(addr: number): boolean {
    return this.old.isCardDirty(this.old.cardOf(addr));
  }

  /** Bytes of objects in the old generation. */
  oldBytes(): number {
    return this.old.usedBytes();
  }

  /** Bytes of objects in the nursery. */
  nurseryBytes(): number {
    return this.top - this.curBase;
  }

  /** Is `addr` an object's start: a walk of the allocation semispace, or the old generation's block offsets. */
  isObject(addr: number): boolean {
    if (addr >= this.curBase && addr < this.top) {
      if (addr % OBJECT_ALIGN !== 0) return false;
      let obj = this.curBase;
      while (obj < addr) obj += this.sizeAt(obj);
      return obj === addr;
    }
    return this.old.isObject(addr);
  }

  /** Every object of both generations, in address order. */
  forEachObject(fn: (obj: number) => void): void {
    if (this.curBase < this.oldBase) {
      this.forEachIn(this.curBase, this.top, fn);
      this.forEachIn(this.oldBase, this.old.top, fn);
    } else {
      this.forEachIn(this.oldBase, this.old.top, fn);
      this.forEachIn(this.curBase, this.top, fn);
    }
  }

  /** Unmap the nursery, the old generation and the mark stack. */
  destroy(): void {
    this.libc.munmap(this.nurseryLo, 2 * this.semispaceBytes);
    this.old.release();
    this.markStack.release();
    this.top = this.curBase;
    this.nurseryObjects = 0;
    this.report.heapBytes = 0;
  }

  /**
   * GcAbort naming the first broken rule: the nursery's objects tile [curBase, top) with no
   * collector bits, the to-space is empty, the old generation's own invariants
   * (oldspace.ts), every reference in the heap is null or an address inside a space, every
   * old field that points into the nursery is on a dirty card, the mark stack is empty, the
   * report's heapBytes is the heap's.
   */
  checkInvariants(): void {
    if (this.stats.inPause()) throw new GcAbort('generational: checkInvariants inside a collection');
    this.checkNursery();
    this.checkToSpaceEmpty();
    this.old.checkInvariants();
    this.checkOldFields();
    if (this.markStack.depth !== 0)
      throw new GcAbort(`generational: ${this.markStack.depth} references left on the mark stack`);
    if (this.report.heapBytes !== this.heapBytes())
      throw new GcAbort(`generational: report.heapBytes ${this.report.heapBytes} is not ${this.heapBytes()}`);
  }

  // ---- private helpers ----

  private forEachIn(start: number, end: number, fn: (obj: number) => void): void {
    for (let obj = start; obj < end; obj += this.sizeAt(obj)) fn(obj);
  }

  private sizeAt(obj: number): number {
    return objectBytes(this.cpu.load16(obj), this.cpu.load32(obj + H_DATA_BYTES));
  }

  private checkNursery(): void {
    const cpu = this.cpu;
    const lo = this.nurseryLo;
    if (this.curBase !== lo && this.curBase !== lo + this.semispaceBytes)
      throw new GcAbort('generational: the allocation semispace is not one of the two');
    if (this.toBase !== 2 * lo + this.semispaceBytes - this.curBase)
      throw new GcAbort('generational: the to-space is not the other semispace');
    if (this.top < this.curBase || this.top > this.curEnd)
      throw new GcAbort(
        `generational: the nursery's top 0x${this.top.toString(16)} is outside its semispace`,
      );
    let count = 0;
    for (let obj = this.curBase; obj < this.top; obj += this.sizeAt(obj)) {
      const gc = cpu.load8(obj + H_GC);
      if ((gc & ~GC_AGE_MASK) !== 0 || cpu.load64(obj + H_AUX) !== 0)
        throw new GcAbort(
          `generational: the nursery object at 0x${obj.toString(16)} has gc bits 0x${gc.toString(16)} or an aux word`,
        );
      if (obj + this.sizeAt(obj) > this.top)
        throw new GcAbort(`generational: the nursery object at 0x${obj.toString(16)} runs past top`);
      this.checkFields(obj);
      count++;
    }
    if (count !== this.nurseryObjects)
      throw new GcAbort(`generational: ${count} objects in the nursery, ${this.nurseryObjects} counted`);
  }

  /** The to-space holds only zero bytes (pages not present are empty too). */
  private checkToSpaceEmpty(): void {
    const page = this.libc.getpagesize();
    const chunk = this.cardChunk;
    for (let va = this.toBase; va < this.toBase + this.semispaceBytes; va += page) {
      const info = this.libc.ctx.sys.vmlab_pageinfo(va);
      if (!info.present && !info.swapped) continue;
      for (let done = 0; done < page; done += chunk.length) {
        const n = Math.min(chunk.length, page - done);
        this.cpu.loadBytes(va + done, chunk, 0, n);
        for (let k = 0; k < n; k++)
          if (chunk[k] !== 0)
            throw new GcAbort(`generational: the to-space is not empty at 0x${(va + done + k).toString(16)}`);
      }
    }
  }

  /** Every old field is null or inside a space, and one pointing into the nursery is on a dirty card. */
  private checkOldFields(): void {
    const cpu = this.cpu;
    for (let obj = this.oldBase; obj < this.old.top; obj += this.sizeAt(obj)) {
      this.checkFields(obj);
      const end = obj + HEADER_BYTES + FIELD_BYTES * cpu.load16(obj);
      for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
        const ref = cpu.load64(f);
        if (ref >= this.curBase && ref < this.top && !this.cardIsDirty(f))
          throw new GcAbort(
            `generational: remembered set: the old object at 0x${obj.toString(16)} points into the nursery (0x${ref.toString(16)}) from a clean card`,
          );
      }
    }
  }

  private checkFields(obj: number): void {
    const cpu = this.cpu;
    const end = obj + HEADER_BYTES + FIELD_BYTES * cpu.load16(obj);
    for (let f = obj + HEADER_BYTES; f < end; f += FIELD_BYTES) {
      const ref = cpu.load64(f);
      if (ref === 0) continue;
      const inside = (ref >= this.curBase && ref < this.top) || this.old.contains(ref);
      if (!inside || ref % OBJECT_ALIGN !== 0)
        throw new GcAbort(
          `generational: field at 0x${f.toString(16)} of 0x${obj.toString(16)} holds 0x${ref.toString(16)}, outside the heap's objects`,
        );
    }
  }

  private badReference(ref: number, at: number): never {
    throw new GcAbort(
      `generational: the word at 0x${at.toString(16)} holds 0x${ref.toString(16)}, not an object of the heap`,
    );
  }

  private corruptObject(obj: number): never {
    throw new GcAbort(`generational: corrupt object header at 0x${obj.toString(16)}`);
  }
}

/** An anonymous read-write mapping of `bytes`; GcAbort when the kernel refuses. */
function mapOrAbort(libc: Libc, bytes: number, what: string): number {
  const at = libc.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (at === -1)
    throw new GcAbort(`generational: cannot map ${bytes} bytes for the ${what} (errno ${libc.errno})`);
  return at;
}

/**
 * The full collection's mark stack, in emulated memory: references at base + 8 * i.
 *   0 <= depth <= capacity;  capacity = initial between full collections
 * It doubles with mremap when full (GcAbort when the kernel refuses) and shrinks back after.
 */
class MarkStack {
  base: number;
  capacity: number;
  depth = 0;
  private readonly initial: number;
  private readonly libc: Libc;
  private readonly cpu: UserCpu;

  constructor(libc: Libc, entries: number) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.initial = this.capacity = entries;
    this.base = mapOrAbort(libc, entries * FIELD_BYTES, 'mark stack');
  }

  /** Bytes mapped. */
  bytes(): number {
    return this.capacity * FIELD_BYTES;
  }

  /** Push `ref`, growing the stack when full. */
  push(ref: number): void {
    if (this.depth === this.capacity) this.grow();
    this.cpu.store64(this.base + FIELD_BYTES * this.depth++, ref);
  }

  /** The top reference, popped (the caller checked depth > 0). */
  pop(): number {
    return this.cpu.load64(this.base + FIELD_BYTES * --this.depth);
  }

  /** Back to the initial capacity (an empty stack). */
  shrink(): void {
    if (this.capacity === this.initial) return;
    const at = this.libc.mremap(this.base, this.bytes(), this.initial * FIELD_BYTES, 0);
    if (at === -1) return;
    this.base = at;
    this.capacity = this.initial;
  }

  release(): void {
    this.libc.munmap(this.base, this.bytes());
    this.depth = 0;
  }

  private grow(): void {
    const at = this.libc.mremap(this.base, this.bytes(), 2 * this.bytes(), MREMAP_MAYMOVE);
    if (at === -1)
      throw new GcAbort(
        `generational: the mark stack cannot grow past ${this.capacity} references (errno ${this.libc.errno})`,
      );
    this.base = at;
    this.capacity *= 2;
  }
}

/**
 * Object copies through the CPU's bulk loads and stores (as rep movs), by way of one bounce
 * buffer and its prefixes made once: views[k] is the first 16 k bytes. Copies forward, one
 * buffer at a time, so a slide down (dst < src) is correct.
 */
class BounceBuffer implements BlockCopy {
  private readonly cpu: UserCpu;
  private readonly buffer: Uint8Array;
  private readonly views: Uint8Array[];

  constructor(cpu: UserCpu, bytes: number) {
    this.cpu = cpu;
    this.buffer = new Uint8Array(bytes);
    this.views = [];
    for (let k = 0; k <= bytes / OBJECT_ALIGN; k++)
      this.views.push(this.buffer.subarray(0, k * OBJECT_ALIGN));
  }

  /** BlockCopy.copy: forward, one buffer at a time. */
  copy(dst: number, src: number, bytes: number): void {
    const size = this.buffer.length;
    let done = 0;
    for (; bytes - done >= size; done += size) {
      this.cpu.loadBytes(src + done, this.buffer, 0, size);
      this.cpu.storeBytes(dst + done, this.buffer);
    }
    const rest = bytes - done;
    if (rest > 0) {
      this.cpu.loadBytes(src + done, this.buffer, 0, rest);
      this.cpu.storeBytes(dst + done, this.views[rest / OBJECT_ALIGN]!);
    }
  }
}
