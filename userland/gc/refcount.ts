/**
 * Reference counting with CPython's cycle collector (Modules/gcmodule.c, 3.9), over pymalloc.
 *
 * Every object counts the references to it (root slots and fields) in its header's aux word.
 * writeField increments the new referent and decrements the old one; rootStored does the same
 * for the root slots (the runtime calls it on every push, pop, setSlot and setGlobal). When a
 * count reaches 0 the object is freed at once and its fields' referents are decremented in turn,
 * iteratively: a dead container goes on the trash list, threaded through its own gc_next word
 * (CPython's trashcan, with no nesting allowed), which one loop drains.
 *
 * Counting cannot free a cycle. Containers (objects with pointer fields) are tracked on three
 * generation lists, doubly linked through a 16-byte PyGC_Head before the header. Generation 0
 * is collected when container allocations minus deallocations exceed thresholds[0] (700), each
 * older generation when the collections of the one below exceed its threshold (10, 10); the full
 * collection also waits until the objects that reached generation 2 since the last one are 25%
 * of those it then held (CPython's long_lived_pending / long_lived_total). A collection of
 * generation g merges the younger lists into g's and:
 *   update_refs       gc_refs = refcount, for each object of the generation
 *   subtract_refs     gc_refs of each referent in the generation -= 1, for each field of each
 *                     object: what is left counts references from outside the generation
 *   move_unreachable  objects with gc_refs > 0 are reachable, and so is all they reach; the rest
 *                     moves to the unreachable list
 *   delete_garbage    each unreachable object's fields are cleared (tp_clear), which drops the
 *                     counts to 0 and frees the lot by reference counting
 * and the survivors move to generation g + 1. Pauses: generations 0 and 1 are 'minor', 2 is
 * 'full'. tunables.cycleCollector false: no cycle collection at all (cycles leak by design).
 *
 *   a small object: one pymalloc block (GC head + object <= 512 bytes)
 *   block                 obj = block + 16
 *   +---------+---------+---------------------+------------------+------+
 *   | gc_next | gc_prev | header (object.ts)  | ptr[0 .. nptrs)  | data |
 *   +---------+---------+---------------------+------------------+------+
 *
 *   a large object: a malloc'd block, on the large-object list too (sorted by address)
 *   p                                           obj = p + 32
 *   +------------+------------+---------+---------+---------+-------------------+
 *   | large_next | large_prev | gc_next | gc_prev | header  | fields, data      |
 *   +------------+------------+---------+---------+---------+-------------------+
 *
 *   gc_next   the next on its generation list; 0 untracked (a leaf, nptrs 0, is never tracked;
 *             every object has the head so a pool walk finds each header at block + 16);
 *             on the trash list, the next dead container; bit 0 NEXT_MASK_UNREACHABLE
 *             inside move_unreachable
 *   gc_prev   the previous on its list; inside a collection gc_refs * 4 + PREV_MASK_COLLECTING
 *             (CPython keeps gc_refs in gc_prev's upper bits the same way)
 *   aux       the reference count; DEAD_REFCOUNT from the moment it reaches 0 (a later
 *             incref, decref or field store aborts)
 *   gc byte   GC_FREE once freed; GC_MARK only inside checkInvariants
 *
 *   state (one page): PyGC_Head of generations 0, 1, 2, of the unreachable list, and the head
 *   of the large-object list
 *
 * Invariants (checkInvariants proves each):
 *   refcount(x) == |root slots holding x| + |fields of objects holding x|,  1 <= refcount(x)
 *   every container is on exactly one generation list, every leaf on none
 *   objectsAllocated - objectsFreed == objects in the heap; liveBytes == their bytes
 *
 * Bytes of an object (bytesAllocated, liveBytes, bytesFreed) include its GC head (and for a
 * large object its list links), as CPython's sys.getsizeof counts PyGC_Head. barrierStores
 * counts reference-count updates (each increment and decrement), barrierHits those decrements
 * that reached 0 (a deallocation).
 */
import type { GcReport, UserCpu } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import type { Malloc } from '../libc/malloc.ts';
import { MallocAbort } from '../malloc/allocator.ts';
import {
  type CollectionKind,
  type Collector,
  type CollectorEnv,
  GcAbort,
  type GcStats,
} from './collector.ts';
import {
  FIELD_BYTES,
  GC_FREE,
  GC_MARK,
  H_AUX,
  H_DATA_BYTES,
  H_GC,
  H_NPTRS,
  HEADER_BYTES,
  objectBytes,
  writeHeader,
} from './object.ts';
import { Pymalloc, SMALL_REQUEST_THRESHOLD } from './pymalloc.ts';
import type { RootSet } from './roots.ts';

/** PyGC_Head: gc_next and gc_prev, before every object's header. */
export const GC_HEAD_BYTES = 16;
/** large_next and large_prev, before a large object's GC head. */
export const LARGE_LINK_BYTES = 16;
/** The aux word of a freed object; a count this high is a use after free. */
export const DEAD_REFCOUNT = 2 ** 52;
export const NUM_GENERATIONS = 3;
/** In gc_next, inside move_unreachable: the object is on the unreachable list. */
const NEXT_MASK_UNREACHABLE = 1;
/** In gc_prev, inside a collection: the object is in the generation being collected. */
const PREV_MASK_COLLECTING = 2;
/** gc_prev = gc_refs * PREV_REFS_UNIT + flags (CPython's _PyGC_PREV_SHIFT of 2). */
const PREV_REFS_UNIT = 4;

