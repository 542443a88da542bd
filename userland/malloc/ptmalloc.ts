/**
 * A ptmalloc-like allocator (glibc 2.36's malloc, one arena), with all its state in the
 * process's emulated memory.
 *
 * Chunks (glibc's layout, 8-byte words):
 *
 *   chunk+0   prev_size   (the previous chunk's size, valid only while that chunk is free)
 *   chunk+8   size | PREV_INUSE (1) | IS_MMAPPED (2)
 *   chunk+16  user memory ...   (free: fd, bk; free and large: fd_nextsize, bk_nextsize too)
 *
 *   request2size(n) = max(32, (n + 8 + 15) & ~15): the next chunk's prev_size word is usable
 *
 * In front of the arena, a per-thread cache (tcache; one thread today): 64 LIFO lists, one per
 * chunk size from 32 to 1040 bytes, of at most 7 chunks each, kept "in use" and not coalesced.
 * Its table is the heap's first chunk, as glibc allocates it:
 *
 *   table+0    u16 counts[64]
 *   table+128  64 list heads (user pointers)
 *   entry (a cached chunk's user memory): +0 next entry (0 ends the list), +8 key
 *
 *   counts[i] == length of list i <= TCACHE_FILL_COUNT; key == tcacheKey while cached
 *
 * The arena (malloc_state) lives in libc's static storage, as glibc's main_arena does in
 * libc's data segment (the brk heap holds only chunks): the top chunk, the last
 * remainder, the list of mmapped chunks, have_fastchunks, the binmap (bit i clear => bin i
 * empty; a set bit may be stale, as in glibc), fast bins (LIFO, not coalesced, chunks up to 128
 * bytes), an unsorted bin, 62 exact small bins (32 to 1008 bytes) and large bins of growing
 * ranges kept sorted largest first, with a skip list (fd_nextsize, bk_nextsize) through the
 * first chunk of each size. Bin heads live in the arena, addressed as fake chunks (glibc's
 * bin_at trick: a head at address A is the chunk A - 16, whose fd/bk are at A).
 *
 *   a chunk is free <=> the next chunk's PREV_INUSE is clear (fast and tcache chunks stay "in use")
 *   no two free chunks are adjacent; the top chunk is never in a bin
 *
 * malloc tries, in glibc's order: the tcache, the fast bin, the small bin (both stashing what
 * else they hold of that size into the tcache), the unsorted bin (exact fits, the last
 * remainder for small requests, everything else sorted into bins), the request's large bin
 * (smallest fit), the next non-empty bin by the binmap, the top chunk; then sysmalloc, which
 * maps requests at or above mmap_threshold (128 KiB at start) on their own and otherwise grows
 * the top by the shortfall plus top_pad. Freeing an mmapped chunk larger than the threshold (up
 * to 32 MiB) raises the threshold to its size and the trim threshold to twice that (glibc's
 * dynamic threshold); a free that leaves a top chunk past trim_threshold shrinks the heap.
 * realloc grows in place into the top or a free next chunk, or merges with the chunk malloc
 * returns when that is the next one (the top grown by sbrk).
 */
import { ENOMEM, MREMAP_MAYMOVE, type UserCpu } from '../../kernel/proc/uapi.ts';
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

const SZ = 8;
const MINSIZE = 32;
const PREV_INUSE = 1;
const IS_MMAPPED = 2;
const FLAGS = 7;
const NFASTBINS = 10; // glibc's fastbin_index(request2size(MAX_FAST_SIZE)) + 1
const MAX_FAST_CHUNK = 128; // global_max_fast for DEFAULT_MXFAST (128 bytes of user data)
const MIN_LARGE = 1024;
const NBINS = 128;
const UNSORTED = 1;
const BINMAP_WORDS = 4; // 32 bins a word
const FASTBIN_CONSOLIDATION_THRESHOLD = 65536;
const MAX_UNSORTED_ITERS = 10000;
const TCACHE_BINS = 64;
const TCACHE_FILL_COUNT = 7;
const MAX_TCACHE_CHUNK = MINSIZE + (TCACHE_BINS - 1) * 16; // 1040
const TCACHE_ENTRIES = 2 * TCACHE_BINS; // the list heads follow the u16 counts
const TCACHE_BYTES = TCACHE_ENTRIES + SZ * TCACHE_BINS; // 640: a 656-byte chunk
const TCACHE_KEY_BASE = 0x7a11_0000_0000;
const PAGE = 4096;
const MMAP_THRESHOLD_MAX = 32 * 1024 * 1024;
const MAX_REQUEST = 2 ** 46;

// Free chunk fields (offsets from the chunk).
const FD = 16;
const BK = 24;
const FD_NEXTSIZE = 32;
const BK_NEXTSIZE = 40;

/** Tunables (mallopt), with glibc's defaults. */
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
const A_LAST_REMAINDER = 8;
const A_MMAPS = 16; // list of mmapped chunks, linked through their prev_size words
const A_HAVE_FAST = 24;
const A_BINMAP = 32; // BINMAP_WORDS u32 words
const A_FAST = A_BINMAP + BINMAP_WORDS * 4; // NFASTBINS words
const A_BINS = A_FAST + NFASTBINS * SZ; // NBINS heads of 16 bytes (bin 0 unused, 1 = unsorted)
const ARENA_BYTES = A_BINS + NBINS * 16;

export class PtmallocAllocator implements Allocator {
  readonly name = 'ptmalloc';
  private readonly libc: Libc;
  private readonly cpu: UserCpu;
  private arena = 0;
  /** The tcache table's address (glibc's thread-local `tcache`), fixed at the first call. */
  private tcache = 0;
  /** What a cached chunk's key word holds (glibc draws it at random; here from the seed). */
  private readonly tcacheKey: number;
  /** The first chunk (the tcache table), and the break when the allocator started. */
  private heapBase = 0;
  private heapFloor = 0;
  /** The break, as this allocator moved it (the heap is its own: nobody else calls sbrk). */
  private brkEnd = 0;
  readonly tunables: MallocTunables = {
    mmapThreshold: 128 * 1024,
    trimThreshold: 128 * 1024,
    topPad: 128 * 1024,
    mmapMax: 65536,
  };
  private dynamicThreshold = true;
  private mmappedBytes = 0;
  private mmappedChunks = 0;
  /** glibc's max_mmapped_mem and max_n_mmaps: the peaks of the two above. */
  private maxMmappedBytes = 0;
  private maxMmappedChunks = 0;
  /** Usable bytes and blocks handed out (the cache's chunks and the table are not counted). */
  private inUseBytes = 0;
  private inUseBlocks = 0;
  /** An out-value (a register, not state): the usable bytes of the chunk intMalloc returned. */
  private lastUsable = 0;

