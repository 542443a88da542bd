/**
 * The C library of a vmlab process: system-call wrappers that set `errno` and return -1 (as
 * glibc's do), sbrk over the raw brk, getpagesize, and the string and memory functions, all
 * working on the process's emulated memory through the MMU (range operations go a page at a
 * time).
 */
import {
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../../kernel/proc/uapi.ts';

export const MAP_FAILED = -1;

/**
 * libc's static storage is mapped in pieces of this many bytes. The first piece stands for a C
 * library's own .data and .bss (ptmalloc's arena lives there, as glibc's main_arena does), so
 * the malloc-replay footprint leaves it out.
 */
export const STATIC_DATA_BYTES = 4096;

/** The largest page getpagesize looks for (vmlab's formats have pages from 16 bytes to 64 KiB). */
const MAX_PAGE_BYTES = 1 << 30;

export class Libc {
  readonly ctx: UserContext;
  errno = 0;
  private chunk = new Uint8Array(4096);
  private chunk2 = new Uint8Array(4096);
  /** atexit handlers, in registration order. */
  private atexitHandlers: Array<() => void> = [];
  /** libc's static storage: the current piece [staticNext, staticEnd). */
  private staticNext = 0;
  private staticEnd = 0;
  /** Every piece of static storage mapped, [start, end), in the order mapped. */
  private staticPieces: Array<[number, number]> = [];
  /** The machine's page size, once getpagesize has found it (0 before). */
  private pageBytes = 0;

  constructor(ctx: UserContext) {
    this.ctx = ctx;
  }

  /** atexit(3): have exit() call `handler`; handlers run last registered first, each once. */
  atexit(handler: () => void): void {
    this.atexitHandlers.push(handler);
  }

  /** exit(3): run the atexit handlers (the leak report among them), then end the process. */
  exit(code: number): never {
    for (let h = this.atexitHandlers.pop(); h !== undefined; h = this.atexitHandlers.pop()) h();
    return this.ctx.sys.exit(code);
  }

  /** Move the break by `increment` bytes; the old break, or -1 with errno ENOMEM. */
  sbrk(increment: number): number {
    const sys = this.ctx.sys;
    const old = sys.brk(0);
    if (increment === 0) return old;
    if (!Number.isSafeInteger(increment)) return this.fail(ENOMEM);
    const want = old + increment;
    if (want < 0 || sys.brk(want) !== want) return this.fail(ENOMEM);
    return old;
  }

  /**
   * Reserve `bytes` of libc's own static storage, zeroed and 16-byte aligned: what the .data and
   * .bss of a shared C library hold, which the dynamic loader maps beside the program (glibc's
   * main_arena lives there, not in the heap). Reserved for the life of the process. Its address,
   * or MAP_FAILED (-1) with errno.
   */
  staticData(bytes: number): number {
    const need = Math.ceil(bytes / 16) * 16;
    if (!(need > 0) || !Number.isSafeInteger(need)) return this.fail(EINVAL);
    if (this.staticNext + need > this.staticEnd) {
      const length = Math.ceil(need / STATIC_DATA_BYTES) * STATIC_DATA_BYTES;
      const at = this.mapAnonymous(length);
      if (at === MAP_FAILED) return MAP_FAILED;
      this.staticPieces.push([at, at + length]);
      this.staticNext = at;
      this.staticEnd = at + length;
    }
    const at = this.staticNext;
    this.staticNext += need;
    return at;
  }

  /** The pieces of static storage mapped so far, [start, end) as mapped (bytes asked), first first. */
  staticRegions(): ReadonlyArray<readonly [number, number]> {
    return this.staticPieces;
  }

  /**
   * getpagesize(3): the machine's page size in bytes. A C library reads it from the auxiliary
   * vector; here it is probed once with zero-length mprotect calls, which fail with EINVAL
   * exactly when the address is not page-aligned and change nothing otherwise: the smallest
   * power of two that, added to a page-aligned address, gives an aligned one.
   */
  getpagesize(): number {
    if (this.pageBytes !== 0) return this.pageBytes;
    const sys = this.ctx.sys;
    let base = sys.vmlab_maps()[0]?.start ?? -1;
    let mapped = false;
    if (base < 0) {
      base = sys.mmap(0, 1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) throw new Error(`getpagesize: no mapping to probe (errno ${-base})`);
      mapped = true;
    }
    let page = 1;
    while (page < MAX_PAGE_BYTES && sys.mprotect(base + page, 0, PROT_NONE) !== 0) page *= 2;
    if (mapped) sys.munmap(base, 1);
    this.pageBytes = page;
    return page;
  }

  /** mmap(2): the mapping's address, or MAP_FAILED (-1) with errno. */
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
    const r = this.ctx.sys.mmap(addr, length, prot, flags, fd, offset);
    return r < 0 ? this.fail(-r) : r;
  }

  /** Anonymous private read-write memory; MAP_FAILED (-1) with errno on failure. */
  mapAnonymous(length: number): number {
    return this.mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }

  /** munmap(2): 0, or -1 with errno. */
  munmap(addr: number, length: number): number {
    return this.check(this.ctx.sys.munmap(addr, length));
  }

  /** mremap(2): the mapping's (possibly new) address, or MAP_FAILED (-1) with errno. */
  mremap(oldAddr: number, oldLength: number, newLength: number, flags: number, newAddr = 0): number {
    const r = this.ctx.sys.mremap(oldAddr, oldLength, newLength, flags, newAddr);
    return r < 0 ? this.fail(-r) : r;
  }

  /** mprotect(2): 0, or -1 with errno. */
  mprotect(addr: number, length: number, prot: number): number {
    return this.check(this.ctx.sys.mprotect(addr, length, prot));
  }

  /** madvise(2): 0, or -1 with errno. */
  madvise(addr: number, length: number, advice: number): number {
    return this.check(this.ctx.sys.madvise(addr, length, advice));
  }

  /** open(2): a file descriptor, or -1 with errno. `mode` (for O_CREAT) defaults to 0644. */
  open(path: string, flags: number, mode?: number): number {
    return this.check(this.ctx.sys.open(path, flags, mode));
  }

  /** read(2) into emulated memory at `buf`: bytes read (0 at end of file), or -1 with errno. */
  read(fd: number, buf: number, count: number): number {
    return this.check(this.ctx.sys.read(fd, buf, count));
  }

  /** write(2) from emulated memory at `buf`: bytes written, or -1 with errno. */
  write(fd: number, buf: number, count: number): number {
    return this.check(this.ctx.sys.write(fd, buf, count));
  }

  /** close(2): 0, or -1 with errno. */
  close(fd: number): number {
    return this.check(this.ctx.sys.close(fd));
  }

  /**
   * fork(2): the child's pid in the parent, or -1 with errno. The child runs `child` (as
   * sys.fork: a generator cannot be cloned, so the child's code is given; its memory is a
   * copy-on-write copy of the parent's).
   */
  fork(child: UserMain): number {
    return this.check(this.ctx.sys.fork(child));
  }

  memset(dst: number, byte: number, n: number): number {
    this.ctx.cpu.fillBytes(dst, n, byte & 0xff);
    return dst;
  }

  /** Copy n bytes from src to dst (regions must not overlap; memmove handles overlap). */
  memcpy(dst: number, src: number, n: number): number {
    return this.copy(dst, src, n, 'forward');
  }

  memmove(dst: number, src: number, n: number): number {
    return this.copy(dst, src, n, dst > src && dst < src + n ? 'backward' : 'forward');
  }

  /** <0, 0 or >0 as the first differing byte compares. */
  memcmp(a: number, b: number, n: number): number {
    const cpu = this.ctx.cpu;
    for (let done = 0; done < n; ) {
      const len = Math.min(this.chunk.length, n - done);
      cpu.loadBytes(a + done, this.chunk, 0, len);
      cpu.loadBytes(b + done, this.chunk2, 0, len);
      for (let i = 0; i < len; i++)
        if (this.chunk[i] !== this.chunk2[i]) return this.chunk[i]! - this.chunk2[i]!;
      done += len;
    }
    return 0;
  }

  strlen(s: number): number {
    let n = 0;
    while (this.ctx.cpu.load8(s + n) !== 0) n++;
    return n;
  }

  /** strnlen: the length of `s`, or `max` when no NUL is among its first `max` bytes. */
  strnlen(s: number, max: number): number {
    let n = 0;
    while (n < max && this.ctx.cpu.load8(s + n) !== 0) n++;
    return n;
  }

  /** strcpy: copy `src` and its NUL to `dst` (they must not overlap); `dst`. */
  strcpy(dst: number, src: number): number {
    return this.memcpy(dst, src, this.strlen(src) + 1);
  }

  /** strncpy: at most `n` bytes of `src` to `dst`, the rest of the `n` NUL (no NUL when `src` is longer); `dst`. */
  strncpy(dst: number, src: number, n: number): number {
    const len = this.strnlen(src, n);
    this.memcpy(dst, src, len);
    if (n > len) this.memset(dst + len, 0, n - len);
    return dst;
  }

  /** strcat: append `src` (and its NUL) to the string at `dst`; `dst`. */
  strcat(dst: number, src: number): number {
    this.strcpy(dst + this.strlen(dst), src);
    return dst;
  }

  /** strcmp: <0, 0 or >0 as the first differing byte compares (as unsigned char). */
  strcmp(a: number, b: number): number {
    return this.strncmp(a, b, Number.POSITIVE_INFINITY);
  }

  /** strncmp: strcmp over at most `n` bytes. */
  strncmp(a: number, b: number, n: number): number {
    const cpu = this.ctx.cpu;
    for (let i = 0; i < n; i++) {
      const x = cpu.load8(a + i);
      const y = cpu.load8(b + i);
      if (x !== y || x === 0) return x - y;
    }
    return 0;
  }

  /** strchr: the address of the first byte `c` in `s` (its NUL when `c` is 0), or 0 (NULL). */
  strchr(s: number, c: number): number {
    const cpu = this.ctx.cpu;
    const want = c & 0xff;
    for (let p = s; ; p++) {
      const x = cpu.load8(p);
      if (x === want) return p;
      if (x === 0) return 0;
    }
  }

  /** Write a JavaScript string to a file descriptor (through a scratch buffer in emulated memory). */
  puts(text: string, fd = 1): number {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length === 0) return 0;
    const buf = this.mapAnonymous(bytes.length);
    if (buf === MAP_FAILED) return -1;
    this.ctx.cpu.storeBytes(buf, bytes);
    const r = this.ctx.sys.write(fd, buf, bytes.length);
    this.munmap(buf, bytes.length);
    return r < 0 ? this.fail(-r) : r;
  }

  /** printf with %d %u %x %s %p %%: enough for reports and teaching programs. */
  printf(format: string, ...args: Array<number | string>): number {
    let i = 0;
    const text = format.replace(/%([dusxp%])/g, (_m, c: string) => {
      if (c === '%') return '%';
      const v = args[i++];
      if (c === 's') return String(v);
      if (c === 'x') return Number(v).toString(16);
      if (c === 'p') return `0x${Number(v).toString(16)}`;
      return String(Math.trunc(Number(v)));
    });
    return this.puts(text);
  }

  /** Set errno and return -1. */
  fail(errno: number): -1 {
    this.errno = errno === 0 ? EINVAL : errno;
    return -1;
  }

  /** A raw system call's result: itself, or -1 with errno when it is -errno. */
  private check(r: number): number {
    return r < 0 ? this.fail(-r) : r;
  }

  private copy(dst: number, src: number, n: number, direction: 'forward' | 'backward'): number {
    const cpu = this.ctx.cpu;
    const step = this.chunk.length;
    if (direction === 'forward') {
      for (let done = 0; done < n; done += step) {
        const len = Math.min(step, n - done);
        cpu.loadBytes(src + done, this.chunk, 0, len);
        cpu.storeBytes(dst + done, this.chunk.subarray(0, len));
      }
    } else {
      for (let end = n; end > 0; end -= step) {
        const len = Math.min(step, end);
        cpu.loadBytes(src + end - len, this.chunk, 0, len);
        cpu.storeBytes(dst + end - len, this.chunk.subarray(0, len));
      }
    }
    return dst;
  }
}

/**
 * A program's entry point as C's start-up code runs it: a Libc for the process, then main,
 * whose return value goes to exit() (so atexit handlers, such as the leak report, run).
 */
export function withLibc(main: (libc: Libc) => Generator<void, number | undefined, void>): UserMain {
  return function* (ctx) {
    const libc = new Libc(ctx);
    const code = yield* main(libc);
    return libc.exit(code ?? 0);
  };
}
