/**
 * A size-class allocator after tcmalloc and Go's runtime, with all its state in emulated memory.
 *
 * - Size classes up to 32 KiB (16-byte steps to 128 bytes, then about 12.5% apart). A span of
 *   one or more pages holds objects of one class; its free objects form a list threaded through
 *   the objects themselves.
 * - A per-thread cache in front (one thread per process today: one cache) holds up to
 *   CACHE_MAX objects per class; on overflow half goes back to the central lists.
 * - Central free lists: per class, a list of spans that have free objects.
 * - The page heap: arenas of ARENA_PAGES pages (1 MiB, 1 MiB-aligned) obtained with mmap;
 *   spans carved from them, free spans coalesced with free neighbours and kept on free lists by
 *   length (one per page count to FREE_LISTS - 2, then one best-fit list), with a bitmap of the
 *   lists that are not empty. Objects over 32 KiB get a span of their own. Free pages past
 *   RELEASE_THRESHOLD_PAGES are returned to the kernel with madvise(MADV_DONTNEED); an arena
 *   that becomes wholly free is unmapped.
 *
 * Metadata (one mmapped region): the cache and central heads, the free span lists and their
 * bitmap, the arena table, an arena hash (1 MiB frame number -> arena), the span table and
 * each arena's page map (page -> span), all as 8-byte words (the bitmap as 32-bit words).
 *
 *   span states: FREE (in the page heap) | SMALL (objects of a class) | LARGE (one object)
 *   for a SMALL span: allocated + |free list| == objects per span
 *   every page of an arena belongs to exactly one span; every FREE span is on one free list
 *   a cached object's second word is CACHE_KEY (how free finds a double free cheaply)
 */
import { ENOMEM, MADV_DONTNEED } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import {
  type Allocator,
  callocBytes,
  emptyMallinfo2,
  MALLOC_ALIGNMENT,
  type Mallinfo2,
  MallocAbort,
  type MallocStats,
} from './allocator.ts';

const W = 8;
const PAGE = 4096;
const MAX_SMALL = 32 * 1024;
const ARENA_PAGES = 256;
const MAX_ARENAS = 128;
const MAX_SPANS = 4096;
const CACHE_MAX = 64;
const RELEASE_THRESHOLD_PAGES = 256;
const ARENA_BYTES = ARENA_PAGES * PAGE; // arenas start on a multiple of this
const FREE_LISTS = 130; // lists 1..128 hold spans of that many pages, list 129 the longer ones
const FREE_MAP_WORDS = Math.ceil(FREE_LISTS / 32);
const ARENA_HASH_SLOTS = 256; // (frame number + 1, arena) pairs, open addressing
const HASH_TOMBSTONE = 1; // frame 0 holds no arena
const CACHE_KEY = 0x5c1a_55ca_c4e0;

const FREE = 0;
const SMALL = 1;
const LARGE = 2;

// Span record: 8 words.
const S_START = 0;
const S_PAGES = 1;
const S_STATE = 2;
const S_CLASS = 3;
const S_FREELIST = 4;
const S_ALLOCATED = 5;
const S_NEXT = 6; // central list link (class spans with free objects); free list link (FREE spans)
const S_PREV = S_FREELIST; // FREE spans: the free list's back link (span index + 1)
const S_RELEASED = 7; // 1 when its pages were given back with MADV_DONTNEED
const SPAN_WORDS = 8;

/** The class sizes: 16..128 in 16-byte steps, then ~12.5% apart, to 32 KiB. */
export function sizeClasses(): number[] {
  const out: number[] = [];
  for (let s = 16; s <= 128; s += 16) out.push(s);
  let s = 128;
  while (s < MAX_SMALL) {
    s = Math.min(MAX_SMALL, Math.ceil((s + Math.max(16, s / 8)) / 16) * 16);
    out.push(s);
  }
  return out;
}

const CLASSES = sizeClasses();
const NCLASSES = CLASSES.length;

/** Pages per span for a class: the fewest (at least 1) wasting under 1/8 of the span. */
function spanPagesFor(size: number): number {
  for (let pages = 1; ; pages++) {
    const bytes = pages * PAGE;
    if (bytes >= size && bytes % size <= bytes / 8) return pages;
  }
}

