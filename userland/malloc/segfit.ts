/**
 * A segregated-fit allocator tuned for utilization: segregated explicit free lists with
 * best fit inside a size class, 8-byte headers with footers only on free blocks, and small
 * objects in headerless slabs. All its state is in the process's emulated memory.
 *
 * Regular blocks (bp = payload address, 16-byte aligned; the header is the word before it):
 *
 *   allocated:  [size | PREV_ALLOC | ALLOC] payload ...                  (usable: size - 8)
 *   free:       [size | PREV_ALLOC] next prev ... [footer: size]         (size >= 32)
 *
 *   the heap:   [arena][pad][block]...[block][epilogue header: 0 | ALLOC]   brk
 *   invariants: no two adjacent free blocks; PREV_ALLOC of a block == ALLOC of the one before;
 *               every free block is on the list of its size class exactly once
 *
 * Slabs hold the requests whose size an 8-byte header would round up a step (9..16, 25..32,
 * 41..48, 57..64 bytes): a slab is a regular allocated block of SLAB_BYTES whose payload
 * address is a multiple of SLAB_BYTES, with objects of one size and no per-object header:
 *
 *   A - 8:     header  SLAB | ALLOC | PREV_ALLOC | class << 4 | used << 6 | freeHead << 12 | bump << 18
 *   A ..:      objects (a free object: [next free index + 1][key])
 *   A + 1008:  partial-list links: next slab number (32 bits), previous slab number (32 bits)
 *   A + 1016:  the next block's header
 *
 *   used + |free list| == bump <= capacity
 *
 * A pointer lies in a slab when the slab map (a bitmap with one bit per SLAB_BYTES of the
 * heap, itself a block in the heap) has its bit set. Freeing the last object of a slab gives
 * the slab back to the regular heap.
 *
 * The heap grows by exactly what a request lacks (the free last block counts), realloc grows
 * in place into a free neighbour or the top of the heap, and no request goes to mmap: the
 * heap's high-water mark stays close to the peak live payload.
 *
 * List traffic is kept low, since every link is a load or a store through the MMU: a split
 * whose remainder stays on the same list hands out the free block's high end (the free block
 * keeps its place on its list), and a merged block that stays on a free neighbour's list takes
 * that neighbour's place.
 */
import { ENOMEM } from '../../kernel/proc/uapi.ts';
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
const ALLOC = 1;
const PREV_ALLOC = 2;
const SLAB = 4;
const FLAGS = 15;
const MIN_BLOCK = 32;
/** Block sizes stay below 2^31 so that header words take JavaScript's 32-bit bit operations. */
const MAX_REQUEST = 2 ** 31 - 4096;

const SLAB_BYTES = 1024;
const SLAB_OBJECT_END = SLAB_BYTES - 16; // objects end here; the links word follows
const SLAB_CLASSES = 4; // objects of 16, 32, 48 and 64 bytes
const SLAB_KEY = 0x51ab_f7ee;

// Arena words (offsets from the arena base).
const A_BINMAP = 0; // bit i set <=> list i is not empty
const A_SLABS = 8; // slabs in the heap
const A_PARTIAL = 16; // SLAB_CLASSES heads: slabs of the class with a free object (0: none)
const A_LISTS = A_PARTIAL + SLAB_CLASSES * W;
const EXACT_LISTS = 7; // lists 0..6: blocks of exactly 32, 48, ..., 128 bytes
const NLISTS = 31; // then one list per power of two, the last for 2^30 and up
const ARENA_BYTES = A_LISTS + NLISTS * W; // 296: the first header follows at a 16n + 8 offset

/** Tunables, with their defaults. */
export interface SegfitTunables {
  /** Requests up to this many bytes may go to slabs (0: no slabs). */
  slabMaxBytes: number;
  /** Blocks a best-fit search looks at after the first that fits. */
  fitScanBlocks: number;
  /** Requests of at least this many bytes take the high end of a free block they split. */
  highEndBytes: number;
  /** A free last block this large is given back with a negative sbrk. */
  trimThresholdBytes: number;
}

export const SEGFIT_DEFAULTS: Readonly<SegfitTunables> = {
  slabMaxBytes: 64,
  fitScanBlocks: 8,
  highEndBytes: Number.POSITIVE_INFINITY,
  trimThresholdBytes: 128 * 1024,
};

export class SegfitAllocator implements Allocator {
  readonly name = 'segfit';
  readonly tunables: SegfitTunables;
  private readonly libc: Libc;
  private readonly cpu: Libc['ctx']['cpu'];
  private arena = 0;
  /** The break when the allocator started (the footprint is measured from here). */
  private heapFloor = 0;
  /** The first block's payload address. */
  private firstBp = 0;
  /** The break, as this allocator moved it (nobody else calls brk in its process). */
  private brk = 0;
  /** Slab numbers count SLAB_BYTES from here (the floor rounded down). */
  private slabBase = 0;
  /** The slab map: a block of the heap (0: none yet), and the slabs it has bits for. */
  private slabMap = 0;
  private slabMapBits = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;
  /** Out-values (registers, not state): the size of the block findFit chose and the list it heads (-1: none); the next header checkInUse read. */
  private fitBytes = 0;
  private fitHead = -1;
  private lastNextHeader = 0;

