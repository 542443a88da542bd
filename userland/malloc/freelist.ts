/**
 * Teaching allocators after CS:APP chapter 9: an implicit free list (every block in address
 * order) or an explicit free list (a doubly linked list of free blocks kept in their payloads),
 * with first-, next-, best- or worst-fit placement, with or without coalescing of free
 * neighbours. The heap grows with sbrk.
 *
 * Block layout (8-byte header and footer, 16-byte aligned payloads):
 *
 *   header: size | allocated bit      (size includes header and footer; a multiple of 16)
 *   payload ...                       (free blocks of the explicit list: next, prev pointers)
 *   footer: size | allocated bit
 *
 *   heap = [pad 8][prologue header 16|1][prologue footer 16|1] blocks ... [epilogue header 0|1]
 *   invariant: no two adjacent free blocks when coalescing is on;
 *              every free block is on the explicit list exactly once (explicit variant)
 */

import { ENOMEM, type UserCpu } from '../../kernel/proc/uapi.ts';
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

export type FreeListKind = 'implicit' | 'explicit';
export type Placement = 'first-fit' | 'next-fit' | 'best-fit' | 'worst-fit';

export interface FreeListOptions {
  list: FreeListKind;
  placement: Placement;
  coalesce: 'on' | 'off';
  /** Bytes the heap grows by at least (CHUNKSIZE). */
  chunkBytes?: number;
}

const WSIZE = 8;
const DSIZE = 16;
const MIN_BLOCK = 32;
const ALLOC = 1;

export class FreeListAllocator implements Allocator {
  readonly name: string;
  private readonly libc: Libc;
  private readonly cpu: UserCpu;
  private readonly opts: Required<FreeListOptions>;
  /** Address of the first block's header (after the prologue), or 0 before the first call. */
  private heapStart = 0;
  /** Address just past the epilogue header: the break. */
  private heapEnd = 0;
  /** Explicit list head (a free block's payload address), 0 for empty. */
  private freeHead = 0;
  /** next-fit: where the last search stopped (a block header address). */
  private rover = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;