export class SizeClassAllocator implements Allocator {
  readonly name = 'sizeclass';
  private readonly libc: Libc;
  private meta = 0;
  private metaBytes = 0;
  // Offsets into the metadata region.
  private readonly oCache: number; // NCLASSES x (head, count)
  private readonly oCentral: number; // NCLASSES heads (span index + 1; 0 = none)
  private readonly oFreeLists: number; // FREE_LISTS heads (span index + 1; 0 = none)
  private readonly oFreeMap: number; // FREE_MAP_WORDS u32: bit l set <=> free list l not empty
  private readonly oArenaHash: number; // ARENA_HASH_SLOTS x (frame number + 1, arena)
  private readonly oArenas: number; // MAX_ARENAS x (base, pages, pagemap offset)
  private readonly oSpans: number; // MAX_SPANS x SPAN_WORDS
  private readonly oPagemaps: number; // MAX_ARENAS x ARENA_PAGES words (span index + 1)
  private arenaCount = 0;
  private spanCount = 0;
  private freeSpanSlots: number[] = [];
  private mappedBytes = 0;
  private freePages = 0;
  /** Pages of FREE spans not given back with madvise (an upper bound after merges). */
  private residentFreePages = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;

  constructor(libc: Libc) {
    this.libc = libc;
    this.oCache = 0;
    this.oCentral = this.oCache + NCLASSES * 2 * W;
    this.oFreeLists = this.oCentral + NCLASSES * W;
    this.oFreeMap = this.oFreeLists + FREE_LISTS * W;
    this.oArenaHash = this.oFreeMap + FREE_MAP_WORDS * 8;
    this.oArenas = this.oArenaHash + ARENA_HASH_SLOTS * 2 * W;
    this.oSpans = this.oArenas + MAX_ARENAS * 3 * W;
    this.oPagemaps = this.oSpans + MAX_SPANS * SPAN_WORDS * W;
    this.metaBytes = Math.ceil((this.oPagemaps + MAX_ARENAS * ARENA_PAGES * W) / PAGE) * PAGE;
  }

