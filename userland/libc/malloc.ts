/**
 * The malloc family as a program calls it: one allocator per process (ptmalloc by default, or
 * any name from userland/malloc), with glibc's entry points on top of the Allocator interface.
 * With `leakCheck` on, libc's exit() prints a valgrind-style leak report to stdout.
 */
import { EINVAL, ENOMEM } from '../../kernel/proc/uapi.ts';
import { type Allocator, MallocAbort } from '../malloc/allocator.ts';
import { createAllocator } from '../malloc/index.ts';
import { PtmallocAllocator } from '../malloc/ptmalloc.ts';
import { type LeakCheck, leakReport, renderExitLeakReport } from './leak.ts';
import type { Libc } from './libc.ts';

export interface MallocOptions {
  /** An allocator name (default ptmalloc), or a factory for one of the program's own. */
  allocator?: string | ((libc: Libc) => Allocator);
  /** The leak report at exit (default 'off'). */
  leakCheck?: LeakCheck;
}

export class Malloc {
  readonly libc: Libc;
  readonly allocator: Allocator;

  /** `options` may be just the allocator's name. */
  constructor(libc: Libc, options: MallocOptions | string = {}) {
    const opts: MallocOptions = typeof options === 'string' ? { allocator: options } : options;
    this.libc = libc;
    const allocator = opts.allocator ?? 'ptmalloc';
    this.allocator = typeof allocator === 'string' ? createAllocator(allocator, libc) : allocator(libc);
    const mode = opts.leakCheck ?? 'off';
    if (mode !== 'off') libc.atexit(() => this.printLeakReport(mode));
  }

  /** The leak report (valgrind's summary; `full` lists each lost block) to stdout. */
  printLeakReport(mode: Exclude<LeakCheck, 'off'>): void {
    let text: string;
    try {
      text = renderExitLeakReport(leakReport(this.libc, this.allocator), mode);
    } catch (err) {
      if (!(err instanceof MallocAbort)) throw err;
      text = `leak check skipped: the heap is corrupt (${err.message})\n`;
    }
    this.libc.puts(text, 1);
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