/** Offsets in the state page. */
const S_GENERATIONS = 0;
const S_UNREACHABLE = GC_HEAD_BYTES * NUM_GENERATIONS;
const S_LARGE = S_UNREACHABLE + GC_HEAD_BYTES;
const STATE_BYTES = S_LARGE + LARGE_LINK_BYTES;

export interface RefcountOptions {
  /** The malloc that large objects and pymalloc's arena table come from (default the process's, processMalloc). */
  malloc?: Malloc;
}

/** What CPython's gc.get_stats() tells of one generation. */
export interface GenerationStats {
  /** gc.get_count(): container allocations minus deallocations (generation 0), or collections of the younger generation. */
  count: number;
  threshold: number;
  collections: number;
  /** Objects found unreachable by this generation's collections. */
  collected: number;
}

export class RefcountCollector implements Collector {
  readonly name = 'refcount';
  readonly moving = false;
  readonly pymalloc: Pymalloc;
  private readonly libc: Libc;
  private readonly cpu: UserCpu;
  private readonly roots: RootSet;
  private readonly stats: GcStats;
  private readonly report: GcReport;
  private readonly thresholds: readonly [number, number, number];
  private readonly cycleCollector: boolean;
  private readonly state: number;
  private readonly unreachable: number;
  private readonly largeHead: number;
  /** gcstate->generations[g].count, and the collections and unreachable objects of each (gc.get_stats). */
  private readonly genCount = [0, 0, 0];
  private readonly genCollections = [0, 0, 0];
  private readonly genCollected = [0, 0, 0];
  /** Objects that reached generation 2 since the last full collection, and its survivors then. */
  private longLivedPending = 0;
  private longLivedTotal = 0;
  /** Containers on the generation lists; large objects on their list. */
  private tracked = 0;
  private largeCount = 0;
  /** The first dead container not yet released (0: none); the rest hang off its gc_next. */
  private trash = 0;
  private draining = false;
  private collecting = false;
  /** Objects and bytes freed inside cycle collections (the rest were freed by counting alone). */
  private cycleFreedObjects = 0;
  private cycleFreedBytes = 0;

  /** Maps the state page and starts pymalloc; throws GcAbort when the kernel refuses. */
  constructor(env: CollectorEnv, options: RefcountOptions = {}) {
    this.libc = env.libc;
    this.cpu = env.cpu;
    this.roots = env.roots;
    this.stats = env.stats;
    this.report = env.stats.report;
    this.thresholds = env.tunables.thresholds;
    this.cycleCollector = env.tunables.cycleCollector;
    const state = this.libc.mapAnonymous(STATE_BYTES);
    if (state === -1) throw new GcAbort(`refcount: cannot map its state (errno ${this.libc.errno})`);
    this.state = state;
    this.unreachable = state + S_UNREACHABLE;
    this.largeHead = state + S_LARGE;
    for (let g = 0; g < NUM_GENERATIONS; g++) this.listInit(this.genHead(g));
    this.listInit(this.unreachable);
    this.listInit(this.largeHead);
    try {
      this.pymalloc = new Pymalloc(this.libc, {
        ...(options.malloc === undefined ? {} : { raw: options.malloc }),
        maxBytes: env.tunables.maxHeapBytes,
      });
    } catch (err) {
      this.libc.munmap(state, STATE_BYTES);
      throw err instanceof MallocAbort ? new GcAbort(err.message) : err;
    }
    this.report.heapBytes = this.heapBytesNow();
  }

  /**
   * A new object with count 0 (the runtime's push makes it 1): a pymalloc block when its GC
   * head and body fit in 512 bytes, else a malloc'd one. A container counts toward generation
   * 0's threshold, which may run a collection before the object is tracked. 0 when no memory
   * is left even after a full collection.
   */
  allocate(nptrs: number, dataBytes: number, type: number): number {
    const bytes = GC_HEAD_BYTES + objectBytes(nptrs, dataBytes);
    if (bytes > SMALL_REQUEST_THRESHOLD) return this.allocateLarge(nptrs, dataBytes, type);
    let block = this.pymalloc.alloc(bytes);
    if (block === 0) block = this.allocateSlow(bytes, 'small');
    if (block === 0) return 0;
    const obj = block + GC_HEAD_BYTES;
    this.initObject(obj, bytes, nptrs, dataBytes, type);
    return obj;
  }

  /** Field `i` of `obj` becomes `ref`: the new referent's count up, the store, the old one's down. */
  writeField(obj: number, i: number, ref: number): void {
    const cpu = this.cpu;
    if (cpu.load64(obj + H_AUX) >= DEAD_REFCOUNT) this.useAfterFree(obj, 'writeField');
    const va = obj + HEADER_BYTES + FIELD_BYTES * i;
    const old = cpu.load64(va);
    if (ref !== 0) this.incref(ref);
    cpu.store64(va, ref);
    if (old !== 0) this.decref(old);
  }