  malloc(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 40) return this.nomem();
    if (size === 0) return 0;
    if (this.meta === 0 && !this.init()) return this.nomem();
    if (size > MAX_SMALL) {
      const pages = Math.ceil(size / PAGE);
      const span = this.allocSpan(pages);
      if (span < 0) return this.nomem();
      this.setSpan(span, S_STATE, LARGE);
      this.inUseBytes += pages * PAGE;
      this.inUseBlocks++;
      return this.span(span, S_START);
    }
    const c = classOf(size);
    let obj = this.cachePop(c);
    if (obj === 0) {
      if (!this.refillCache(c)) return this.nomem();
      obj = this.cachePop(c);
    }
    this.inUseBytes += CLASSES[c]!;
    this.inUseBlocks++;
    return obj;
  }

  free(ptr: number): void {
    if (ptr === 0) return;
    const span = this.spanOf(ptr, 'free');
    const state = this.span(span, S_STATE);
    if (state === LARGE) {
      if (ptr !== this.span(span, S_START))
        throw new MallocAbort(`free(): invalid pointer 0x${ptr.toString(16)}`);
      this.inUseBytes -= this.span(span, S_PAGES) * PAGE;
      this.inUseBlocks--;
      this.freeSpan(span);
      return;
    }
    if (state !== SMALL)
      throw new MallocAbort(`free(): double free or invalid pointer 0x${ptr.toString(16)}`);
    const c = this.span(span, S_CLASS);
    const size = CLASSES[c]!;
    if ((ptr - this.span(span, S_START)) % size !== 0)
      throw new MallocAbort(`free(): invalid pointer 0x${ptr.toString(16)}`);
    if (this.load(ptr + W) === CACHE_KEY && this.cacheContains(c, ptr))
      throw new MallocAbort(`free(): double free detected in tcache at 0x${ptr.toString(16)}`);
    this.inUseBytes -= size;
    this.inUseBlocks--;
    this.cachePush(c, ptr);
    if (this.load(this.meta + this.oCache + (c * 2 + 1) * W) > CACHE_MAX) this.flushCache(c, CACHE_MAX / 2);
  }

  realloc(ptr: number, size: number): number {
    if (ptr === 0) return this.malloc(size);
    if (size === 0) {
      this.free(ptr);
      return 0;
    }
    const old = this.usableSize(ptr);
    if (size <= old && (size > MAX_SMALL || classOf(size) === classOf(old))) return ptr;
    const fresh = this.malloc(size);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, ptr, Math.min(old, size));
    this.free(ptr);
    return fresh;
  }

  calloc(n: number, size: number): number {
    const total = callocBytes(n, size);
    if (total < 0) return this.nomem();
    const p = this.malloc(total);
    if (p !== 0) this.libc.memset(p, 0, total);
    return p;
  }

  memalign(alignment: number, size: number): number {
    if (alignment <= MALLOC_ALIGNMENT) return this.malloc(size);
    if ((alignment & (alignment - 1)) !== 0) return this.nomem();
    // Class objects of a power-of-two size up to a page are aligned to it; bigger: whole pages.
    if (alignment <= PAGE) {
      const want = Math.max(size, alignment);
      const c = CLASSES.findIndex(
        (s) => s >= want && s % alignment === 0 && (spanPagesFor(s) * PAGE) % s === 0,
      );
      if (c >= 0 && CLASSES[c]! <= MAX_SMALL) return this.malloc(CLASSES[c]!);
      return this.malloc(Math.max(size, MAX_SMALL + 1));
    }
    return this.nomem();
  }

  usableSize(ptr: number): number {
    if (ptr === 0) return 0;
    const span = this.spanOf(ptr, 'malloc_usable_size');
    return this.span(span, S_STATE) === LARGE
      ? this.span(span, S_PAGES) * PAGE
      : CLASSES[this.span(span, S_CLASS)]!;
  }

  stats(): MallocStats {
    return {
      heapBytes: this.mappedBytes + (this.meta === 0 ? 0 : this.metaBytes),
      inUseBytes: this.inUseBytes,
      inUseBlocks: this.inUseBlocks,
    };
  }

  /**
   * mallinfo2 from the spans and the thread cache. The heap is all mapped (arenas and the
   * metadata region; there is no brk heap), and arena counts it; hblks and hblkhd are 0, as no
   * block has a mapping of its own (a large object is a span of an arena). ordblks: free spans
   * and the free objects of class spans; smblks and fsmblks: objects in the thread cache;
   * keepcost: the free spans' pages not yet given back with madvise (what releaseMemory returns
   * before it flushes the cache). uordblks holds the metadata and the unused tails of spans.
   */
  mallinfo2(): Mallinfo2 {
    const mi = emptyMallinfo2();
    if (this.meta === 0) return mi;
    for (let c = 0; c < NCLASSES; c++) {
      const count = this.load(this.meta + this.oCache + (c * 2 + 1) * W);
      mi.smblks += count;
      mi.fsmblks += count * CLASSES[c]!;
    }
    let free = 0;
    for (let i = 0; i < this.spanCount; i++) {
      const pages = this.span(i, S_PAGES);
      if (pages === 0) continue;
      const state = this.span(i, S_STATE);
      if (state === FREE) {
        mi.ordblks++;
        free += pages * PAGE;
        if (this.span(i, S_RELEASED) === 0) mi.keepcost += pages * PAGE;
      } else if (state === SMALL) {
        const size = CLASSES[this.span(i, S_CLASS)]!;
        for (let o = this.span(i, S_FREELIST); o !== 0; o = this.load(o)) {
          mi.ordblks++;
          free += size;
        }
      }
    }
    mi.arena = this.mappedBytes + this.metaBytes;
    mi.fordblks = free + mi.fsmblks;
    mi.uordblks = mi.arena - mi.fordblks;
    return mi;
  }

  /** Give every cached object back to its span and every free span's pages back to the kernel. */
  releaseMemory(): void {
    if (this.meta === 0) return;
    for (let c = 0; c < NCLASSES; c++) this.flushCache(c, 0);
    this.releaseFreePages(0);
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.meta === 0) return out;
    const cached = new Set<number>();
    for (let c = 0; c < NCLASSES; c++) {
      for (let o = this.load(this.meta + this.oCache + c * 2 * W); o !== 0; o = this.load(o)) cached.add(o);
    }
    for (let i = 0; i < this.spanCount; i++) {
      const pages = this.span(i, S_PAGES);
      if (pages === 0) continue;
      const state = this.span(i, S_STATE);
      const start = this.span(i, S_START);
      if (state === LARGE) out.push({ ptr: start, size: pages * PAGE });
      if (state !== SMALL) continue;
      const size = CLASSES[this.span(i, S_CLASS)]!;
      const free = new Set<number>();
      for (let o = this.span(i, S_FREELIST); o !== 0; o = this.load(o)) free.add(o);
      const objects = Math.floor((pages * PAGE) / size);
      for (let k = 0; k < objects; k++) {
        const o = start + k * size;
        if (!free.has(o) && !cached.has(o)) out.push({ ptr: o, size });
      }
    }
    return out.sort((a, b) => a.ptr - b.ptr);
  }

  ownedRegions(): Array<[number, number]> {
    if (this.meta === 0) return [];
    const out: Array<[number, number]> = [[this.meta, this.meta + this.metaBytes]];
    for (let a = 0; a < this.arenaCount; a++) {
      const base = this.arena(a, 0);
      if (base !== 0) out.push([base, base + this.arena(a, 1) * PAGE]);
    }
    return out;
  }

  checkHeap(): void {
    if (this.meta === 0) return;
    for (let a = 0; a < this.arenaCount; a++) {
      const base = this.arena(a, 0);
      if (base === 0) continue;
      const pages = this.arena(a, 1);
      for (let pg = 0; pg < pages; ) {
        const span = this.pagemap(a, pg) - 1;
        if (span < 0) throw new MallocAbort(`malloc: page ${pg} of arena ${a} belongs to no span`);
        const n = this.span(span, S_PAGES);
        if (this.span(span, S_START) !== base + pg * PAGE)
          throw new MallocAbort(`malloc: span ${span} does not start where its pages are`);
        if (this.span(span, S_STATE) === SMALL) {
          const size = CLASSES[this.span(span, S_CLASS)]!;
          const objects = Math.floor((n * PAGE) / size);
          let free = 0;
          for (let o = this.span(span, S_FREELIST); o !== 0; o = this.load(o)) {
            if (o < base + pg * PAGE || o >= base + (pg + n) * PAGE)
              throw new MallocAbort(`malloc: free object 0x${o.toString(16)} outside its span`);
            if (++free > objects) throw new MallocAbort(`malloc: free list of span ${span} has a cycle`);
          }
          if (free + this.span(span, S_ALLOCATED) !== objects) {
            throw new MallocAbort(
              `malloc: span ${span}: ${free} free + ${this.span(span, S_ALLOCATED)} allocated != ${objects} objects`,
            );
          }
        }
        pg += n;
      }
    }
    this.checkFreeLists();
  }

  /** Every FREE span is on the free list for its length, once, and the bitmap says which lists hold any. */
  private checkFreeLists(): void {
    const listed = new Set<number>();
    for (let l = 1; l < FREE_LISTS; l++) {
      let prev = 0;
      for (let i = this.load(this.meta + this.oFreeLists + l * W) - 1; i >= 0; i = this.span(i, S_NEXT) - 1) {
        if (this.span(i, S_STATE) !== FREE || Math.min(this.span(i, S_PAGES), FREE_LISTS - 1) !== l)
          throw new MallocAbort(`malloc: span ${i} does not belong on free list ${l}`);
        if (this.span(i, S_PREV) !== prev || listed.has(i))
          throw new MallocAbort(`malloc: free list ${l} is corrupted at span ${i}`);
        listed.add(i);
        prev = i + 1;
      }
      const bit = (this.libc.ctx.cpu.load32(this.meta + this.oFreeMap + (l >>> 5) * 4) >>> (l & 31)) & 1;
      if (bit !== (prev !== 0 ? 1 : 0))
        throw new MallocAbort(`malloc: the free-list bitmap is wrong for list ${l}`);
    }
    for (let i = 0; i < this.spanCount; i++) {
      if (this.span(i, S_STATE) === FREE && this.span(i, S_PAGES) > 0 && !listed.has(i))
        throw new MallocAbort(`malloc: free span ${i} is on no free list`);
    }
  }

  // ---- private: metadata ----

  private init(): boolean {
    const m = this.libc.mapAnonymous(this.metaBytes);
    if (m < 0) return false;
    this.meta = m;
    return true;
  }

  private load(a: number): number {
    return this.libc.ctx.cpu.load64(a);
  }

  private store(a: number, v: number): void {
    this.libc.ctx.cpu.store64(a, v);
  }

  private span(i: number, field: number): number {
    return this.load(this.meta + this.oSpans + (i * SPAN_WORDS + field) * W);
  }

  private setSpan(i: number, field: number, v: number): void {
    this.store(this.meta + this.oSpans + (i * SPAN_WORDS + field) * W, v);
  }

  private arena(a: number, field: number): number {
    return this.load(this.meta + this.oArenas + (a * 3 + field) * W);
  }

  private pagemap(a: number, page: number): number {
    return this.load(this.meta + this.oPagemaps + (a * ARENA_PAGES + page) * W);
  }

  private setPagemap(a: number, page: number, span: number): void {
    this.store(this.meta + this.oPagemaps + (a * ARENA_PAGES + page) * W, span + 1);
  }

  // ---- private: the thread cache and the central lists ----

  private cachePop(c: number): number {
    const slot = this.meta + this.oCache + c * 2 * W;
    const head = this.load(slot);
    if (head === 0) return 0;
    this.store(slot, this.load(head));
    this.store(slot + W, this.load(slot + W) - 1);
    this.store(head + W, 0);
    return head;
  }

  private cachePush(c: number, obj: number): void {
    const slot = this.meta + this.oCache + c * 2 * W;
    this.store(obj, this.load(slot));
    this.store(obj + W, CACHE_KEY);
    this.store(slot, obj);
    this.store(slot + W, this.load(slot + W) + 1);
  }

  private cacheContains(c: number, obj: number): boolean {
    for (let o = this.load(this.meta + this.oCache + c * 2 * W); o !== 0; o = this.load(o))
      if (o === obj) return true;
    return false;
  }

  /** Move a batch of objects of class c from the central lists (or a new span) into the cache. */
  private refillCache(c: number): boolean {
    const batch = Math.max(1, Math.min(32, Math.floor(65536 / CLASSES[c]!)));
    for (let got = 0; got < batch; ) {
      let span = this.load(this.meta + this.oCentral + c * W) - 1;
      if (span < 0) {
        if (got > 0) return true;
        span = this.newClassSpan(c);
        if (span < 0) return false;
      }
      while (got < batch) {
        const obj = this.span(span, S_FREELIST);
        if (obj === 0) break;
        this.setSpan(span, S_FREELIST, this.load(obj));
        this.setSpan(span, S_ALLOCATED, this.span(span, S_ALLOCATED) + 1);
        this.cachePush(c, obj);
        got++;
      }
      if (this.span(span, S_FREELIST) === 0) this.centralRemove(c, span);
    }
    return true;
  }

  /** Return `keep`-beyond objects of class c from the cache to their spans. */
  private flushCache(c: number, keep: number): void {
    const slot = this.meta + this.oCache + c * 2 * W;
    while (this.load(slot + W) > keep) {
      const obj = this.cachePop(c);
      const span = this.spanOf(obj, 'free');
      const wasFull = this.span(span, S_FREELIST) === 0;
      this.store(obj, this.span(span, S_FREELIST));
      this.setSpan(span, S_FREELIST, obj);
      const allocated = this.span(span, S_ALLOCATED) - 1;
      this.setSpan(span, S_ALLOCATED, allocated);
      if (allocated === 0) {
        if (!wasFull) this.centralRemove(c, span);
        this.freeSpan(span);
      } else if (wasFull) {
        this.centralPush(c, span);
      }
    }
  }

  private centralPush(c: number, span: number): void {
    const slot = this.meta + this.oCentral + c * W;
    this.setSpan(span, S_NEXT, this.load(slot));
    this.store(slot, span + 1);
  }

  private centralRemove(c: number, span: number): void {
    const slot = this.meta + this.oCentral + c * W;
    let prev = -1;
    for (let s = this.load(slot) - 1; s >= 0; s = this.span(s, S_NEXT) - 1) {
      if (s === span) {
        const next = this.span(s, S_NEXT);
        if (prev < 0) this.store(slot, next);
        else this.setSpan(prev, S_NEXT, next);
        return;
      }
      prev = s;
    }
  }

  /** A new span for class c, its objects threaded into its free list, on the central list. */
  private newClassSpan(c: number): number {
    const size = CLASSES[c]!;
    const pages = spanPagesFor(size);
    const span = this.allocSpan(pages);
    if (span < 0) return -1;
    const start = this.span(span, S_START);
    const objects = Math.floor((pages * PAGE) / size);
    for (let i = 0; i < objects; i++)
      this.store(start + i * size, i + 1 < objects ? start + (i + 1) * size : 0);
    this.setSpan(span, S_STATE, SMALL);
    this.setSpan(span, S_CLASS, c);
    this.setSpan(span, S_FREELIST, start);
    this.setSpan(span, S_ALLOCATED, 0);
    this.centralPush(c, span);
    return span;
  }

  // ---- private: the page heap ----

  /** A span of `pages` pages: from the free lists (best fit), else a new arena. -1 when out of memory. */
  private allocSpan(pages: number): number {
    let best = this.takeFreeSpan(pages);
    if (best < 0) best = this.newArena(pages);
    if (best < 0) return -1;
    const have = this.span(best, S_PAGES);
    const released = this.span(best, S_RELEASED);
    if (have > pages) {
      const rest = this.newSpanRecord(this.span(best, S_START) + pages * PAGE, have - pages, FREE);
      if (rest < 0) return -1;
      this.setSpan(rest, S_RELEASED, released);
      this.setSpan(best, S_PAGES, pages);
      this.mapSpanPages(rest);
      this.freeListInsert(rest);
    }
    this.freePages -= pages;
    if (released === 0) this.residentFreePages -= pages;
    this.setSpan(best, S_STATE, LARGE);
    this.setSpan(best, S_RELEASED, 0);
    return best;
  }

  /** Take a free span of at least `pages` pages off its list (the shortest such): its index, or -1. */
  private takeFreeSpan(pages: number): number {
    const l = this.nextFreeList(Math.min(pages, FREE_LISTS - 1));
    if (l < 0) return -1;
    let best = this.load(this.meta + this.oFreeLists + l * W) - 1;
    if (l === FREE_LISTS - 1) {
      best = -1;
      for (let i = this.load(this.meta + this.oFreeLists + l * W) - 1; i >= 0; i = this.span(i, S_NEXT) - 1) {
        const n = this.span(i, S_PAGES);
        if (n >= pages && (best < 0 || n < this.span(best, S_PAGES))) best = i;
      }
      if (best < 0) return -1;
    }
    this.freeListRemove(best);
    return best;
  }

  /** The first non-empty free list at or past `l` (by the bitmap), or -1. */
  private nextFreeList(l: number): number {
    let word = l >>> 5;
    let map = this.libc.ctx.cpu.load32(this.meta + this.oFreeMap + word * 4) & (0xffffffff << (l & 31));
    while (map === 0) {
      if (++word >= FREE_MAP_WORDS) return -1;
      map = this.libc.ctx.cpu.load32(this.meta + this.oFreeMap + word * 4);
    }
    return word * 32 + 31 - Math.clz32(map & -map);
  }

  private setFreeMapBit(l: number, value: 0 | 1): void {
    const at = this.meta + this.oFreeMap + (l >>> 5) * 4;
    const cpu = this.libc.ctx.cpu;
    const map = cpu.load32(at);
    cpu.store32(at, (value === 1 ? map | (1 << (l & 31)) : map & ~(1 << (l & 31))) >>> 0);
  }

  /** Put FREE span i at the head of the free list for its length. */
  private freeListInsert(i: number): void {
    const l = Math.min(this.span(i, S_PAGES), FREE_LISTS - 1);
    const slot = this.meta + this.oFreeLists + l * W;
    const head = this.load(slot);
    this.setSpan(i, S_NEXT, head);
    this.setSpan(i, S_PREV, 0);
    if (head !== 0) this.setSpan(head - 1, S_PREV, i + 1);
    else this.setFreeMapBit(l, 1);
    this.store(slot, i + 1);
  }

  /** Take FREE span i off its free list (its length must not have changed since it went on). */
  private freeListRemove(i: number): void {
    const next = this.span(i, S_NEXT);
    const prev = this.span(i, S_PREV);
    if (prev !== 0) this.setSpan(prev - 1, S_NEXT, next);
    else {
      const l = Math.min(this.span(i, S_PAGES), FREE_LISTS - 1);
      if (this.load(this.meta + this.oFreeLists + l * W) !== i + 1)
        throw new MallocAbort(`malloc: free span ${i} is not on its free list`);
      this.store(this.meta + this.oFreeLists + l * W, next);
      if (next === 0) this.setFreeMapBit(l, 0);
    }
    if (next !== 0) this.setSpan(next - 1, S_PREV, prev);
  }

  /** A new arena (1 MiB-aligned, at least `pages` pages) as one FREE span, not on a list: its index, or -1. */
  private newArena(pages: number): number {
    if (this.arenaCount >= MAX_ARENAS) return -1;
    // An object bigger than an arena gets an arena of its own, holding just its span (the page
    // map covers the first ARENA_PAGES pages; lookups past them clamp to the last entry).
    const n = Math.max(ARENA_PAGES, pages);
    const base = this.mapAligned(n * PAGE);
    if (base < 0) return -1;
    const a = this.arenaCount++;
    this.store(this.meta + this.oArenas + (a * 3 + 0) * W, base);
    this.store(this.meta + this.oArenas + (a * 3 + 1) * W, n);
    this.hashArena(a, base, n, 'add');
    this.mappedBytes += n * PAGE;
    this.freePages += n;
    this.residentFreePages += n;
    const span = this.newSpanRecord(base, n, FREE);
    if (span < 0) return -1;
    this.mapSpanPages(span);
    return span;
  }

  /** `bytes` of fresh memory starting on an ARENA_BYTES boundary (mapped larger, then trimmed), or -1. */
  private mapAligned(bytes: number): number {
    const raw = this.libc.mapAnonymous(bytes + ARENA_BYTES);
    if (raw < 0) return -1;
    const base = Math.ceil(raw / ARENA_BYTES) * ARENA_BYTES;
    if (base > raw) this.libc.munmap(raw, base - raw);
    const tail = raw + ARENA_BYTES - base;
    if (tail > 0) this.libc.munmap(base + bytes, tail);
    return base;
  }

  /** Enter (or remove) arena a's whole 1 MiB frames in the arena hash; frames past the hash's reach are scanned for. */
  private hashArena(a: number, base: number, pages: number, op: 'add' | 'remove'): void {
    const frames = Math.floor((pages * PAGE) / ARENA_BYTES);
    for (let f = 0; f < frames && f < ARENA_HASH_SLOTS / 4; f++) {
      const key = base / ARENA_BYTES + f + 1;
      let slot = hashSlot(key);
      for (let k = 0; k < ARENA_HASH_SLOTS; k++, slot = (slot + 1) & (ARENA_HASH_SLOTS - 1)) {
        const at = this.meta + this.oArenaHash + slot * 2 * W;
        const got = this.load(at);
        if (op === 'add' && (got === 0 || got === HASH_TOMBSTONE)) {
          this.store(at, key);
          this.store(at + W, a);
          break;
        }
        if (op === 'remove' && got === key) {
          this.store(at, HASH_TOMBSTONE);
          break;
        }
        if (got === 0) break;
      }
    }
  }

  private newSpanRecord(start: number, pages: number, state: number): number {
    const i = this.freeSpanSlots.pop() ?? (this.spanCount < MAX_SPANS ? this.spanCount++ : -1);
    if (i < 0) return -1;
    this.setSpan(i, S_START, start);
    this.setSpan(i, S_PAGES, pages);
    this.setSpan(i, S_STATE, state);
    this.setSpan(i, S_CLASS, 0);
    this.setSpan(i, S_FREELIST, 0);
    this.setSpan(i, S_ALLOCATED, 0);
    this.setSpan(i, S_NEXT, 0);
    this.setSpan(i, S_RELEASED, 0);
    return i;
  }

  /** Record span i in its arena's page map (every page within the first ARENA_PAGES). */
  private mapSpanPages(i: number): void {
    const a = this.arenaOf(this.span(i, S_START));
    if (a < 0) throw new MallocAbort('malloc: span outside every arena');
    const first = (this.span(i, S_START) - this.arena(a, 0)) / PAGE;
    const n = this.span(i, S_PAGES);
    for (let p = first; p < Math.min(first + n, ARENA_PAGES); p++) this.setPagemap(a, p, i);
  }

  /** The arena holding `addr`, or -1: by the arena hash, else (an arena too big to hash) a scan. */
  private arenaOf(addr: number): number {
    const key = Math.floor(addr / ARENA_BYTES) + 1;
    let slot = hashSlot(key);
    for (let k = 0; k < ARENA_HASH_SLOTS; k++, slot = (slot + 1) & (ARENA_HASH_SLOTS - 1)) {
      const at = this.meta + this.oArenaHash + slot * 2 * W;
      const got = this.load(at);
      if (got === key) return this.load(at + W);
      if (got === 0) break;
    }
    for (let a = 0; a < this.arenaCount; a++) {
      const base = this.arena(a, 0);
      if (base !== 0 && addr >= base && addr < base + this.arena(a, 1) * PAGE) return a;
    }
    return -1;
  }

  /** The span holding `ptr` (MallocAbort for a pointer malloc never returned). */
  private spanOf(ptr: number, who: string): number {
    const a = this.meta === 0 ? -1 : this.arenaOf(ptr);
    if (a < 0 || ptr % MALLOC_ALIGNMENT !== 0)
      throw new MallocAbort(`${who}(): invalid pointer 0x${ptr.toString(16)}`);
    const page = Math.min(ARENA_PAGES - 1, Math.floor((ptr - this.arena(a, 0)) / PAGE));
    const span = this.pagemap(a, page) - 1;
    if (span < 0) throw new MallocAbort(`${who}(): invalid pointer 0x${ptr.toString(16)}`);
    return span;
  }

  /** Return a span to the page heap, merging with free neighbours; unmap a wholly free arena. */
  private freeSpan(i: number): void {
    this.setSpan(i, S_STATE, FREE);
    this.setSpan(i, S_RELEASED, 0);
    this.freePages += this.span(i, S_PAGES);
    this.residentFreePages += this.span(i, S_PAGES);
    const a = this.arenaOf(this.span(i, S_START));
    const base = this.arena(a, 0);
    const pages = this.arena(a, 1);
    // Merge with the following and preceding free spans (a merged span counts as resident).
    const end = this.span(i, S_START) + this.span(i, S_PAGES) * PAGE;
    if (end < base + pages * PAGE && (end - base) / PAGE < ARENA_PAGES) {
      const next = this.pagemap(a, (end - base) / PAGE) - 1;
      if (next >= 0 && this.span(next, S_STATE) === FREE) {
        this.freeListRemove(next);
        if (this.span(next, S_RELEASED) === 1) this.residentFreePages += this.span(next, S_PAGES);
        this.setSpan(i, S_PAGES, this.span(i, S_PAGES) + this.span(next, S_PAGES));
        this.setSpan(next, S_PAGES, 0);
        this.freeSpanSlots.push(next);
      }
    }
    const startPage = (this.span(i, S_START) - base) / PAGE;
    if (startPage > 0) {
      const prev = this.pagemap(a, startPage - 1) - 1;
      if (prev >= 0 && this.span(prev, S_STATE) === FREE) {
        this.freeListRemove(prev);
        if (this.span(prev, S_RELEASED) === 1) this.residentFreePages += this.span(prev, S_PAGES);
        this.setSpan(prev, S_PAGES, this.span(prev, S_PAGES) + this.span(i, S_PAGES));
        this.setSpan(prev, S_RELEASED, 0);
        this.setSpan(i, S_PAGES, 0);
        this.freeSpanSlots.push(i);
        i = prev;
      }
    }
    this.mapSpanPages(i);
    if (this.span(i, S_PAGES) === pages) {
      // The whole arena is free: give it back.
      this.libc.munmap(base, pages * PAGE);
      this.hashArena(a, base, pages, 'remove');
      this.mappedBytes -= pages * PAGE;
      this.freePages -= pages;
      this.residentFreePages -= pages;
      this.setSpan(i, S_PAGES, 0);
      this.freeSpanSlots.push(i);
      this.store(this.meta + this.oArenas + (a * 3 + 0) * W, 0);
      return;
    }
    this.freeListInsert(i);
    if (this.residentFreePages > RELEASE_THRESHOLD_PAGES) this.releaseFreePages(RELEASE_THRESHOLD_PAGES);
  }

  /** madvise(MADV_DONTNEED) free spans until at most `keepPages` free pages stay resident. */
  private releaseFreePages(keepPages: number): void {
    for (let i = 0; i < this.spanCount && this.residentFreePages > keepPages; i++) {
      if (this.span(i, S_STATE) !== FREE || this.span(i, S_PAGES) === 0 || this.span(i, S_RELEASED) === 1)
        continue;
      this.libc.madvise(this.span(i, S_START), this.span(i, S_PAGES) * PAGE, MADV_DONTNEED);
      this.setSpan(i, S_RELEASED, 1);
      this.residentFreePages -= this.span(i, S_PAGES);
    }
    this.residentFreePages = Math.max(0, this.residentFreePages);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}

/** The arena hash's home slot for frame key `key` (Fibonacci hashing). */
function hashSlot(key: number): number {
  return Math.imul(key | 0, 0x9e3779b1) >>> (32 - Math.log2(ARENA_HASH_SLOTS));
}

function classOf(size: number): number {
  let lo = 0;
  let hi = NCLASSES - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (CLASSES[mid]! >= size) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
