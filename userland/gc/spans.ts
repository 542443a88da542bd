/**
 * The span heap under the mark-sweep collector, after Go's runtime (sizeclasses.go, mheap.go,
 * mcentral.go, mcache.go, mbitmap.go, mgcsweep.go): size classes, spans of whole 8 KiB pages
 * holding objects of one class, per-class span lists, a page heap over 1 MiB arenas, lazy
 * sweeping and a scavenger. Every byte of its state is in the process's emulated memory;
 * JavaScript keeps only registers (the last arena looked up, the result of the last slot
 * allocation, the sweep generation) and statistics.
 *
 * Global metadata, one mapping made at start:
 *
 *   meta +0                 mcache: NCLASSES x u64, the span each class allocates from (0: none)
 *        +G_CENTRAL         central: NCLASSES x 4 x u64 list heads: partial[0], partial[1], full[0], full[1]
 *        +G_HASH            arena hash: HASH_SLOTS x (u64 frame + 1, u64 arena metadata address)
 *
 * An arena: ARENA_BYTES (or a multiple, for an object larger than one) mapped on an
 * ARENA_BYTES boundary, and its metadata mapped apart (Go's heapArena):
 *
 *   arena meta +0   base u64 | bytes u64 | next u64 | prev u64        (the arena list, by address)
 *              +32  pages u32 | freePages u32 | zeroedPages u32 | spans u32 | metaBytes u32 |
 *                   pageMapOffset u32 | recordsOffset u32
 *              +64  inUse bitmap   (pages bits: 1 = the page belongs to a span; Go's pallocBits)
 *                   zeroed bitmap  (pages bits: 1 = a free page known zero and not resident:
 *                                   never touched, or given back with MADV_DONTNEED; Go's scavenged)
 *                   page map       u16 x pages: the first page of the span holding the page
 *                   span records   SPAN_BYTES x pages: the record of the span starting at page p
 *
 *   freePages   = pages - |inUse|         zeroedPages = |zeroed|        zeroed & inUse = 0
 *
 * A span record (an mspan):
 *
 *   +0  start u64 | next u64 | prev u64 (its list) | npages u32 | elemBytes u32
 *   +32 alloc u32 = freeIndex (bits 0-11) | nelems (12-23) | needZero (24)
 *   +36 allocCache u32: the complement of allocBits from freeIndex (bit 0 = slot freeIndex)
 *   +40 allocCount u32 | sweepgen u32 | info u32 = class (bits 0-7) | list (8-15) | +56 arena meta u64
 *   +64 allocBits 16 x u32 | +128 markBits 16 x u32 (Go's allocBits and gcmarkBits; 512 slots)
 *
 *   slot i is allocated  <=>  i < freeIndex  or  allocBits[i]
 *   allocCount = freeIndex + |allocBits from freeIndex|   (for every span not in the mcache)
 *   markBits is a subset of the allocated slots; a swept span outside a mark phase has none
 *   sweepgen = G (swept) or G - 1 (to sweep: its allocBits and markBits are last cycle's)
 *
 * Every span in use is in exactly one place: the mcache (list CACHED), or one of its class's
 * four lists; partial[G & 1] and full[G & 1] hold the swept spans, the other two the unswept
 * ones, so that G++ at the end of marking makes every span unswept at once (Go's spanSet pairs).
 * Large objects (over MAX_SMALL_BYTES) have a span of their own, of class 0, on its full lists.
 */
import {
  type GcReport,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  type UserCpu,
} from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import { GcAbort } from './collector.ts';

/** Go's page: the unit of spans and of the page heap. */
export const PAGE_BYTES = 8192;
/** Arenas are mapped this many bytes at a time, on a boundary of this many bytes (Go: 64 MiB). */
export const ARENA_BYTES = 1 << 20;
export const ARENA_PAGES = ARENA_BYTES / PAGE_BYTES;
/** The largest object of a size class; bigger ones get a span of their own. */
export const MAX_SMALL_BYTES = 32768;
export const SPAN_BYTES = 192;
/** Slots of the most populous class (16 bytes in one page), the bits of each bitmap. */
const MAX_SLOTS = 512;
const BITMAP_WORDS = MAX_SLOTS / 32;
/** The arena hash: 1 MiB frames to arenas, open addressing, at most half full. */
const HASH_BITS = 11;
const HASH_SLOTS = 1 << HASH_BITS;
const HASH_SLOT_BYTES = 16;
/** The largest arena: its page map holds u16 page numbers. */
const MAX_ARENA_PAGES = 1 << 16;
/** Spans of a class's full unswept list mcentral.cacheSpan sweeps before it grows the heap (Go's spanBudget). */
const SPAN_BUDGET = 100;
/**
 * Where the heap asks the kernel to put its metadata and its arenas (mmap hints, taken when
 * free): low addresses, below 4 GiB, where the emulator's MMU takes its 32-bit fast path.
 */
const META_HINT = 0x3000_0000;
const ARENA_HINT = 0x4000_0000;
/** Debug poison written over every slot a sweep frees. */
export const POISON_BYTE = 0xdb;

/**
 * Go's size classes (sizeclasses.go, Go 1.21: class_to_size and class_to_allocnpages) without
 * its 8- and 24-byte classes, as objects here are multiples of 16 bytes: [bytes, pages].
 */
// biome-ignore format: a table
const GO_CLASSES: ReadonlyArray<readonly [number, number]> = [
  [16, 1], [32, 1], [48, 1], [64, 1], [80, 1], [96, 1], [112, 1], [128, 1], [144, 1], [160, 1],
  [176, 1], [192, 1], [208, 1], [224, 1], [240, 1], [256, 1], [288, 1], [320, 1], [352, 1],
  [384, 1], [416, 1], [448, 1], [480, 1], [512, 1], [576, 1], [640, 1], [704, 1], [768, 1],
  [896, 1], [1024, 1], [1152, 1], [1280, 1], [1408, 2], [1536, 1], [1792, 2], [2048, 1],
  [2304, 2], [2688, 1], [3072, 3], [3200, 2], [3456, 3], [4096, 1], [4864, 3], [5376, 2],
  [6144, 3], [6528, 4], [6784, 5], [6912, 6], [8192, 1], [9472, 7], [9728, 6], [10240, 5],
  [10880, 4], [12288, 3], [13568, 5], [14336, 7], [16384, 2], [18432, 9], [19072, 7],
  [20480, 5], [21760, 8], [24576, 3], [27264, 10], [28672, 7], [32768, 4],
];

/** Classes, class 0 (large objects) included. */
export const NCLASSES = GO_CLASSES.length + 1;
/** Slot bytes of each class (0 for class 0). */
export const CLASS_BYTES = Int32Array.from([0, ...GO_CLASSES.map(([b]) => b)]);
/** Pages of a span of each class. */
export const CLASS_PAGES = Int32Array.from([0, ...GO_CLASSES.map(([, p]) => p)]);
/** Slots in a span of each class. */
export const CLASS_SLOTS = Int32Array.from([
  0,
  ...GO_CLASSES.map(([b, p]) => Math.floor((p * PAGE_BYTES) / b)),
]);
/** The class of an object of `bytes` (a multiple of 16, at most MAX_SMALL_BYTES): SIZE_TO_CLASS[bytes >>> 4]. */
export const SIZE_TO_CLASS = sizeToClassTable();

function sizeToClassTable(): Uint8Array {
  const table = new Uint8Array(MAX_SMALL_BYTES / 16 + 1);
  let cls = 1;
  for (let i = 1; i < table.length; i++) {
    while (CLASS_BYTES[cls]! < i * 16) cls++;
    table[i] = cls;
  }
  table[0] = 1;
  return table;
}

// ---- global metadata ----
const G_MCACHE = 0;
const G_CENTRAL = G_MCACHE + NCLASSES * 8;
const G_HASH = G_CENTRAL + NCLASSES * 4 * 8;
const G_BYTES = G_HASH + HASH_SLOTS * HASH_SLOT_BYTES;