  /** A root slot went from `oldRef` to `newRef`: the same counting as a field store. */
  rootStored(oldRef: number, newRef: number): void {
    if (newRef !== 0) this.incref(newRef);
    if (oldRef !== 0) this.decref(oldRef);
  }

  /**
   * gc.collect(generation): 'minor' collects generation 0, 'full' generation 2 (all of them).
   * Nothing happens with the cycle collector off: counting has already freed what it can.
   */
  collect(kind: CollectionKind): void {
    if (!this.cycleCollector) return;
    if (this.collecting) throw new GcAbort('refcount: a collection began inside a collection');
    this.collectGeneration(kind === 'full' ? NUM_GENERATIONS - 1 : 0);
  }

  /** A pymalloc block (checked on the arena table, then its pool) or a member of the large-object list, not freed. */
  isObject(addr: number): boolean {
    if (!Number.isSafeInteger(addr) || addr % 16 !== 0 || addr < GC_HEAD_BYTES + LARGE_LINK_BYTES)
      return false;
    if (this.pymalloc.isAllocatedBlock(addr - GC_HEAD_BYTES)) return true;
    return this.isLargeObject(addr);
  }

  /** Every object in address order: the arenas' blocks by address merged with the sorted large-object list. */
  forEachObject(fn: (obj: number) => void): void {
    const cpu = this.cpu;
    const head = this.largeHead;
    let large = cpu.load64(head);
    let n = 0;
    const nextLarge = (): void => {
      if (++n > this.largeCount) this.corrupt('forEachObject: the large-object list does not end');
      fn(large + LARGE_LINK_BYTES + GC_HEAD_BYTES);
      large = cpu.load64(large);
    };
    this.pymalloc.forEachBlock((block) => {
      const obj = block + GC_HEAD_BYTES;
      while (large !== head && large < obj) nextLarge();
      fn(obj);
    });
    while (large !== head) nextLarge();
  }

  /** Free the large objects, unmap pymalloc's arenas and statics and the state page. */
  destroy(): void {
    const cpu = this.cpu;
    const head = this.largeHead;
    for (let node = cpu.load64(head), n = 0; node !== head; n++) {
      if (n > this.largeCount) throw new GcAbort('refcount destroy: the large-object list does not end');
      const next = cpu.load64(node);
      this.pymalloc.free(node);
      node = next;
    }
    this.listInit(head);
    this.largeCount = 0;
    this.pymalloc.destroy();
    this.libc.munmap(this.state, STATE_BYTES);
    this.report.heapBytes = 0;
  }

  /**
   * pymalloc's structures, the generation lists (well linked, each container on exactly one),
   * the large-object list (sorted, well linked), every object's header and count, the count
   * equation against the roots and fields, and the statistics. GcAbort naming the first broken rule.
   */
  checkInvariants(): void {
    if (this.collecting || this.draining || this.trash !== 0)
      this.fail('a collection or a release is in progress');
    try {
      this.pymalloc.checkInvariants();
    } catch (err) {
      if (err instanceof MallocAbort) this.fail(err.message);
      throw err;
    }
    if (!this.listIsEmpty(this.unreachable)) this.fail('the unreachable list is not empty');
    const onLists = this.checkGenerationLists();
    this.checkLargeList();
    this.checkObjects(onLists);
    this.checkRefcounts();
    if (this.report.heapBytes !== this.heapBytesNow())
      this.fail(`heapBytes ${this.report.heapBytes}, but ${this.heapBytesNow()} held`);
  }

  // ---- introspection (gc.get_count, gc.get_stats, sys.getrefcount) ----

  /** The reference count of `obj`. */
  refcount(obj: number): number {
    return this.cpu.load64(obj + H_AUX);
  }

  /** Generation `g`'s counter, threshold, collections and unreachable objects found. */
  generationStats(g: number): GenerationStats {
    return {
      count: this.genCount[g],
      threshold: this.thresholds[g],
      collections: this.genCollections[g],
      collected: this.genCollected[g],
    };
  }

  /** Containers on generation `g`'s list (a walk). */
  generationLength(g: number): number {
    return this.listSize(this.genHead(g));
  }

  /** CPython's long_lived_pending (objects that reached generation 2 since the last full collection) and long_lived_total. */
  longLived(): { pending: number; total: number } {
    return { pending: this.longLivedPending, total: this.longLivedTotal };
  }

  /** Objects and bytes freed by counting alone and by the cycle collector. */
  freedBy(): { refcount: { objects: number; bytes: number }; cycles: { objects: number; bytes: number } } {
    const r = this.report;
    return {
      refcount: {
        objects: r.objectsFreed - this.cycleFreedObjects,
        bytes: r.bytesFreed - this.cycleFreedBytes,
      },
      cycles: { objects: this.cycleFreedObjects, bytes: this.cycleFreedBytes },
    };
  }

  // ---- allocation ----

