/**
 * The malloc family as a program calls it: one allocator per process (ptmalloc by default, or
 * any name from userland/malloc), with glibc's entry points on top of the Allocator interface.
 *
 * What a Malloc is not told comes from the process's environment, as a C library reads it:
 * VMLAB_MALLOC names the allocator, VMLAB_LEAK_CHECK (off, summary, full) asks for a
 * valgrind-style leak report on stdout at libc's exit(), and VMLAB_MALLOC_CHECK (as glibc's
 * MALLOC_CHECK_: 0 or off, or 1, 2, 3 or full) turns on the stricter debug mode of
 * mallocdebug.ts. A bad value is a RangeError naming the variable.
 *
 * Beside the allocator, Malloc keeps a table of the bytes each live block was asked for, keyed
 * by its address, in JavaScript: it belongs to the analysis tools (the leak report counts
 * requested bytes, as valgrind does; the debug mode checks that free's pointer is a block), not
 * to the allocator, whose metadata stays in the process's memory.
 */
import { EINVAL, ENOMEM } from '../../kernel/proc/uapi.ts';
import { type Allocator, callocBytes, type Mallinfo2, MallocAbort } from '../malloc/allocator.ts';
import { createAllocator } from '../malloc/index.ts';
import { PtmallocAllocator } from '../malloc/ptmalloc.ts';
import { type LeakCheck, leakReport, renderExitLeakReport } from './leak.ts';
import type { Libc } from './libc.ts';
import { MallocDebug } from './mallocdebug.ts';

/** How much checking a call gets: the allocator's own cheap checks, or the full debug mode. */
export type MallocCheck = 'cheap' | 'full';

export interface MallocOptions {
  /** An allocator name, or a factory for one of the program's own (default $VMLAB_MALLOC, else ptmalloc). */
  allocator?: string | ((libc: Libc) => Allocator);
  /** The leak report at exit (default $VMLAB_LEAK_CHECK, else 'off'). */
  leakCheck?: LeakCheck;
  /** 'full': checkHeap around every call, poisoned fresh and freed blocks (default from $VMLAB_MALLOC_CHECK, else 'cheap'). */
  check?: MallocCheck;
}

const LEAK_CHECKS: readonly string[] = ['off', 'summary', 'full'];

export class Malloc {
  readonly libc: Libc;
  readonly allocator: Allocator;
  readonly check: MallocCheck;
  /** The debug mode's state (null unless check is 'full'). */
  private readonly debug: MallocDebug | null;
  /** Bytes asked for, by live block address (the analysis tools' table, not the allocator's). */
  private readonly requested = new Map<number, number>();

  /**
   * `options` may be just the allocator's name. Throws RangeError for an unknown allocator or
   * a bad leak check or check mode, naming the environment variable when it came from there.
   */
  constructor(libc: Libc, options: MallocOptions | string = {}) {
    const opts: MallocOptions = typeof options === 'string' ? { allocator: options } : options;
    const env = libc.ctx.env;
    this.libc = libc;
    this.allocator = makeAllocator(libc, opts.allocator, env.VMLAB_MALLOC);
    const mode = leakCheckOf(opts.leakCheck, env.VMLAB_LEAK_CHECK);
    this.check = opts.check ?? checkOf(env.VMLAB_MALLOC_CHECK);
    this.debug = this.check === 'full' ? new MallocDebug(libc, this.allocator) : null;
    if (mode !== 'off') libc.atexit(() => this.printLeakReport(mode));
  }

  /** The leak report (valgrind's summary; `full` lists each lost block) to stdout. */
  printLeakReport(mode: Exclude<LeakCheck, 'off'>): void {
    let text: string;
    try {
      this.debug?.drain('exit');
      text = renderExitLeakReport(
        leakReport(this.libc, this.allocator, { requestedBytes: this.requested }),
        mode,
      );
    } catch (err) {
      if (!(err instanceof MallocAbort)) throw err;
      text = `leak check skipped: the heap is corrupt (${err.message})\n`;
    }
    this.libc.puts(text, 1);
  }

  malloc(size: number): number {
    if (this.debug === null) return this.record(this.allocator.malloc(size), size);
    return this.debugAllocate('malloc', size, 'poison', () => this.allocator.malloc(size));
  }