// ---- arena metadata ----
const A_BASE = 0;
const A_BYTES = 8;
const A_NEXT = 16;
const A_PREV = 24;
const A_PAGES = 32;
const A_FREE = 36;
const A_ZEROED = 40;
const A_SPANS = 44;
const A_META_BYTES = 48;
const A_MAP = 52;
const A_RECORDS = 56;
const A_INUSE = 64;

// ---- span records ----
const S_START = 0;
const S_NEXT = 8;
const S_PREV = 16;
const S_NPAGES = 24;
const S_ELEM = 28;
const S_ALLOC = 32;
const S_CACHE = 36;
const S_COUNT = 40;
const S_SWEEPGEN = 44;
const S_INFO = 48;
const S_ARENA = 56;
const S_ALLOC_BITS = 64;
const S_MARK_BITS = S_ALLOC_BITS + BITMAP_WORDS * 4;

/** Where a span is (the list field of its info word). */
const L_NONE = 0;
const L_CACHED = 1;
const L_PARTIAL = 2; // + parity
const L_FULL = 4; // + parity

// The alloc word: freeIndex | nelems << 12 | needZero << 24.
const FREE_INDEX_MASK = 0xfff;
const NELEMS_SHIFT = 12;
const NEED_ZERO = 1 << 24;
const freeIndexOf = (alloc: number): number => alloc & FREE_INDEX_MASK;
const nelemsOf = (alloc: number): number => (alloc >>> NELEMS_SHIFT) & FREE_INDEX_MASK;
const allocWord = (freeIndex: number, nelems: number, needZero: number): number =>
  freeIndex | (nelems << NELEMS_SHIFT) | needZero;
const classOf = (info: number): number => info & 0xff;
const listOf = (info: number): number => (info >>> 8) & 0xff;

/** Index of the lowest set bit of a non-zero 32-bit word. */
const lowestBit = (w: number): number => 31 - Math.clz32(w & -w);