  /** Zero the GC head and the body, write the header, count, and track a container. */
  private initObject(obj: number, bytes: number, nptrs: number, dataBytes: number, type: number): void {
    this.cpu.fillBytes(obj - GC_HEAD_BYTES, GC_HEAD_BYTES + objectBytes(nptrs, dataBytes), 0);
    writeHeader(this.cpu, obj, nptrs, type, dataBytes);
    const r = this.report;
    r.objectsAllocated++;
    r.bytesAllocated += bytes;
    r.liveBytes += bytes;
    if (nptrs > 0) this.trackNew(obj);
    else r.heapBytes = this.heapBytesNow();
  }

  /** _PyObject_GC_Alloc's accounting, then PyObject_GC_Track: count, maybe collect, append to generation 0. */
  private trackNew(obj: number): void {
    const count = this.genCount[0] + 1;
    this.genCount[0] = count;
    if (count > this.thresholds[0] && this.cycleCollector && !this.collecting) this.collectGenerations();
    this.listAppend(obj - GC_HEAD_BYTES, this.genHead(0));
    this.tracked++;
    this.report.heapBytes = this.heapBytesNow();
  }

  /** A malloc'd block with the large-object links in front, linked in address order. */
  private allocateLarge(nptrs: number, dataBytes: number, type: number): number {
    const bytes = LARGE_LINK_BYTES + GC_HEAD_BYTES + objectBytes(nptrs, dataBytes);
    let p = this.pymalloc.malloc(bytes);
    if (p === 0) p = this.allocateSlow(bytes, 'large');
    if (p === 0) return 0;
    this.linkLarge(p);
    const obj = p + LARGE_LINK_BYTES + GC_HEAD_BYTES;
    this.initObject(obj, bytes, nptrs, dataBytes, type);
    return obj;
  }

  /** The allocation failed: a full collection (when the cycle collector may run), then one more try; 0 if that fails too. */
  private allocateSlow(bytes: number, kind: 'small' | 'large'): number {
    if (!this.cycleCollector || this.collecting) return 0;
    this.collectGeneration(NUM_GENERATIONS - 1);
    return kind === 'small' ? this.pymalloc.alloc(bytes) : this.pymalloc.malloc(bytes);
  }

  // ---- counting ----

  private incref(obj: number): void {
    const va = obj + H_AUX;
    const rc = this.cpu.load64(va);
    if (rc >= DEAD_REFCOUNT) this.useAfterFree(obj, 'incref');
    this.cpu.store64(va, rc + 1);
    this.report.barrierStores++;
  }

  private decref(obj: number): void {
    const va = obj + H_AUX;
    const rc = this.cpu.load64(va);
    this.report.barrierStores++;
    if (rc > 1 && rc < DEAD_REFCOUNT) {
      this.cpu.store64(va, rc - 1);
      return;
    }
    this.decrefToZero(obj, rc);
  }

  /** The last reference went (or a count was already 0 or dead: GcAbort): deallocate. */
  private decrefToZero(obj: number, rc: number): void {
    if (rc >= DEAD_REFCOUNT) this.useAfterFree(obj, 'decref');
    if (rc !== 1) throw new GcAbort(`refcount: decref of the object at 0x${hex(obj)}, whose count is ${rc}`);
    this.cpu.store64(obj + H_AUX, DEAD_REFCOUNT);
    this.report.barrierHits++;
    this.deallocate(obj);
  }