  constructor(libc: Libc, options: FreeListOptions) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.opts = { chunkBytes: 4096, ...options };
    this.name = `${options.list}-${options.placement}${options.coalesce === 'on' ? '' : '-nocoalesce'}`;
  }

  malloc(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0) return this.nomem();
    if (size === 0) return 0;
    if (this.heapStart === 0 && !this.init()) return this.nomem();
    const asize = this.adjust(size);
    if (asize < 0) return this.nomem();
    let bp = this.findFit(asize);
    if (bp === 0) {
      bp = this.extend(Math.max(asize, this.opts.chunkBytes));
      if (bp === 0) return this.nomem();
    }
    this.place(bp, asize);
    this.inUseBytes += this.blockSize(bp) - DSIZE;
    this.inUseBlocks++;
    return bp;
  }

  free(ptr: number): void {
    if (ptr === 0) return;
    this.checkPointer(ptr, 'free');
    const size = this.blockSize(ptr);
    this.inUseBytes -= size - DSIZE;
    this.inUseBlocks--;
    this.setTags(ptr, size, 0);
    const merged = this.opts.coalesce === 'on' ? this.coalesce(ptr) : ptr;
    if (this.opts.list === 'explicit') this.listInsert(merged);
  }

  realloc(ptr: number, size: number): number {
    if (ptr === 0) return this.malloc(size);
    if (size === 0) {
      this.free(ptr);
      return 0;
    }
    this.checkPointer(ptr, 'realloc');
    const old = this.blockSize(ptr) - DSIZE;
    const asize = this.adjust(size);
    if (asize < 0) return this.nomem();
    if (asize <= this.blockSize(ptr)) return ptr;
    const next = ptr + this.blockSize(ptr);
    // Grow in place into a free next block.
    if (!this.isAllocated(next) && this.blockSize(ptr) + this.blockSize(next) >= asize) {
      if (this.opts.list === 'explicit') this.listRemove(next);
      const total = this.blockSize(ptr) + this.blockSize(next);
      this.inUseBytes -= old;
      this.setTags(ptr, total, ALLOC);
      this.splitAllocated(ptr, asize);
      this.inUseBytes += this.blockSize(ptr) - DSIZE;
      return ptr;
    }
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
    // Over-allocate, then give back the front as a free block.
    const raw = this.malloc(size + alignment + MIN_BLOCK);
    if (raw === 0) return 0;
    let aligned = Math.ceil(raw / alignment) * alignment;
    if (aligned !== raw && aligned - raw < MIN_BLOCK) aligned += alignment;
    if (aligned === raw) return raw;
    const total = this.blockSize(raw);
    const front = aligned - raw;
    this.inUseBytes -= total - DSIZE;
    this.setTags(aligned, total - front, ALLOC);
    this.setTags(raw, front, 0);
    this.inUseBytes += total - front - DSIZE;
    if (this.opts.list === 'explicit') this.listInsert(raw);
    return aligned;
  }

  usableSize(ptr: number): number {
    if (ptr === 0) return 0;
    this.checkPointer(ptr, 'malloc_usable_size');
    return this.blockSize(ptr) - DSIZE;
  }

  stats(): MallocStats {
    return {
      heapBytes: this.heapStart === 0 ? 0 : this.heapEnd - this.heapFloor(),
      inUseBytes: this.inUseBytes,
      inUseBlocks: this.inUseBlocks,
    };
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    if (this.heapStart === 0) return out;
    for (let bp = this.heapStart + DSIZE; this.blockSize(bp) !== 0; bp += this.blockSize(bp)) {
      if (this.isAllocated(bp)) out.push({ ptr: bp, size: this.blockSize(bp) - DSIZE });
    }
    return out;
  }

  ownedRegions(): Array<[number, number]> {
    return this.heapStart === 0 ? [] : [[this.heapFloor(), this.heapEnd]];
  }

  /**
   * mallinfo2 from a walk of the blocks: arena is the brk heap (nothing is mapped: hblks and
   * hblkhd are 0), ordblks and fordblks the free blocks; there are no separate small blocks
   * (smblks, fsmblks 0) and nothing is given back to the kernel (keepcost 0).
   */
  mallinfo2(): Mallinfo2 {
    const mi = emptyMallinfo2();
    if (this.heapStart === 0) return mi;
    for (let bp = this.heapStart + DSIZE; this.blockSize(bp) !== 0; bp += this.blockSize(bp)) {
      if (this.isAllocated(bp)) continue;
      mi.ordblks++;
      mi.fordblks += this.blockSize(bp);
    }
    mi.arena = this.heapEnd - this.heapFloor();
    mi.uordblks = mi.arena - mi.fordblks;
    return mi;
  }

  checkHeap(): void {
    if (this.heapStart === 0) return;
    let prevFree = false;
    let free = 0;
    let bp = this.heapStart + DSIZE;
    for (;;) {
      const size = this.blockSize(bp);
      if (size === 0) break;
      if (size % DSIZE !== 0 || size < MIN_BLOCK || bp + size > this.heapEnd + WSIZE) {
        throw new MallocAbort(`malloc: corrupted block header at 0x${(bp - WSIZE).toString(16)}`);
      }
      if (this.load(bp - WSIZE) !== this.load(bp + size - DSIZE)) {
        throw new MallocAbort(`malloc: header and footer disagree at 0x${(bp - WSIZE).toString(16)}`);
      }
      const isFree = !this.isAllocated(bp);
      if (isFree && prevFree && this.opts.coalesce === 'on') {
        throw new MallocAbort(
          `malloc: two adjacent free blocks at 0x${(bp - WSIZE).toString(16)} (missed coalescing)`,
        );
      }
      if (isFree) free++;
      prevFree = isFree;
      bp += size;
    }
    if (this.opts.list === 'explicit') {
      let n = 0;
      let prev = 0;
      for (let p = this.freeHead; p !== 0; p = this.load(p)) {
        if (this.isAllocated(p))
          throw new MallocAbort(`malloc: allocated block 0x${p.toString(16)} on the free list`);
        if (this.load(p + WSIZE) !== prev)
          throw new MallocAbort(`malloc: corrupted free-list link at 0x${p.toString(16)}`);
        prev = p;
        if (++n > free) throw new MallocAbort('malloc: free list longer than the free blocks (a cycle?)');
      }
      if (n !== free) throw new MallocAbort(`malloc: ${free} free blocks but ${n} on the free list`);
    }
  }

  // ---- private: the heap ----

  /** Where the heap starts: the alignment pad word before the prologue (the break at init, aligned). */
  private heapFloor(): number {
    return this.heapStart - 2 * WSIZE;
  }

  private init(): boolean {
    const base = this.libc.sbrk(0);
    const pad = (DSIZE - (base % DSIZE)) % DSIZE; // the pad word on a 16-byte boundary puts payloads on them too
    const start = this.libc.sbrk(pad + 4 * WSIZE);
    if (start < 0) return false;
    const p = start + pad;
    this.store(p, 0); // alignment padding word
    this.store(p + WSIZE, DSIZE | ALLOC); // prologue header
    this.store(p + 2 * WSIZE, DSIZE | ALLOC); // prologue footer
    this.store(p + 3 * WSIZE, 0 | ALLOC); // epilogue header
    this.heapStart = p + 2 * WSIZE; // the prologue's payload address
    this.heapEnd = p + 4 * WSIZE;
    this.rover = this.opts.list === 'implicit' ? this.heapStart + DSIZE : 0;
    return true;
  }

  /** Grow the heap by `bytes` (rounded up) and return the new free block, coalesced. */
  private extend(bytes: number): number {
    const size = Math.ceil(bytes / DSIZE) * DSIZE;
    const bp = this.libc.sbrk(size);
    if (bp < 0) return 0;
    this.setTags(bp, size, 0); // the old epilogue header becomes this block's header
    this.store(bp + size - WSIZE, 0 | ALLOC); // new epilogue
    this.heapEnd = bp + size;
    const merged = this.opts.coalesce === 'on' ? this.coalesce(bp) : bp;
    if (this.opts.list === 'explicit') this.listInsert(merged);
    return merged;
  }

  /** Block size for a request: header + footer, 16-aligned, at least MIN_BLOCK; -1 if absurd. */
  private adjust(size: number): number {
    if (size > 2 ** 46) return -1;
    return Math.max(MIN_BLOCK, Math.ceil((size + DSIZE) / DSIZE) * DSIZE);
  }

  private findFit(asize: number): number {
    return this.opts.list === 'explicit' ? this.findExplicit(asize) : this.findImplicit(asize);
  }

  /** Search the blocks in address order (next-fit: from the rover round to it). */
  private findImplicit(asize: number): number {
    const placement = this.opts.placement;
    const first = this.heapStart + DSIZE;
    if (placement === 'first-fit' || placement === 'next-fit') {
      const from = placement === 'next-fit' && this.rover !== 0 ? this.rover : first;
      let bp = this.scanImplicit(from, 0, asize);
      if (bp === 0 && from !== first) bp = this.scanImplicit(first, from, asize);
      if (bp !== 0) this.rover = bp;
      return bp;
    }
    let best = 0;
    let bestSize = 0;
    for (let bp = first; this.blockSize(bp) !== 0; bp += this.blockSize(bp)) {
      const size = this.blockSize(bp);
      if (this.isAllocated(bp) || size < asize) continue;
      if (best === 0 || (placement === 'best-fit' ? size < bestSize : size > bestSize)) {
        best = bp;
        bestSize = size;
        if (placement === 'best-fit' && size === asize) break;
      }
    }
    return best;
  }

  /** The first free block of at least `asize` from `from` up to `stop` (0: the epilogue). */
  private scanImplicit(from: number, stop: number, asize: number): number {
    for (let bp = from; bp !== stop && this.blockSize(bp) !== 0; bp += this.blockSize(bp)) {
      if (!this.isAllocated(bp) && this.blockSize(bp) >= asize) return bp;
    }
    return 0;
  }

  /** Search the free list (next-fit: from the rover to the end, then from the head). */
  private findExplicit(asize: number): number {
    const placement = this.opts.placement;
    if (placement === 'first-fit' || placement === 'next-fit') {
      const from = placement === 'next-fit' && this.rover !== 0 ? this.rover : this.freeHead;
      let p = this.scanList(from, 0, asize);
      if (p === 0 && from !== this.freeHead) p = this.scanList(this.freeHead, from, asize);
      if (p !== 0) this.rover = this.load(p);
      return p;
    }
    let best = 0;
    let bestSize = 0;
    for (let p = this.freeHead; p !== 0; p = this.load(p)) {
      const size = this.blockSize(p);
      if (size < asize) continue;
      if (best === 0 || (placement === 'best-fit' ? size < bestSize : size > bestSize)) {
        best = p;
        bestSize = size;
        if (placement === 'best-fit' && size === asize) break;
      }
    }
    return best;
  }

  private scanList(from: number, stop: number, asize: number): number {
    for (let p = from; p !== 0 && p !== stop; p = this.load(p)) if (this.blockSize(p) >= asize) return p;
    return 0;
  }

  /** Allocate `asize` bytes of free block `bp`, splitting off the rest when it is big enough. */
  private place(bp: number, asize: number): void {
    if (this.opts.list === 'explicit') this.listRemove(bp);
    const size = this.blockSize(bp);
    this.setTags(bp, size, ALLOC);
    this.splitAllocated(bp, asize);
  }

  /** Shrink allocated block `bp` to `asize`, freeing the tail as a block when big enough. */
  private splitAllocated(bp: number, asize: number): void {
    const size = this.blockSize(bp);
    if (size - asize < MIN_BLOCK) return;
    this.setTags(bp, asize, ALLOC);
    const rest = bp + asize;
    this.setTags(rest, size - asize, 0);
    const merged = this.opts.coalesce === 'on' ? this.coalesce(rest) : rest;
    if (this.opts.list === 'explicit') this.listInsert(merged);
  }

  /** Merge free block `bp` with free neighbours (taking them off the list); returns the result. */
  private coalesce(bp: number): number {
    const prevFooter = this.load(bp - DSIZE);
    const prevFree = (prevFooter & ALLOC) === 0;
    const next = bp + this.blockSize(bp);
    const nextFree = !this.isAllocated(next);
    let start = bp;
    let size = this.blockSize(bp);
    if (nextFree) {
      if (this.opts.list === 'explicit') this.listRemove(next);
      size += this.blockSize(next);
    }
    if (prevFree) {
      const prev = bp - (prevFooter & ~0xf);
      if (this.opts.list === 'explicit') this.listRemove(prev);
      size += this.blockSize(prev);
      start = prev;
    }
    this.setTags(start, size, 0);
    if (this.rover > start && this.rover < start + size) this.rover = start;
    return start;
  }

  // ---- private: the explicit list (LIFO) ----

  private listInsert(bp: number): void {
    this.store(bp, this.freeHead); // next
    this.store(bp + WSIZE, 0); // prev
    if (this.freeHead !== 0) this.store(this.freeHead + WSIZE, bp);
    this.freeHead = bp;
  }

  private listRemove(bp: number): void {
    const next = this.load(bp);
    const prev = this.load(bp + WSIZE);
    if (prev === 0) this.freeHead = next;
    else this.store(prev, next);
    if (next !== 0) this.store(next + WSIZE, prev);
    if (this.rover === bp) this.rover = next;
  }

  // ---- private: tags in emulated memory ----

  private load(addr: number): number {
    return this.cpu.load64(addr);
  }

  private store(addr: number, value: number): void {
    this.cpu.store64(addr, value);
  }

  private blockSize(bp: number): number {
    const header = this.load(bp - WSIZE);
    return header - (header & 0xf);
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
    if (
      this.heapStart === 0 ||
      ptr % MALLOC_ALIGNMENT !== 0 ||
      ptr <= this.heapStart ||
      ptr >= this.heapEnd
    ) {
      throw new MallocAbort(`${who}(): invalid pointer ${hex}`);
    }
    const header = this.load(ptr - WSIZE);
    const size = header - (header & 0xf);
    if (
      size < MIN_BLOCK ||
      size % DSIZE !== 0 ||
      ptr + size > this.heapEnd + WSIZE ||
      this.load(ptr + size - DSIZE) !== header
    ) {
      throw new MallocAbort(`${who}(): invalid pointer or corrupted header at ${hex}`);
    }
    if ((header & ALLOC) === 0) throw new MallocAbort(`${who}(): double free detected at ${hex}`);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}
