/**
 * Lab 3, a reference solution: segregated free lists with boundary tags (CS:APP 9.9.14).
 *
 * Blocks carry an 8-byte header and an 8-byte footer (size | allocated bit; the size counts
 * both tags and is a multiple of 16); payloads are 16-byte aligned. A free block keeps its
 * list links in its payload (next at +0, prev at +8), so the smallest block is 32 bytes.
 * Free blocks sit on one of CLASSES doubly linked lists by size (class k: sizes from
 * 32 * 2^k up to twice that; the last class has no upper bound), whose heads live at the
 * start of the heap, in the process's memory like everything else.
 *
 *   heap = [class heads: CLASSES words][pad][prologue 16|1 16|1] blocks ... [epilogue 0|1]
 *
 * - malloc: best fit within the first class that can hold the request, then the classes
 *   above; else grow the heap, by only what the free block at its end lacks.
 * - free: coalesce with free neighbours at once, then push on the class list.
 * - realloc: shrink in place; grow in place into a free next block or at the end of the heap;
 *   only then allocate, copy and free.
 *
 *   invariants: no two adjacent free blocks; every free block is on the list of its size's
 *   class exactly once; header == footer for every block; heapBytes == heapEnd - heapBase
 */
import { ENOMEM } from '../../../kernel/proc/uapi.ts';
import type { Libc } from '../../libc/libc.ts';
import {
  type Allocator,
  callocBytes,
  MALLOC_ALIGNMENT,
  MallocAbort,
  type MallocStats,
} from '../../malloc/allocator.ts';

const WSIZE = 8;
const DSIZE = 16;
const MIN_BLOCK = 32;
const ALLOC = 1;
const CLASSES = 16;
/** Requests above this are refused (ENOMEM) rather than asked of the kernel. */
const MAX_REQUEST = 2 ** 40;

export default class SegregatedFitAllocator implements Allocator {
  readonly name = 'lab-segregated-fit';
  private readonly libc: Libc;
  /** Start of the heap (its first sbrk); 0 until the first allocation. */
  private heapBase = 0;
  /** Address of the class heads (heapBase rounded up to 16 bytes). */
  private headsAt = 0;
  /** Payload address of the first block after the prologue. */
  private firstBlock = 0;
  /** Just past the epilogue header: the break. */
  private heapEnd = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;

  constructor(libc: Libc) {
    this.libc = libc;
  }