  constructor(libc: Libc) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.tcacheKey = TCACHE_KEY_BASE + (libc.ctx.seed >>> 0);
  }

  /** mallopt: set a tunable; 1 on success, 0 on a bad value (glibc's convention). */
  mallopt(param: number, value: number): number {
    if (!Number.isSafeInteger(value) || value < 0) return 0;
    if (this.arena !== 0 && this.haveFastChunks()) this.consolidate();
    if (param === M_TRIM_THRESHOLD) this.tunables.trimThreshold = value;
    else if (param === M_TOP_PAD) this.tunables.topPad = value;
    else if (param === M_MMAP_THRESHOLD) {
      if (value > MMAP_THRESHOLD_MAX) return 0;
      this.tunables.mmapThreshold = value;
    } else if (param === M_MMAP_MAX) this.tunables.mmapMax = value;
    else return 0;
    this.dynamicThreshold = false;
    return 1;
  }

  // ---- the malloc family ----

  malloc(bytes: number): number {
    if (!(bytes >= 0 && bytes <= MAX_REQUEST) || !Number.isInteger(bytes)) return this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const nb = request2size(bytes);
    if (nb <= MAX_TCACHE_CHUNK) {
      const p = this.tcacheGet((nb - MINSIZE) >> 4);
      if (p !== 0) {
        this.inUseBytes += nb - SZ;
        this.inUseBlocks++;
        return p + 2 * SZ;
      }
    }
    return this.handOut(this.intMalloc(nb));
  }

  free(mem: number): void {
    if (mem === 0) return;
    const p = mem - 2 * SZ;
    const h = this.checkChunk(p, 'free');
    const size = h - (h & FLAGS);
    if ((h & IS_MMAPPED) !== 0) {
      this.freeMmapped(p, size);
      return;
    }
    this.inUseBytes -= size - SZ;
    this.inUseBlocks--;
    this.intFree(p, h);
  }

  realloc(mem: number, bytes: number): number {
    if (mem === 0) return this.malloc(bytes);
    if (bytes === 0) {
      this.free(mem);
      return 0;
    }
    if (!(bytes > 0 && bytes <= MAX_REQUEST) || !Number.isInteger(bytes)) return this.nomem();
    const p = mem - 2 * SZ;
    const h = this.checkChunk(p, 'realloc');
    const nb = request2size(bytes);
    if ((h & IS_MMAPPED) !== 0) return this.reallocMmapped(p, h - (h & FLAGS), bytes);
    this.checkNextInUse(p, h - (h & FLAGS), 'realloc');
    return this.intRealloc(p, h, nb);
  }

  /** calloc, as glibc's: straight from the arena (not the tcache); mmapped memory is zero already. */
  calloc(n: number, size: number): number {
    const total = callocBytes(n, size);
    if (total < 0 || total > MAX_REQUEST) return this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const mem = this.handOut(this.intMalloc(request2size(total)));
    if (mem !== 0 && !this.isMmapped(mem - 2 * SZ)) this.libc.memset(mem, 0, total);
    return mem;
  }

  /** glibc's _int_memalign: over-allocate from the heap, free the leader and the trailer. */
  memalign(alignment: number, bytes: number): number {
    if (alignment <= MALLOC_ALIGNMENT) return this.malloc(bytes);
    if ((alignment & (alignment - 1)) !== 0 || !Number.isSafeInteger(alignment)) return this.nomem();
    if (!(bytes >= 0 && bytes <= MAX_REQUEST) || !Number.isInteger(bytes)) return this.nomem();
    if (this.arena === 0 && !this.init()) return this.nomem();
    const nb = request2size(bytes);
    const savedMax = this.tunables.mmapMax;
    this.tunables.mmapMax = 0; // from the heap, so that the leader can be split off
    let p = this.intMalloc(nb + alignment + MINSIZE);
    this.tunables.mmapMax = savedMax;
    if (p === 0) return this.nomem();
    if ((p + 2 * SZ) % alignment !== 0) {
      let q = Math.ceil((p + 2 * SZ) / alignment) * alignment - 2 * SZ;
      if (q - p < MINSIZE) q += alignment;
      const h = this.load(p + SZ);
      const lead = q - p;
      this.store(q + SZ, (h - (h & FLAGS) - lead) | PREV_INUSE);
      this.store(p + SZ, lead | (h & PREV_INUSE));
      this.intFree(p, lead | (h & PREV_INUSE));
      p = q;
    }
    const h = this.load(p + SZ); // the leader may have been coalesced: keep PREV_INUSE as it is
    const size = h - (h & FLAGS);
    if (size > nb + MINSIZE) {
      this.store(p + SZ, nb | (h & PREV_INUSE));
      this.store(p + nb + SZ, (size - nb) | PREV_INUSE);
      this.intFree(p + nb, (size - nb) | PREV_INUSE);
    }
    this.lastUsable = usableOf(this.load(p + SZ));
    return this.handOut(p);
  }

  usableSize(mem: number): number {
    if (mem === 0) return 0;
    const p = mem - 2 * SZ;
    const h = this.checkChunk(p, 'malloc_usable_size');
    if ((h & IS_MMAPPED) === 0) this.checkNextInUse(p, h - (h & FLAGS), 'malloc_usable_size');
    return usableOf(h);
  }

  stats(): MallocStats {
    const brk = this.arena === 0 ? 0 : this.brkEnd - this.heapFloor;
    return { heapBytes: brk + this.mmappedBytes, inUseBytes: this.inUseBytes, inUseBlocks: this.inUseBlocks };
  }

  /**
   * malloc_trim(0): empty the tcache (as a thread's exit does), consolidate the fast bins and
   * give back all of the top chunk but its last page.
   */
  releaseMemory(): void {
    if (this.arena === 0) return;
    this.flushTcache();
    if (this.haveFastChunks()) this.consolidate();
    this.systrim(0);
  }

  /**
   * mallinfo2, as glibc's int_mallinfo computes it: the top chunk, the fast bins (smblks,
   * fsmblks) and every bin are free; tcache chunks count as in use, as in glibc; arena is the
   * brk heap, hblks and hblkhd the mapped chunks; keepcost the top chunk. All from the heap.
   */
  mallinfo2(): Mallinfo2 {
    const mi = emptyMallinfo2();
    if (this.arena === 0) return mi;
    mi.keepcost = this.chunkSize(this.load(this.arena + A_TOP));
    mi.ordblks = 1; // the top chunk
    for (let i = 0; i < NFASTBINS; i++) {
      for (let q = this.load(this.arena + A_FAST + i * SZ); q !== 0; q = this.load(q + FD)) {
        mi.smblks++;
        mi.fsmblks += this.chunkSize(q);
      }
    }
    let binned = 0;
    for (let i = 1; i < NBINS; i++) {
      const b = this.binAt(i);
      for (let q = this.load(b + BK); q !== b; q = this.load(q + BK)) {
        mi.ordblks++;
        binned += this.chunkSize(q);
      }
    }
    mi.arena = this.brkEnd - this.heapFloor;
    mi.fordblks = mi.keepcost + mi.fsmblks + binned;
    mi.uordblks = mi.arena - mi.fordblks;
    mi.hblks = this.mmappedChunks;
    mi.hblkhd = this.mmappedBytes;
    return mi;
  }

  /** The most chunks and bytes mapped at once (malloc_stats' "max mmap regions" and "max mmap bytes"). */
  mmapPeak(): { regions: number; bytes: number } {
    return { regions: this.maxMmappedChunks, bytes: this.maxMmappedBytes };
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.arena === 0) return out;
    const cached = this.cachedChunks();
    const top = this.load(this.arena + A_TOP);
    for (let p = this.heapBase; p < top; p += this.chunkSize(p)) {
      if (this.inUse(p) && !cached.has(p)) out.push({ ptr: p + 2 * SZ, size: this.chunkSize(p) - SZ });
    }
    for (let q = this.load(this.arena + A_MMAPS); q !== 0; q = this.load(q))
      out.push({ ptr: q + 2 * SZ, size: this.chunkSize(q) - 2 * SZ });
    return out.sort((a, b) => a.ptr - b.ptr);
  }

  ownedRegions(): Array<[number, number]> {
    if (this.arena === 0) return [];
    const out: Array<[number, number]> = [
      [this.arena, this.arena + ARENA_BYTES],
      [this.heapFloor, this.brkEnd],
    ];
    for (let q = this.load(this.arena + A_MMAPS); q !== 0; q = this.load(q))
      out.push([q, q + this.chunkSize(q)]);
    return out;
  }

  /** Walk the heap, every bin, the binmap, the fast bins and the tcache; MallocAbort on the first fault. */
  checkHeap(): void {
    if (this.arena === 0) return;
    const free = this.checkChunks();
    const binned = this.checkBins();
    if (binned !== free) throw new MallocAbort(`malloc(): ${free} free chunks but ${binned} in bins`);
    this.checkCaches();
  }

  // ---- private: the fast path's pieces ----

  /**
   * Count chunk `p` that intMalloc just returned (0: a failed request) as handed out: its user
   * pointer, or NULL with ENOMEM.
   */
  private handOut(p: number): number {
    if (p === 0) return this.nomem();
    this.inUseBytes += this.lastUsable;
    this.inUseBlocks++;
    return p + 2 * SZ;
  }

  /** tcache_get: the chunk at the head of tcache list `tc`, or 0 when the list is empty. */
  private tcacheGet(tc: number): number {
    const countAt = this.tcache + 2 * tc;
    const count = this.cpu.load16(countAt);
    if (count === 0) return 0;
    const headAt = this.tcache + TCACHE_ENTRIES + SZ * tc;
    const e = this.load(headAt);
    if (e % MALLOC_ALIGNMENT !== 0 || e < this.heapBase || e >= this.brkEnd)
      throw new MallocAbort(`malloc(): unaligned tcache chunk detected at 0x${e.toString(16)}`);
    this.store(headAt, this.load(e));
    this.cpu.store16(countAt, count - 1);
    this.store(e + SZ, 0);
    return e - 2 * SZ;
  }

  /** tcache_put: cache chunk `p` on list `tc`, which holds `count` chunks. */
  private tcachePut(p: number, tc: number, count: number): void {
    const e = p + 2 * SZ;
    const headAt = this.tcache + TCACHE_ENTRIES + SZ * tc;
    this.store(e + SZ, this.tcacheKey);
    this.store(e, this.load(headAt));
    this.store(headAt, e);
    this.cpu.store16(this.tcache + 2 * tc, count + 1);
  }

  /**
   * glibc's _int_free for in-use chunk `p` with header word `h` (not mmapped): to the tcache
   * while its list has room, else to a fast bin, else coalesced into the unsorted bin or the top.
   */
  private intFree(p: number, h: number): void {
    const size = h - (h & FLAGS);
    this.checkNextInUse(p, size, 'free');
    if (size <= MAX_TCACHE_CHUNK) {
      const tc = (size - MINSIZE) >> 4;
      if (this.load(p + 2 * SZ + SZ) === this.tcacheKey) this.checkNotCached(p, tc);
      const count = this.cpu.load16(this.tcache + 2 * tc);
      if (count < TCACHE_FILL_COUNT) {
        this.tcachePut(p, tc, count);
        return;
      }
    }
    if (size <= MAX_FAST_CHUNK) this.fastbinPush(p, size);
    else this.freeMerge(p, h);
  }

  /** The key says `p` may be cached already: look for it on its list (glibc's double-free check). */
  private checkNotCached(p: number, tc: number): void {
    const e = p + 2 * SZ;
    let q = this.load(this.tcache + TCACHE_ENTRIES + SZ * tc);
    for (let n = 0; q !== 0 && n <= TCACHE_FILL_COUNT; n++, q = this.load(q)) {
      if (q === e) throw new MallocAbort(`free(): double free detected in tcache 2 at 0x${e.toString(16)}`);
    }
  }

  private fastbinPush(p: number, size: number): void {
    const slot = this.arena + A_FAST + fastIndex(size) * SZ;
    const old = this.load(slot);
    if (old === p)
      throw new MallocAbort(`free(): double free detected in fastbin at 0x${(p + 2 * SZ).toString(16)}`);
    this.store(p + FD, old);
    this.store(slot, p);
    this.store(this.arena + A_HAVE_FAST, 1);
  }

  /** Free a chunk past the fast bins' sizes: coalesce, then consolidate and trim when it is large. */
  private freeMerge(p: number, h: number): void {
    const top = this.load(this.arena + A_TOP);
    if (p === top)
      throw new MallocAbort(`free(): double free or corruption (top) at 0x${(p + 2 * SZ).toString(16)}`);
    const size = this.coalesce(p, h, top);
    if (size < FASTBIN_CONSOLIDATION_THRESHOLD) return;
    if (this.haveFastChunks()) this.consolidate();
    if (this.chunkSize(this.load(this.arena + A_TOP)) >= this.tunables.trimThreshold)
      this.systrim(this.tunables.topPad);
  }

  /**
   * Merge chunk `p` (header `h`, its next chunk in use by it) with its free neighbours into the
   * unsorted bin, or into the top chunk `top`: the merged size.
   */
  private coalesce(p: number, h: number, top: number): number {
    let size = h - (h & FLAGS);
    const next = p + size;
    if (next > top)
      throw new MallocAbort(`free(): double free or corruption (out) at 0x${(p + 2 * SZ).toString(16)}`);
    if ((h & PREV_INUSE) === 0) {
      const prevSize = this.load(p);
      p -= prevSize;
      if (this.chunkSize(p) !== prevSize)
        throw new MallocAbort(
          `free(): corrupted size vs. prev_size while consolidating at 0x${p.toString(16)}`,
        );
      this.unlinkChunk(p, prevSize);
      size += prevSize;
    }
    const nh = this.load(next + SZ);
    const nextSize = nh - (nh & FLAGS);
    if (next === top) {
      size += nextSize;
      this.store(p + SZ, size | PREV_INUSE);
      this.store(this.arena + A_TOP, p);
      return size;
    }
    if ((this.load(next + nextSize + SZ) & PREV_INUSE) === 0) {
      this.checkFooter(next, nextSize);
      this.unlinkChunk(next, nextSize);
      size += nextSize;
    } else {
      this.store(next + SZ, nh - (nh & PREV_INUSE));
    }
    this.unsortedPush(p, size);
    this.store(p + SZ, size | PREV_INUSE);
    this.store(p + size, size);
    return size;
  }

  // ---- private: _int_malloc ----

  /**
   * glibc's _int_malloc for chunk size `nb`: the chunk (in use; its usable bytes in
   * lastUsable), or 0 when memory runs out.
   */
  private intMalloc(nb: number): number {
    this.lastUsable = nb - SZ;
    if (nb <= MAX_FAST_CHUNK) {
      const p = this.fromFastbin(nb);
      if (p !== 0) return p;
    }
    if (nb < MIN_LARGE) {
      const p = this.fromSmallbin(nb);
      if (p !== 0) return p;
    } else if (this.haveFastChunks()) {
      this.consolidate();
    }
    for (;;) {
      const p = this.fromUnsorted(nb) || (nb >= MIN_LARGE ? this.fromLargeBin(nb) : 0) || this.fromBinmap(nb);
      if (p !== 0) return p;
      const top = this.load(this.arena + A_TOP);
      const size = this.chunkSize(top);
      if (size >= nb + MINSIZE) return this.splitTop(top, size, nb);
      if (!this.haveFastChunks()) return this.sysmalloc(nb);
      this.consolidate();
    }
  }

  /** Pop a chunk of size `nb` from its fast bin, stashing the rest of that bin in the tcache. */
  private fromFastbin(nb: number): number {
    const slot = this.arena + A_FAST + fastIndex(nb) * SZ;
    const p = this.load(slot);
    if (p === 0) return 0;
    this.store(slot, this.load(p + FD));
    if (this.chunkSize(p) !== nb) throw new MallocAbort('malloc(): memory corruption (fast)');
    const tc = (nb - MINSIZE) >> 4;
    for (let count = this.cpu.load16(this.tcache + 2 * tc); count < TCACHE_FILL_COUNT; count++) {
      const q = this.load(slot);
      if (q === 0) break;
      this.store(slot, this.load(q + FD));
      this.tcachePut(q, tc, count);
    }
    return p;
  }

  /** Take the oldest chunk of its small bin, stashing the rest of that bin in the tcache. */
  private fromSmallbin(nb: number): number {
    const bin = this.binAt(nb >> 4);
    const p = this.takeOldest(bin, nb);
    if (p === 0) return 0;
    const tc = (nb - MINSIZE) >> 4;
    for (let count = this.cpu.load16(this.tcache + 2 * tc); count < TCACHE_FILL_COUNT; count++) {
      const q = this.takeOldest(bin, nb);
      if (q === 0) break;
      this.tcachePut(q, tc, count);
    }
    return p;
  }

  /** Unlink the last chunk of small bin `bin` (chunks of `nb` bytes) and mark it in use; 0 if empty. */
  private takeOldest(bin: number, nb: number): number {
    const victim = this.load(bin + BK);
    if (victim === bin) return 0;
    const bck = this.load(victim + BK);
    if (this.load(bck + FD) !== victim)
      throw new MallocAbort('malloc(): smallbin double linked list corrupted');
    this.setInUseBit(victim + nb);
    this.store(bin + BK, bck);
    this.store(bck + FD, bin);
    return victim;
  }

  /**
   * Go through the unsorted bin oldest first: split the last remainder for a small request
   * when it is all there is, cache or take exact fits, sort everything else into its bin.
   */
  private fromUnsorted(nb: number): number {
    const u = this.binAt(UNSORTED);
    const tc = nb <= MAX_TCACHE_CHUNK ? (nb - MINSIZE) >> 4 : -1;
    let cached = false;
    for (let iters = 0; iters < MAX_UNSORTED_ITERS; iters++) {
      const victim = this.load(u + BK);
      if (victim === u) break;
      const bck = this.load(victim + BK);
      const size = this.chunkSize(victim);
      if (size < MINSIZE || victim + size > this.brkEnd)
        throw new MallocAbort(`malloc(): invalid size (unsorted) at 0x${victim.toString(16)}`);
      if (
        nb < MIN_LARGE &&
        bck === u &&
        size > nb + MINSIZE &&
        victim === this.load(this.arena + A_LAST_REMAINDER)
      )
        return this.splitLastRemainder(victim, size, nb);
      if (this.load(bck + FD) !== victim) throw new MallocAbort('malloc(): corrupted unsorted chunks 3');
      this.store(u + BK, bck);
      this.store(bck + FD, u);
      if (size !== nb) {
        this.binInsert(victim, size);
        continue;
      }
      this.setInUseBit(victim + size);
      const count = tc < 0 ? TCACHE_FILL_COUNT : this.cpu.load16(this.tcache + 2 * tc);
      if (count >= TCACHE_FILL_COUNT) return victim;
      this.tcachePut(victim, tc, count);
      cached = true;
    }
    return cached ? this.tcacheGet(tc) : 0;
  }

  /** Carve `nb` bytes off the last remainder `victim`; what is left stays the last remainder. */
  private splitLastRemainder(victim: number, size: number, nb: number): number {
    const u = this.binAt(UNSORTED);
    const r = victim + nb;
    const rest = size - nb;
    this.store(u + FD, r);
    this.store(u + BK, r);
    this.store(r + FD, u);
    this.store(r + BK, u);
    if (rest >= MIN_LARGE) this.store(r + FD_NEXTSIZE, 0); // not a size head
    this.store(this.arena + A_LAST_REMAINDER, r);
    this.store(victim + SZ, nb | PREV_INUSE);
    this.store(r + SZ, rest | PREV_INUSE);
    this.store(r + rest, rest);
    return victim;
  }

  /** The smallest fit in the request's own large bin (glibc skips the first chunk of a size). */
  private fromLargeBin(nb: number): number {
    const bin = this.binAt(largeIndex(nb));
    const first = this.load(bin + FD);
    if (first === bin || this.chunkSize(first) < nb) return 0;
    let victim = this.load(first + BK_NEXTSIZE);
    let size = this.chunkSize(victim);
    while (size < nb) {
      victim = this.load(victim + BK_NEXTSIZE);
      size = this.chunkSize(victim);
    }
    if (victim !== this.load(bin + BK)) {
      const fd = this.load(victim + FD);
      if (this.chunkSize(fd) === size) victim = fd;
    }
    return this.carveFromBin(victim, size, nb, 'keep');
  }

  /** The smallest chunk of the next non-empty bin past the request's own, found by the binmap. */
  private fromBinmap(nb: number): number {
    for (let i = (nb < MIN_LARGE ? nb >> 4 : largeIndex(nb)) + 1; ; i++) {
      i = this.nextMarkedBin(i);
      if (i >= NBINS) return 0;
      const bin = this.binAt(i);
      const victim = this.load(bin + BK);
      if (victim === bin) {
        this.clearBinBit(i); // a stale bit
        continue;
      }
      const size = this.chunkSize(victim);
      if (size < nb) throw new MallocAbort(`malloc(): corrupted bin ${i} at 0x${victim.toString(16)}`);
      return this.carveFromBin(victim, size, nb, nb < MIN_LARGE ? 'remember' : 'keep');
    }
  }

  /**
   * Take `nb` bytes from binned free chunk `victim` of `size` bytes: the rest, when at least
   * MINSIZE, goes to the unsorted bin (and becomes the last remainder when asked).
   */
  private carveFromBin(victim: number, size: number, nb: number, last: 'remember' | 'keep'): number {
    this.checkFooter(victim, size);
    this.unlinkChunk(victim, size);
    const rest = size - nb;
    if (rest < MINSIZE) {
      this.setInUseBit(victim + size);
      this.lastUsable = size - SZ;
      return victim;
    }
    const r = victim + nb;
    this.unsortedPush(r, rest);
    if (last === 'remember') this.store(this.arena + A_LAST_REMAINDER, r);
    this.store(victim + SZ, nb | PREV_INUSE);
    this.store(r + SZ, rest | PREV_INUSE);
    this.store(r + rest, rest);
    return victim;
  }

  private splitTop(top: number, size: number, nb: number): number {
    this.store(top + SZ, nb | PREV_INUSE);
    this.store(this.arena + A_TOP, top + nb);
    this.store(top + nb + SZ, (size - nb) | PREV_INUSE);
    return top;
  }

  /**
   * glibc's sysmalloc: a mapping of its own for a request at or above mmap_threshold, else the
   * top grown by sbrk (shortfall + top_pad, in pages; the bare shortfall when that fails; a
   * mapping as the last resort): the chunk, or 0.
   */
  private sysmalloc(nb: number): number {
    if (nb >= this.tunables.mmapThreshold && this.mmappedChunks < this.tunables.mmapMax) {
      const p = this.mmapChunk(nb);
      if (p !== 0) return p;
    }
    const top = this.load(this.arena + A_TOP);
    const have = this.chunkSize(top);
    let grow = pageUp(nb + MINSIZE + this.tunables.topPad - have);
    if (this.libc.sbrk(grow) < 0) {
      grow = pageUp(nb + MINSIZE - have);
      if (this.libc.sbrk(grow) < 0)
        return this.mmappedChunks < this.tunables.mmapMax ? this.mmapChunk(nb) : 0;
    }
    this.brkEnd += grow;
    return this.splitTop(top, have + grow, nb);
  }

  private mmapChunk(nb: number): number {
    const size = pageUp(nb + SZ);
    const mem = this.libc.mapAnonymous(size);
    if (mem < 0) return 0;
    this.store(mem, this.load(this.arena + A_MMAPS)); // prev_size links the mmapped chunks
    this.store(this.arena + A_MMAPS, mem);
    this.store(mem + SZ, size | IS_MMAPPED);
    this.mmappedBytes += size;
    this.mmappedChunks++;
    this.maxMmappedBytes = Math.max(this.maxMmappedBytes, this.mmappedBytes);
    this.maxMmappedChunks = Math.max(this.maxMmappedChunks, this.mmappedChunks);
    this.lastUsable = size - 2 * SZ;
    return mem;
  }

  // ---- private: free's slow paths, realloc, trim ----

  /** free of mmapped chunk `p`: the dynamic threshold, then munmap. */
  private freeMmapped(p: number, size: number): void {
    if (
      this.dynamicThreshold &&
      (size | IS_MMAPPED) > this.tunables.mmapThreshold &&
      size <= MMAP_THRESHOLD_MAX
    ) {
      this.tunables.mmapThreshold = size;
      this.tunables.trimThreshold = 2 * size;
    }
    this.inUseBytes -= size - 2 * SZ;
    this.inUseBlocks--;
    this.munmapChunk(p, size);
  }

  private munmapChunk(p: number, size: number): void {
    this.unlinkMmapped(p);
    this.libc.munmap(p, size);
    this.mmappedBytes -= size;
    this.mmappedChunks--;
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

  /**
   * realloc of an mmapped chunk, as glibc's: mremap_chunk first (the mapping grows or shrinks
   * in place, or moves with its pages, nothing copied); when the kernel refuses, keep the chunk
   * if it is big enough, else malloc, copy and unmap (the dynamic threshold is only free's).
   */
  private reallocMmapped(p: number, size: number, bytes: number): number {
    const moved = this.mremapChunk(p, size, request2size(bytes));
    if (moved !== 0) return moved + 2 * SZ;
    if (size - SZ >= request2size(bytes)) return p + 2 * SZ;
    const fresh = this.malloc(bytes);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, p + 2 * SZ, size - 2 * SZ);
    this.inUseBytes -= size - 2 * SZ;
    this.inUseBlocks--;
    this.munmapChunk(p, size);
    return fresh;
  }

  /**
   * glibc's mremap_chunk: remap mmapped chunk `p` (of `size` bytes) to hold chunk size `nb`,
   * MREMAP_MAYMOVE. The chunk's new address (p when the size is already right), or 0 when
   * the kernel refuses.
   */
  private mremapChunk(p: number, size: number, nb: number): number {
    const want = pageUp(nb + SZ);
    if (want === size) return p;
    const q = this.libc.mremap(p, size, want, MREMAP_MAYMOVE);
    if (q < 0) return 0;
    if (q !== p) this.relinkMmapped(p, q);
    this.store(q + SZ, want | IS_MMAPPED);
    this.inUseBytes += want - size;
    this.mmappedBytes += want - size;
    this.maxMmappedBytes = Math.max(this.maxMmappedBytes, this.mmappedBytes);
    return q;
  }

  /** Mmapped chunk `p` now lives at `q` (its link word moved with it): repoint its predecessor. */
  private relinkMmapped(p: number, q: number): void {
    let slot = this.arena + A_MMAPS;
    for (let r = this.load(slot); r !== 0; r = this.load(r)) {
      if (r === p) {
        this.store(slot, q);
        return;
      }
      slot = r;
    }
    throw new MallocAbort(`realloc(): invalid pointer 0x${(p + 2 * SZ).toString(16)} (not an mmapped chunk)`);
  }

  /**
   * glibc's _int_realloc of heap chunk `p` (header `h`) to chunk size `nb`: in place when it
   * shrinks, when the top or a free next chunk has room, or when the chunk malloc returns is
   * the next one; else malloc, copy and free. The user pointer, or NULL with ENOMEM.
   */
  private intRealloc(p: number, h: number, nb: number): number {
    const old = h - (h & FLAGS);
    this.inUseBytes -= old - SZ;
    if (old >= nb) return this.reallocDone(p, h, old, nb);
    const next = p + old;
    const top = this.load(this.arena + A_TOP);
    const nh = this.load(next + SZ);
    const nextSize = nh - (nh & FLAGS);
    if (next === top && old + nextSize >= nb + MINSIZE) {
      this.store(p + SZ, nb | (h & PREV_INUSE));
      this.store(this.arena + A_TOP, p + nb);
      this.store(p + nb + SZ, (old + nextSize - nb) | PREV_INUSE);
      this.inUseBytes += nb - SZ;
      return p + 2 * SZ;
    }
    if (next !== top && old + nextSize >= nb && (this.load(next + nextSize + SZ) & PREV_INUSE) === 0) {
      this.checkFooter(next, nextSize);
      this.unlinkChunk(next, nextSize);
      return this.reallocDone(p, h, old + nextSize, nb);
    }
    const fresh = this.intMalloc(nb);
    if (fresh === 0) {
      this.inUseBytes += old - SZ;
      return this.nomem();
    }
    const fh = this.load(fresh + SZ);
    const ph = this.load(p + SZ); // malloc may have taken the chunk before p: PREV_INUSE moved
    if (fresh === next) return this.reallocDone(p, ph, old + fh - (fh & FLAGS), nb);
    this.libc.memcpy(fresh + 2 * SZ, p + 2 * SZ, old - SZ);
    this.inUseBytes += usableOf(fh);
    this.intFree(p, ph);
    return fresh + 2 * SZ;
  }

  /** Chunk `p` (header `h`) now spans `size` bytes: free the tail past `nb` when it is a chunk. */
  private reallocDone(p: number, h: number, size: number, nb: number): number {
    if (size - nb < MINSIZE) {
      this.store(p + SZ, size | (h & PREV_INUSE));
      this.setInUseBit(p + size);
      this.inUseBytes += size - SZ;
      return p + 2 * SZ;
    }
    this.store(p + SZ, nb | (h & PREV_INUSE));
    const rest = size - nb;
    this.store(p + nb + SZ, rest | PREV_INUSE);
    this.setInUseBit(p + size);
    this.intFree(p + nb, rest | PREV_INUSE);
    this.inUseBytes += nb - SZ;
    return p + 2 * SZ;
  }

  /** glibc's systrim: shrink the heap so that the top keeps `pad` bytes (whole pages go). */
  private systrim(pad: number): void {
    const top = this.load(this.arena + A_TOP);
    const size = this.chunkSize(top);
    const area = size - MINSIZE - 1;
    if (area <= pad) return;
    const extra = Math.floor((area - pad) / PAGE) * PAGE;
    if (extra <= 0 || this.libc.sbrk(-extra) < 0) return;
    this.brkEnd -= extra;
    this.store(top + SZ, (size - extra) | PREV_INUSE);
  }

  /** malloc_consolidate: free every fast-bin chunk for real (coalescing), into the unsorted bin. */
  private consolidate(): void {
    this.store(this.arena + A_HAVE_FAST, 0);
    for (let i = 0; i < NFASTBINS; i++) {
      const slot = this.arena + A_FAST + i * SZ;
      let p = this.load(slot);
      if (p === 0) continue;
      this.store(slot, 0);
      while (p !== 0) {
        const h = this.load(p + SZ);
        if (fastIndex(h - (h & FLAGS)) !== i)
          throw new MallocAbort('malloc_consolidate(): invalid chunk size');
        const next = this.load(p + FD);
        this.coalesce(p, h, this.load(this.arena + A_TOP));
        p = next;
      }
    }
  }

  /** Empty the tcache into the arena (free without the cache). */
  private flushTcache(): void {
    for (let tc = 0; tc < TCACHE_BINS; tc++) {
      for (let p = this.tcacheGet(tc); p !== 0; p = this.tcacheGet(tc)) {
        const h = this.load(p + SZ);
        if (h - (h & FLAGS) <= MAX_FAST_CHUNK) this.fastbinPush(p, h - (h & FLAGS));
        else this.freeMerge(p, h);
      }
    }
  }

  // ---- private: bins ----

  /** The fake chunk standing for bin i (1 = unsorted, 2..63 small, 64.. large). */
  private binAt(i: number): number {
    return this.arena + A_BINS + i * 16 - 2 * SZ;
  }

  /** Put free chunk `p` of `size` bytes at the front of the unsorted bin. */
  private unsortedPush(p: number, size: number): void {
    const u = this.binAt(UNSORTED);
    const fwd = this.load(u + FD);
    if (this.load(fwd + BK) !== u) throw new MallocAbort('free(): corrupted unsorted chunks');
    this.store(p + FD, fwd);
    this.store(p + BK, u);
    if (size >= MIN_LARGE) this.store(p + FD_NEXTSIZE, 0); // not a size head (glibc clears bk_nextsize too)
    this.store(u + FD, p);
    this.store(fwd + BK, p);
  }

  /** Sort free chunk `p` into its small bin (front) or large bin (sorted, skip list kept). */
  private binInsert(p: number, size: number): void {
    let idx: number;
    let bck: number;
    let fwd: number;
    if (size < MIN_LARGE) {
      idx = size >> 4;
      bck = this.binAt(idx);
      fwd = this.load(bck + FD);
    } else {
      idx = largeIndex(size);
      const bin = this.binAt(idx);
      fwd = this.largeBinSpot(bin, p, size);
      bck = this.load(fwd + BK);
    }
    this.markBin(idx);
    this.store(p + FD, fwd);
    this.store(p + BK, bck);
    this.store(fwd + BK, p);
    this.store(bck + FD, p);
  }

  /**
   * Where large chunk `p` of `size` bytes goes in `bin` (sorted largest first): the chunk it is
   * inserted before. A new size joins the skip list; a known one goes second among its equals.
   */
  private largeBinSpot(bin: number, p: number, size: number): number {
    const first = this.load(bin + FD);
    if (first === bin) {
      this.store(p + FD_NEXTSIZE, p);
      this.store(p + BK_NEXTSIZE, p);
      return bin;
    }
    if (size < this.chunkSize(this.load(bin + BK))) {
      this.linkNextsize(p, first, this.load(first + BK_NEXTSIZE)); // the new smallest size
      return bin;
    }
    let f = first;
    let fs = this.chunkSize(f);
    while (size < fs) {
      f = this.load(f + FD_NEXTSIZE);
      fs = this.chunkSize(f);
    }
    if (size === fs) return this.load(f + FD);
    this.linkNextsize(p, f, this.load(f + BK_NEXTSIZE));
    return f;
  }

  /** Put `p` in the skip list between size heads `prevHead` and `nextHead` (before nextHead). */
  private linkNextsize(p: number, nextHead: number, prevHead: number): void {
    if (this.load(prevHead + FD_NEXTSIZE) !== nextHead)
      throw new MallocAbort('malloc(): largebin double linked list corrupted (nextsize)');
    this.store(p + FD_NEXTSIZE, nextHead);
    this.store(p + BK_NEXTSIZE, prevHead);
    this.store(nextHead + BK_NEXTSIZE, p);
    this.store(prevHead + FD_NEXTSIZE, p);
  }

  /** glibc's check in unlink_chunk: free chunk `p`'s size and its footer agree. */
  private checkFooter(p: number, size: number): void {
    if (this.load(p + size) !== size)
      throw new MallocAbort(`corrupted size vs. prev_size at chunk 0x${p.toString(16)}`);
  }

  /** glibc's unlink_chunk for free chunk `p` of `size` bytes (its footer checked by the caller). */
  private unlinkChunk(p: number, size: number): void {
    const fd = this.load(p + FD);
    const bk = this.load(p + BK);
    if (this.load(fd + BK) !== p || this.load(bk + FD) !== p)
      throw new MallocAbort(`corrupted double-linked list at chunk 0x${p.toString(16)}`);
    this.store(fd + BK, bk);
    this.store(bk + FD, fd);
    if (size < MIN_LARGE) return;
    const fdn = this.load(p + FD_NEXTSIZE);
    if (fdn !== 0) this.unlinkNextsize(p, fd, fdn);
  }

  /**
   * Take size head `p` (whose next chunk is `fd`) out of the skip list; `fd` takes its place
   * when it has the same size (its fd_nextsize is 0). A bin head's fd_nextsize word is the next
   * bin's fd, never 0 (glibc's layout, kept here).
   */
  private unlinkNextsize(p: number, fd: number, fdn: number): void {
    const bkn = this.load(p + BK_NEXTSIZE);
    if (this.load(fdn + BK_NEXTSIZE) !== p || this.load(bkn + FD_NEXTSIZE) !== p)
      throw new MallocAbort(`corrupted double-linked list (not small) at chunk 0x${p.toString(16)}`);
    if (this.load(fd + FD_NEXTSIZE) !== 0) {
      this.store(fdn + BK_NEXTSIZE, bkn);
      this.store(bkn + FD_NEXTSIZE, fdn);
    } else if (fdn === p) {
      this.store(fd + FD_NEXTSIZE, fd);
      this.store(fd + BK_NEXTSIZE, fd);
    } else {
      this.store(fd + FD_NEXTSIZE, fdn);
      this.store(fd + BK_NEXTSIZE, bkn);
      this.store(fdn + BK_NEXTSIZE, fd);
      this.store(bkn + FD_NEXTSIZE, fd);
    }
  }

  private markBin(i: number): void {
    const at = this.arena + A_BINMAP + (i >>> 5) * 4;
    this.cpu.store32(at, (this.cpu.load32(at) | (1 << (i & 31))) >>> 0);
  }

  private clearBinBit(i: number): void {
    const at = this.arena + A_BINMAP + (i >>> 5) * 4;
    this.cpu.store32(at, (this.cpu.load32(at) & ~(1 << (i & 31))) >>> 0);
  }

  /** The first bin at or past `i` whose binmap bit is set, or NBINS. */
  private nextMarkedBin(i: number): number {
    let word = i >>> 5;
    if (word >= BINMAP_WORDS) return NBINS;
    let map = this.cpu.load32(this.arena + A_BINMAP + word * 4) & (0xffffffff << (i & 31));
    while (map === 0) {
      if (++word >= BINMAP_WORDS) return NBINS;
      map = this.cpu.load32(this.arena + A_BINMAP + word * 4);
    }
    return word * 32 + 31 - Math.clz32(map & -map);
  }

  private haveFastChunks(): boolean {
    return this.load(this.arena + A_HAVE_FAST) !== 0;
  }

  // ---- private: start-up ----

  /**
   * The arena in libc's static storage, then the heap's first growth (as glibc's first
   * sysmalloc: the tcache table's chunk + MINSIZE + top_pad, in pages) and the tcache table
   * carved from it. False when the kernel refuses memory.
   */
  private init(): boolean {
    const arena = this.libc.staticData(ARENA_BYTES);
    if (arena < 0) return false;
    const base = this.libc.sbrk(0);
    const pad = (MALLOC_ALIGNMENT - (base % MALLOC_ALIGNMENT)) % MALLOC_ALIGNMENT;
    const tableChunk = request2size(TCACHE_BYTES);
    const grow = pageUp(tableChunk + MINSIZE + this.tunables.topPad);
    if (this.libc.sbrk(pad + grow) < 0) return false;
    this.arena = arena;
    this.heapFloor = base;
    this.heapBase = base + pad;
    this.brkEnd = this.heapBase + grow;
    for (let i = 1; i < NBINS; i++) {
      const b = this.binAt(i);
      this.store(b + FD, b);
      this.store(b + BK, b);
    }
    this.store(this.arena + A_TOP, this.heapBase);
    this.store(this.heapBase + SZ, grow | PREV_INUSE);
    this.tcache = this.splitTop(this.heapBase, grow, tableChunk) + 2 * SZ;
    this.libc.memset(this.tcache, 0, TCACHE_BYTES);
    return true;
  }

  // ---- private: checks ----

  /** Walk the chunks up to the top: sizes, footers, coalescing; the number of free chunks. */
  private checkChunks(): number {
    const top = this.load(this.arena + A_TOP);
    let p = this.heapBase;
    let prevFree = false;
    let free = 0;
    while (p < top) {
      const size = this.chunkSize(p);
      if (size < MINSIZE || size % MALLOC_ALIGNMENT !== 0 || p + size > top)
        throw new MallocAbort(`malloc(): corrupted size at chunk 0x${p.toString(16)}`);
      const isFree = !this.inUse(p);
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
    if (top + this.chunkSize(top) !== this.brkEnd)
      throw new MallocAbort('malloc(): the top chunk does not end at the break');
    return free;
  }

  /** Every bin: links both ways, sizes of the bin, binmap bits, large bins sorted with their skip list. */
  private checkBins(): number {
    let binned = 0;
    for (let i = 1; i < NBINS; i++) {
      const b = this.binAt(i);
      let prev = b;
      let prevSize = Number.POSITIVE_INFINITY;
      for (let q = this.load(b + FD); q !== b; q = this.load(q + FD)) {
        if (this.load(q + BK) !== prev)
          throw new MallocAbort(`malloc(): corrupted double-linked list at 0x${q.toString(16)}`);
        const size = this.chunkSize(q);
        if (i > UNSORTED && (size < MIN_LARGE ? size >> 4 : largeIndex(size)) !== i)
          throw new MallocAbort(`malloc(): chunk 0x${q.toString(16)} in the wrong bin`);
        if (i >= MIN_LARGE >> 4 && size > prevSize)
          throw new MallocAbort(`malloc(): large bin ${i} is out of order at 0x${q.toString(16)}`);
        if (i >= MIN_LARGE >> 4) this.checkNextsize(q, size === prevSize);
        prevSize = size;
        prev = q;
        if (++binned > (this.brkEnd - this.heapBase) / MINSIZE)
          throw new MallocAbort('malloc(): a bin is longer than the heap (a cycle?)');
      }
      if (
        i > UNSORTED &&
        prev !== b &&
        (this.cpu.load32(this.arena + A_BINMAP + (i >>> 5) * 4) & (1 << (i & 31))) === 0
      )
        throw new MallocAbort(`malloc(): bin ${i} is not empty but its binmap bit is clear`);
    }
    return binned;
  }

  /** A large-bin chunk: a size head is in the skip list both ways; the others are not in it. */
  private checkNextsize(q: number, sameAsPrevious: boolean): void {
    const fdn = this.load(q + FD_NEXTSIZE);
    if (sameAsPrevious) {
      if (fdn !== 0) throw new MallocAbort(`malloc(): chunk 0x${q.toString(16)} wrongly on a skip list`);
      return;
    }
    if (fdn === 0 || this.load(fdn + BK_NEXTSIZE) !== q)
      throw new MallocAbort(`malloc(): corrupted skip list at 0x${q.toString(16)}`);
  }

  /** The fast bins and the tcache lists: sizes, counts, keys, chunks still "in use". */
  private checkCaches(): void {
    for (let i = 0; i < NFASTBINS; i++) {
      let n = 0;
      for (let q = this.load(this.arena + A_FAST + i * SZ); q !== 0; q = this.load(q + FD)) {
        if (fastIndex(this.chunkSize(q)) !== i || !this.inUse(q))
          throw new MallocAbort(`malloc(): corrupted fast bin ${i} at 0x${q.toString(16)}`);
        if (++n > (this.brkEnd - this.heapBase) / MINSIZE)
          throw new MallocAbort('malloc(): a fast bin cycles');
      }
    }
    for (let tc = 0; tc < TCACHE_BINS; tc++) {
      const count = this.cpu.load16(this.tcache + 2 * tc);
      let n = 0;
      for (let e = this.load(this.tcache + TCACHE_ENTRIES + SZ * tc); e !== 0; e = this.load(e)) {
        const p = e - 2 * SZ;
        if (
          ++n > count ||
          this.chunkSize(p) !== MINSIZE + tc * 16 ||
          !this.inUse(p) ||
          this.load(e + SZ) !== this.tcacheKey
        )
          throw new MallocAbort(`malloc(): corrupted tcache list ${tc} at 0x${e.toString(16)}`);
      }
      if (n !== count || count > TCACHE_FILL_COUNT)
        throw new MallocAbort(`malloc(): tcache list ${tc} holds ${n} chunks but counts ${count}`);
    }
  }

  /** The chunks held by the fast bins and the tcache, and the tcache's table: not the program's. */
  private cachedChunks(): Set<number> {
    const out = new Set<number>([this.tcache - 2 * SZ]);
    for (let i = 0; i < NFASTBINS; i++) {
      for (let q = this.load(this.arena + A_FAST + i * SZ); q !== 0; q = this.load(q + FD)) out.add(q);
    }
    for (let tc = 0; tc < TCACHE_BINS; tc++) {
      for (let e = this.load(this.tcache + TCACHE_ENTRIES + SZ * tc); e !== 0; e = this.load(e))
        out.add(e - 2 * SZ);
    }
    return out;
  }

  /**
   * The header word of the chunk behind a pointer free/realloc may take: aligned, a sane size
   * inside the heap (or a page-aligned mapping). Aborts otherwise.
   */
  private checkChunk(p: number, who: string): number {
    if (this.arena === 0 || p % MALLOC_ALIGNMENT !== 0)
      throw new MallocAbort(`${who}(): invalid pointer 0x${(p + 2 * SZ).toString(16)}`);
    const h = this.load(p + SZ);
    const size = h - (h & FLAGS);
    if ((h & IS_MMAPPED) !== 0) {
      if (size % PAGE !== 0 || size === 0 || p % PAGE !== 0)
        throw new MallocAbort(`${who}(): invalid pointer 0x${(p + 2 * SZ).toString(16)}`);
      return h;
    }
    // A chunk in use is followed at least by the top chunk's header.
    if (
      size < MINSIZE ||
      size % MALLOC_ALIGNMENT !== 0 ||
      p < this.heapBase ||
      p + size + 2 * SZ > this.brkEnd
    )
      throw new MallocAbort(`${who}(): invalid size or pointer 0x${(p + 2 * SZ).toString(16)}`);
    return h;
  }

  /** The chunk after `p` must say `p` is in use; a clear PREV_INUSE is a double free. */
  private checkNextInUse(p: number, size: number, who: string): void {
    if ((this.load(p + size + SZ) & PREV_INUSE) === 0)
      throw new MallocAbort(`${who}(): double free detected at 0x${(p + 2 * SZ).toString(16)}`);
  }

  // ---- private: chunk words in emulated memory ----

  private load(a: number): number {
    return this.cpu.load64(a);
  }

  private store(a: number, v: number): void {
    this.cpu.store64(a, v);
  }

  private chunkSize(p: number): number {
    const w = this.load(p + SZ);
    return w - (w & FLAGS);
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
    if ((w & PREV_INUSE) === 0) this.store(next + SZ, w + PREV_INUSE);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}

function request2size(n: number): number {
  return n + SZ + 15 < MINSIZE ? MINSIZE : n + SZ + 15 - ((n + SZ + 15) % 16);
}

/** Usable bytes of a chunk with header word `h`: the next prev_size word counts on the heap. */
function usableOf(h: number): number {
  const size = h - (h & FLAGS);
  return (h & IS_MMAPPED) !== 0 ? size - 2 * SZ : size - SZ;
}

function pageUp(n: number): number {
  return Math.ceil(n / PAGE) * PAGE;
}

function fastIndex(size: number): number {
  return (size >>> 4) - 2;
}

/** glibc's largebin_index_64: bins whose ranges grow 8 times wider at each step. */
function largeIndex(size: number): number {
  if (size < 49 * 64) return 48 + Math.floor(size / 64);
  if (size < 21 * 512) return 91 + Math.floor(size / 512);
  if (size < 11 * 4096) return 110 + Math.floor(size / 4096);
  if (size < 5 * 32768) return 119 + Math.floor(size / 32768);
  if (size < 3 * 262144) return 124 + Math.floor(size / 262144);
  return 126;
}