/** Set bits of a 32-bit word. */
export function popcount32(w: number): number {
  let v = w - ((w >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Bits of word `w` for the slots below `freeIndex` (the ones freeIndex counts as allocated). */
function belowFreeIndex(freeIndex: number, w: number): number {
  const first = w * 32;
  if (freeIndex >= first + 32) return 0xffffffff;
  if (freeIndex <= first) return 0;
  return (1 << (freeIndex - first)) - 1;
}

/** Who asked for a span to be swept (the sweep counters). */
export type SweepReason = 'allocation' | 'credit' | 'reclaim' | 'cycleStart' | 'collect';

export interface SpanHeapOptions {
  /** 'freed': a sweep fills every slot it frees with POISON_BYTE. */
  poison: 'off' | 'freed';
  /** The most bytes the heap may map (0: no limit but the kernel's). */
  maxHeapBytes: number;
}

/** Counters of the span heap (statistics only: nothing reads them back). */
export interface SpanCounters {
  /** Spans swept by mcentral.cacheSpan for the class being allocated (lazy sweeping on demand). */
  sweptByAllocation: number;
  /** Spans swept as sweep credit, in proportion to allocation (Go's proportional sweep). */
  sweptByCredit: number;
  /** Spans swept by the page heap to free pages before it grows (Go's mheap.reclaim). */
  sweptByReclaim: number;
  /** Spans left to sweep when the next cycle began (Go's finishsweep_m). */
  sweptAtCycleStart: number;
  /** Spans swept by an explicit collect, which sweeps everything (Go's runtime.GC). */
  sweptByCollect: number;
  spansAllocated: number;
  spansFreed: number;
  arenasMapped: number;
  arenasUnmapped: number;
  /** Pages given back with MADV_DONTNEED. */
  pagesReleased: number;
}

export class SpanHeap {
  readonly cpu: UserCpu;
  readonly counters: SpanCounters = {
    sweptByAllocation: 0,
    sweptByCredit: 0,
    sweptByReclaim: 0,
    sweptAtCycleStart: 0,
    sweptByCollect: 0,
    spansAllocated: 0,
    spansFreed: 0,
    arenasMapped: 0,
    arenasUnmapped: 0,
    pagesReleased: 0,
  };
  /** Go's mheap_.sweepgen, G in the header. */
  sweepgen = 1;
  /** Spans in use; those with sweepgen G - 1; their pages. */
  spans = 0;
  unsweptSpans = 0;
  unsweptPages = 0;
  /** Bytes mapped from the kernel: metadata, arenas, and regions mapped for the collector. */
  mappedBytes = 0;
  /** Bytes of the arenas alone, and of their pages known zero and not resident. */
  arenaBytes = 0;
  zeroedBytes = 0;
  /** The result of the last slot allocation: its span, slot, slot bytes; must it be zeroed? */
  lastSpan = 0;
  lastIndex = 0;
  lastElemBytes = 0;
  needZero = false;
  /** The span objectIndex found. */
  foundSpan = 0;
  foundElemBytes = 0;
  private readonly libc: Libc;
  private readonly report: GcReport;
  private readonly options: SpanHeapOptions;
  private readonly meta: number;
  private readonly machinePage: number;
  /** The arena list, by address. */
  private firstArena = 0;
  private lastArena = 0;
  private hashUsed = 0;
  /** The last arena arenaOf found: [base, end) and its metadata (a one-entry lookup cache). */
  private cacheBase = 0;
  private cacheEnd = 0;
  private cacheMeta = 0;
  /** The class sweepOne looks at first. */
  private sweepCursor = 0;
  /** The first page of the run findRun found. */
  private runPage = 0;
  /** Where the next metadata mapping is asked for. */
  private metaHint = META_HINT;

  /** Maps the global metadata; GcAbort when the kernel refuses it. */
  constructor(libc: Libc, report: GcReport, options: SpanHeapOptions) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.report = report;
    this.options = options;
    this.machinePage = libc.getpagesize();
    const meta = this.mapRegion(G_BYTES);
    if (meta === 0)
      throw new GcAbort(`marksweep: cannot map ${G_BYTES} bytes of heap metadata (errno ${libc.errno})`);
    this.meta = meta;
  }

  // ---- mapping ----

  /**
   * Map `bytes` of zeroed memory and count it in heapBytes (whole machine pages, as the kernel
   * maps them): at the metadata hint when it is free, else where the kernel puts it. Its
   * address, or 0 when refused.
   */
  mapRegion(bytes: number): number {
    const at = this.mapAt(this.metaHint, bytes);
    if (at === this.metaHint) this.metaHint += this.pageRound(bytes);
    return at;
  }

  /** mmap `bytes` with `hint` (taken when free), counted in heapBytes; 0 when refused. */
  private mapAt(hint: number, bytes: number): number {
    const at = this.libc.mmap(hint, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (at === -1) return 0;
    this.mappedBytes += this.pageRound(bytes);
    this.report.heapBytes = this.mappedBytes;
    return at;
  }

  /**
   * Unmap a region this heap mapped (the metadata hint steps back over the last one). GcAbort
   * when the kernel refuses.
   */
  unmapRegion(at: number, bytes: number): void {
    if (this.libc.munmap(at, bytes) !== 0)
      throw new GcAbort(
        `marksweep: munmap of 0x${at.toString(16)} (${bytes} bytes) failed (errno ${this.libc.errno})`,
      );
    const length = this.pageRound(bytes);
    this.mappedBytes -= length;
    this.report.heapBytes = this.mappedBytes;
    if (at + length === this.metaHint) this.metaHint = at;
  }

  /** `bytes` rounded up to whole machine pages. */
  pageRound(bytes: number): number {
    return Math.ceil(bytes / this.machinePage) * this.machinePage;
  }

  /** Would mapping `bytes` more pass maxHeapBytes? */
  overLimit(bytes: number): boolean {
    return this.options.maxHeapBytes > 0 && this.mappedBytes + bytes > this.options.maxHeapBytes;
  }

  // ---- allocation of slots (mcache) ----

  /**
   * The next free slot of class `cls` from its mcache span's allocCache (Go's nextFreeFast), or
   * 0 when the cache word is used up or there is no span. Sets lastSpan, lastIndex,
   * lastElemBytes and needZero.
   */
  nextFreeFast(cls: number): number {
    const cpu = this.cpu;
    const span = cpu.load64(this.meta + G_MCACHE + cls * 8);
    if (span === 0) return 0;
    const cache = cpu.load32(span + S_CACHE);
    if (cache === 0) return 0;
    const alloc = cpu.load32(span + S_ALLOC);
    const bit = lowestBit(cache);
    const index = freeIndexOf(alloc) + bit;
    if (index >= nelemsOf(alloc)) return 0;
    return this.take(span, alloc, index, (cache >>> bit) >>> 1, cls);
  }

  /** Allocate slot `index` of `span`: freeIndex past it, the cache word what is left of it; its address. */
  private take(span: number, alloc: number, index: number, cache: number, cls: number): number {
    const cpu = this.cpu;
    cpu.store32(span + S_ALLOC, (alloc & ~FREE_INDEX_MASK) | (index + 1));
    cpu.store32(span + S_CACHE, cache);
    const elem = CLASS_BYTES[cls]!;
    this.lastSpan = span;
    this.lastIndex = index;
    this.lastElemBytes = elem;
    this.needZero = (alloc & NEED_ZERO) !== 0;
    return cpu.load64(span + S_START) + index * elem;
  }

  /**
   * The next free slot of the mcache span of `cls`, scanning its allocBits past the cache word
   * (Go's nextFreeIndex), or 0 when the span is full or there is none.
   */
  nextFree(cls: number): number {
    const cpu = this.cpu;
    const span = cpu.load64(this.meta + G_MCACHE + cls * 8);
    if (span === 0) return 0;
    const alloc = cpu.load32(span + S_ALLOC);
    const nelems = nelemsOf(alloc);
    for (let fi = freeIndexOf(alloc); fi < nelems; fi = ((fi >>> 5) + 1) << 5) {
      const cache = ~cpu.load32(span + S_ALLOC_BITS + (fi >>> 5) * 4) >>> (fi & 31);
      if (cache === 0) continue;
      const bit = lowestBit(cache);
      const index = fi + bit;
      if (index >= nelems) break;
      return this.take(span, alloc, index, (cache >>> bit) >>> 1, cls);
    }
    cpu.store32(span + S_ALLOC, (alloc & ~FREE_INDEX_MASK) | nelems);
    cpu.store32(span + S_CACHE, 0);
    return 0;
  }

  /**
   * Give the mcache of `cls` a span with a free slot (Go's mcache.refill): the full one goes to
   * its central list, then mcentral.cacheSpan finds another. False when the heap cannot grow.
   */
  refill(cls: number): boolean {
    const slot = this.meta + G_MCACHE + cls * 8;
    const old = this.cpu.load64(slot);
    if (old !== 0) {
      this.uncache(old);
      this.cpu.store64(slot, 0);
    }
    const span = this.cacheSpan(cls);
    if (span === 0) return false;
    this.setList(span, L_CACHED);
    this.cpu.store64(slot, span);
    return true;
  }

  /** Every mcache span back to its central list (Go's mcache.releaseAll, at the end of marking). */
  flushCache(): void {
    for (let cls = 1; cls < NCLASSES; cls++) {
      const slot = this.meta + G_MCACHE + cls * 8;
      const span = this.cpu.load64(slot);
      if (span === 0) continue;
      this.uncache(span);
      this.cpu.store64(slot, 0);
    }
  }

  /** A span leaving the mcache: its allocCount brought up to date, onto a swept list. */
  private uncache(span: number): void {
    const count = this.allocatedIn(span);
    this.cpu.store32(span + S_COUNT, count);
    const full = count === nelemsOf(this.cpu.load32(span + S_ALLOC));
    this.pushList(span, (full ? L_FULL : L_PARTIAL) + (this.sweepgen & 1));
  }

  /**
   * A swept span of `cls` with a free slot, off every list (Go's mcentral.cacheSpan): a swept
   * partial one; else an unswept partial one, swept; else unswept full ones, swept until one
   * has room; else a new span from the page heap. 0 when the heap cannot grow.
   */
  private cacheSpan(cls: number): number {
    const swept = this.sweepgen & 1;
    const unswept = swept ^ 1;
    let span = this.popList(cls, L_PARTIAL + swept);
    if (span !== 0) return span;
    span = this.popList(cls, L_PARTIAL + unswept);
    if (span !== 0) {
      this.sweepSpan(span, 'keep', 'allocation');
      return span;
    }
    for (let budget = SPAN_BUDGET; budget > 0; budget--) {
      span = this.popList(cls, L_FULL + unswept);
      if (span === 0) break;
      this.sweepSpan(span, 'keep', 'allocation');
      if (this.cpu.load32(span + S_COUNT) < CLASS_SLOTS[cls]!) return span;
      this.pushList(span, L_FULL + swept);
    }
    return this.allocSpan(CLASS_PAGES[cls]!, cls);
  }

  /**
   * A span of its own for an object of `bytes` (more than MAX_SMALL_BYTES), allocated, on
   * class 0's full swept list: its start, or 0 when the heap cannot grow. Sets last*.
   */
  allocLarge(bytes: number): number {
    const pages = Math.ceil(bytes / PAGE_BYTES);
    if (pages > MAX_ARENA_PAGES) return 0;
    const span = this.allocSpan(pages, 0);
    if (span === 0) return 0;
    const cpu = this.cpu;
    const alloc = cpu.load32(span + S_ALLOC);
    cpu.store32(span + S_ALLOC, (alloc & ~FREE_INDEX_MASK) | 1);
    cpu.store32(span + S_CACHE, 0);
    cpu.store32(span + S_COUNT, 1);
    this.pushList(span, L_FULL + (this.sweepgen & 1));
    this.lastSpan = span;
    this.lastIndex = 0;
    this.lastElemBytes = pages * PAGE_BYTES;
    this.needZero = (alloc & NEED_ZERO) !== 0;
    return cpu.load64(span + S_START);
  }

  // ---- the page heap (mheap) ----

  /**
   * A new span of `pages` pages for class `cls` (0: one large object), off every list, swept,
   * nothing allocated: its record, or 0 when no run is free and the heap cannot grow. Before
   * growing, unswept spans are swept while that may free a run (Go's mheap.reclaim).
   */
  private allocSpan(pages: number, cls: number): number {
    let arena = this.findRun(pages);
    while (arena === 0 && this.unsweptSpans > 0) {
      const freed = this.counters.spansFreed;
      this.sweepOne('reclaim');
      if (this.counters.spansFreed !== freed) arena = this.findRun(pages);
    }
    if (arena === 0) {
      arena = this.newArena(pages);
      if (arena === 0) return 0;
      this.runPage = 0;
    }
    return this.carveSpan(arena, this.runPage, pages, cls);
  }

  /** Take pages [first, first + pages) of `arena` for a new span of class `cls`; its record. */
  private carveSpan(arena: number, first: number, pages: number, cls: number): number {
    const cpu = this.cpu;
    const words = cpu.load32(arena + A_PAGES) >>> 5;
    const inUse = arena + A_INUSE;
    const zeroed = inUse + words * 4;
    const zeroPages = this.countBits(zeroed, first, pages);
    this.setBits(inUse, first, pages, 'set');
    this.setBits(zeroed, first, pages, 'clear');
    cpu.store32(arena + A_FREE, cpu.load32(arena + A_FREE) - pages);
    cpu.store32(arena + A_ZEROED, cpu.load32(arena + A_ZEROED) - zeroPages);
    cpu.store32(arena + A_SPANS, cpu.load32(arena + A_SPANS) + 1);
    this.zeroedBytes -= zeroPages * PAGE_BYTES;
    const pageMap = arena + cpu.load32(arena + A_MAP);
    for (let p = first; p < first + pages; p++) cpu.store16(pageMap + p * 2, first);
    const span = arena + cpu.load32(arena + A_RECORDS) + first * SPAN_BYTES;
    cpu.fillBytes(span, SPAN_BYTES, 0);
    cpu.store64(span + S_START, cpu.load64(arena + A_BASE) + first * PAGE_BYTES);
    cpu.store32(span + S_NPAGES, pages);
    const large = cls === 0;
    cpu.store32(span + S_ELEM, large ? pages * PAGE_BYTES : CLASS_BYTES[cls]!);
    const needZero = zeroPages < pages ? NEED_ZERO : 0;
    cpu.store32(span + S_ALLOC, allocWord(0, large ? 1 : CLASS_SLOTS[cls]!, needZero));
    cpu.store32(span + S_CACHE, 0xffffffff);
    cpu.store32(span + S_SWEEPGEN, this.sweepgen);
    cpu.store32(span + S_INFO, cls);
    cpu.store64(span + S_ARENA, arena);
    this.spans++;
    this.counters.spansAllocated++;
    return span;
  }

  /** Give a span's pages back to its arena (they are dirty now). The span is on no list. */
  private freeSpan(span: number): void {
    const cpu = this.cpu;
    const arena = cpu.load64(span + S_ARENA);
    const pages = cpu.load32(span + S_NPAGES);
    const first = (cpu.load64(span + S_START) - cpu.load64(arena + A_BASE)) / PAGE_BYTES;
    this.setBits(arena + A_INUSE, first, pages, 'clear');
    cpu.store32(arena + A_FREE, cpu.load32(arena + A_FREE) + pages);
    cpu.store32(arena + A_SPANS, cpu.load32(arena + A_SPANS) - 1);
    cpu.store64(span + S_START, 0);
    cpu.store32(span + S_INFO, 0);
    this.spans--;
    this.counters.spansFreed++;
  }

  /**
   * The first arena (by address) with `pages` free pages in a row, its first page in runPage;
   * 0 when none has (address-ordered first fit, as Go's page allocator).
   */
  private findRun(pages: number): number {
    const cpu = this.cpu;
    for (let arena = this.firstArena; arena !== 0; arena = cpu.load64(arena + A_NEXT)) {
      if (cpu.load32(arena + A_FREE) < pages) continue;
      const first = this.runIn(arena + A_INUSE, cpu.load32(arena + A_PAGES) >>> 5, pages);
      if (first >= 0) {
        this.runPage = first;
        return arena;
      }
    }
    return 0;
  }

  /** The first bit of `pages` clear bits in a row in the bitmap of `words` words at `bitmap`, or -1. */
  private runIn(bitmap: number, words: number, pages: number): number {
    let run = 0;
    let start = 0;
    for (let w = 0; w < words; w++) {
      const bits = this.cpu.load32(bitmap + w * 4);
      if (bits === 0xffffffff) {
        run = 0;
        continue;
      }
      if (bits === 0 && run + 32 < pages) {
        if (run === 0) start = w * 32;
        run += 32;
        continue;
      }
      for (let b = 0; b < 32; b++) {
        if ((bits & (1 << b)) !== 0) {
          run = 0;
          continue;
        }
        if (run === 0) start = w * 32 + b;
        if (++run >= pages) return start;
      }
    }
    return -1;
  }

  /**
   * A new arena of at least `pages` pages (ARENA_PAGES, or a multiple for a large object), on
   * an ARENA_BYTES boundary, every page free and zeroed, in the list and the hash: its
   * metadata, or 0 when the kernel, maxHeapBytes or the hash refuses.
   */
  private newArena(pages: number): number {
    const arenaPages = Math.ceil(pages / ARENA_PAGES) * ARENA_PAGES;
    const bytes = arenaPages * PAGE_BYTES;
    const frames = bytes / ARENA_BYTES;
    const layout = arenaLayout(arenaPages, this.machinePage);
    if (this.overLimit(bytes + layout.metaBytes) || (this.hashUsed + frames) * 2 > HASH_SLOTS) return 0;
    const base = this.mapAligned(bytes);
    if (base === 0) return 0;
    const arena = this.mapRegion(layout.metaBytes);
    if (arena === 0) {
      this.unmapRegion(base, bytes);
      return 0;
    }
    const cpu = this.cpu;
    cpu.store64(arena + A_BASE, base);
    cpu.store64(arena + A_BYTES, bytes);
    cpu.store32(arena + A_PAGES, arenaPages);
    cpu.store32(arena + A_FREE, arenaPages);
    cpu.store32(arena + A_ZEROED, arenaPages);
    cpu.store32(arena + A_META_BYTES, layout.metaBytes);
    cpu.store32(arena + A_MAP, layout.pageMapOffset);
    cpu.store32(arena + A_RECORDS, layout.recordsOffset);
    cpu.fillBytes(arena + A_INUSE + (arenaPages >>> 5) * 4, arenaPages >>> 3, 0xff);
    this.linkArena(arena, base);
    for (let f = 0; f < frames; f++) this.hashInsert(base / ARENA_BYTES + f, arena);
    this.arenaBytes += bytes;
    this.zeroedBytes += bytes;
    this.counters.arenasMapped++;
    return arena;
  }

  /**
   * `bytes` mapped on an ARENA_BYTES boundary: at the arena hint (just past the highest arena,
   * as Go's arena hints grow the heap upward) when it is free, else mapped larger and trimmed.
   * 0 when refused.
   */
  private mapAligned(bytes: number): number {
    const hint =
      this.lastArena === 0
        ? ARENA_HINT
        : this.cpu.load64(this.lastArena + A_BASE) + this.cpu.load64(this.lastArena + A_BYTES);
    const at = this.mapAt(hint, bytes);
    if (at === 0 || at % ARENA_BYTES === 0) return at;
    this.unmapRegion(at, bytes);
    const raw = this.mapAt(0, bytes + ARENA_BYTES);
    if (raw === 0) return 0;
    const base = Math.ceil(raw / ARENA_BYTES) * ARENA_BYTES;
    if (base > raw) this.unmapRegion(raw, base - raw);
    const tail = raw + ARENA_BYTES - base;
    if (tail > 0) this.unmapRegion(base + bytes, tail);
    return base;
  }

  /** Put `arena` into the address-ordered arena list. */
  private linkArena(arena: number, base: number): void {
    const cpu = this.cpu;
    let next = this.firstArena;
    while (next !== 0 && cpu.load64(next + A_BASE) < base) next = cpu.load64(next + A_NEXT);
    const prev = next === 0 ? this.lastArena : cpu.load64(next + A_PREV);
    cpu.store64(arena + A_NEXT, next);
    cpu.store64(arena + A_PREV, prev);
    if (prev === 0) this.firstArena = arena;
    else cpu.store64(prev + A_NEXT, arena);
    if (next === 0) this.lastArena = arena;
    else cpu.store64(next + A_PREV, arena);
  }

  /** Unmap a wholly free arena and its metadata. */
  private unmapArena(arena: number): void {
    const cpu = this.cpu;
    const base = cpu.load64(arena + A_BASE);
    const bytes = cpu.load64(arena + A_BYTES);
    const prev = cpu.load64(arena + A_PREV);
    const next = cpu.load64(arena + A_NEXT);
    if (prev === 0) this.firstArena = next;
    else cpu.store64(prev + A_NEXT, next);
    if (next === 0) this.lastArena = prev;
    else cpu.store64(next + A_PREV, prev);
    for (let f = 0; f < bytes / ARENA_BYTES; f++) this.hashRemove(base / ARENA_BYTES + f);
    this.arenaBytes -= bytes;
    this.zeroedBytes -= cpu.load32(arena + A_ZEROED) * PAGE_BYTES;
    this.cacheBase = this.cacheEnd = this.cacheMeta = 0;
    this.unmapRegion(base, bytes);
    this.unmapRegion(arena, cpu.load32(arena + A_META_BYTES));
    this.counters.arenasUnmapped++;
  }

  // ---- the arena hash ----

  private hashHome(frame: number): number {
    return Math.imul(frame + 1, 0x9e3779b1) >>> (32 - HASH_BITS);
  }

  private hashInsert(frame: number, arena: number): void {
    let slot = this.hashHome(frame);
    while (this.cpu.load64(this.meta + G_HASH + slot * HASH_SLOT_BYTES) !== 0)
      slot = (slot + 1) & (HASH_SLOTS - 1);
    const at = this.meta + G_HASH + slot * HASH_SLOT_BYTES;
    this.cpu.store64(at, frame + 1);
    this.cpu.store64(at + 8, arena);
    this.hashUsed++;
  }

  /** Remove `frame`, shifting back the entries after it (Knuth's algorithm R: no tombstones). */
  private hashRemove(frame: number): void {
    const cpu = this.cpu;
    const mask = HASH_SLOTS - 1;
    const key = (slot: number): number => cpu.load64(this.meta + G_HASH + slot * HASH_SLOT_BYTES);
    let hole = this.hashHome(frame);
    while (key(hole) !== frame + 1) {
      if (key(hole) === 0)
        throw new GcAbort(`marksweep: arena frame 0x${frame.toString(16)} is not in the hash`);
      hole = (hole + 1) & mask;
    }
    for (let j = (hole + 1) & mask; key(j) !== 0; j = (j + 1) & mask) {
      const home = this.hashHome(key(j) - 1);
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      const from = this.meta + G_HASH + j * HASH_SLOT_BYTES;
      const to = this.meta + G_HASH + hole * HASH_SLOT_BYTES;
      cpu.store64(to, cpu.load64(from));
      cpu.store64(to + 8, cpu.load64(from + 8));
      hole = j;
    }
    const at = this.meta + G_HASH + hole * HASH_SLOT_BYTES;
    cpu.store64(at, 0);
    cpu.store64(at + 8, 0);
    this.hashUsed--;
  }

  /** The metadata of the arena holding `addr`, or 0 (the last one found is cached). */
  private arenaOf(addr: number): number {
    if (addr >= this.cacheBase && addr < this.cacheEnd) return this.cacheMeta;
    const frame = Math.floor(addr / ARENA_BYTES);
    const cpu = this.cpu;
    let slot = this.hashHome(frame);
    for (let probes = 0; probes < HASH_SLOTS; probes++, slot = (slot + 1) & (HASH_SLOTS - 1)) {
      const at = this.meta + G_HASH + slot * HASH_SLOT_BYTES;
      const key = cpu.load64(at);
      if (key === 0) return 0;
      if (key !== frame + 1) continue;
      const arena = cpu.load64(at + 8);
      this.cacheBase = cpu.load64(arena + A_BASE);
      this.cacheEnd = this.cacheBase + cpu.load64(arena + A_BYTES);
      this.cacheMeta = arena;
      return arena;
    }
    return 0;
  }

  // ---- objects ----

  /**
   * The span holding `addr` (any address inside one of its pages), or 0 when the address is
   * in no span of this heap.
   */
  spanOf(addr: number): number {
    const arena = this.arenaOf(addr);
    if (arena === 0) return 0;
    const cpu = this.cpu;
    const page = Math.floor((addr - this.cacheBase) / PAGE_BYTES);
    if ((cpu.load32(arena + A_INUSE + (page >>> 5) * 4) & (1 << (page & 31))) === 0) return 0;
    const first = cpu.load16(arena + cpu.load32(arena + A_MAP) + page * 2);
    return arena + cpu.load32(arena + A_RECORDS) + first * SPAN_BYTES;
  }

  /**
   * The slot index of the allocated object at `addr` (its span in foundSpan, the slot bytes in
   * foundElemBytes), or -1 when `addr` is not the start of an allocated slot.
   */
  objectIndex(addr: number): number {
    if (!Number.isSafeInteger(addr) || addr <= 0 || addr % 16 !== 0) return -1;
    const span = this.spanOf(addr);
    if (span === 0) return -1;
    const cpu = this.cpu;
    const elem = cpu.load32(span + S_ELEM);
    const offset = addr - cpu.load64(span + S_START);
    const index = Math.floor(offset / elem);
    if (index * elem !== offset) return -1;
    const alloc = cpu.load32(span + S_ALLOC);
    if (index >= nelemsOf(alloc)) return -1;
    if (index >= freeIndexOf(alloc)) {
      const word = cpu.load32(span + S_ALLOC_BITS + (index >>> 5) * 4);
      if ((word & (1 << (index & 31))) === 0) return -1;
    }
    this.foundSpan = span;
    this.foundElemBytes = elem;
    return index;
  }

  /** Is `addr` an allocated object (a slot start, allocated; dead ones not yet swept count)? */
  isObject(addr: number): boolean {
    return this.objectIndex(addr) >= 0;
  }

  /** Set the mark bit of slot `index` of `span`; false when it was set already. */
  markSlot(span: number, index: number): boolean {
    const at = span + S_MARK_BITS + (index >>> 5) * 4;
    const word = this.cpu.load32(at);
    const bit = 1 << (index & 31);
    if ((word & bit) !== 0) return false;
    this.cpu.store32(at, word | bit);
    return true;
  }

  /** Is slot `index` of `span` marked? */
  isMarked(span: number, index: number): boolean {
    return (this.cpu.load32(span + S_MARK_BITS + (index >>> 5) * 4) & (1 << (index & 31))) !== 0;
  }

  /** Call `fn` with every allocated object, in address order. */
  forEachObject(fn: (obj: number) => void): void {
    this.forEachSlot('allocated', fn);
  }

  /** Call `fn` with every marked object, in address order (mark-stack overflow recovery). */
  forEachMarked(fn: (obj: number) => void): void {
    this.forEachSlot('marked', fn);
  }

  private forEachSlot(which: 'allocated' | 'marked', fn: (obj: number) => void): void {
    const cpu = this.cpu;
    for (let arena = this.firstArena; arena !== 0; arena = cpu.load64(arena + A_NEXT)) {
      const pages = cpu.load32(arena + A_PAGES);
      const records = arena + cpu.load32(arena + A_RECORDS);
      for (let p = 0; p < pages; ) {
        if ((cpu.load32(arena + A_INUSE + (p >>> 5) * 4) & (1 << (p & 31))) === 0) {
          p++;
          continue;
        }
        const span = records + p * SPAN_BYTES;
        const n = cpu.load32(span + S_NPAGES);
        if (n < 1) throw new GcAbort(`marksweep: the span record of page ${p} of an arena is corrupt`);
        this.forEachSlotIn(span, which, fn);
        p += n;
      }
    }
  }

  private forEachSlotIn(span: number, which: 'allocated' | 'marked', fn: (obj: number) => void): void {
    const cpu = this.cpu;
    const alloc = cpu.load32(span + S_ALLOC);
    const fi = freeIndexOf(alloc);
    const nelems = nelemsOf(alloc);
    const start = cpu.load64(span + S_START);
    const elem = cpu.load32(span + S_ELEM);
    for (let w = 0; w * 32 < nelems; w++) {
      let bits =
        which === 'marked'
          ? cpu.load32(span + S_MARK_BITS + w * 4)
          : cpu.load32(span + S_ALLOC_BITS + w * 4) | belowFreeIndex(fi, w);
      while (bits !== 0) {
        const b = lowestBit(bits);
        bits &= bits - 1;
        const index = w * 32 + b;
        if (index < nelems) fn(start + index * elem);
      }
    }
  }

  /** Allocated slots of `span`: freeIndex plus the allocBits at and above it. */
  private allocatedIn(span: number): number {
    const cpu = this.cpu;
    const alloc = cpu.load32(span + S_ALLOC);
    const fi = freeIndexOf(alloc);
    const nelems = nelemsOf(alloc);
    let count = fi;
    for (let w = fi >>> 5; w * 32 < nelems; w++)
      count += popcount32(cpu.load32(span + S_ALLOC_BITS + w * 4) & ~belowFreeIndex(fi, w));
    return count;
  }

  // ---- sweeping ----

  /**
   * The mark phase ended: every span becomes unswept (G++), Go's sweep start. The mcache must
   * have been flushed and every span swept before.
   */
  startSweepCycle(): void {
    if (this.unsweptSpans !== 0)
      throw new GcAbort('marksweep: a sweep cycle began before the last one ended');
    this.sweepgen++;
    this.unsweptSpans = this.spans;
    this.unsweptPages = this.spannedPages();
  }

  private spannedPages(): number {
    let pages = 0;
    for (let arena = this.firstArena; arena !== 0; arena = this.cpu.load64(arena + A_NEXT))
      pages += this.cpu.load32(arena + A_PAGES) - this.cpu.load32(arena + A_FREE);
    return pages;
  }

  /**
   * Sweep one unswept span of any class (Go's sweepone), freeing it to the page heap when
   * nothing in it is marked: the pages swept, 0 when none was left.
   */
  sweepOne(reason: SweepReason): number {
    if (this.unsweptSpans === 0) return 0;
    const unswept = (this.sweepgen & 1) ^ 1;
    for (let k = 0; k < NCLASSES; k++) {
      const cls = (this.sweepCursor + k) % NCLASSES;
      let span = this.popList(cls, L_PARTIAL + unswept);
      if (span === 0) span = this.popList(cls, L_FULL + unswept);
      if (span === 0) continue;
      this.sweepCursor = cls;
      const pages = this.cpu.load32(span + S_NPAGES);
      this.sweepSpan(span, 'place', reason);
      return pages;
    }
    throw new GcAbort(`marksweep: ${this.unsweptSpans} spans to sweep, none on an unswept list`);
  }

  /** Sweep every span left (Go's finishsweep_m, or runtime.GC's sweep). */
  finishSweep(reason: SweepReason): void {
    while (this.unsweptSpans > 0) this.sweepOne(reason);
  }

  /**
   * Sweep `span` (off every list, sweepgen G - 1): its marked slots become its allocated ones
   * (Go's allocBits = gcmarkBits), the mark bits clear, the freed ones counted (and poisoned).
   * 'place' then frees an empty span or puts it on its swept list; 'keep' leaves it for the caller.
   */
  private sweepSpan(span: number, then: 'keep' | 'place', reason: SweepReason): void {
    const cpu = this.cpu;
    if (cpu.load32(span + S_SWEEPGEN) !== this.sweepgen - 1)
      throw new GcAbort(
        `marksweep: sweep of the span at 0x${cpu.load64(span + S_START).toString(16)}, not unswept`,
      );
    const alloc = cpu.load32(span + S_ALLOC);
    const fi = freeIndexOf(alloc);
    const nelems = nelemsOf(alloc);
    let live = 0;
    let freed = 0;
    for (let w = 0; w * 32 < nelems; w++) {
      const mark = cpu.load32(span + S_MARK_BITS + w * 4);
      const allocated = cpu.load32(span + S_ALLOC_BITS + w * 4) | belowFreeIndex(fi, w);
      if ((mark & ~allocated) !== 0)
        throw new GcAbort(
          `marksweep: a free slot is marked in the span at 0x${cpu.load64(span + S_START).toString(16)}`,
        );
      const dead = allocated & ~mark;
      if (dead !== 0 && this.options.poison === 'freed') this.poison(span, w, dead, nelems);
      freed += popcount32(dead);
      live += popcount32(mark);
      cpu.store32(span + S_ALLOC_BITS + w * 4, mark);
      cpu.store32(span + S_MARK_BITS + w * 4, 0);
    }
    cpu.store32(span + S_ALLOC, allocWord(0, nelems, (alloc & NEED_ZERO) | (freed > 0 ? NEED_ZERO : 0)));
    cpu.store32(span + S_CACHE, ~cpu.load32(span + S_ALLOC_BITS));
    cpu.store32(span + S_COUNT, live);
    cpu.store32(span + S_SWEEPGEN, this.sweepgen);
    const elem = cpu.load32(span + S_ELEM);
    this.report.objectsFreed += freed;
    this.report.bytesFreed += freed * elem;
    this.unsweptSpans--;
    this.unsweptPages -= cpu.load32(span + S_NPAGES);
    this.counters[sweepCounter(reason)]++;
    if (then === 'keep') return;
    if (live === 0) this.freeSpan(span);
    else this.pushList(span, (live === nelems ? L_FULL : L_PARTIAL) + (this.sweepgen & 1));
  }

  /** Fill the dead slots of bitmap word `w` with POISON_BYTE. */
  private poison(span: number, w: number, dead: number, nelems: number): void {
    const cpu = this.cpu;
    const start = cpu.load64(span + S_START);
    const elem = cpu.load32(span + S_ELEM);
    for (let bits = dead; bits !== 0; bits &= bits - 1) {
      const index = w * 32 + lowestBit(bits);
      if (index < nelems) cpu.fillBytes(start + index * elem, elem, POISON_BYTE);
    }
  }

  // ---- the scavenger ----

  /**
   * Give memory back until the arenas' resident part is at most `retainBytes` (Go's
   * scavenger, which keeps the heap goal plus 10%): wholly free arenas are unmapped first,
   * highest address first; then free pages still resident are released with
   * MADV_DONTNEED. Only when every span is swept (a partly swept heap's free pages lie).
   */
  scavenge(retainBytes: number): void {
    if (this.unsweptSpans !== 0) return;
    const cpu = this.cpu;
    for (let arena = this.lastArena; arena !== 0 && this.retainedBytes() > retainBytes; ) {
      const prev = cpu.load64(arena + A_PREV);
      if (cpu.load32(arena + A_FREE) === cpu.load32(arena + A_PAGES)) this.unmapArena(arena);
      arena = prev;
    }
    for (
      let arena = this.lastArena;
      arena !== 0 && this.retainedBytes() > retainBytes;
      arena = cpu.load64(arena + A_PREV)
    )
      this.releaseFreePages(arena, retainBytes);
  }

  /** Bytes of arena pages that may be resident: all but the free ones known zero. */
  retainedBytes(): number {
    return this.arenaBytes - this.zeroedBytes;
  }

  /** MADV_DONTNEED the free, dirty page runs of `arena` while more than `retainBytes` is retained. */
  private releaseFreePages(arena: number, retainBytes: number): void {
    const cpu = this.cpu;
    const pages = cpu.load32(arena + A_PAGES);
    const inUse = arena + A_INUSE;
    const zeroed = inUse + (pages >>> 5) * 4;
    const base = cpu.load64(arena + A_BASE);
    for (let p = 0; p < pages && this.retainedBytes() > retainBytes; ) {
      if (this.bitAt(inUse, p) || this.bitAt(zeroed, p)) {
        p++;
        continue;
      }
      let n = 1;
      while (p + n < pages && !this.bitAt(inUse, p + n) && !this.bitAt(zeroed, p + n)) n++;
      const start = Math.ceil((base + p * PAGE_BYTES) / this.machinePage) * this.machinePage;
      const end = Math.floor((base + (p + n) * PAGE_BYTES) / this.machinePage) * this.machinePage;
      if (end > start && this.libc.madvise(start, end - start, MADV_DONTNEED) === 0) {
        const first = Math.ceil((start - base) / PAGE_BYTES);
        const count = Math.floor((end - base) / PAGE_BYTES) - first;
        this.setBits(zeroed, first, count, 'set');
        cpu.store32(arena + A_ZEROED, cpu.load32(arena + A_ZEROED) + count);
        this.zeroedBytes += count * PAGE_BYTES;
        this.counters.pagesReleased += count;
      }
      p += n;
    }
  }

  // ---- central lists ----

  private listHead(cls: number, list: number): number {
    return this.meta + G_CENTRAL + (cls * 4 + list - L_PARTIAL) * 8;
  }

  private setList(span: number, list: number): void {
    const info = this.cpu.load32(span + S_INFO);
    this.cpu.store32(span + S_INFO, (info & 0xff) | (list << 8));
  }

  private pushList(span: number, list: number): void {
    const cpu = this.cpu;
    const head = this.listHead(classOf(cpu.load32(span + S_INFO)), list);
    const first = cpu.load64(head);
    cpu.store64(span + S_NEXT, first);
    cpu.store64(span + S_PREV, 0);
    if (first !== 0) cpu.store64(first + S_PREV, span);
    cpu.store64(head, span);
    this.setList(span, list);
  }

  /** The first span of list `list` of `cls`, taken off it; 0 when the list is empty. */
  private popList(cls: number, list: number): number {
    const cpu = this.cpu;
    const head = this.listHead(cls, list);
    const span = cpu.load64(head);
    if (span === 0) return 0;
    const next = cpu.load64(span + S_NEXT);
    cpu.store64(head, next);
    if (next !== 0) cpu.store64(next + S_PREV, 0);
    cpu.store64(span + S_NEXT, 0);
    this.setList(span, L_NONE);
    return span;
  }

  // ---- bitmaps ----

  private bitAt(bitmap: number, i: number): boolean {
    return (this.cpu.load32(bitmap + (i >>> 5) * 4) & (1 << (i & 31))) !== 0;
  }

  /** Set or clear bits [from, from + n) of the bitmap at `bitmap`. */
  private setBits(bitmap: number, from: number, n: number, to: 'set' | 'clear'): void {
    const cpu = this.cpu;
    for (let i = from; i < from + n; ) {
      const w = i >>> 5;
      const lo = i & 31;
      const count = Math.min(32 - lo, from + n - i);
      const mask = count === 32 ? 0xffffffff : ((1 << count) - 1) << lo;
      const at = bitmap + w * 4;
      const word = cpu.load32(at);
      cpu.store32(at, to === 'set' ? word | mask : word & ~mask);
      i += count;
    }
  }

  /** Set bits in [from, from + n) of the bitmap at `bitmap`. */
  private countBits(bitmap: number, from: number, n: number): number {
    let count = 0;
    for (let i = from; i < from + n; ) {
      const lo = i & 31;
      const width = Math.min(32 - lo, from + n - i);
      const mask = width === 32 ? 0xffffffff : ((1 << width) - 1) << lo;
      count += popcount32(this.cpu.load32(bitmap + (i >>> 5) * 4) & mask);
      i += width;
    }
    return count;
  }

  // ---- teardown and checks ----

  /** Unmap every arena, its metadata and the global metadata. */
  destroy(): void {
    for (let arena = this.firstArena; arena !== 0; ) {
      const next = this.cpu.load64(arena + A_NEXT);
      this.unmapRegion(this.cpu.load64(arena + A_BASE), this.cpu.load64(arena + A_BYTES));
      this.unmapRegion(arena, this.cpu.load32(arena + A_META_BYTES));
      arena = next;
    }
    this.firstArena = this.lastArena = 0;
    this.arenaBytes = this.zeroedBytes = 0;
    this.unmapRegion(this.meta, G_BYTES);
  }

  /**
   * GcAbort naming the first broken rule of the header's invariants. `phase` is the
   * collector's: during 'mark' swept spans may hold marks and none may be unswept; 'sweep'
   * exactly when some are. The regions mapped for the collector (`collectorBytes`) count in
   * mappedBytes. Walks the whole heap and asks the kernel for the process's mappings.
   */
  checkInvariants(phase: 'idle' | 'mark' | 'sweep', collectorBytes: number): void {
    const tally: HeapTally = {
      spans: 0,
      unswept: 0,
      allocatedBytes: 0,
      arenaBytes: 0,
      zeroedBytes: 0,
      metaBytes: this.pageRound(G_BYTES),
      frames: 0,
    };
    const mapped = this.mappedCheck();
    if (!mapped(this.meta, G_BYTES)) broken('the global metadata is not mapped');
    this.checkArenaList(phase, mapped, tally);
    this.checkTotals(phase, collectorBytes, tally);
    this.checkLists(tally.spans);
  }

  /** A test of whether [start, start + bytes) is mapped writable, from the kernel's list. */
  private mappedCheck(): (start: number, bytes: number) => boolean {
    const maps = this.libc.ctx.sys.vmlab_maps();
    return (start, bytes) => {
      let at = start;
      for (const e of maps) if (e.start <= at && at < e.end && (e.prot & PROT_WRITE) !== 0) at = e.end;
      return at >= start + bytes;
    };
  }

  /** The arena list: ordered, aligned, mapped, hashed; each arena's spans checked and tallied. */
  private checkArenaList(
    phase: 'idle' | 'mark' | 'sweep',
    mapped: (start: number, bytes: number) => boolean,
    tally: HeapTally,
  ): void {
    const cpu = this.cpu;
    let prev = 0;
    let prevEnd = 0;
    for (let arena = this.firstArena; arena !== 0; arena = cpu.load64(arena + A_NEXT)) {
      const base = cpu.load64(arena + A_BASE);
      const bytes = cpu.load64(arena + A_BYTES);
      const at = `arena 0x${base.toString(16)}`;
      if (cpu.load64(arena + A_PREV) !== prev) broken(`${at}: broken back link`);
      if (base < prevEnd) broken(`${at} overlaps or precedes the one before`);
      if (base % ARENA_BYTES !== 0 || bytes % ARENA_BYTES !== 0) broken(`${at} is not aligned`);
      if (!mapped(base, bytes) || !mapped(arena, cpu.load32(arena + A_META_BYTES)))
        broken(`${at} or its metadata is not mapped`);
      for (let f = 0; f < bytes / ARENA_BYTES; f++)
        if (this.arenaOf(base + f * ARENA_BYTES) !== arena) broken(`${at}: frame ${f} is not hashed to it`);
      tally.frames += bytes / ARENA_BYTES;
      if (tally.frames > HASH_SLOTS) broken('the arena list does not end (a cycle?)');
      tally.arenaBytes += bytes;
      tally.metaBytes += cpu.load32(arena + A_META_BYTES);
      tally.zeroedBytes += cpu.load32(arena + A_ZEROED) * PAGE_BYTES;
      this.checkArena(arena, phase, tally);
      prev = arena;
      prevEnd = base + bytes;
    }
    if (prev !== this.lastArena) broken('the arena list does not end at its last arena');
  }

  /** The counters against what the walk found. */
  private checkTotals(phase: 'idle' | 'mark' | 'sweep', collectorBytes: number, t: HeapTally): void {
    if (t.frames !== this.hashUsed) broken(`the hash holds ${this.hashUsed} frames, the arenas ${t.frames}`);
    if (t.spans !== this.spans) broken(`${t.spans} spans in the arenas, ${this.spans} counted`);
    if (t.unswept !== this.unsweptSpans) broken(`${t.unswept} spans unswept, ${this.unsweptSpans} counted`);
    if ((phase === 'sweep') !== t.unswept > 0) broken(`${t.unswept} spans unswept in phase ${phase}`);
    if (t.arenaBytes !== this.arenaBytes || t.zeroedBytes !== this.zeroedBytes)
      broken(
        `arena bytes ${t.arenaBytes} (zeroed ${t.zeroedBytes}), counted ${this.arenaBytes} (${this.zeroedBytes})`,
      );
    const allocated = this.report.bytesAllocated - this.report.bytesFreed;
    if (t.allocatedBytes !== allocated)
      broken(`${t.allocatedBytes} bytes allocated in spans, the report says ${allocated}`);
    const mapped = t.arenaBytes + t.metaBytes + collectorBytes;
    if (mapped !== this.mappedBytes || this.report.heapBytes !== this.mappedBytes)
      broken(`mapped ${mapped} bytes, counted ${this.mappedBytes}, heapBytes ${this.report.heapBytes}`);
  }

  /** The spans of `arena`, checked against its bitmaps and page map, added to `tally`. */
  private checkArena(arena: number, phase: 'idle' | 'mark' | 'sweep', tally: HeapTally): void {
    const cpu = this.cpu;
    const pages = cpu.load32(arena + A_PAGES);
    const base = cpu.load64(arena + A_BASE);
    const inUse = arena + A_INUSE;
    const zeroed = inUse + (pages >>> 5) * 4;
    let used = 0;
    let zero = 0;
    for (let w = 0; w < pages >>> 5; w++) {
      const u = cpu.load32(inUse + w * 4);
      const z = cpu.load32(zeroed + w * 4);
      if ((u & z) !== 0) broken(`arena 0x${base.toString(16)}: a page in use is marked zeroed`);
      used += popcount32(u);
      zero += popcount32(z);
    }
    if (cpu.load32(arena + A_FREE) !== pages - used || cpu.load32(arena + A_ZEROED) !== zero)
      broken(
        `arena 0x${base.toString(16)}: free/zeroed pages ${cpu.load32(arena + A_FREE)}/${cpu.load32(arena + A_ZEROED)}, bitmaps say ${pages - used}/${zero}`,
      );
    const pageMap = arena + cpu.load32(arena + A_MAP);
    let spans = 0;
    for (let p = 0; p < pages; ) {
      if (!this.bitAt(inUse, p)) {
        p++;
        continue;
      }
      const span = arena + cpu.load32(arena + A_RECORDS) + p * SPAN_BYTES;
      const n = cpu.load32(span + S_NPAGES);
      if (cpu.load64(span + S_START) !== base + p * PAGE_BYTES || n < 1 || p + n > pages)
        broken(`the span record of page ${p} of arena 0x${base.toString(16)} does not describe it`);
      for (let q = p; q < p + n; q++)
        if (!this.bitAt(inUse, q) || cpu.load16(pageMap + q * 2) !== p)
          broken(`page ${q} of arena 0x${base.toString(16)} is not mapped to its span at page ${p}`);
      tally.allocatedBytes += this.checkSpan(span, arena, phase) * cpu.load32(span + S_ELEM);
      if (cpu.load32(span + S_SWEEPGEN) !== this.sweepgen) tally.unswept++;
      spans++;
      p += n;
    }
    if (spans !== cpu.load32(arena + A_SPANS))
      broken(`arena 0x${base.toString(16)} counts ${cpu.load32(arena + A_SPANS)} spans, holds ${spans}`);
    tally.spans += spans;
  }

  /** One span's record against its class and bitmaps; its allocated slots. */
  private checkSpan(span: number, arena: number, phase: 'idle' | 'mark' | 'sweep'): number {
    const cpu = this.cpu;
    const at = `the span at 0x${cpu.load64(span + S_START).toString(16)}`;
    const info = cpu.load32(span + S_INFO);
    const cls = classOf(info);
    const list = listOf(info);
    const alloc = cpu.load32(span + S_ALLOC);
    const fi = freeIndexOf(alloc);
    const nelems = nelemsOf(alloc);
    const npages = cpu.load32(span + S_NPAGES);
    if (cls >= NCLASSES || cpu.load64(span + S_ARENA) !== arena) broken(`${at}: class ${cls} or arena wrong`);
    const wantElem = cls === 0 ? npages * PAGE_BYTES : CLASS_BYTES[cls]!;
    const wantSlots = cls === 0 ? 1 : CLASS_SLOTS[cls]!;
    if (
      cpu.load32(span + S_ELEM) !== wantElem ||
      nelems !== wantSlots ||
      (cls !== 0 && npages !== CLASS_PAGES[cls])
    )
      broken(
        `${at}: size ${cpu.load32(span + S_ELEM)} x ${nelems} in ${npages} pages does not fit class ${cls}`,
      );
    if (fi > nelems) broken(`${at}: freeIndex ${fi} past ${nelems} slots`);
    const sweepgen = cpu.load32(span + S_SWEEPGEN);
    if (sweepgen !== this.sweepgen && sweepgen !== this.sweepgen - 1)
      broken(`${at}: sweepgen ${sweepgen}, heap ${this.sweepgen}`);
    let allocated = fi;
    let marks = 0;
    for (let w = 0; w < BITMAP_WORDS; w++) {
      const bits = cpu.load32(span + S_ALLOC_BITS + w * 4);
      const mark = cpu.load32(span + S_MARK_BITS + w * 4);
      const valid = w * 32 + 32 <= nelems ? 0xffffffff : w * 32 >= nelems ? 0 : (1 << (nelems - w * 32)) - 1;
      if (((bits | mark) & ~valid) !== 0) broken(`${at}: bitmap bits past slot ${nelems}`);
      if ((mark & ~(bits | belowFreeIndex(fi, w))) !== 0) broken(`${at}: a free slot is marked`);
      allocated += popcount32(bits & ~belowFreeIndex(fi, w));
      marks += popcount32(mark);
    }
    if (sweepgen === this.sweepgen && phase !== 'mark' && marks !== 0)
      broken(`${at}: swept, out of a mark phase, yet ${marks} marks`);
    const cache = cpu.load32(span + S_CACHE);
    const expected = fi >= nelems ? 0 : ~cpu.load32(span + S_ALLOC_BITS + (fi >>> 5) * 4) >>> (fi & 31);
    if ((cache & ~expected) !== 0)
      broken(`${at}: allocCache 0x${cache.toString(16)} claims a slot allocBits does not free`);
    if (list === L_CACHED) {
      if (cpu.load64(this.meta + G_MCACHE + cls * 8) !== span)
        broken(`${at}: cached, not in the mcache of class ${cls}`);
      return allocated;
    }
    if (cpu.load32(span + S_COUNT) !== allocated)
      broken(`${at}: allocCount ${cpu.load32(span + S_COUNT)}, bitmap ${allocated}`);
    const parity = (list - L_PARTIAL) & 1;
    const full = list >= L_FULL;
    if (list < L_PARTIAL || list > L_FULL + 1) broken(`${at}: on no list (${list})`);
    if (parity !== (sweepgen & 1)) broken(`${at}: on a list of the wrong sweep parity`);
    if (sweepgen === this.sweepgen && full !== (allocated === nelems))
      broken(`${at}: ${allocated}/${nelems} on a ${full ? 'full' : 'partial'} list`);
    return allocated;
  }

  /** Every central list well linked, each span on the list its record names; with the mcache, `spans` in all. */
  private checkLists(spans: number): void {
    const cpu = this.cpu;
    let seen = 0;
    for (let cls = 0; cls < NCLASSES; cls++) {
      const cached = cpu.load64(this.meta + G_MCACHE + cls * 8);
      if (cached !== 0) {
        if (cls === 0 || listOf(cpu.load32(cached + S_INFO)) !== L_CACHED)
          broken(`the mcache of class ${cls} holds a span not marked cached`);
        seen++;
      }
      for (let list = L_PARTIAL; list <= L_FULL + 1; list++) {
        let prev = 0;
        for (let span = cpu.load64(this.listHead(cls, list)); span !== 0; span = cpu.load64(span + S_NEXT)) {
          const info = cpu.load32(span + S_INFO);
          if (classOf(info) !== cls || listOf(info) !== list || cpu.load64(span + S_PREV) !== prev)
            broken(
              `central list ${list} of class ${cls}: a span of class ${classOf(info)}, list ${listOf(info)}, or a broken back link`,
            );
          if (++seen > spans) broken('the central lists hold more spans than there are (a cycle?)');
          prev = span;
        }
      }
    }
    if (seen !== spans) broken(`the mcache and central lists hold ${seen} spans, the arenas ${spans}`);
  }
}

/** The metadata of an arena of `pages` pages: where its page map and records go, its bytes. */
function arenaLayout(
  pages: number,
  machinePage: number,
): { pageMapOffset: number; recordsOffset: number; metaBytes: number } {
  const pageMapOffset = A_INUSE + 2 * (pages >>> 3);
  const recordsOffset = Math.ceil((pageMapOffset + 2 * pages) / 64) * 64;
  const metaBytes = Math.ceil((recordsOffset + SPAN_BYTES * pages) / machinePage) * machinePage;
  return { pageMapOffset, recordsOffset, metaBytes };
}

/** What checkInvariants adds up over the arenas. */
interface HeapTally {
  spans: number;
  unswept: number;
  allocatedBytes: number;
  arenaBytes: number;
  zeroedBytes: number;
  metaBytes: number;
  frames: number;
}

function broken(what: string): never {
  throw new GcAbort(`marksweep.checkInvariants: ${what}`);
}

function sweepCounter(reason: SweepReason): keyof SpanCounters {
  switch (reason) {
    case 'allocation':
      return 'sweptByAllocation';
    case 'credit':
      return 'sweptByCredit';
    case 'reclaim':
      return 'sweptByReclaim';
    case 'cycleStart':
      return 'sweptAtCycleStart';
    case 'collect':
      return 'sweptByCollect';
  }
}
