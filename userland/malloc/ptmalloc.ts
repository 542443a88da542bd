/**
 * A ptmalloc-like allocator (glibc's malloc, one arena), with all its state in the process's
 * emulated memory.
 *
 * Chunks (glibc's layout, 8-byte words):
 *
 *   chunk+0   prev_size   (the previous chunk's size, valid only while that chunk is free)
 *   chunk+8   size | PREV_INUSE (1) | IS_MMAPPED (2)
 *   chunk+16  user memory ...          (free chunks: fd, bk; large free chunks also sorted)
 *
 *   request2size(n) = max(32, (n + 8 + 15) & ~15): the next chunk's prev_size word is usable
 *
 * The arena (malloc_state) sits at the start of the brk heap: fast bins (LIFO, not
 * coalesced, chunks up to 128 bytes of user data), an unsorted bin, 62 exact small bins
 * (chunks of 32 to 1008 bytes) and large bins of growing ranges kept sorted by size, and the
 * top chunk. Bins are doubly linked lists whose heads live in the arena, addressed as fake
 * chunks (glibc's bin_at trick: a head at address A is the chunk A - 16, whose fd/bk are at A).
 *
 *   a chunk is free <=> the next chunk's PREV_INUSE is clear (fast-bin chunks stay "in use")
 *   no two free (non-fast) chunks are adjacent; the top chunk is never in a bin
 *
 * Requests at or above mmap_threshold (128 KiB at start) get their own mmap and go back with
 * munmap; freeing such a chunk larger than the threshold (up to 32 MiB) raises the threshold
 * to its size and the trim threshold to twice that (glibc's dynamic threshold). The top chunk
 * is trimmed with a negative sbrk when it grows past trim_threshold.
 */
import { ENOMEM } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import { type Allocator, callocBytes, MALLOC_ALIGNMENT, MallocAbort, type MallocStats } from './allocator.ts';

const SZ = 8;
const MINSIZE = 32;
const PREV_INUSE = 1;
const IS_MMAPPED = 2;
const FLAGS = 7;
const NFASTBINS = 8; // chunk sizes 32 .. 144
const MAX_FAST_CHUNK = 144; // DEFAULT_MXFAST 128 bytes of user data
const MIN_LARGE = 1024;
const NBINS = 128;
const FASTBIN_CONSOLIDATION_THRESHOLD = 65536;
const PAGE = 4096;

/** Tunables (mallopt). */
export interface MallocTunables {
  mmapThreshold: number;
  trimThreshold: number;
  topPad: number;
  mmapMax: number;
}

export const M_TRIM_THRESHOLD = -1;
export const M_TOP_PAD = -2;
export const M_MMAP_THRESHOLD = -3;
export const M_MMAP_MAX = -4;

// Arena layout (offsets from the arena base).
const A_TOP = 0;
const A_MMAPS = 8; // list of mmapped chunks, linked through their prev_size words
const A_FAST = 16; // NFASTBINS words
const A_BINS = A_FAST + NFASTBINS * SZ; // NBINS heads of 16 bytes: bin 1 = unsorted
const ARENA_BYTES = Math.ceil((A_BINS + NBINS * 16) / MALLOC_ALIGNMENT) * MALLOC_ALIGNMENT;

export class PtmallocAllocator implements Allocator {
  readonly name = 'ptmalloc';
  private readonly libc: Libc;
  private arena = 0;
  /** First chunk after the arena, and the heap's start (for stats and checks). */
  private heapBase = 0;
  private heapFloor = 0;
  /** The break, as this allocator moved it (the heap is its own: nobody else calls sbrk). */
  private brkEnd = 0;
  readonly tunables: MallocTunables = {
    mmapThreshold: 128 * 1024,
    trimThreshold: 256 * 1024,
    topPad: 128 * 1024,
    mmapMax: 65536,
  };
  private dynamicThreshold = true;
  private mmappedBytes = 0;
  private mmappedChunks = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;
  private haveFast = false;

  constructor(libc: Libc) {
    this.libc = libc;
  }