  /**
   * A count reached 0 (aux is DEAD_REFCOUNT from here on). A leaf is freed at once; a container
   * leaves its generation and goes on the trash list, which is drained here unless a drain is
   * already running further up.
   */
  private deallocate(obj: number): void {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj + H_NPTRS);
    if (nptrs === 0) {
      this.freeObject(obj, 0);
      return;
    }
    this.untrack(obj);
    cpu.store64(obj - GC_HEAD_BYTES, this.trash);
    this.trash = obj;
    if (!this.draining) this.drainTrash();
  }

  /** Release dead containers until none is left: decrement what each points to (which may add more), then free it. */
  private drainTrash(): void {
    const cpu = this.cpu;
    this.draining = true;
    while (this.trash !== 0) {
      const obj = this.trash;
      this.trash = cpu.load64(obj - GC_HEAD_BYTES);
      const nptrs = cpu.load16(obj + H_NPTRS);
      for (let i = 0; i < nptrs; i++) {
        const ref = cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
        if (ref !== 0) this.decref(ref);
      }
      this.freeObject(obj, nptrs);
    }
    this.draining = false;
  }

  /** Give the block of `obj` (with `nptrs` fields) back to pymalloc or malloc, GC_FREE in its gc byte. */
  private freeObject(obj: number, nptrs: number): void {
    const cpu = this.cpu;
    const size = objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    const large = GC_HEAD_BYTES + size > SMALL_REQUEST_THRESHOLD;
    const bytes = large ? LARGE_LINK_BYTES + GC_HEAD_BYTES + size : GC_HEAD_BYTES + size;
    const r = this.report;
    r.objectsFreed++;
    r.bytesFreed += bytes;
    r.liveBytes -= bytes;
    if (this.collecting) {
      this.cycleFreedObjects++;
      this.cycleFreedBytes += bytes;
    }
    cpu.store8(obj + H_GC, GC_FREE);
    if (large) {
      const p = obj - GC_HEAD_BYTES - LARGE_LINK_BYTES;
      this.unlinkLarge(p);
      this.pymalloc.free(p);
    } else {
      this.pymalloc.free(obj - GC_HEAD_BYTES);
    }
    r.heapBytes = this.heapBytesNow();
  }

  /** PyObject_GC_UnTrack and PyObject_GC_Del's count: off its list; generation 0's counter down (not below 0). */
  private untrack(obj: number): void {
    this.listRemove(obj - GC_HEAD_BYTES);
    this.tracked--;
    if (this.genCount[0] > 0) this.genCount[0]--;
  }

  private useAfterFree(obj: number, what: string): never {
    throw new GcAbort(`refcount: ${what} of the object at 0x${hex(obj)}, which was freed`);
  }

  // ---- the cycle collector ----

  /** collect_generations: collect the oldest generation whose counter passed its threshold (the full one only past the 25% rule). */
  private collectGenerations(): void {
    for (let g = NUM_GENERATIONS - 1; g >= 0; g--) {
      if (this.genCount[g] <= this.thresholds[g]) continue;
      if (g === NUM_GENERATIONS - 1 && this.longLivedPending < Math.floor(this.longLivedTotal / 4)) continue;
      this.collectGeneration(g);
      return;
    }
  }

  /** CPython's collect(): generations 0 .. g as one, the unreachable freed, the survivors one generation older. */
  private collectGeneration(generation: number): void {
    const stats = this.stats;
    const r = this.report;
    stats.begin(generation === NUM_GENERATIONS - 1 ? 'full' : 'minor');
    this.collecting = true;
    if (generation + 1 < NUM_GENERATIONS) this.genCount[generation + 1]++;
    for (let g = 0; g <= generation; g++) this.genCount[g] = 0;
    const young = this.genHead(generation);
    for (let g = 0; g < generation; g++) this.listMerge(this.genHead(g), young);
    const old = generation + 1 < NUM_GENERATIONS ? this.genHead(generation + 1) : young;
    const markStart = stats.nowNs();
    this.deduceUnreachable(young);
    r.markNs += stats.nowNs() - markStart;
    if (young !== old) {
      const survivors = this.listSize(young);
      if (generation === NUM_GENERATIONS - 2) this.longLivedPending += survivors;
      r.objectsPromoted += survivors;
      this.listMerge(young, old);
    } else {
      this.longLivedPending = 0;
      this.longLivedTotal = this.listSize(young);
    }
    this.genCollected[generation] += this.listSize(this.unreachable);
    this.deleteGarbage(old);
    this.genCollections[generation]++;
    this.collecting = false;
    stats.end();
  }

  /** update_refs, subtract_refs, move_unreachable; the unreachable list made a plain list again. */
  private deduceUnreachable(young: number): void {
    this.listInit(this.unreachable);
    this.updateRefs(young);
    this.subtractRefs(young);
    this.moveUnreachable(young);
    this.clearUnreachableMask();
  }

  /** gc_refs = refcount, and the COLLECTING flag, for every object of `young`. */
  private updateRefs(young: number): void {
    const cpu = this.cpu;
    const limit = this.tracked;
    let n = 0;
    for (let g = cpu.load64(young); g !== young; g = cpu.load64(g)) {
      if (++n > limit) this.corrupt('update_refs: the generation list does not end');
      const rc = cpu.load64(g + GC_HEAD_BYTES + H_AUX);
      if (rc === 0 || rc >= DEAD_REFCOUNT)
        throw new GcAbort(`update_refs: a tracked object at 0x${hex(g + GC_HEAD_BYTES)} has count ${rc}`);
      cpu.store64(g + 8, rc * PREV_REFS_UNIT + PREV_MASK_COLLECTING);
    }
  }

  /** For every field of every object of `young`: the referent's gc_refs - 1 when it is being collected. */
  private subtractRefs(young: number): void {
    const cpu = this.cpu;
    const limit = this.tracked;
    let bytes = 0;
    let n = 0;
    for (let g = cpu.load64(young); g !== young; g = cpu.load64(g)) {
      if (++n > limit) this.corrupt('subtract_refs: the generation list does not end');
      const obj = g + GC_HEAD_BYTES;
      const nptrs = cpu.load16(obj + H_NPTRS);
      for (let i = 0; i < nptrs; i++) {
        const ref = cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
        if (ref !== 0) this.visitDecref(ref);
      }
      bytes += objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
    }
    this.report.bytesMarked += bytes;
  }

  private visitDecref(ref: number): void {
    const va = ref - 8;
    const v = this.cpu.load64(va);
    if (v % PREV_REFS_UNIT !== PREV_MASK_COLLECTING) return;
    if (v < PREV_REFS_UNIT)
      throw new GcAbort(`subtract_refs: the object at 0x${hex(ref)} has more references than its count`);
    this.cpu.store64(va, v - PREV_REFS_UNIT);
  }

  /**
   * move_unreachable: scan `young` in order; an object with gc_refs > 0 is reachable and its
   * referents are made so (visitReachable); one with gc_refs 0 moves to the unreachable list,
   * from which a later reachable object may bring it back. Restores gc_prev of the reachable
   * ones as it goes (gc_refs lived there).
   */
  private moveUnreachable(young: number): void {
    const cpu = this.cpu;
    const unreachable = this.unreachable;
    const limit = 2 * this.tracked + 2;
    let n = 0;
    let prev = young;
    let g = cpu.load64(young);
    while (g !== young) {
      if (++n > limit) this.corrupt('move_unreachable: the generation list does not end');
      if (cpu.load64(g + 8) >= PREV_REFS_UNIT) {
        const obj = g + GC_HEAD_BYTES;
        const nptrs = cpu.load16(obj + H_NPTRS);
        for (let i = 0; i < nptrs; i++) {
          const ref = cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
          if (ref !== 0) this.visitReachable(ref, young);
        }
        cpu.store64(g + 8, prev);
        prev = g;
      } else {
        cpu.store64(prev, cpu.load64(g));
        const last = cpu.load64(unreachable + 8);
        cpu.store64(last, g + NEXT_MASK_UNREACHABLE);
        cpu.store64(g + 8, last + PREV_MASK_COLLECTING);
        cpu.store64(g, unreachable + NEXT_MASK_UNREACHABLE);
        cpu.store64(unreachable + 8, g);
      }
      g = cpu.load64(prev);
    }
    cpu.store64(young + 8, prev);
    const head = cpu.load64(unreachable);
    if (head % 2 === NEXT_MASK_UNREACHABLE) cpu.store64(unreachable, head - NEXT_MASK_UNREACHABLE);
  }

  /** visit_reachable: a referent in the collected generation is reachable: back from the unreachable list, or gc_refs 1. */
  private visitReachable(ref: number, young: number): void {
    const cpu = this.cpu;
    const g = ref - GC_HEAD_BYTES;
    const v = cpu.load64(g + 8);
    const next = cpu.load64(g);
    if (next === 0 || v % PREV_REFS_UNIT !== PREV_MASK_COLLECTING) return;
    if (next % 2 === NEXT_MASK_UNREACHABLE) {
      const prev = v - (v % PREV_REFS_UNIT);
      cpu.store64(prev, next);
      this.setPrev(next - NEXT_MASK_UNREACHABLE, prev);
      this.listAppend(g, young);
      cpu.store64(g + 8, PREV_REFS_UNIT + PREV_MASK_COLLECTING);
    } else if (v < PREV_REFS_UNIT) {
      cpu.store64(g + 8, PREV_REFS_UNIT + PREV_MASK_COLLECTING);
    }
  }

  /** clear_unreachable_mask, and the COLLECTING flags: the unreachable list becomes a plain doubly linked list. */
  private clearUnreachableMask(): void {
    const cpu = this.cpu;
    const unreachable = this.unreachable;
    let n = 0;
    for (let g = cpu.load64(unreachable); g !== unreachable; ) {
      if (++n > this.tracked) this.corrupt('clear_unreachable_mask: the unreachable list does not end');
      const next = cpu.load64(g);
      if (next % 2 !== NEXT_MASK_UNREACHABLE)
        this.corrupt('clear_unreachable_mask: an unreachable object lost its mark');
      cpu.store64(g, next - NEXT_MASK_UNREACHABLE);
      const v = cpu.load64(g + 8);
      cpu.store64(g + 8, v - (v % PREV_REFS_UNIT));
      g = next - NEXT_MASK_UNREACHABLE;
    }
  }

  /**
   * delete_garbage: clear each unreachable object's fields (holding a reference to it across
   * its clear, as CPython does), which frees the unreachable set by counting. One that outlives
   * its own clear (another unreachable object still points to it) waits on `old` and dies when
   * that one is cleared.
   */
  private deleteGarbage(old: number): void {
    const cpu = this.cpu;
    const unreachable = this.unreachable;
    const limit = this.tracked;
    for (let n = 0; !this.listIsEmpty(unreachable); n++) {
      if (n > limit) this.corrupt('delete_garbage: the unreachable list does not empty');
      const g = cpu.load64(unreachable);
      const obj = g + GC_HEAD_BYTES;
      this.incref(obj);
      this.clearFields(obj);
      this.decref(obj);
      if (cpu.load64(unreachable) === g) this.listMove(g, old);
    }
  }

  /** tp_clear: every field to null, dropping the reference it held. */
  private clearFields(obj: number): void {
    const cpu = this.cpu;
    const nptrs = cpu.load16(obj + H_NPTRS);
    for (let i = 0; i < nptrs; i++) {
      const va = obj + HEADER_BYTES + FIELD_BYTES * i;
      const ref = cpu.load64(va);
      if (ref === 0) continue;
      cpu.store64(va, 0);
      this.decref(ref);
    }
  }

  // ---- PyGC_Head lists (gc_list_* of gcmodule.c); nodes are GC head addresses ----

  private genHead(g: number): number {
    return this.state + S_GENERATIONS + GC_HEAD_BYTES * g;
  }

  private listInit(list: number): void {
    this.cpu.store64(list, list);
    this.cpu.store64(list + 8, list);
  }

  private listIsEmpty(list: number): boolean {
    return this.cpu.load64(list) === list;
  }

  /** _PyGCHead_SET_PREV: the pointer part of gc_prev, its flags kept (inside move_unreachable). */
  private setPrev(node: number, prev: number): void {
    const v = this.cpu.load64(node + 8);
    this.cpu.store64(node + 8, prev + (v % PREV_REFS_UNIT));
  }

  /*
   * Outside move_unreachable every gc_prev is a plain pointer (update_refs has not run, or
   * clear_unreachable_mask and move_unreachable have restored them), so the list operations
   * below write it whole.
   */

  private listAppend(node: number, list: number): void {
    const cpu = this.cpu;
    const last = cpu.load64(list + 8);
    cpu.store64(node + 8, last);
    cpu.store64(last, node);
    cpu.store64(node, list);
    cpu.store64(list + 8, node);
  }

  /** Unlink `node`; its gc_next becomes 0 (untracked). */
  private listRemove(node: number): void {
    const cpu = this.cpu;
    const prev = cpu.load64(node + 8);
    const next = cpu.load64(node);
    cpu.store64(prev, next);
    cpu.store64(next + 8, prev);
    cpu.store64(node, 0);
  }

  private listMove(node: number, list: number): void {
    this.listRemove(node);
    this.listAppend(node, list);
  }

  /** Append every node of `from` to `to`; `from` is left empty. */
  private listMerge(from: number, to: number): void {
    const cpu = this.cpu;
    if (!this.listIsEmpty(from)) {
      const toTail = cpu.load64(to + 8);
      const fromHead = cpu.load64(from);
      const fromTail = cpu.load64(from + 8);
      cpu.store64(toTail, fromHead);
      cpu.store64(fromHead + 8, toTail);
      cpu.store64(fromTail, to);
      cpu.store64(to + 8, fromTail);
    }
    this.listInit(from);
  }

  private listSize(list: number): number {
    const cpu = this.cpu;
    let n = 0;
    for (let g = cpu.load64(list); g !== list; g = cpu.load64(g))
      if (++n > this.tracked) this.corrupt('gc_list_size: the list does not end');
    return n;
  }

  // ---- the large-object list (nodes are block addresses: large_next at +0, large_prev at +8) ----

  /** Link `p` in address order, searching back from the tail (malloc's newest blocks are mostly the highest). */
  private linkLarge(p: number): void {
    const cpu = this.cpu;
    const head = this.largeHead;
    let prev = cpu.load64(head + 8);
    for (let n = 0; prev !== head && prev > p; n++) {
      if (n > this.largeCount) this.corrupt('the large-object list does not end');
      prev = cpu.load64(prev + 8);
    }
    const next = cpu.load64(prev);
    cpu.store64(p, next);
    cpu.store64(p + 8, prev);
    cpu.store64(prev, p);
    cpu.store64(next + 8, p);
    this.largeCount++;
  }

  private unlinkLarge(p: number): void {
    const cpu = this.cpu;
    const next = cpu.load64(p);
    const prev = cpu.load64(p + 8);
    cpu.store64(prev, next);
    cpu.store64(next + 8, prev);
    this.largeCount--;
  }

  private isLargeObject(obj: number): boolean {
    const cpu = this.cpu;
    const head = this.largeHead;
    const p = obj - GC_HEAD_BYTES - LARGE_LINK_BYTES;
    for (
      let node = cpu.load64(head), n = 0;
      node !== head && n <= this.largeCount;
      node = cpu.load64(node), n++
    )
      if (node === p) return true;
    return false;
  }

  private heapBytesNow(): number {
    return STATE_BYTES + this.pymalloc.heapBytes();
  }

  /** The heap's own structures are broken (found outside checkInvariants). */
  private corrupt(rule: string): never {
    throw new GcAbort(`refcount: corrupt heap: ${rule}`);
  }

  // ---- checkInvariants' parts ----

  private fail(rule: string): never {
    throw new GcAbort(`refcount checkInvariants: ${rule}`);
  }

  /** Each generation list: well linked, its nodes live containers, none on two lists (GC_MARK, cleared by checkObjects). */
  private checkGenerationLists(): number {
    const cpu = this.cpu;
    let total = 0;
    for (let gen = 0; gen < NUM_GENERATIONS; gen++) {
      const head = this.genHead(gen);
      let prev = head;
      for (let g = cpu.load64(head); g !== head; g = cpu.load64(g)) {
        if (++total > this.tracked)
          this.fail(`generation ${gen}: more containers on the lists than tracked (${this.tracked})`);
        const obj = g + GC_HEAD_BYTES;
        if (cpu.load64(g + 8) !== prev)
          this.fail(`generation ${gen}: gc_prev of 0x${hex(obj)} is not its predecessor`);
        if (!this.isObject(obj)) this.fail(`generation ${gen} holds 0x${hex(obj)}, not an allocated object`);
        if (cpu.load16(obj + H_NPTRS) === 0) this.fail(`generation ${gen} holds a leaf at 0x${hex(obj)}`);
        const gc = cpu.load8(obj + H_GC);
        if (gc !== 0)
          this.fail(`the container at 0x${hex(obj)} is on two lists or has gc bits 0x${gc.toString(16)}`);
        cpu.store8(obj + H_GC, GC_MARK);
        prev = g;
      }
      if (cpu.load64(head + 8) !== prev)
        this.fail(`generation ${gen}: the head's gc_prev is not the last container`);
    }
    if (total !== this.tracked) this.fail(`${total} containers on the lists, ${this.tracked} tracked`);
    return total;
  }

  /** The large-object list: well linked, sorted by address, outside every arena, largeCount long. */
  private checkLargeList(): void {
    const cpu = this.cpu;
    const head = this.largeHead;
    let prev = head;
    let n = 0;
    for (let p = cpu.load64(head); p !== head; p = cpu.load64(p)) {
      if (++n > this.largeCount) this.fail('the large-object list is longer than largeCount');
      if (cpu.load64(p + 8) !== prev) this.fail(`large_prev of 0x${hex(p)} is not its predecessor`);
      if (prev !== head && p <= prev) this.fail('the large-object list is not sorted by address');
      if (this.pymalloc.addressInRange(p)) this.fail(`the large block 0x${hex(p)} is inside an arena`);
      prev = p;
    }
    if (cpu.load64(head + 8) !== prev || n !== this.largeCount)
      this.fail(`the large-object list holds ${n} blocks, largeCount ${this.largeCount}`);
  }

  /** Every object: a sane header and count; containers marked by checkGenerationLists (the mark cleared), leaves untracked. */
  private checkObjects(onLists: number): void {
    const cpu = this.cpu;
    let objects = 0;
    let bytes = 0;
    let containers = 0;
    let last = 0;
    this.forEachObject((obj) => {
      if (obj <= last) this.fail(`forEachObject is not in address order at 0x${hex(obj)}`);
      last = obj;
      objects++;
      const nptrs = cpu.load16(obj + H_NPTRS);
      const size = objectBytes(nptrs, cpu.load32(obj + H_DATA_BYTES));
      bytes += GC_HEAD_BYTES + size + (GC_HEAD_BYTES + size > SMALL_REQUEST_THRESHOLD ? LARGE_LINK_BYTES : 0);
      const rc = cpu.load64(obj + H_AUX);
      if (rc < 1 || rc >= DEAD_REFCOUNT) this.fail(`the object at 0x${hex(obj)} has count ${rc}`);
      const gc = cpu.load8(obj + H_GC);
      if (nptrs > 0) {
        if (gc !== GC_MARK) this.fail(`the container at 0x${hex(obj)} is on no generation list`);
        cpu.store8(obj + H_GC, 0);
        containers++;
      } else if (gc !== 0 || cpu.load64(obj - GC_HEAD_BYTES) !== 0 || cpu.load64(obj - 8) !== 0) {
        this.fail(`the leaf at 0x${hex(obj)} has gc bits or a tracked GC head`);
      }
    });
    if (containers !== onLists) this.fail(`${containers} containers in the heap, ${onLists} on the lists`);
    const r = this.report;
    if (r.objectsAllocated - r.objectsFreed !== objects)
      this.fail(
        `${r.objectsAllocated} allocated - ${r.objectsFreed} freed objects, but ${objects} in the heap`,
      );
    if (r.liveBytes !== bytes || r.bytesAllocated - r.bytesFreed !== bytes)
      this.fail(`liveBytes ${r.liveBytes}, but the objects in the heap take ${bytes}`);
  }

  /**
   * refcount(x) == references to x from root slots and fields. The references are counted in
   * gc_prev (scratch, as update_refs uses it), compared, and gc_prev is restored from the lists.
   */
  private checkRefcounts(): void {
    const cpu = this.cpu;
    this.forEachObject((obj) => cpu.store64(obj - 8, 0));
    this.forEachObject((obj) => {
      const nptrs = cpu.load16(obj + H_NPTRS);
      for (let i = 0; i < nptrs; i++)
        this.countReference(cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i), obj);
    });
    const slots = this.roots.slotCount();
    for (let i = 0; i < slots; i++) this.countReference(cpu.load64(this.roots.slotAddress(i)), 0);
    let bad = 0;
    let firstBad = 0;
    this.forEachObject((obj) => {
      if (cpu.load64(obj - 8) !== cpu.load64(obj + H_AUX) && bad++ === 0) firstBad = obj;
    });
    const found = firstBad === 0 ? 0 : cpu.load64(firstBad - 8);
    this.forEachObject((obj) => cpu.store64(obj - 8, 0));
    for (let gen = 0; gen < NUM_GENERATIONS; gen++) {
      const head = this.genHead(gen);
      for (
        let prev = head, g = cpu.load64(head), n = 0;
        g !== head && n <= this.tracked;
        prev = g, g = cpu.load64(g), n++
      )
        cpu.store64(g + 8, prev);
    }
    if (bad > 0)
      this.fail(
        `${bad} objects' counts are wrong: the one at 0x${hex(firstBad)} has count ${this.refcount(firstBad)} and ${found} references`,
      );
  }

  private countReference(ref: number, from: number): void {
    if (ref === 0) return;
    if (!this.isObject(ref))
      this.fail(
        `${from === 0 ? 'a root slot' : `the object at 0x${hex(from)}`} points at 0x${hex(ref)}, not an object`,
      );
    this.cpu.store64(ref - 8, this.cpu.load64(ref - 8) + 1);
  }
}

function hex(n: number): string {
  return n.toString(16);
}