  free(ptr: number): void {
    if (ptr === 0) return;
    if (this.debug === null) this.allocator.free(ptr);
    else this.debugFree(ptr);
    this.requested.delete(ptr);
  }

  calloc(n: number, size: number): number {
    const total = Math.max(0, callocBytes(n, size));
    if (this.debug === null) return this.record(this.allocator.calloc(n, size), total);
    return this.debugAllocate('calloc', total, 'zeroed', () => this.allocator.calloc(n, size));
  }

  realloc(ptr: number, size: number): number {
    if (this.debug !== null) return this.debugRealloc(ptr, size);
    const q = this.allocator.realloc(ptr, size);
    return this.recordRealloc(ptr, size, q);
  }

  memalign(alignment: number, size: number): number {
    if (alignment < 1 || (alignment & (alignment - 1)) !== 0) {
      this.libc.fail(EINVAL);
      return 0;
    }
    return this.aligned('memalign', alignment, size);
  }

  /** posix_memalign: 0 and the block in `out[0]`, or an error number (errno is untouched). */
  posixMemalign(out: number[], alignment: number, size: number): number {
    if (alignment < 8 || (alignment & (alignment - 1)) !== 0 || alignment % 8 !== 0) return EINVAL;
    const saved = this.libc.errno;
    const p = this.aligned('posix_memalign', alignment, size);
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
    return this.aligned('aligned_alloc', alignment, size);
  }

  mallocUsableSize(ptr: number): number {
    return this.allocator.usableSize(ptr);
  }

  /** mallopt (ptmalloc only): 1 on success, 0 otherwise. */
  mallopt(param: number, value: number): number {
    return this.allocator instanceof PtmallocAllocator ? this.allocator.mallopt(param, value) : 0;
  }

  /**
   * mallinfo2: the allocator's own (from a walk of its heap), or for an allocator without one
   * arena = stats().heapBytes, uordblks = stats().inUseBytes, fordblks = the difference and the
   * other fields 0.
   */
  mallinfo2(): Mallinfo2 {
    const own = this.allocator.mallinfo2?.();
    if (own !== undefined) return own;
    const s = this.allocator.stats();
    return {
      arena: s.heapBytes,
      ordblks: 0,
      smblks: 0,
      hblks: 0,
      hblkhd: 0,
      usmblks: 0,
      fsmblks: 0,
      uordblks: s.inUseBytes,
      fordblks: Math.max(0, s.heapBytes - s.inUseBytes),
      keepcost: 0,
    };
  }

  /**
   * malloc_stats: glibc's report, to stderr. Arena 0 is the heap outside the blocks' own
   * mappings (mallinfo2's arena and uordblks); the total adds the mapped blocks (hblkhd); the
   * last two lines are the most mapped blocks and bytes there have been at once (ptmalloc's
   * peaks; the other allocators map no block of its own, so their current figures, 0).
   */
  mallocStats(): void {
    const mi = this.mallinfo2();
    const peak =
      this.allocator instanceof PtmallocAllocator
        ? this.allocator.mmapPeak()
        : { regions: mi.hblks, bytes: mi.hblkhd };
    const line = (label: string, n: number): string => `${label.padEnd(17)}= ${String(n).padStart(10)}`;
    const lines = [
      'Arena 0:',
      line('system bytes', mi.arena),
      line('in use bytes', mi.uordblks),
      'Total (incl. mmap):',
      line('system bytes', mi.arena + mi.hblkhd),
      line('in use bytes', mi.uordblks + mi.hblkhd),
      line('max mmap regions', peak.regions),
      line('max mmap bytes', peak.bytes),
    ];
    this.libc.puts(`${lines.join('\n')}\n`, 2);
  }

  // ---- private ----

  /** memalign's family after its argument checks. */
  private aligned(call: string, alignment: number, size: number): number {
    if (this.debug === null) return this.record(this.allocator.memalign(alignment, size), size);
    return this.debugAllocate(call, size, 'poison', () => this.allocator.memalign(alignment, size));
  }

  /** Note block `p` (when not NULL) as asked for `size` bytes; `p`. */
  private record(p: number, size: number): number {
    if (p !== 0) this.requested.set(p, size);
    return p;
  }

