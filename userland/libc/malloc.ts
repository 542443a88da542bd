/**
 * The malloc family as a program calls it: one allocator per process (ptmalloc by default, or
 * any name from userland/malloc), with glibc's entry points on top of the Allocator interface.
 */
import { EINVAL, ENOMEM } from '../../kernel/proc/uapi.ts';
import type { Allocator } from '../malloc/allocator.ts';
import { createAllocator } from '../malloc/index.ts';
import { PtmallocAllocator } from '../malloc/ptmalloc.ts';
import type { Libc } from './libc.ts';

export class Malloc {
  readonly libc: Libc;
  readonly allocator: Allocator;

  constructor(libc: Libc, allocatorName = 'ptmalloc') {
    this.libc = libc;
    this.allocator = createAllocator(allocatorName, libc);
  }

  malloc(size: number): number {
    return this.allocator.malloc(size);
  }

  free(ptr: number): void {
    this.allocator.free(ptr);
  }

  calloc(n: number, size: number): number {
    return this.allocator.calloc(n, size);
  }

  realloc(ptr: number, size: number): number {
    return this.allocator.realloc(ptr, size);
  }

  memalign(alignment: number, size: number): number {
    if (alignment < 1 || (alignment & (alignment - 1)) !== 0) {
      this.libc.fail(EINVAL);
      return 0;
    }
    return this.allocator.memalign(alignment, size);
  }

  /** posix_memalign: 0 and the block in `out[0]`, or an error number (errno is untouched). */
  posixMemalign(out: number[], alignment: number, size: number): number {
    if (alignment < 8 || (alignment & (alignment - 1)) !== 0 || alignment % 8 !== 0) return EINVAL;
    const saved = this.libc.errno;
    const p = this.allocator.memalign(alignment, size);
    this.libc.errno = saved;
    if (p === 0 && size !== 0) return ENOMEM;
    out[0] = p;
    return 0;
  }

  /** aligned_alloc (C11): the size must be a multiple of the alignment. */
  alignedAlloc(alignment: number, size: number): number {
    if (alignment < 1 || (alignment & (alignment - 1)) !== 0 || size % alignment !== 0) {
      this.libc.fail(EINVAL);
      return 0;
    }
    return this.allocator.memalign(alignment, size);
  }

  mallocUsableSize(ptr: number): number {
    return this.allocator.usableSize(ptr);
  }

  /** mallopt (ptmalloc only): 1 on success, 0 otherwise. */
  mallopt(param: number, value: number): number {
    return this.allocator instanceof PtmallocAllocator ? this.allocator.mallopt(param, value) : 0;
  }

  /** malloc_stats: glibc's report, to stderr. */
  mallocStats(): void {
    const s = this.allocator.stats();
    const lines = [
      'Arena 0:',
      `system bytes     = ${String(s.heapBytes).padStart(10)}`,
      `in use bytes     = ${String(s.inUseBytes).padStart(10)}`,
      'Total (incl. mmap):',
      `system bytes     = ${String(s.heapBytes).padStart(10)}`,
      `in use bytes     = ${String(s.inUseBytes).padStart(10)}`,
    ];
    if (this.allocator instanceof PtmallocAllocator) {
      const mi = this.allocator.mallinfo();
      lines.push(
        `max mmap regions = ${String(mi.hblks).padStart(10)}`,
        `max mmap bytes   = ${String(mi.hblkhd).padStart(10)}`,
      );
    }
    this.libc.puts(`${lines.join('\n')}\n`, 2);
  }
}