  malloc(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_REQUEST) return this.nomem();
    if (size === 0) return 0;
    if (this.heapBase === 0 && !this.init()) return this.nomem();
    const asize = blockSizeFor(size);
    let bp = this.findFit(asize);
    if (bp === 0) bp = this.growFor(asize);
    if (bp === 0) return this.nomem();
    this.listRemove(bp);
    this.setTags(bp, this.blockSize(bp), ALLOC);
    this.splitAllocated(bp, asize);
    this.account(bp, +1);
    return bp;
  }

  free(ptr: number): void {
    if (ptr === 0) return;
    this.checkPointer(ptr, 'free');
    this.account(ptr, -1);
    this.setTags(ptr, this.blockSize(ptr), 0);
    this.listInsert(this.coalesce(ptr));
  }

  realloc(ptr: number, size: number): number {
    if (ptr === 0) return this.malloc(size);
    if (size === 0) {
      this.free(ptr);
      return 0;
    }
    this.checkPointer(ptr, 'realloc');
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_REQUEST) return this.nomem();
    const asize = blockSizeFor(size);
    if (this.growInPlace(ptr, asize)) return ptr;
    const fresh = this.malloc(size);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, ptr, Math.min(this.blockSize(ptr) - DSIZE, size));
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
    if ((alignment & (alignment - 1)) !== 0 || !Number.isSafeInteger(size)) return this.nomem();
    // Over-allocate, then give the front back as a free block.
    const raw = this.malloc(size + alignment + MIN_BLOCK);
    if (raw === 0) return 0;
    let aligned = Math.ceil(raw / alignment) * alignment;
    if (aligned !== raw && aligned - raw < MIN_BLOCK) aligned += alignment;
    if (aligned === raw) return raw;
    this.account(raw, -1);
    const total = this.blockSize(raw);
    this.setTags(raw, aligned - raw, 0);
    this.setTags(aligned, total - (aligned - raw), ALLOC);
    this.listInsert(this.coalesce(raw));
    this.splitAllocated(aligned, blockSizeFor(size));
    this.account(aligned, +1);
    return aligned;
  }

  usableSize(ptr: number): number {
    if (ptr === 0) return 0;
    this.checkPointer(ptr, 'malloc_usable_size');
    return this.blockSize(ptr) - DSIZE;
  }

  stats(): MallocStats {
    return {
      heapBytes: this.heapEnd - this.heapBase,
      inUseBytes: this.inUseBytes,
      inUseBlocks: this.inUseBlocks,
    };
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.heapBase === 0) return out;
    for (let bp = this.firstBlock; this.blockSize(bp) !== 0; bp += this.blockSize(bp))
      if (this.isAllocated(bp)) out.push({ ptr: bp, size: this.blockSize(bp) - DSIZE });
    return out;
  }

  ownedRegions(): Array<[number, number]> {
    return this.heapBase === 0 ? [] : [[this.heapBase, this.heapEnd]];
  }

  checkHeap(): void {
    if (this.heapBase === 0) return;
    let free = 0;
    let prevFree = false;
    for (let bp = this.firstBlock; this.blockSize(bp) !== 0; bp += this.blockSize(bp)) {
      const size = this.blockSize(bp);
      if (size % DSIZE !== 0 || size < MIN_BLOCK || bp + size > this.heapEnd)
        throw new MallocAbort(`checkHeap: corrupted header at 0x${(bp - WSIZE).toString(16)}`);
      if (this.load(bp - WSIZE) !== this.load(bp + size - DSIZE))
        throw new MallocAbort(`checkHeap: header and footer disagree at 0x${(bp - WSIZE).toString(16)}`);
      const isFree = !this.isAllocated(bp);
      if (isFree && prevFree)
        throw new MallocAbort(`checkHeap: adjacent free blocks at 0x${(bp - WSIZE).toString(16)}`);
      if (isFree) free++;
      prevFree = isFree;
    }
    let listed = 0;
    for (let k = 0; k < CLASSES; k++) {
      let prev = 0;
      for (let p = this.load(this.headOf(k)); p !== 0; p = this.load(p)) {
        if (this.isAllocated(p) || classOf(this.blockSize(p)) !== k)
          throw new MallocAbort(`checkHeap: block 0x${p.toString(16)} on the wrong list (class ${k})`);
        if (this.load(p + WSIZE) !== prev)
          throw new MallocAbort(`checkHeap: broken prev link at 0x${p.toString(16)}`);
        prev = p;
        if (++listed > free) throw new MallocAbort('checkHeap: more listed blocks than free ones (a cycle?)');
      }
    }
    if (listed !== free) throw new MallocAbort(`checkHeap: ${free} free blocks, ${listed} on lists`);
  }

  // ---- private: the heap ----

  /** Lay out the class heads, the prologue and the epilogue. */
  private init(): boolean {
    const base = this.libc.sbrk(0);
    const pad = (DSIZE - (base % DSIZE)) % DSIZE;
    const start = this.libc.sbrk(pad + CLASSES * WSIZE + 4 * WSIZE);
    if (start < 0) return false;
    this.heapBase = start;
    const heads = start + pad;
    for (let k = 0; k < CLASSES; k++) this.store(heads + k * WSIZE, 0);
    const p = heads + CLASSES * WSIZE; // 16-aligned: CLASSES is even
    this.store(p, 0);
    this.store(p + WSIZE, DSIZE | ALLOC);
    this.store(p + 2 * WSIZE, DSIZE | ALLOC);
    this.store(p + 3 * WSIZE, 0 | ALLOC);
    this.headsAt = heads;
    this.firstBlock = p + 4 * WSIZE;
    this.heapEnd = p + 4 * WSIZE;
    return true;
  }

  private headOf(k: number): number {
    return this.headsAt + k * WSIZE;
  }

  /**
   * A free block of at least `asize` made by growing the heap: the free block at the end of
   * the heap grows by what it lacks, or a new block is added. 0 when the kernel refuses.
   */
  private growFor(asize: number): number {
    const lastFooter = this.load(this.heapEnd - DSIZE);
    const lastFree = (lastFooter & ALLOC) === 0;
    const lack = lastFree ? asize - (lastFooter - (lastFooter & 0xf)) : asize;
    const bp = this.libc.sbrk(lack);
    if (bp < 0) return 0;
    this.setTags(bp, lack, 0); // the old epilogue becomes this block's header
    this.store(bp + lack - WSIZE, 0 | ALLOC);
    this.heapEnd = bp + lack;
    const merged = this.coalesce(bp);
    this.listInsert(merged);
    return merged;
  }

  /** Best fit in the request's class, else the first block of a larger class. */
  private findFit(asize: number): number {
    let best = 0;
    let bestSize = Number.POSITIVE_INFINITY;
    for (let p = this.load(this.headOf(classOf(asize))); p !== 0; p = this.load(p)) {
      const size = this.blockSize(p);
      if (size >= asize && size < bestSize) {
        best = p;
        bestSize = size;
        if (size === asize) break;
      }
    }
    if (best !== 0) return best;
    for (let k = classOf(asize) + 1; k < CLASSES; k++) {
      const head = this.load(this.headOf(k));
      if (head !== 0) return this.bestIn(head, asize);
    }
    return 0;
  }

  /** The smallest block of the list from `head` that holds `asize` (all do above the class). */
  private bestIn(head: number, asize: number): number {
    let best = 0;
    let bestSize = Number.POSITIVE_INFINITY;
    for (let p = head; p !== 0; p = this.load(p)) {
      const size = this.blockSize(p);
      if (size >= asize && size < bestSize) {
        best = p;
        bestSize = size;
      }
    }
    return best;
  }

  /**
   * Make allocated block `bp` at least `asize` without moving it: shrink it, or take a free
   * next block, or grow the heap when the block (or the free block after it) ends the heap.
   */
  private growInPlace(bp: number, asize: number): boolean {
    const size = this.blockSize(bp);
    this.account(bp, -1);
    let ok = size >= asize;
    if (!ok) {
      const next = bp + size;
      const nextSize = this.blockSize(next);
      const nextFree = nextSize !== 0 && !this.isAllocated(next);
      if (nextFree && size + nextSize >= asize) {
        this.listRemove(next);
        this.setTags(bp, size + nextSize, ALLOC);
        ok = true;
      } else if (nextSize === 0 || (nextFree && this.blockSize(next + nextSize) === 0)) {
        ok = this.extendInPlace(bp, asize);
      }
    }
    if (ok) this.splitAllocated(bp, asize);
    this.account(bp, +1);
    return ok;
  }

  /** Block `bp` ends the heap (or only a free block follows it): move the break to make it `asize`. */
  private extendInPlace(bp: number, asize: number): boolean {
    const size = this.blockSize(bp);
    const next = bp + size;
    const nextSize = this.blockSize(next);
    const lack = asize - size - nextSize;
    if (this.libc.sbrk(lack) < 0) return false;
    if (nextSize !== 0) this.listRemove(next);
    this.heapEnd += lack;
    this.store(this.heapEnd - WSIZE, 0 | ALLOC);
    this.setTags(bp, asize, ALLOC);
    return true;
  }

  /** Shrink allocated block `bp` to `asize`, freeing the tail when it makes a block. */
  private splitAllocated(bp: number, asize: number): void {
    const size = this.blockSize(bp);
    if (size - asize < MIN_BLOCK) return;
    this.setTags(bp, asize, ALLOC);
    this.setTags(bp + asize, size - asize, 0);
    this.listInsert(this.coalesce(bp + asize));
  }

  /** Merge free block `bp` with its free neighbours (taken off their lists); the merged block. */
  private coalesce(bp: number): number {
    let start = bp;
    let size = this.blockSize(bp);
    const next = bp + size;
    if (this.blockSize(next) !== 0 && !this.isAllocated(next)) {
      this.listRemove(next);
      size += this.blockSize(next);
    }
    const prevFooter = this.load(bp - DSIZE);
    if ((prevFooter & ALLOC) === 0) {
      start = bp - (prevFooter - (prevFooter & 0xf));
      this.listRemove(start);
      size += this.blockSize(start);
    }
    this.setTags(start, size, 0);
    return start;
  }

  // ---- private: the class lists (LIFO) ----

  private listInsert(bp: number): void {
    const head = this.headOf(classOf(this.blockSize(bp)));
    const first = this.load(head);
    this.store(bp, first);
    this.store(bp + WSIZE, 0);
    if (first !== 0) this.store(first + WSIZE, bp);
    this.store(head, bp);
  }

  private listRemove(bp: number): void {
    const next = this.load(bp);
    const prev = this.load(bp + WSIZE);
    if (prev === 0) this.store(this.headOf(classOf(this.blockSize(bp))), next);
    else this.store(prev, next);
    if (next !== 0) this.store(next + WSIZE, prev);
  }

  // ---- private: tags and accounting ----

  private account(bp: number, sign: 1 | -1): void {
    this.inUseBytes += sign * (this.blockSize(bp) - DSIZE);
    this.inUseBlocks += sign;
  }

  private load(addr: number): number {
    return this.libc.ctx.cpu.load64(addr);
  }

  private store(addr: number, value: number): void {
    this.libc.ctx.cpu.store64(addr, value);
  }

  private blockSize(bp: number): number {
    const h = this.load(bp - WSIZE);
    return h - (h & 0xf);
  }

  private isAllocated(bp: number): boolean {
    return (this.load(bp - WSIZE) & ALLOC) !== 0;
  }

  private setTags(bp: number, size: number, alloc: number): void {
    this.store(bp - WSIZE, size | alloc);
    this.store(bp + size - DSIZE, size | alloc);
  }

  /** A pointer free/realloc may take: aligned, inside the heap, an allocated block's payload. */
  private checkPointer(ptr: number, who: string): void {
    const hex = `0x${ptr.toString(16)}`;
    if (this.heapBase === 0 || ptr % MALLOC_ALIGNMENT !== 0 || ptr < this.firstBlock || ptr >= this.heapEnd)
      throw new MallocAbort(`${who}(): invalid pointer ${hex}`);
    const header = this.load(ptr - WSIZE);
    const size = header - (header & 0xf);
    if (size < MIN_BLOCK || ptr + size > this.heapEnd || this.load(ptr + size - DSIZE) !== header)
      throw new MallocAbort(`${who}(): invalid pointer or corrupted header at ${hex}`);
    if ((header & ALLOC) === 0) throw new MallocAbort(`${who}(): double free detected at ${hex}`);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}

/** Block size for a request of `size` bytes: both tags, 16-aligned, at least MIN_BLOCK. */
function blockSizeFor(size: number): number {
  return Math.max(MIN_BLOCK, Math.ceil((size + DSIZE) / DSIZE) * DSIZE);
}

/** The class of a block size: floor(log2(size / 32)), capped at the last class. */
function classOf(size: number): number {
  return Math.min(CLASSES - 1, Math.floor(Math.log2(size / MIN_BLOCK)));
}
