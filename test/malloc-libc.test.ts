/**
 * The C library around the allocators: errno wrappers, the string functions, getpagesize,
 * mallinfo2 and malloc_stats for every allocator, and Malloc's defaults from the environment.
 */
import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import type { Task } from '../kernel/proc/task.ts';
import {
  EBADF,
  EFAULT,
  EINVAL,
  ENOENT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type UserMain,
} from '../kernel/proc/uapi.ts';
import { Libc, MAP_FAILED } from '../userland/libc/libc.ts';
import { Malloc } from '../userland/libc/malloc.ts';
import { ALLOCATOR_NAMES } from '../userland/malloc/index.ts';
import { PtmallocAllocator } from '../userland/malloc/ptmalloc.ts';

/**
 * Run `body` as a process of a fresh machine (its generator may yield); rethrows what it threw,
 * so that expect() failures inside the process fail the test. The task.
 */
function runLibc(
  body: (libc: Libc) => Generator<void, void, void>,
  options: { env?: Record<string, string>; end?: 'return' | 'exit' } = {},
): Task {
  let failure: unknown;
  const main: UserMain = function* (ctx) {
    const libc = new Libc(ctx);
    try {
      yield* body(libc);
    } catch (err) {
      failure = err;
    }
    return options.end === 'exit' ? libc.exit(0) : 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
    loader: (path) =>
      path === '/bin/child' ? undefined : { path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 },
    tunables: { overcommitMemory: 1 },
  });
  const t = m.kernel.spawn('/bin/libc', ['libc'], { env: options.env });
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  if (failure !== undefined) throw failure;
  expect(t.waitStatus).toBe(0);
  return t;
}

/** Put a NUL-terminated string at `va`. */
function putString(libc: Libc, va: number, s: string): void {
  libc.ctx.cpu.storeBytes(va, new TextEncoder().encode(`${s}\0`));
}

/** The NUL-terminated string at `va`. */
function getString(libc: Libc, va: number): string {
  return String.fromCharCode(
    ...Array.from({ length: libc.strlen(va) }, (_, i) => libc.ctx.cpu.load8(va + i)),
  );
}

describe('libc: system-call wrappers set errno and return -1', () => {
  it('mmap, munmap, mprotect', () => {
    runLibc(function* (libc) {
      expect(libc.mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)).toBe(MAP_FAILED);
      expect(libc.errno).toBe(EINVAL);
      const p = libc.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      expect(p).toBeGreaterThan(0);
      expect(p % 4096).toBe(0);
      libc.errno = 0;
      expect(libc.mprotect(p + 1, 4096, PROT_READ)).toBe(-1);
      expect(libc.errno).toBe(EINVAL);
      expect(libc.mprotect(p, 4096, PROT_READ)).toBe(0);
      libc.errno = 0;
      expect(libc.munmap(p + 7, 4096)).toBe(-1);
      expect(libc.errno).toBe(EINVAL);
      expect(libc.munmap(p, 8192)).toBe(0);
      yield;
    });
  });

  it('mremap: MAP_FAILED with errno, else the new address with the bytes moved', () => {
    runLibc(function* (libc) {
      const p = libc.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      libc.ctx.cpu.store64(p + 4096, 0x1234_5678_9abc);
      expect(libc.mremap(p, 8192, 16384, 8)).toBe(MAP_FAILED); // no such flag
      expect(libc.errno).toBe(EINVAL);
      libc.errno = 0;
      expect(libc.mremap(p + 8192, 4096, 8192, MREMAP_MAYMOVE)).toBe(MAP_FAILED); // nothing mapped
      expect(libc.errno).toBe(EFAULT);
      libc.errno = 0;
      const q = libc.mremap(p, 8192, 64 * 4096, MREMAP_MAYMOVE);
      expect(q).toBeGreaterThan(0);
      expect(libc.errno).toBe(0);
      expect(libc.ctx.cpu.load64(q + 4096)).toBe(0x1234_5678_9abc);
      expect(libc.munmap(q, 64 * 4096)).toBe(0);
      yield;
    });
  });

  it('open, read, write, close', () => {
    runLibc(function* (libc) {
      expect(libc.open('/no/such/file', O_RDONLY)).toBe(-1);
      expect(libc.errno).toBe(ENOENT);
      const buf = libc.mapAnonymous(4096);
      libc.errno = 0;
      expect(libc.read(99, buf, 10)).toBe(-1);
      expect(libc.errno).toBe(EBADF);
      libc.errno = 0;
      expect(libc.write(99, buf, 10)).toBe(-1);
      expect(libc.errno).toBe(EBADF);
      libc.errno = 0;
      expect(libc.close(99)).toBe(-1);
      expect(libc.errno).toBe(EBADF);
      const fd = libc.open('/note.txt', O_CREAT | O_RDWR);
      expect(fd).toBeGreaterThanOrEqual(0);
      putString(libc, buf, 'hello');
      expect(libc.write(fd, buf, 5)).toBe(5);
      expect(libc.close(fd)).toBe(0);
      const again = libc.open('/note.txt', O_RDONLY);
      libc.memset(buf, 0, 16);
      expect(libc.read(again, buf, 16)).toBe(5);
      expect(getString(libc, buf)).toBe('hello');
      expect(libc.close(again)).toBe(0);
      yield;
    });
  });

  it('fork takes the child code, returns its pid, and the child sees the parent memory', () => {
    let childSaw = -1;
    const t = runLibc(function* (libc) {
      const page = libc.mapAnonymous(4096);
      libc.ctx.cpu.store32(page, 1234);
      const pid = libc.fork(function* (ctx) {
        childSaw = ctx.cpu.load32(page);
        yield;
        return 7;
      });
      expect(pid).toBeGreaterThan(libc.ctx.sys.getpid());
      const got = yield* libc.ctx.sys.wait4(pid, 0, 0);
      expect(got).toBe(pid);
    });
    expect(t.waitStatus).toBe(0);
    expect(childSaw).toBe(1234);
  });
});

