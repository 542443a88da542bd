/**
 * The C library of a vmlab process: system-call wrappers that set `errno` and return -1 (as
 * glibc's do), sbrk over the raw brk, and the string and memory functions, all working on the
 * process's emulated memory through the MMU (range operations go a page at a time).
 */
import {
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../../kernel/proc/uapi.ts';

export const MAP_FAILED = -1;

/** libc's static storage is mapped in pieces of this many bytes. */
const STATIC_DATA_BYTES = 4096;

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
      this.staticNext = at;
      this.staticEnd = at + length;
    }
    const at = this.staticNext;
    this.staticNext += need;
    return at;
  }

  /** Anonymous private read-write memory; MAP_FAILED (-1) with errno on failure. */
  mapAnonymous(length: number): number {
    const r = this.ctx.sys.mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return r < 0 ? this.fail(-r) : r;
  }

  munmap(addr: number, length: number): number {
    const r = this.ctx.sys.munmap(addr, length);
    return r < 0 ? this.fail(-r) : 0;
  }

  madvise(addr: number, length: number, advice: number): number {
    const r = this.ctx.sys.madvise(addr, length, advice);
    return r < 0 ? this.fail(-r) : 0;
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