  /** mallopt: set a tunable; 1 on success, 0 on a bad value (glibc's convention). */
  mallopt(param: number, value: number): number {
    if (!Number.isSafeInteger(value) || value < 0) return 0;
    if (param === M_TRIM_THRESHOLD) this.tunables.trimThreshold = value;
    else if (param === M_TOP_PAD) this.tunables.topPad = value;
    else if (param === M_MMAP_THRESHOLD) {
      if (value > 32 * 1024 * 1024) return 0;
      this.tunables.mmapThreshold = value;
    } else if (param === M_MMAP_MAX) this.tunables.mmapMax = value;
    else return 0;
    this.dynamicThreshold = false;
    return 1;
  }

  // ---- the malloc family ----

  malloc(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > 2 ** 46) return this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const nb = request2size(bytes);
    const p = this.intMalloc(nb);
    if (p === 0) return this.nomem();
    this.inUseBytes += this.usable(p);
    this.inUseBlocks++;
    return p + 2 * SZ;
  }

  free(mem: number): void {
    if (mem === 0) return;
    const p = mem - 2 * SZ;
    this.checkInUse(p, 'free');
    this.inUseBytes -= this.usable(p);
    this.inUseBlocks--;
    this.intFree(p);
  }

  realloc(mem: number, bytes: number): number {
    if (mem === 0) return this.malloc(bytes);
    if (bytes === 0) {
      this.free(mem);
      return 0;
    }
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > 2 ** 46) return this.nomem();
    const p = mem - 2 * SZ;
    this.checkInUse(p, 'realloc');
    const nb = request2size(bytes);
    const old = this.chunkSize(p);
    const oldUsable = this.usable(p);
    if (this.isMmapped(p)) {
      if (nb + SZ <= old) return mem;
      return this.moveTo(mem, bytes, oldUsable);
    }
    if (nb <= old) {
      this.splitTail(p, nb);
      this.inUseBytes += this.usable(p) - oldUsable;
      return mem;
    }
    const next = p + old;
    const top = this.load(this.arena + A_TOP);
    if (next === top && old + this.chunkSize(top) >= nb + MINSIZE) {
      const rest = old + this.chunkSize(top) - nb;
      this.setHead(p, nb | (this.load(p + SZ) & PREV_INUSE));
      this.store(this.arena + A_TOP, p + nb);
      this.setHead(p + nb, rest | PREV_INUSE);
      this.inUseBytes += this.usable(p) - oldUsable;
      return mem;
    }
    if (next !== top && !this.inUse(next) && old + this.chunkSize(next) >= nb) {
      this.unlink(next);
      const size = old + this.chunkSize(next);
      this.setHead(p, size | (this.load(p + SZ) & PREV_INUSE));
      this.setInUseBit(p + size);
      this.splitTail(p, nb);
      this.inUseBytes += this.usable(p) - oldUsable;
      return mem;
    }
    return this.moveTo(mem, bytes, oldUsable);
  }

  calloc(n: number, size: number): number {
    const total = callocBytes(n, size);
    if (total < 0) return this.nomem();
    const mem = this.malloc(total);
    if (mem !== 0 && !this.isMmapped(mem - 2 * SZ)) this.libc.memset(mem, 0, total); // mmapped memory is zero
    return mem;
  }

  memalign(alignment: number, bytes: number): number {
    if (alignment <= MALLOC_ALIGNMENT) return this.malloc(bytes);
    if ((alignment & (alignment - 1)) !== 0) return this.nomem();
    const nb = request2size(bytes);
    const savedMax = this.tunables.mmapMax;
    this.tunables.mmapMax = 0; // from the heap, so that the front can be split off
    const mem = this.malloc(nb + alignment + MINSIZE);
    this.tunables.mmapMax = savedMax;
    if (mem === 0) return 0;
    let p = mem - 2 * SZ;
    if (mem % alignment !== 0 && !this.isMmapped(p)) {
      let aligned = Math.ceil(mem / alignment) * alignment;
      if (aligned - mem < MINSIZE) aligned += alignment;
      const np = aligned - 2 * SZ;
      const lead = np - p;
      const size = this.chunkSize(p);
      this.inUseBytes -= this.usable(p);
      this.setHead(np, (size - lead) | PREV_INUSE);
      this.setHead(p, lead | (this.load(p + SZ) & PREV_INUSE));
      this.setInUseBit(p + lead); // keep p "in use" until freed below
      this.inUseBytes += this.usable(np);
      this.intFree(p);
      p = np;
    }
    this.splitTail(p, nb);
    return p + 2 * SZ;
  }

  usableSize(mem: number): number {
    if (mem === 0) return 0;
    this.checkInUse(mem - 2 * SZ, 'malloc_usable_size');
    return this.usable(mem - 2 * SZ);
  }

  stats(): MallocStats {
    const brk = this.arena === 0 ? 0 : this.brkEnd - this.heapFloor;
    return { heapBytes: brk + this.mmappedBytes, inUseBytes: this.inUseBytes, inUseBlocks: this.inUseBlocks };
  }

  /** malloc_trim: consolidate the fast bins and shrink the top chunk to top_pad. */
  releaseMemory(): void {
    if (this.arena === 0) return;
    if (this.haveFast) this.consolidate();
    const saved = this.tunables.trimThreshold;
    this.tunables.trimThreshold = 0;
    this.trim();
    this.tunables.trimThreshold = saved;
  }

  /** mallinfo2's main figures. */
  mallinfo(): {
    arena: number;
    hblks: number;
    hblkhd: number;
    uordblks: number;
    fordblks: number;
    keepcost: number;
  } {
    const arena = this.arena === 0 ? 0 : this.brkEnd - this.heapFloor;
    const top = this.arena === 0 ? 0 : this.chunkSize(this.load(this.arena + A_TOP));
    return {
      arena,
      hblks: this.mmappedChunks,
      hblkhd: this.mmappedBytes,
      uordblks: this.inUseBytes,
      fordblks: Math.max(0, arena - this.inUseBytes - ARENA_BYTES),
      keepcost: top,
    };
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.arena === 0) return out;
    const fast = new Set<number>();
    for (let i = 0; i < NFASTBINS; i++) {
      for (let q = this.load(this.arena + A_FAST + i * SZ); q !== 0; q = this.load(q + 2 * SZ)) fast.add(q);
    }
    const top = this.load(this.arena + A_TOP);
    for (let p = this.heapBase; p < top; p += this.chunkSize(p)) {
      if (this.inUse(p) && !fast.has(p)) out.push({ ptr: p + 2 * SZ, size: this.usable(p) });
    }
    for (let q = this.load(this.arena + A_MMAPS); q !== 0; q = this.load(q))
      out.push({ ptr: q + 2 * SZ, size: this.usable(q) });
    return out.sort((a, b) => a.ptr - b.ptr);
  }

  ownedRegions(): Array<[number, number]> {
    if (this.arena === 0) return [];
    const out: Array<[number, number]> = [[this.heapFloor, this.brkEnd]];
    for (let q = this.load(this.arena + A_MMAPS); q !== 0; q = this.load(q))
      out.push([q, q + this.chunkSize(q)]);
    return out;
  }

  checkHeap(): void {
    if (this.arena === 0) return;
    const top = this.load(this.arena + A_TOP);
    let p = this.heapBase;
    let prevFree = false;
    let free = 0;
    while (p < top) {
      const size = this.chunkSize(p);
      if (size < MINSIZE || size % MALLOC_ALIGNMENT !== 0 || p + size > top) {
        throw new MallocAbort(`malloc(): corrupted size at chunk 0x${p.toString(16)}`);
      }
      const isFree = !this.inUse(p) && !this.isFastChunk(p);
      if (isFree) {
        if (prevFree) throw new MallocAbort(`malloc(): two adjacent free chunks at 0x${p.toString(16)}`);
        if (this.load(p + size) !== size)
          throw new MallocAbort(`malloc(): corrupted prev_size after 0x${p.toString(16)}`);
        free++;
      }
      prevFree = isFree;
      p += size;
    }
    if (p !== top) throw new MallocAbort('malloc(): chunks do not end at the top chunk');
    let binned = 0;
    for (let i = 1; i < NBINS; i++) {
      const b = this.binAt(i);
      let q = this.load(b + 2 * SZ);
      let prev = b;
      while (q !== b) {
        if (this.load(q + 3 * SZ) !== prev)
          throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${q.toString(16)}`);
        binned++;
        prev = q;
        q = this.load(q + 2 * SZ);
        if (binned > free) throw new MallocAbort('malloc(): a bin is longer than the free chunks (a cycle?)');
      }
    }
    if (binned !== free) throw new MallocAbort(`malloc(): ${free} free chunks but ${binned} in bins`);
  }

  // ---- private: arena ----

  private init(): boolean {
    const base = this.libc.sbrk(0);
    const pad = (MALLOC_ALIGNMENT - (base % MALLOC_ALIGNMENT)) % MALLOC_ALIGNMENT;
    const start = this.libc.sbrk(pad + ARENA_BYTES);
    if (start < 0) return false;
    this.brkEnd = start + pad + ARENA_BYTES;
    this.heapFloor = start;
    this.arena = start + pad;
    this.store(this.arena + A_MMAPS, 0);
    for (let i = 0; i < NFASTBINS; i++) this.store(this.arena + A_FAST + i * SZ, 0);
    for (let i = 1; i < NBINS; i++) {
      const b = this.binAt(i);
      this.store(b + 2 * SZ, b);
      this.store(b + 3 * SZ, b);
    }
    // The top chunk starts empty at the end of the arena (16-byte aligned).
    this.heapBase = this.arena + ARENA_BYTES;
    this.store(this.arena + A_TOP, this.heapBase);
    this.setHead(this.heapBase, 0 | PREV_INUSE);
    return true;
  }

  /** The fake chunk standing for bin i (1 = unsorted, 2..63 small, 64.. large). */
  private binAt(i: number): number {
    return this.arena + A_BINS + i * 16 - 2 * SZ;
  }

  private intMalloc(nb: number): number {
    if (nb >= this.tunables.mmapThreshold && this.mmappedChunks < this.tunables.mmapMax) {
      const p = this.mmapChunk(nb);
      if (p !== 0) return p;
    }
    if (nb <= MAX_FAST_CHUNK) {
      const slot = this.arena + A_FAST + fastIndex(nb) * SZ;
      const p = this.load(slot);
      if (p !== 0) {
        this.store(slot, this.load(p + 2 * SZ));
        if (this.chunkSize(p) !== nb) throw new MallocAbort('malloc(): memory corruption (fast)');
        return p;
      }
    }
    if (nb < MIN_LARGE) {
      const b = this.binAt(smallIndex(nb));
      const victim = this.load(b + 3 * SZ);
      if (victim !== b) {
        this.unlink(victim);
        this.setInUseBit(victim + nb);
        return victim;
      }
    } else if (this.haveFast) {
      this.consolidate();
    }
    for (let pass = 0; pass < 2; pass++) {
      const p = this.fromUnsortedAndBins(nb);
      if (p !== 0) return p;
      const top = this.load(this.arena + A_TOP);
      if (this.chunkSize(top) >= nb + MINSIZE) return this.splitTop(nb);
      if (this.haveFast) {
        this.consolidate();
        continue;
      }
      break;
    }
    return this.sysmalloc(nb);
  }

  /** Sort the unsorted bin (taking an exact fit), then best-fit from the bins. */
  private fromUnsortedAndBins(nb: number): number {
    const u = this.binAt(1);
    for (let n = 0; n < 10000; n++) {
      const victim = this.load(u + 3 * SZ);
      if (victim === u) break;
      this.unlink(victim);
      const size = this.chunkSize(victim);
      if (size === nb) {
        this.setInUseBit(victim + size);
        return victim;
      }
      this.binInsert(victim, size);
    }
    const start = nb < MIN_LARGE ? smallIndex(nb) : largeIndex(nb);
    for (let i = start; i < NBINS; i++) {
      const b = this.binAt(i);
      // Large bins are sorted largest first: scan from the smallest (the tail) for a fit.
      for (let c = this.load(b + 3 * SZ); c !== b; c = this.load(c + 3 * SZ)) {
        if (this.chunkSize(c) < nb) continue;
        this.unlink(c);
        const size = this.chunkSize(c);
        if (size - nb >= MINSIZE) {
          this.setHead(c, nb | (this.load(c + SZ) & PREV_INUSE));
          const rest = c + nb;
          this.setHead(rest, (size - nb) | PREV_INUSE);
          this.setFoot(rest, size - nb);
          this.binInsertUnsorted(rest);
        } else {
          this.setInUseBit(c + size);
        }
        return c;
      }
    }
    return 0;
  }

  private splitTop(nb: number): number {
    const top = this.load(this.arena + A_TOP);
    const size = this.chunkSize(top);
    this.setHead(top, nb | (this.load(top + SZ) & PREV_INUSE));
    this.store(this.arena + A_TOP, top + nb);
    this.setHead(top + nb, (size - nb) | PREV_INUSE);
    return top;
  }

  /** Grow the top chunk with sbrk (request + top_pad, in pages) and split it. */
  private sysmalloc(nb: number): number {
    const top = this.load(this.arena + A_TOP);
    const have = this.chunkSize(top);
    const need = Math.ceil((nb + MINSIZE + this.tunables.topPad - have) / PAGE) * PAGE;
    if (this.libc.sbrk(need) < 0) {
      const exact = Math.ceil((nb + MINSIZE - have) / PAGE) * PAGE;
      if (this.libc.sbrk(exact) < 0) {
        return nb >= this.tunables.mmapThreshold / 2 ? this.mmapChunk(nb) : 0;
      }
      this.brkEnd += exact;
      this.setHead(top, (have + exact) | (this.load(top + SZ) & PREV_INUSE));
    } else {
      this.brkEnd += need;
      this.setHead(top, (have + need) | (this.load(top + SZ) & PREV_INUSE));
    }
    return this.splitTop(nb);
  }

  private mmapChunk(nb: number): number {
    const size = Math.ceil((nb + SZ) / PAGE) * PAGE;
    const mem = this.libc.mapAnonymous(size);
    if (mem < 0) return 0;
    this.store(mem, this.load(this.arena + A_MMAPS)); // prev_size links the mmapped chunks
    this.store(this.arena + A_MMAPS, mem);
    this.setHead(mem, size | IS_MMAPPED);
    this.mmappedBytes += size;
    this.mmappedChunks++;
    return mem;
  }

  private intFree(p: number): void {
    let size = this.chunkSize(p);
    if (this.isMmapped(p)) {
      this.unlinkMmapped(p);
      this.libc.munmap(p, size);
      this.mmappedBytes -= size;
      this.mmappedChunks--;
      if (this.dynamicThreshold && size > this.tunables.mmapThreshold && size <= 32 * 1024 * 1024) {
        this.tunables.mmapThreshold = size;
        this.tunables.trimThreshold = 2 * size;
      }
      return;
    }
    if (size <= MAX_FAST_CHUNK) {
      const slot = this.arena + A_FAST + fastIndex(size) * SZ;
      const old = this.load(slot);
      if (old === p)
        throw new MallocAbort(`free(): double free detected in fastbin at 0x${(p + 2 * SZ).toString(16)}`);
      this.store(p + 2 * SZ, old);
      this.store(slot, p);
      this.haveFast = true;
      return;
    }
    const top = this.load(this.arena + A_TOP);
    let next = p + size;
    if ((this.load(p + SZ) & PREV_INUSE) === 0) {
      const prevSize = this.load(p);
      p -= prevSize;
      size += prevSize;
      this.unlink(p);
    }
    if (next === top) {
      size += this.chunkSize(top);
      this.setHead(p, size | PREV_INUSE);
      this.store(this.arena + A_TOP, p);
    } else {
      const nextSize = this.chunkSize(next);
      if (!this.inUse(next)) {
        this.unlink(next);
        size += nextSize;
      } else {
        this.clearInUseBit(next);
      }
      this.setHead(p, size | PREV_INUSE);
      this.setFoot(p, size);
      this.binInsertUnsorted(p);
      next = p + size;
    }
    if (size >= FASTBIN_CONSOLIDATION_THRESHOLD) {
      if (this.haveFast) this.consolidate();
      this.trim();
    }
  }

  private unlinkMmapped(p: number): void {
    let slot = this.arena + A_MMAPS;
    for (let q = this.load(slot); q !== 0; q = this.load(q)) {
      if (q === p) {
        this.store(slot, this.load(q));
        return;
      }
      slot = q;
    }
    throw new MallocAbort(`free(): invalid pointer 0x${(p + 2 * SZ).toString(16)} (not an mmapped chunk)`);
  }

  /** malloc_consolidate: free every fast-bin chunk for real (coalescing). */
  private consolidate(): void {
    this.haveFast = false;
    for (let i = 0; i < NFASTBINS; i++) {
      const slot = this.arena + A_FAST + i * SZ;
      let p = this.load(slot);
      this.store(slot, 0);
      while (p !== 0) {
        const next = this.load(p + 2 * SZ);
        this.intFreeNoFast(p);
        p = next;
      }
    }
  }

  /** Free a chunk with coalescing even if it is fast-bin sized (consolidation). */
  private intFreeNoFast(p: number): void {
    let size = this.chunkSize(p);
    const top = this.load(this.arena + A_TOP);
    if ((this.load(p + SZ) & PREV_INUSE) === 0) {
      const prevSize = this.load(p);
      p -= prevSize;
      size += prevSize;
      this.unlink(p);
    }
    const next = p + size;
    if (next === top) {
      this.setHead(p, (size + this.chunkSize(top)) | PREV_INUSE);
      this.store(this.arena + A_TOP, p);
      return;
    }
    if (!this.inUse(next)) {
      size += this.chunkSize(next);
      this.unlink(next);
    } else {
      this.clearInUseBit(next);
    }
    this.setHead(p, size | PREV_INUSE);
    this.setFoot(p, size);
    this.binInsertUnsorted(p);
  }

  /** Give the top chunk back to the kernel past trim_threshold, keeping top_pad. */
  private trim(): void {
    const top = this.load(this.arena + A_TOP);
    const size = this.chunkSize(top);
    if (size < this.tunables.trimThreshold) return;
    const extra = Math.floor((size - MINSIZE - this.tunables.topPad) / PAGE) * PAGE;
    if (extra <= 0) return;
    if (this.libc.sbrk(-extra) < 0) return;
    this.brkEnd -= extra;
    this.setHead(top, (size - extra) | (this.load(top + SZ) & PREV_INUSE));
  }

  private moveTo(mem: number, bytes: number, oldUsable: number): number {
    const fresh = this.malloc(bytes);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, mem, Math.min(oldUsable, bytes));
    this.free(mem);
    return fresh;
  }

  /** Shrink in-use chunk p to nb, freeing the tail when it is at least MINSIZE. */
  private splitTail(p: number, nb: number): void {
    const size = this.chunkSize(p);
    if (this.isMmapped(p) || size - nb < MINSIZE) return;
    this.setHead(p, nb | (this.load(p + SZ) & PREV_INUSE));
    const rest = p + nb;
    this.setHead(rest, (size - nb) | PREV_INUSE);
    this.setInUseBit(rest + (size - nb)); // the rest is "in use" until freed just below
    this.intFreeNoFast(rest);
  }

  // ---- private: bins ----

  private binInsertUnsorted(p: number): void {
    const b = this.binAt(1);
    const first = this.load(b + 2 * SZ);
    this.store(p + 2 * SZ, first);
    this.store(p + 3 * SZ, b);
    this.store(first + 3 * SZ, p);
    this.store(b + 2 * SZ, p);
  }

  /** Put a free chunk in its small bin (front) or large bin (sorted, largest first). */
  private binInsert(p: number, size: number): void {
    const b = this.binAt(size < MIN_LARGE ? smallIndex(size) : largeIndex(size));
    let fwd = this.load(b + 2 * SZ);
    if (size >= MIN_LARGE) while (fwd !== b && this.chunkSize(fwd) > size) fwd = this.load(fwd + 2 * SZ);
    const bck = this.load(fwd + 3 * SZ);
    this.store(p + 2 * SZ, fwd);
    this.store(p + 3 * SZ, bck);
    this.store(bck + 2 * SZ, p);
    this.store(fwd + 3 * SZ, p);
  }

  private unlink(p: number): void {
    const fd = this.load(p + 2 * SZ);
    const bk = this.load(p + 3 * SZ);
    if (this.load(fd + 3 * SZ) !== p || this.load(bk + 2 * SZ) !== p) {
      throw new MallocAbort(`corrupted double-linked list at chunk 0x${p.toString(16)}`);
    }
    this.store(fd + 3 * SZ, bk);
    this.store(bk + 2 * SZ, fd);
  }

  // ---- private: chunk words in emulated memory ----

  private load(a: number): number {
    return this.libc.ctx.cpu.load64(a);
  }

  private store(a: number, v: number): void {
    this.libc.ctx.cpu.store64(a, v);
  }

  private chunkSize(p: number): number {
    const w = this.load(p + SZ);
    return w - (w & FLAGS);
  }

  private setHead(p: number, word: number): void {
    this.store(p + SZ, word);
  }

  private setFoot(p: number, size: number): void {
    this.store(p + size, size);
  }

  private isMmapped(p: number): boolean {
    return (this.load(p + SZ) & IS_MMAPPED) !== 0;
  }

  /** In use: the next chunk's PREV_INUSE bit. */
  private inUse(p: number): boolean {
    return (this.load(p + this.chunkSize(p) + SZ) & PREV_INUSE) !== 0;
  }

  private setInUseBit(next: number): void {
    const w = this.load(next + SZ);
    this.store(next + SZ, w - (w & PREV_INUSE) + PREV_INUSE);
  }

  private clearInUseBit(next: number): void {
    const w = this.load(next + SZ);
    this.store(next + SZ, w - (w & PREV_INUSE));
  }

  private isFastChunk(p: number): boolean {
    if (this.chunkSize(p) > MAX_FAST_CHUNK) return false;
    const slot = this.arena + A_FAST + fastIndex(this.chunkSize(p)) * SZ;
    for (let q = this.load(slot); q !== 0; q = this.load(q + 2 * SZ)) if (q === p) return true;
    return false;
  }

  private usable(p: number): number {
    return this.isMmapped(p) ? this.chunkSize(p) - 2 * SZ : this.chunkSize(p) - SZ;
  }

  /** A pointer free/realloc may take: aligned, sane size, in use (not a double free). */
  private checkInUse(p: number, who: string): void {
    const hex = `0x${(p + 2 * SZ).toString(16)}`;
    if (this.arena === 0 || (p + 2 * SZ) % MALLOC_ALIGNMENT !== 0)
      throw new MallocAbort(`${who}(): invalid pointer ${hex}`);
    const w = this.load(p + SZ);
    const size = w - (w & FLAGS);
    if ((w & IS_MMAPPED) !== 0) {
      if (size % PAGE !== 0 || size === 0) throw new MallocAbort(`${who}(): invalid pointer ${hex}`);
      return;
    }
    const top = this.load(this.arena + A_TOP);
    if (size < MINSIZE || size % MALLOC_ALIGNMENT !== 0 || p < this.heapBase || p + size > top) {
      throw new MallocAbort(`${who}(): invalid size or pointer ${hex}`);
    }
    if ((this.load(p + size + SZ) & PREV_INUSE) === 0)
      throw new MallocAbort(`${who}(): double free detected at ${hex}`);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}

function request2size(n: number): number {
  return Math.max(MINSIZE, Math.ceil((n + SZ) / MALLOC_ALIGNMENT) * MALLOC_ALIGNMENT);
}

function fastIndex(size: number): number {
  return (size >> 4) - 2;
}

function smallIndex(size: number): number {
  return size >> 4; // 2 .. 63
}

/** glibc's largebin_index_64: bins whose ranges grow 8 times wider at each step. */
function largeIndex(size: number): number {
  const q = (shift: number): number => Math.floor(size / 2 ** shift);
  if (q(6) <= 48) return 48 + q(6);
  if (q(9) <= 20) return 91 + q(9);
  if (q(12) <= 10) return 110 + q(12);
  if (q(15) <= 4) return 119 + q(15);
  if (q(18) <= 2) return 124 + q(18);
  return 126;
}