describe('libc: string functions on emulated memory', () => {
  it('strcpy, strncpy, strcat, strcmp, strncmp, strchr', () => {
    runLibc(function* (libc) {
      const mem = libc.mapAnonymous(4096);
      const a = mem;
      const b = mem + 256;
      const c = mem + 512;
      putString(libc, a, 'page');
      expect(libc.strcpy(b, a)).toBe(b);
      expect(getString(libc, b)).toBe('page');
      putString(libc, c, ' fault');
      expect(libc.strcat(b, c)).toBe(b);
      expect(getString(libc, b)).toBe('page fault');
      libc.memset(c, 0x7a, 16);
      expect(libc.strncpy(c, a, 8)).toBe(c);
      expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => libc.ctx.cpu.load8(c + i))).toEqual([
        0x70, 0x61, 0x67, 0x65, 0, 0, 0, 0, 0x7a,
      ]); // padded with NULs to n, the byte past n untouched
      libc.strncpy(c, b, 4); // no NUL when src is longer
      expect(libc.ctx.cpu.load8(c + 4)).toBe(0);
      expect(libc.strcmp(a, b)).toBeLessThan(0); // 'page' < 'page fault'
      expect(libc.strcmp(b, a)).toBeGreaterThan(0);
      expect(libc.strcmp(a, a)).toBe(0);
      expect(libc.strncmp(a, b, 4)).toBe(0);
      expect(libc.strncmp(a, b, 5)).toBeLessThan(0);
      putString(libc, c, '\xff');
      expect(libc.strcmp(c, a)).toBeGreaterThan(0); // bytes compare as unsigned char
      expect(libc.strchr(b, ' '.charCodeAt(0))).toBe(b + 4);
      expect(libc.strchr(b, 'q'.charCodeAt(0))).toBe(0);
      expect(libc.strchr(b, 0)).toBe(b + 10);
      yield;
    });
  });
});

describe('libc: getpagesize', () => {
  it('finds the 4 KiB page of x86-64', () => {
    runLibc(function* (libc) {
      expect(libc.getpagesize()).toBe(4096);
      yield;
    });
  });
});