  constructor(libc: Libc, tunables: Partial<SegfitTunables> = {}) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.tunables = { ...SEGFIT_DEFAULTS, ...tunables };
    const t = this.tunables;
    if (!(t.slabMaxBytes >= 0 && t.slabMaxBytes <= 16 * SLAB_CLASSES))
      throw new RangeError(`segfit: slabMaxBytes ${t.slabMaxBytes} is not in 0..${16 * SLAB_CLASSES}`);
    if (!(t.fitScanBlocks >= 0)) throw new RangeError(`segfit: fitScanBlocks ${t.fitScanBlocks} < 0`);
  }

  // ---- the malloc family ----

  malloc(size: number): number {
    if (!(size > 0 && size <= MAX_REQUEST && Number.isSafeInteger(size)))
      return size === 0 ? 0 : this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const cls = this.slabClass(size);
    const p = cls >= 0 ? this.slabAlloc(cls) : this.blockAlloc(regularSize(size));
    if (p === 0) return this.nomem();
    this.inUseBlocks++;
    return p;
  }

  free(ptr: number): void {
    if (ptr === 0) return;
    this.checkAddress(ptr, 'free');
    if (this.inSlab(ptr)) this.slabFree(ptr, 'free');
    else this.blockFree(ptr, 'free');
    this.inUseBlocks--;
  }

  realloc(ptr: number, size: number): number {
    if (ptr === 0) return this.malloc(size);
    if (size === 0) {
      this.free(ptr);
      return 0;
    }
    if (!(size > 0 && size <= MAX_REQUEST && Number.isSafeInteger(size))) return this.nomem();
    this.checkAddress(ptr, 'realloc');
    if (this.inSlab(ptr)) {
      const objBytes = this.slabObjectBytes(ptr, 'realloc');
      if (size <= objBytes) return ptr;
      return this.moveBlock(ptr, size, objBytes);
    }
    const h = this.checkInUse(ptr, 'realloc');
    const old = h - (h & FLAGS);
    const want = regularSize(size);
    if (want <= old) {
      this.shrinkBlock(ptr, old, want);
      return ptr;
    }
    if (this.growInPlace(ptr, old, want)) return ptr;
    return this.moveBlock(ptr, size, old - W);
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
    if ((alignment & (alignment - 1)) !== 0 || !Number.isSafeInteger(alignment)) return this.nomem();
    if (!(size >= 0 && size <= MAX_REQUEST && Number.isSafeInteger(size))) return this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const want = regularSize(Math.max(1, size));
    const bp = this.blockAlloc(want + alignment + MIN_BLOCK);
    if (bp === 0) return this.nomem();
    this.inUseBlocks++;
    let aligned = Math.ceil(bp / alignment) * alignment;
    if (aligned !== bp && aligned - bp < MIN_BLOCK) aligned += alignment;
    if (aligned === bp) {
      this.shrinkBlock(bp, this.blockSize(bp), want);
      return bp;
    }
    // Give the front back as a free block, then trim the tail.
    const h = this.load(bp - W);
    const total = h - (h & FLAGS);
    const front = aligned - bp;
    this.inUseBytes -= total - W;
    this.store(aligned - W, (total - front) | PREV_ALLOC | ALLOC);
    this.inUseBytes += total - front - W;
    this.store(bp - W, front | (h & PREV_ALLOC) | ALLOC);
    this.inUseBytes += front - W;
    this.blockFree(bp, 'memalign');
    this.shrinkBlock(aligned, total - front, want);
    return aligned;
  }

  usableSize(ptr: number): number {
    if (ptr === 0) return 0;
    this.checkAddress(ptr, 'malloc_usable_size');
    if (this.inSlab(ptr)) return this.slabObjectBytes(ptr, 'malloc_usable_size');
    const h = this.checkInUse(ptr, 'malloc_usable_size');
    return h - (h & FLAGS) - W;
  }

  stats(): MallocStats {
    return {
      heapBytes: this.arena === 0 ? 0 : this.brk - this.heapFloor,
      inUseBytes: this.inUseBytes,
      inUseBlocks: this.inUseBlocks,
    };
  }

  /**
   * mallinfo2 from a walk of the heap: arena is the brk heap (nothing is mapped, so hblks and
   * hblkhd are 0); ordblks the free blocks; smblks and fsmblks the free objects of the slabs
   * (never used or freed); keepcost the free last block (what releaseMemory gives back).
   */
  mallinfo2(): Mallinfo2 {
    const mi = emptyMallinfo2();
    if (this.arena === 0) return mi;
    let free = 0;
    for (let bp = this.firstBp; bp < this.brk; bp += this.blockSize(bp)) {
      const h = this.load(bp - W);
      if ((h & ALLOC) === 0) {
        mi.ordblks++;
        free += h - (h & FLAGS);
      } else if ((h & SLAB) !== 0) {
        const bytes = slabObjectSize(h);
        const idle = slabCapacity(bytes) - ((h >>> 6) & 63);
        mi.smblks += idle;
        mi.fsmblks += idle * bytes;
      }
    }
    const eh = this.load(this.brk - W);
    mi.keepcost = (eh & PREV_ALLOC) === 0 ? this.load(this.brk - 2 * W) : 0;
    mi.arena = this.brk - this.heapFloor;
    mi.fordblks = free + mi.fsmblks;
    mi.uordblks = mi.arena - mi.fordblks;
    return mi;
  }

  /** malloc_trim: drop the slab map when no slab is left, then give back a free last block. */
  releaseMemory(): void {
    if (this.arena === 0) return;
    const map = this.slabMap;
    if (map !== 0 && this.load(this.arena + A_SLABS) === 0) {
      this.slabMap = 0;
      this.slabMapBits = 0;
      this.releaseBlock(map);
    }
    this.trimTop(0);
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.arena === 0) return out;
    const map = this.slabMap;
    for (let bp = this.firstBp; bp < this.brk; bp += this.blockSize(bp)) {
      const h = this.load(bp - W);
      if ((h & ALLOC) === 0 || bp === map) continue;
      if ((h & SLAB) === 0) {
        out.push({ ptr: bp, size: h - (h & FLAGS) - W });
        continue;
      }
      const bytes = slabObjectSize(h);
      const free = new Set(this.slabFreeIndexes(bp, h));
      for (let i = 0; i < slabBump(h); i++) if (!free.has(i)) out.push({ ptr: bp + i * bytes, size: bytes });
    }
    return out;
  }

  ownedRegions(): Array<[number, number]> {
    return this.arena === 0 ? [] : [[this.heapFloor, this.brk]];
  }

  checkHeap(): void {
    if (this.arena === 0) return;
    const freeBlocks = this.checkBlocks();
    this.checkLists(freeBlocks);
    this.checkSlabs();
  }

  // ---- private: the arena and the heap's end ----

  private init(): boolean {
    const floor = this.libc.ctx.sys.brk(0);
    const arena = Math.ceil(floor / MALLOC_ALIGNMENT) * MALLOC_ALIGNMENT;
    const first = arena + ARENA_BYTES + W;
    if (this.libc.ctx.sys.brk(first) !== first) return false;
    this.heapFloor = floor;
    this.arena = arena;
    this.firstBp = first;
    this.brk = first;
    this.slabBase = Math.floor(floor / SLAB_BYTES) * SLAB_BYTES;
    this.libc.memset(arena, 0, ARENA_BYTES);
    this.store(first - W, ALLOC | PREV_ALLOC); // the epilogue
    return true;
  }

  /** Move the break to `end`; false (nothing changed) when the kernel refuses. */
  private setBrk(end: number): boolean {
    if (this.libc.ctx.sys.brk(end) !== end) return false;
    this.brk = end;
    return true;
  }

  /**
   * Grow the heap so that a block of `size` bytes starts at the free last block (or at the
   * epilogue), taken off its list; its payload address, or 0 when the kernel refuses.
   */
  private extendFor(size: number): number {
    const eh = this.load(this.brk - W);
    let bp = this.brk;
    let have = 0;
    if ((eh & PREV_ALLOC) === 0) {
      have = this.load(this.brk - 2 * W);
      bp = this.brk - have;
    }
    if (!this.setBrk(bp + size)) return 0;
    if (have > 0) this.listRemove(bp, have);
    this.store(bp - W, size | PREV_ALLOC | ALLOC);
    this.store(bp + size - W, ALLOC | PREV_ALLOC);
    return bp;
  }

  /** Give the free last block back when it is at least `threshold` bytes. */
  private trimTop(threshold: number): void {
    const eh = this.load(this.brk - W);
    if ((eh & PREV_ALLOC) !== 0) return;
    const size = this.load(this.brk - 2 * W);
    if (size < threshold) return;
    const bp = this.brk - size;
    this.listRemove(bp, size);
    if (!this.setBrk(bp)) {
      this.listInsert(bp, size);
      return;
    }
    this.store(bp - W, ALLOC | PREV_ALLOC);
  }

  // ---- private: regular blocks ----

  /** A block of at least `size` bytes (a multiple of 16): its payload address, or 0. */
  private blockAlloc(size: number): number {
    const fit = this.findFit(size);
    if (fit === 0) {
      const bp = this.extendFor(size);
      if (bp !== 0) this.inUseBytes += size - W;
      return bp;
    }
    return this.place(fit, this.fitBytes, size);
  }

  /** Free regular block `bp` after checking it (a double free, a bad header: abort). */
  private blockFree(bp: number, who: string): void {
    const h = this.checkInUse(bp, who);
    const size = h - (h & FLAGS);
    this.inUseBytes -= size - W;
    this.release(bp, h, this.lastNextHeader);
  }

  /**
   * Mark `bp` (header `h`; `ah` the next block's header) free, coalesce it and put the result
   * on its list.
   */
  private release(bp: number, h: number, ah: number): void {
    let size = h - (h & FLAGS);
    let start = bp;
    let after = bp + size;
    // The free neighbour whose place on its list the merged block takes, if its list stays.
    let keep = 0;
    if ((ah & ALLOC) === 0) {
      const ns = ah - (ah & FLAGS);
      if (listIndex(size + ns) === listIndex(ns)) keep = after;
      else this.listRemove(after, ns);
      size += ns;
      after += ns;
      ah = this.load(after - W);
    }
    if ((h & PREV_ALLOC) === 0) {
      const ps = this.load(bp - 2 * W);
      const prev = bp - ps;
      const ph = this.load(prev - W);
      if ((ph & ALLOC) !== 0 || ph - (ph & FLAGS) !== ps)
        throw new MallocAbort(`free(): corrupted size vs. prev_size at 0x${prev.toString(16)}`);
      if (keep !== 0) this.listRemove(keep, size - (h - (h & FLAGS)));
      if (listIndex(ps + size) === listIndex(ps)) keep = prev;
      else {
        this.listRemove(prev, ps);
        keep = 0;
      }
      this.store(bp - W, h - (h & ALLOC)); // inside a free block now: a second free of bp finds it free
      size += ps;
      start = prev;
    }
    this.store(start - W, size | PREV_ALLOC);
    this.store(after - 2 * W, size);
    this.store(after - W, ah & ~PREV_ALLOC);
    if (keep === 0) this.listInsert(start, size);
    else if (keep !== start) this.listReplace(keep, start, size);
    if (after === this.brk && size >= this.tunables.trimThresholdBytes)
      this.trimTop(this.tunables.trimThresholdBytes);
  }

  /** Free allocated block `bp` of the allocator's own (a slab map). */
  private releaseBlock(bp: number): void {
    const h = this.load(bp - W);
    this.release(bp, h, this.load(bp + (h - (h & FLAGS)) - W));
  }

  /**
   * Take `size` bytes of free block `bp` (`total` bytes, on its list; the head of list fitHead
   * when that is not -1) and count them in use: the allocated part's payload address. A
   * remainder of MIN_BLOCK or more stays free: in place, with the high end allocated, when its
   * list stays the same; else split off the low end (large requests take the high end).
   */
  private place(bp: number, total: number, size: number): number {
    const rest = total - size;
    if (rest >= MIN_BLOCK && listIndex(rest) === listIndex(total)) return this.placeHigh(bp, rest, size);
    if (this.fitHead >= 0) this.popHead(this.fitHead);
    else this.listRemove(bp, total);
    if (rest < MIN_BLOCK) {
      this.store(bp - W, total | PREV_ALLOC | ALLOC);
      const next = bp + total;
      this.store(next - W, this.load(next - W) | PREV_ALLOC);
      this.inUseBytes += total - W;
      return bp;
    }
    if (size >= this.tunables.highEndBytes) {
      this.listInsert(bp, rest);
      return this.placeHigh(bp, rest, size);
    }
    this.inUseBytes += size - W;
    this.store(bp - W, size | PREV_ALLOC | ALLOC);
    const r = bp + size;
    this.store(r - W, rest | PREV_ALLOC);
    this.store(r + rest - 2 * W, rest);
    this.listInsert(r, rest);
    return bp;
  }

  /** Allocate the last `size` bytes of listed free block `bp`, which keeps `rest` bytes. */
  private placeHigh(bp: number, rest: number, size: number): number {
    const at = bp + rest;
    this.inUseBytes += size - W;
    this.store(bp - W, rest | PREV_ALLOC);
    this.store(at - 2 * W, rest);
    this.store(at - W, size | ALLOC); // PREV_ALLOC clear: the remainder before it is free
    const next = at + size;
    this.store(next - W, this.load(next - W) | PREV_ALLOC);
    return at;
  }

  /** Shrink allocated block `bp` of `size` bytes to `want`, freeing a large enough tail. */
  private shrinkBlock(bp: number, size: number, want: number): void {
    const rest = size - want;
    if (rest < MIN_BLOCK) return;
    const h = this.load(bp - W);
    this.store(bp - W, want | (h & PREV_ALLOC) | ALLOC);
    this.inUseBytes -= rest;
    this.release(bp + want, rest | PREV_ALLOC | ALLOC, this.load(bp + size - W));
  }

  /** Grow allocated block `bp` from `size` to `want` bytes where it stands; false if it cannot. */
  private growInPlace(bp: number, size: number, want: number): boolean {
    const next = bp + size;
    let have = size;
    let nextFree = 0;
    if (next !== this.brk) {
      const nh = this.load(next - W);
      if ((nh & ALLOC) !== 0) return false;
      nextFree = nh - (nh & FLAGS);
      have += nextFree;
    }
    const atTop = bp + have === this.brk;
    if (have < want && !atTop) return false;
    const h = this.load(bp - W);
    if (have < want) {
      if (!this.setBrk(bp + want)) return false;
      this.store(bp + want - W, ALLOC | PREV_ALLOC);
      have = want;
    }
    if (nextFree > 0) this.listRemove(next, nextFree);
    this.store(bp - W, have | (h & PREV_ALLOC) | ALLOC);
    const after = bp + have;
    this.store(after - W, this.load(after - W) | PREV_ALLOC);
    this.inUseBytes += have - size;
    this.shrinkBlock(bp, have, want);
    return true;
  }

  /** realloc's last resort: a new block, the old bytes copied, the old block freed. */
  private moveBlock(ptr: number, size: number, oldUsable: number): number {
    const fresh = this.malloc(size);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, ptr, Math.min(oldUsable, size));
    this.free(ptr);
    return fresh;
  }

  /**
   * The best-fitting free block of at least `size` bytes (bounded search), still on its list:
   * its size in fitBytes, fitHead its list when it is that list's head (else -1); or 0.
   */
  private findFit(size: number): number {
    const binmap = this.load(this.arena + A_BINMAP);
    let i = listIndex(size);
    let mask = binmap & ~((1 << i) - 1);
    if (mask === 0) return 0;
    if (i < EXACT_LISTS) {
      if ((mask & (1 << i)) === 0) i = 31 - Math.clz32(mask & -mask);
      if (i < EXACT_LISTS) {
        this.fitBytes = (i + 2) * 16;
        this.fitHead = i;
        return this.load(this.arena + A_LISTS + i * W);
      }
    }
    this.fitHead = -1;
    for (;;) {
      const bp = this.bestInList(i, size);
      if (bp !== 0) return bp;
      mask &= ~(1 << i);
      if (mask === 0) return 0;
      i = 31 - Math.clz32(mask & -mask);
    }
  }

  /** Best fit in list `i`: the smallest block >= size among the first ones that fit (its size in fitBytes). */
  private bestInList(i: number, size: number): number {
    let best = 0;
    let bestSize = Number.POSITIVE_INFINITY;
    let after = -1;
    for (let bp = this.load(this.arena + A_LISTS + i * W); bp !== 0; bp = this.load(bp)) {
      const h = this.load(bp - W);
      const s = h - (h & FLAGS);
      if (s >= size && s < bestSize) {
        best = bp;
        bestSize = s;
        if (s === size) break;
      }
      if (best !== 0 && ++after >= this.tunables.fitScanBlocks) break;
    }
    this.fitBytes = bestSize;
    return best;
  }

  // ---- private: the free lists (LIFO, doubly linked through the free blocks) ----

  private listInsert(bp: number, size: number): void {
    const i = listIndex(size);
    const headAt = this.arena + A_LISTS + i * W;
    const head = this.load(headAt);
    this.store(bp, head);
    this.store(bp + W, 0);
    if (head !== 0) this.store(head + W, bp);
    else this.store(this.arena + A_BINMAP, this.load(this.arena + A_BINMAP) | (1 << i));
    this.store(headAt, bp);
  }

  /** Take the head off non-empty list `i`: the block. */
  private popHead(i: number): number {
    const headAt = this.arena + A_LISTS + i * W;
    const bp = this.load(headAt);
    const next = this.load(bp);
    this.store(headAt, next);
    if (next === 0) {
      this.store(this.arena + A_BINMAP, this.load(this.arena + A_BINMAP) & ~(1 << i));
      return bp;
    }
    if (this.load(next + W) !== bp)
      throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${next.toString(16)}`);
    this.store(next + W, 0);
    return bp;
  }

  /** Free block `bp` takes the place of free block `old` on the list of `size` bytes. */
  private listReplace(old: number, bp: number, size: number): void {
    const next = this.load(old);
    const prev = this.load(old + W);
    if ((next !== 0 && this.load(next + W) !== old) || (prev !== 0 && this.load(prev) !== old))
      throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${old.toString(16)}`);
    this.store(bp, next);
    this.store(bp + W, prev);
    if (prev !== 0) this.store(prev, bp);
    else this.store(this.arena + A_LISTS + listIndex(size) * W, bp);
    if (next !== 0) this.store(next + W, bp);
  }

  private listRemove(bp: number, size: number): void {
    const next = this.load(bp);
    const prev = this.load(bp + W);
    if ((next !== 0 && this.load(next + W) !== bp) || (prev !== 0 && this.load(prev) !== bp))
      throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${bp.toString(16)}`);
    if (prev !== 0) this.store(prev, next);
    else {
      const i = listIndex(size);
      const headAt = this.arena + A_LISTS + i * W;
      if (this.load(headAt) !== bp)
        throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${bp.toString(16)}`);
      this.store(headAt, next);
      if (next === 0) this.store(this.arena + A_BINMAP, this.load(this.arena + A_BINMAP) & ~(1 << i));
    }
    if (next !== 0) this.store(next + W, prev);
  }

  // ---- private: slabs ----

  /** The slab class for a request of `size` bytes, or -1 when a regular block suits it better. */
  private slabClass(size: number): number {
    if (size > this.tunables.slabMaxBytes) return -1;
    const r = (size + 15) & ~15;
    return r < ((size + W + 15) & ~15) || size <= 16 ? (r >> 4) - 1 : -1;
  }

  /** An object of class `cls` from its first partial slab (or a new slab), or 0. */
  private slabAlloc(cls: number): number {
    const headAt = this.arena + A_PARTIAL + cls * W;
    let a = this.load(headAt);
    if (a === 0) {
      a = this.newSlab(cls);
      if (a === 0) return 0;
    }
    let h = this.load(a - W);
    const bytes = (cls + 1) << 4;
    const freeHead = (h >>> 12) & 63;
    let p: number;
    if (freeHead !== 0) {
      p = a + (freeHead - 1) * bytes;
      h = (h & ~(63 << 12)) | ((this.load(p) & 63) << 12);
      this.store(p + W, 0);
    } else {
      const bump = (h >>> 18) & 63;
      p = a + bump * bytes;
      h += 1 << 18;
    }
    h += 1 << 6;
    this.store(a - W, h);
    if (((h >>> 6) & 63) === slabCapacity(bytes)) this.partialRemove(a, cls);
    this.inUseBytes += bytes;
    return p;
  }

  /** Free slab object `p` after checking it; a slab left empty goes back to the heap. */
  private slabFree(p: number, who: string): void {
    const a = this.slabOf(p);
    const h = this.load(a - W);
    const bytes = this.checkSlabObject(p, a, h, who);
    const index = (p - a) / bytes;
    if (this.load(p + W) === SLAB_KEY && this.slabFreeIndexes(a, h).includes(index))
      throw new MallocAbort(`${who}(): double free detected at 0x${p.toString(16)}`);
    this.store(p, (h >>> 12) & 63);
    this.store(p + W, SLAB_KEY);
    const used = ((h >>> 6) & 63) - 1;
    this.inUseBytes -= bytes;
    const cls = (h >>> 4) & 3;
    if (used === 0) {
      if (slabCapacity(bytes) > 1) this.partialRemove(a, cls);
      this.releaseSlab(a, h);
      return;
    }
    this.store(a - W, (h & ~((63 << 12) | (63 << 6))) | ((index + 1) << 12) | (used << 6));
    if (used + 1 === slabCapacity(bytes)) this.partialPush(a, cls);
  }

  /** A new empty slab of class `cls` on the partial list: its address, or 0 (no memory). */
  private newSlab(cls: number): number {
    if (!this.ensureSlabMap()) return 0;
    const a = this.slabFromLists() || this.slabAtTop();
    if (a === 0) return 0;
    this.store(a - W, (this.load(a - W) & PREV_ALLOC) | SLAB | ALLOC | (cls << 4));
    const next = a + SLAB_BYTES;
    this.store(next - W, this.load(next - W) | PREV_ALLOC);
    this.setSlabBit(a, 1);
    this.store(this.arena + A_SLABS, this.load(this.arena + A_SLABS) + 1);
    this.partialPush(a, cls);
    return a;
  }

  /**
   * Carve an aligned slab out of a free block: its payload address (its header says ALLOC,
   * its PREV_ALLOC bit right), or 0 when no free block holds one.
   */
  private slabFromLists(): number {
    let mask = this.load(this.arena + A_BINMAP) & ~((1 << listIndex(SLAB_BYTES)) - 1);
    while (mask !== 0) {
      const i = 31 - Math.clz32(mask & -mask);
      mask &= ~(1 << i);
      let scanned = 0;
      for (let bp = this.load(this.arena + A_LISTS + i * W); bp !== 0; bp = this.load(bp)) {
        const h = this.load(bp - W);
        const size = h - (h & FLAGS);
        const a = slabSpot(bp, size);
        if (a !== 0) {
          this.listRemove(bp, size);
          return this.carve(bp, size, a);
        }
        if (++scanned > this.tunables.fitScanBlocks) break;
      }
    }
    return 0;
  }

  /** Split free block `bp` (off its list) around [a - 8, a + SLAB_BYTES - 8): the slab's address. */
  private carve(bp: number, size: number, a: number): number {
    const lead = a - bp;
    const tail = bp + size - (a + SLAB_BYTES);
    const h = this.load(bp - W);
    if (lead > 0) {
      this.store(bp - W, lead | (h & PREV_ALLOC));
      this.store(a - 2 * W, lead);
      this.listInsert(bp, lead);
      this.store(a - W, ALLOC);
    } else {
      this.store(a - W, (h & PREV_ALLOC) | ALLOC);
    }
    if (tail > 0) {
      const t = a + SLAB_BYTES;
      this.store(t - W, tail | PREV_ALLOC);
      this.store(t + tail - 2 * W, tail);
      this.listInsert(t, tail);
    }
    return a;
  }

  /** An aligned slab at the end of the heap (the free last block reused): its address, or 0. */
  private slabAtTop(): number {
    const oldBrk = this.brk;
    const eh = this.load(oldBrk - W);
    let bp = oldBrk;
    let have = 0;
    if ((eh & PREV_ALLOC) === 0) {
      have = this.load(oldBrk - 2 * W);
      bp -= have;
    }
    let a = Math.ceil(bp / SLAB_BYTES) * SLAB_BYTES;
    if (a !== bp && a - bp < MIN_BLOCK) a += SLAB_BYTES;
    const end = a + SLAB_BYTES;
    if (!this.setBrk(end)) return 0;
    if (have > 0) this.listRemove(bp, have);
    // [bp, end) is one free block (not on a list) with an allocated block before it.
    this.store(bp - W, (end - bp) | PREV_ALLOC);
    this.store(end - W, ALLOC | PREV_ALLOC);
    return this.carve(bp, end - bp, a);
  }

  /** Give empty slab `a` (off the partial list) back to the regular heap. */
  private releaseSlab(a: number, h: number): void {
    this.setSlabBit(a, 0);
    this.store(this.arena + A_SLABS, this.load(this.arena + A_SLABS) - 1);
    this.release(a, SLAB_BYTES | (h & PREV_ALLOC) | ALLOC, this.load(a + SLAB_BYTES - W));
  }

  /** Make the slab map cover every slab the heap could hold after growing by two slabs. */
  private ensureSlabMap(): boolean {
    for (;;) {
      const bits = this.slabMapBits;
      const need = Math.floor((this.brk + 2 * SLAB_BYTES + MIN_BLOCK - this.slabBase) / SLAB_BYTES) + 1;
      if (need <= bits) return true;
      const newBits = Math.ceil((need * 2) / 128) * 128;
      const old = this.slabMap;
      const map = this.blockAlloc(regularSize(newBits / 8));
      if (map === 0) return false;
      this.inUseBytes -= this.blockSize(map) - W; // the allocator's own block
      this.libc.memset(map, 0, newBits / 8);
      if (old !== 0) {
        this.libc.memcpy(map, old, bits / 8);
        this.releaseBlock(old);
      }
      this.slabMap = map;
      this.slabMapBits = newBits;
    }
  }

  private setSlabBit(a: number, value: 0 | 1): void {
    const n = (a - this.slabBase) / SLAB_BYTES;
    const at = this.slabMap + (n >>> 3);
    const byte = this.cpu.load8(at);
    this.cpu.store8(at, value === 1 ? byte | (1 << (n & 7)) : byte & ~(1 << (n & 7)));
  }

  /** Whether `p` lies in a slab (its bit in the slab map is set). */
  private inSlab(p: number): boolean {
    const n = Math.floor((p - this.slabBase) / SLAB_BYTES);
    if (n >= this.slabMapBits) return false;
    const byte = this.cpu.load8(this.slabMap + (n >>> 3));
    return ((byte >>> (n & 7)) & 1) !== 0;
  }

  private slabOf(p: number): number {
    return p - ((p - this.slabBase) % SLAB_BYTES);
  }

  /** The object size of the allocated slab object `p` (checked as free checks it). */
  private slabObjectBytes(p: number, who: string): number {
    const a = this.slabOf(p);
    const h = this.load(a - W);
    const bytes = this.checkSlabObject(p, a, h, who);
    if (this.load(p + W) === SLAB_KEY && this.slabFreeIndexes(a, h).includes((p - a) / bytes))
      throw new MallocAbort(`${who}(): pointer 0x${p.toString(16)} was freed`);
    return bytes;
  }

  /** Check that `p` is an object of slab `a` (header `h`); the object size, or abort. */
  private checkSlabObject(p: number, a: number, h: number, who: string): number {
    if ((h & (SLAB | ALLOC)) !== (SLAB | ALLOC))
      throw new MallocAbort(`${who}(): corrupted slab header at 0x${(a - W).toString(16)}`);
    const bytes = slabObjectSize(h);
    const off = p - a;
    if (off % bytes !== 0 || off / bytes >= slabBump(h))
      throw new MallocAbort(`${who}(): invalid pointer 0x${p.toString(16)}`);
    return bytes;
  }

  /** The indexes on slab `a`'s free list (aborts on a cycle or a bad link). */
  private slabFreeIndexes(a: number, h: number): number[] {
    const bytes = slabObjectSize(h);
    const bump = slabBump(h);
    const out: number[] = [];
    for (let link = (h >>> 12) & 63; link !== 0; link = this.load(a + (link - 1) * bytes)) {
      if (link > bump || out.length > bump)
        throw new MallocAbort(`malloc(): corrupted slab free list at 0x${a.toString(16)}`);
      out.push(link - 1);
    }
    return out;
  }

  private slabNumber(a: number): number {
    return (a - this.slabBase) / SLAB_BYTES + 1;
  }

  private slabAt(n: number): number {
    return this.slabBase + (n - 1) * SLAB_BYTES;
  }

  private partialPush(a: number, cls: number): void {
    const headAt = this.arena + A_PARTIAL + cls * W;
    const head = this.load(headAt);
    this.cpu.store32(a + SLAB_OBJECT_END, head === 0 ? 0 : this.slabNumber(head));
    this.cpu.store32(a + SLAB_OBJECT_END + 4, 0);
    if (head !== 0) this.cpu.store32(head + SLAB_OBJECT_END + 4, this.slabNumber(a));
    this.store(headAt, a);
  }

  private partialRemove(a: number, cls: number): void {
    const next = this.cpu.load32(a + SLAB_OBJECT_END);
    const prev = this.cpu.load32(a + SLAB_OBJECT_END + 4);
    if (prev !== 0) this.cpu.store32(this.slabAt(prev) + SLAB_OBJECT_END, next);
    else this.store(this.arena + A_PARTIAL + cls * W, next === 0 ? 0 : this.slabAt(next));
    if (next !== 0) this.cpu.store32(this.slabAt(next) + SLAB_OBJECT_END + 4, prev);
  }

  // ---- private: checks ----

  /** Walk every block: tags, flags, footers, coalescing; the number of free blocks. */
  private checkBlocks(): number {
    let prevAlloc = true;
    let free = 0;
    let bp = this.firstBp;
    while (bp < this.brk) {
      const h = this.load(bp - W);
      const size = this.blockSize(bp);
      const where = `0x${(bp - W).toString(16)}`;
      if (size < MIN_BLOCK || size % MALLOC_ALIGNMENT !== 0 || bp + size > this.brk)
        throw new MallocAbort(`malloc(): corrupted block header at ${where}`);
      if (((h & PREV_ALLOC) !== 0) !== prevAlloc)
        throw new MallocAbort(`malloc(): PREV_ALLOC bit disagrees with the block before ${where}`);
      const alloc = (h & ALLOC) !== 0;
      if (!alloc) {
        if (!prevAlloc)
          throw new MallocAbort(`malloc(): two adjacent free blocks at ${where} (missed coalescing)`);
        if (this.load(bp + size - 2 * W) !== size)
          throw new MallocAbort(`malloc(): header and footer disagree at ${where}`);
        free++;
      }
      if ((h & SLAB) !== 0 && (!alloc || bp % SLAB_BYTES !== 0 || !this.inSlab(bp)))
        throw new MallocAbort(`malloc(): stray slab header at ${where}`);
      prevAlloc = alloc;
      bp += size;
    }
    const eh = this.load(this.brk - W);
    if (bp !== this.brk || (eh & ALLOC) === 0 || eh - (eh & FLAGS) !== 0)
      throw new MallocAbort('malloc(): the blocks do not end at the epilogue');
    if (((eh & PREV_ALLOC) !== 0) !== prevAlloc)
      throw new MallocAbort('malloc(): the epilogue PREV_ALLOC bit is wrong');
    return free;
  }

  /** Every list: links both ways, sizes of its class, binmap; all free blocks listed. */
  private checkLists(freeBlocks: number): void {
    const binmap = this.load(this.arena + A_BINMAP);
    let listed = 0;
    for (let i = 0; i < NLISTS; i++) {
      let prev = 0;
      const head = this.load(this.arena + A_LISTS + i * W);
      if ((head !== 0) !== ((binmap & (1 << i)) !== 0))
        throw new MallocAbort(`malloc(): the list map disagrees with list ${i}`);
      for (let bp = head; bp !== 0; bp = this.load(bp)) {
        const h = this.load(bp - W);
        if ((h & ALLOC) !== 0)
          throw new MallocAbort(`malloc(): allocated block 0x${bp.toString(16)} on a free list`);
        if (listIndex(h - (h & FLAGS)) !== i)
          throw new MallocAbort(`malloc(): block 0x${bp.toString(16)} on the wrong list`);
        if (this.load(bp + W) !== prev)
          throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${bp.toString(16)}`);
        prev = bp;
        if (++listed > freeBlocks)
          throw new MallocAbort('malloc(): the lists are longer than the free blocks (a cycle?)');
      }
    }
    if (listed !== freeBlocks)
      throw new MallocAbort(`malloc(): ${freeBlocks} free blocks but ${listed} on the lists`);
  }

  /** Every slab: counts, free list, map bit; partial lists hold exactly the partial slabs. */
  private checkSlabs(): void {
    const partial = new Set<number>();
    let slabs = 0;
    for (let bp = this.firstBp; bp < this.brk; bp += this.blockSize(bp)) {
      const h = this.load(bp - W);
      if ((h & SLAB) === 0) continue;
      slabs++;
      const free = this.slabFreeIndexes(bp, h).length;
      const used = (h >>> 6) & 63;
      const cap = slabCapacity(slabObjectSize(h));
      if (used + free !== slabBump(h) || slabBump(h) > cap || used === 0)
        throw new MallocAbort(`malloc(): slab 0x${bp.toString(16)} counts are inconsistent`);
      if (used < cap) partial.add(bp);
    }
    if (slabs !== this.load(this.arena + A_SLABS)) throw new MallocAbort('malloc(): the slab count is wrong');
    for (let cls = 0; cls < SLAB_CLASSES; cls++) {
      let prev = 0;
      for (let a = this.load(this.arena + A_PARTIAL + cls * W); a !== 0; ) {
        if (!partial.delete(a) || ((this.load(a - W) >>> 4) & 3) !== cls)
          throw new MallocAbort(`malloc(): slab 0x${a.toString(16)} does not belong on partial list ${cls}`);
        if (this.cpu.load32(a + SLAB_OBJECT_END + 4) !== prev)
          throw new MallocAbort(`malloc(): corrupted slab link at 0x${a.toString(16)}`);
        prev = this.slabNumber(a);
        const next = this.cpu.load32(a + SLAB_OBJECT_END);
        a = next === 0 ? 0 : this.slabAt(next);
      }
    }
    if (partial.size > 0) throw new MallocAbort('malloc(): a partial slab is missing from its list');
  }

  /** A pointer free/realloc may take: aligned and inside the heap, or abort. */
  private checkAddress(ptr: number, who: string): void {
    if (this.arena === 0 || ptr % MALLOC_ALIGNMENT !== 0 || ptr < this.firstBp || ptr >= this.brk)
      throw new MallocAbort(`${who}(): invalid pointer 0x${ptr.toString(16)}`);
  }

  /** The header of allocated regular block `bp`, checked; abort on a double free or corruption. */
  private checkInUse(bp: number, who: string): number {
    const h = this.load(bp - W);
    const hex = `0x${bp.toString(16)}`;
    const size = h - (h & FLAGS);
    if ((h & SLAB) !== 0 || size < MIN_BLOCK || bp + size > this.brk)
      throw new MallocAbort(`${who}(): invalid pointer or corrupted header at ${hex}`);
    if ((h & ALLOC) === 0) throw new MallocAbort(`${who}(): double free detected at ${hex}`);
    const ah = this.load(bp + size - W);
    if ((ah & PREV_ALLOC) === 0)
      throw new MallocAbort(`${who}(): invalid next size (corrupted header) at ${hex}`);
    this.lastNextHeader = ah;
    return h;
  }

  // ---- private: words in emulated memory ----

  private load(a: number): number {
    return this.cpu.load64(a);
  }

  private store(a: number, v: number): void {
    this.cpu.store64(a, v);
  }

  /** The size of the block at `bp` (regular or slab). */
  private blockSize(bp: number): number {
    const h = this.load(bp - W);
    return (h & SLAB) !== 0 ? SLAB_BYTES : h - (h & FLAGS);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}

/** The block size for a request: 8-byte header, 16-byte steps, at least MIN_BLOCK. */
function regularSize(size: number): number {
  return Math.max(MIN_BLOCK, Math.ceil((size + W) / 16) * 16);
}

/** The free list for blocks of `size` bytes: exact lists to 128, then one per power of two. */
function listIndex(size: number): number {
  if (size <= 128) return (size >>> 4) - 2;
  if (size >= 2 ** 30) return NLISTS - 1;
  return 31 - Math.clz32(size - 1);
}

function slabObjectSize(h: number): number {
  return (((h >>> 4) & 3) + 1) << 4;
}

function slabBump(h: number): number {
  return (h >>> 18) & 63;
}

function slabCapacity(bytes: number): number {
  return Math.floor(SLAB_OBJECT_END / bytes);
}

/**
 * Where in free block `bp` of `size` bytes an aligned slab fits, leaving no fragment smaller
 * than MIN_BLOCK before or after it: the slab's payload address, or 0.
 */
function slabSpot(bp: number, size: number): number {
  let a = Math.ceil(bp / SLAB_BYTES) * SLAB_BYTES;
  for (let tries = 0; tries < 2; tries++, a += SLAB_BYTES) {
    const lead = a - bp;
    const tail = bp + size - (a + SLAB_BYTES);
    if (tail < 0) return 0;
    if ((lead === 0 || lead >= MIN_BLOCK) && (tail === 0 || tail >= MIN_BLOCK)) return a;
  }
  return 0;
}
