/**
 * Lab 3: malloc. Your allocator goes here (see docs/labs/malloc.md).
 *
 * As given, this is a bump allocator: every block goes at the end of the heap and free only
 * marks it free, so memory is never reused. It is correct (the grader's correctness checks
 * pass) but its utilization is poor, and the grader fails it. Replace it with an allocator
 * that reuses freed memory: free lists, splitting, coalescing, a realloc that grows in place.
 *
 * Everything the allocator keeps (headers, lists) must live in the process's memory, reached
 * with load64/store64 (below): its cost in faults and TLB misses is then real, and a bug shows
 * up as corrupted memory, as it would in C.
 *
 * Block layout here: an 8-byte pad, an 8-byte header (payload size | allocated bit), then the
 * payload (16-byte aligned).
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

const HEADER = 16;
const ALLOC = 1;

export default class MyAllocator implements Allocator {
  readonly name = 'my-allocator';
  private readonly libc: Libc;
  /** First block's header, and the break; 0 before the first allocation. */
  private heapStart = 0;
  private heapEnd = 0;
  private inUseBytes = 0;
  private inUseBlocks = 0;

  constructor(libc: Libc) {
    this.libc = libc;
  }

  /** TODO: look for a free block that fits before growing the heap. */
  malloc(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 40) return this.nomem();
    if (size === 0) return 0;
    if (this.heapStart === 0) {
      const base = this.libc.sbrk(0);
      const pad = (MALLOC_ALIGNMENT - (base % MALLOC_ALIGNMENT)) % MALLOC_ALIGNMENT;
      if (this.libc.sbrk(pad) < 0) return this.nomem();
      this.heapStart = base + pad;
      this.heapEnd = this.heapStart;
    }
    const payload = Math.ceil(size / MALLOC_ALIGNMENT) * MALLOC_ALIGNMENT;
    const block = this.libc.sbrk(HEADER + payload);
    if (block < 0) return this.nomem();
    this.heapEnd = block + HEADER + payload;
    this.store(block + 8, payload | ALLOC);
    this.inUseBytes += payload;
    this.inUseBlocks++;
    return block + HEADER;
  }

  /** TODO: make the block reusable (and merge it with free neighbours). */
  free(ptr: number): void {
    if (ptr === 0) return;
    const size = this.checkPointer(ptr, 'free');
    this.store(ptr - 8, size);
    this.inUseBytes -= size;
    this.inUseBlocks--;
  }

  /** TODO: grow in place when the block is followed by free space or ends the heap. */
  realloc(ptr: number, size: number): number {
    if (ptr === 0) return this.malloc(size);
    if (size === 0) {
      this.free(ptr);
      return 0;
    }
    const old = this.checkPointer(ptr, 'realloc');
    if (size <= old) return ptr;
    const fresh = this.malloc(size);
    if (fresh === 0) return 0;
    this.libc.memcpy(fresh, ptr, old);
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

  /** Blocks aligned to more than 16 bytes: not needed by the traces; kept simple. */
  memalign(alignment: number, size: number): number {
    if (alignment <= MALLOC_ALIGNMENT) return this.malloc(size);
    return this.nomem();
  }

  usableSize(ptr: number): number {
    return ptr === 0 ? 0 : this.checkPointer(ptr, 'malloc_usable_size');
  }

  stats(): MallocStats {
    return {
      heapBytes: this.heapEnd - this.heapStart,
      inUseBytes: this.inUseBytes,
      inUseBlocks: this.inUseBlocks,
    };
  }

  liveBlocks(): Array<{ ptr: number; size: number }> {
    const out: Array<{ ptr: number; size: number }> = [];
    for (let b = this.heapStart; b < this.heapEnd; ) {
      const word = this.load(b + 8);
      const size = word - (word & ALLOC);
      if ((word & ALLOC) !== 0) out.push({ ptr: b + HEADER, size });
      b += HEADER + size;
    }
    return out;
  }

  ownedRegions(): Array<[number, number]> {
    return this.heapStart === 0 ? [] : [[this.heapStart, this.heapEnd]];
  }

  /** TODO: walk your heap and lists, and throw MallocAbort on anything inconsistent. */
  checkHeap(): void {}

  /** The payload size of allocated block `ptr`; MallocAbort for anything else. */
  private checkPointer(ptr: number, who: string): number {
    if (ptr % MALLOC_ALIGNMENT !== 0 || ptr < this.heapStart + HEADER || ptr >= this.heapEnd)
      throw new MallocAbort(`${who}(): invalid pointer 0x${ptr.toString(16)}`);
    const word = this.load(ptr - 8);
    if ((word & ALLOC) === 0)
      throw new MallocAbort(`${who}(): double free detected at 0x${ptr.toString(16)}`);
    return word - ALLOC;
  }

  private load(addr: number): number {
    return this.libc.ctx.cpu.load64(addr);
  }

  private store(addr: number, value: number): void {
    this.libc.ctx.cpu.store64(addr, value);
  }

  private nomem(): number {
    this.libc.fail(ENOMEM);
    return 0;
  }
}