describe('mallinfo2 for every allocator', () => {
  it('adds up (arena = uordblks + fordblks) and follows mallocs and frees', () => {
    runLibc(function* (libc) {
      for (const name of ALLOCATOR_NAMES) {
        const heap = new Malloc(new Libc(libc.ctx), name);
        expect(heap.mallinfo2(), name).toMatchObject({ arena: 0, uordblks: 0, fordblks: 0 });
        const ptrs = [10, 100, 1000, 5000, 40000, 200_000].map((n) => heap.malloc(n));
        heap.free(ptrs[1]!);
        heap.free(ptrs[3]!);
        const mi = heap.mallinfo2();
        expect(mi.arena + mi.hblkhd, name).toBe(heap.allocator.stats().heapBytes);
        expect(mi.uordblks + mi.fordblks, name).toBe(mi.arena);
        expect(mi.fsmblks, name).toBeLessThanOrEqual(mi.fordblks);
        expect(mi.keepcost, name).toBeLessThanOrEqual(mi.fordblks);
        expect(mi.usmblks, name).toBe(0);
        expect(mi.uordblks + mi.hblkhd, name).toBeGreaterThanOrEqual(10 + 1000 + 40000 + 200_000);
        for (const p of [ptrs[0], ptrs[2], ptrs[4], ptrs[5]]) heap.free(p!);
        heap.allocator.checkHeap();
      }
      yield;
    });
  });

  it('ptmalloc: the mapped chunk in hblks and hblkhd, the top in keepcost and ordblks, fast chunks in smblks', () => {
    runLibc(function* (libc) {
      const heap = new Malloc(libc, 'ptmalloc');
      const big = heap.malloc(300 * 1024);
      const small = Array.from({ length: 10 }, () => heap.malloc(40));
      for (const p of small) heap.free(p); // 7 to the tcache (in use, as in glibc), 3 to a fast bin
      const mi = heap.mallinfo2();
      expect(mi).toMatchObject({ hblks: 1, smblks: 3, fsmblks: 3 * 48, ordblks: 1 });
      expect(mi.hblkhd).toBeGreaterThanOrEqual(300 * 1024);
      expect(mi.keepcost).toBe(mi.fordblks - mi.fsmblks); // nothing else is free
      heap.free(big);
      expect(heap.mallinfo2()).toMatchObject({ hblks: 0, hblkhd: 0 });
      yield;
    });
  });

  it('an allocator without mallinfo2 gets one derived from stats()', () => {
    runLibc(function* (libc) {
      const heap = new Malloc(libc, {
        allocator: (l) => {
          const inner = new PtmallocAllocator(l);
          return Object.assign(Object.create(inner) as PtmallocAllocator, { mallinfo2: undefined });
        },
      });
      const p = heap.malloc(1000);
      const s = heap.allocator.stats();
      expect(heap.mallinfo2()).toEqual({
        arena: s.heapBytes,
        ordblks: 0,
        smblks: 0,
        hblks: 0,
        hblkhd: 0,
        usmblks: 0,
        fsmblks: 0,
        uordblks: s.inUseBytes,
        fordblks: s.heapBytes - s.inUseBytes,
        keepcost: 0,
      });
      heap.free(p);
      yield;
    });
  });
});

describe('malloc_stats', () => {
  it("prints Arena 0 without the mapped chunks and the total with them, and the mmap peaks (glibc's report)", () => {
    const t = runLibc(function* (libc) {
      const heap = new Malloc(libc, 'ptmalloc');
      const a = heap.malloc(1000);
      const big = heap.malloc(300 * 1024);
      const big2 = heap.malloc(400 * 1024);
      heap.free(big2);
      heap.mallocStats();
      heap.free(big);
      heap.free(a);
      yield;
    });
    const lines = t.stderr.trimEnd().split('\n');
    const value = (i: number): number => Number(lines[i]!.split('=')[1]);
    expect(lines[0]).toBe('Arena 0:');
    expect(lines[3]).toBe('Total (incl. mmap):');
    const mapped = Math.ceil((300 * 1024 + 8) / 4096) * 4096;
    expect(value(1)).toBe(33 * 4096); // the brk heap: glibc's first 33 pages
    expect(value(4)).toBe(value(1) + mapped);
    expect(value(5)).toBe(value(2) + mapped);
    expect(lines[6]).toMatch(/^max mmap regions = +2$/);
    expect(value(7)).toBe(mapped + Math.ceil((400 * 1024 + 8) / 4096) * 4096);
  });
});

describe('Malloc from the environment', () => {
  it('takes its allocator from VMLAB_MALLOC and its leak check from VMLAB_LEAK_CHECK', () => {
    const t = runLibc(
      function* (libc) {
        const heap = new Malloc(libc);
        expect(heap.allocator.name).toBe('segfit');
        expect(new Malloc(libc, { allocator: 'sizeclass', leakCheck: 'off' }).allocator.name).toBe(
          'sizeclass',
        ); // arguments win
        heap.malloc(100);
        yield;
      },
      { env: { VMLAB_MALLOC: 'segfit', VMLAB_LEAK_CHECK: 'summary' }, end: 'exit' },
    );
    expect(t.stdout).toMatch(/definitely lost: 100 bytes in 1 blocks/);
  });

  it('defaults to ptmalloc with no leak check, and names the variable of a bad value', () => {
    const t = runLibc(function* (libc) {
      expect(new Malloc(libc).allocator.name).toBe('ptmalloc');
      expect(new Malloc(libc).check).toBe('cheap');
      yield;
    });
    expect(t.stdout).toBe('');
    for (const [env, message] of [
      [{ VMLAB_MALLOC: 'nosuch' }, /^VMLAB_MALLOC: unknown allocator 'nosuch'/],
      [{ VMLAB_LEAK_CHECK: 'loud' }, /^VMLAB_LEAK_CHECK: 'loud' is not off, summary or full$/],
      [{ VMLAB_MALLOC_CHECK: 'yes' }, /^VMLAB_MALLOC_CHECK: 'yes' is not/],
    ] as const) {
      runLibc(
        function* (libc) {
          expect(() => new Malloc(libc)).toThrow(message);
          yield;
        },
        { env },
      );
    }
  });
});