  /** realloc(ptr, size) returned `q`: ptr is gone unless realloc failed; q is asked for `size`. */
  private recordRealloc(ptr: number, size: number, q: number): number {
    if (ptr !== 0 && (q !== 0 || size === 0)) this.requested.delete(ptr);
    return this.record(q, size);
  }

  /**
   * An allocation in the debug mode: the checks around it, a retry after emptying the
   * quarantine when it fails, and FRESH_POISON in the new block unless it is `zeroed`.
   */
  private debugAllocate(call: string, size: number, fill: 'poison' | 'zeroed', get: () => number): number {
    const debug = this.debug!;
    debug.enter(call);
    let p = get();
    if (p === 0 && size > 0 && debug.drain(call) > 0) p = get();
    if (p !== 0 && fill === 'poison') debug.poisonFresh(p, 0, this.allocator.usableSize(p));
    debug.leave(call);
    return this.record(p, size);
  }

  /** free in the debug mode: the pointer must be a live block; it goes to the quarantine. */
  private debugFree(ptr: number): void {
    const debug = this.debug!;
    debug.enter('free');
    this.checkLive(ptr, 'free');
    debug.retire(ptr, this.allocator.usableSize(ptr));
    debug.leave('free');
  }

  /** realloc in the debug mode: checked around; the bytes it adds past the old block poisoned. */
  private debugRealloc(ptr: number, size: number): number {
    const debug = this.debug!;
    debug.enter('realloc');
    if (ptr !== 0) this.checkLive(ptr, 'realloc');
    if (ptr !== 0 && size === 0) {
      debug.retire(ptr, this.allocator.usableSize(ptr)); // realloc(p, 0) frees p (glibc)
      debug.leave('realloc');
      return this.recordRealloc(ptr, size, 0);
    }
    const old = ptr === 0 ? 0 : this.allocator.usableSize(ptr);
    let q = this.allocator.realloc(ptr, size);
    if (q === 0 && size > 0 && debug.drain('realloc') > 0) q = this.allocator.realloc(ptr, size);
    if (q !== 0) debug.poisonFresh(q, old, this.allocator.usableSize(q));
    debug.leave('realloc');
    return this.recordRealloc(ptr, size, q);
  }

  /** The debug mode's pointer check: a block this Malloc handed out and nobody freed. */
  private checkLive(ptr: number, call: string): void {
    const hex = `0x${ptr.toString(16)}`;
    if (this.debug!.holds(ptr)) throw new MallocAbort(`${call}(): double free detected at ${hex}`);
    if (!this.requested.has(ptr)) throw new MallocAbort(`${call}(): invalid pointer ${hex}`);
  }
}

/** The allocator `choice` names (or makes), else the one $VMLAB_MALLOC names, else ptmalloc. */
function makeAllocator(
  libc: Libc,
  choice: MallocOptions['allocator'],
  fromEnv: string | undefined,
): Allocator {
  if (typeof choice === 'function') return choice(libc);
  if (choice !== undefined || fromEnv === undefined) return createAllocator(choice ?? 'ptmalloc', libc);
  try {
    return createAllocator(fromEnv, libc);
  } catch (err) {
    if (err instanceof RangeError) throw new RangeError(`VMLAB_MALLOC: ${err.message}`);
    throw err;
  }
}

/** The leak check asked for, else $VMLAB_LEAK_CHECK, else off. */
function leakCheckOf(choice: LeakCheck | undefined, fromEnv: string | undefined): LeakCheck {
  const [value, source] =
    choice !== undefined ? [choice, 'leakCheck'] : [fromEnv ?? 'off', 'VMLAB_LEAK_CHECK'];
  if (!LEAK_CHECKS.includes(value)) throw new RangeError(`${source}: '${value}' is not off, summary or full`);
  return value as LeakCheck;
}

/** $VMLAB_MALLOC_CHECK as glibc reads MALLOC_CHECK_: unset, empty, 0 or off is cheap; 1, 2, 3 or full is full. */
function checkOf(fromEnv: string | undefined): MallocCheck {
  if (fromEnv === undefined || ['', '0', 'off'].includes(fromEnv)) return 'cheap';
  if (['1', '2', '3', 'full'].includes(fromEnv)) return 'full';
  throw new RangeError(`VMLAB_MALLOC_CHECK: '${fromEnv}' is not 0, 1, 2, 3, off or full`);
}
