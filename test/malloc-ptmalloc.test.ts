import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENOMEM, SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { M_MMAP_MAX, M_TOP_PAD, PtmallocAllocator } from '../userland/malloc/ptmalloc.ts';
import { PayloadModel, runAllocatorProgram, runChecked as runCheckedIn } from './helpers/malloc.ts';

/** Run `body` as a process on a fresh machine; the task and the kernel log's last line. */
const runProgram = (body: (ctx: UserContext) => void) =>
  runAllocatorProgram('ptmalloc', body, { overcommit: 1 });

/** Run `body`, rethrowing what it threw (expect failures inside the emulated process). */
const runChecked = (body: (ctx: UserContext) => void) => runCheckedIn('ptmalloc', body, { overcommit: 1 });

const PAGE = 4096;

/** Sizes for every path: tcache and fast bins, small bins, large bins, mmapped chunks. */
const size = fc.oneof(
  fc.integer({ min: 0, max: 120 }),
  fc.integer({ min: 121, max: 1100 }),
  fc.integer({ min: 1100, max: 20000 }),
  fc.integer({ min: 100_000, max: 300_000 }),
);
const op = fc.record({
  kind: fc.constantFrom('malloc', 'malloc', 'free', 'free', 'realloc', 'calloc', 'memalign'),
  pick: fc.nat(),
  size,
});

describe('ptmalloc against a model', () => {
  it('blocks never overlap, are aligned, keep their bytes; the heap checks after every step and trims back', () => {
    runChecked((ctx) => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 150, size: 'max' }), (ops) => {
          const a = new PtmallocAllocator(new Libc(ctx));
          a.free(a.malloc(1));
          a.releaseMemory();
          const initial = a.stats().heapBytes;
          const model = new PayloadModel(ctx, a);
          for (const o of ops) {
            const victim = model.victim(o.pick);
            if (o.kind === 'calloc') {
              const p = a.calloc(1, o.size);
              const got = new Uint8Array(o.size);
              ctx.cpu.loadBytes(p, got);
              expect(got.every((b) => b === 0)).toBe(true);
              model.add(p, o.size);
            } else if (o.kind === 'memalign') {
              const align = 32 << (o.pick % 8);
              model.add(a.memalign(align, o.size), o.size, align);
            } else if (o.kind === 'malloc' || victim === 0) {
              model.add(a.malloc(o.size), o.size);
            } else if (o.kind === 'free') {
              model.freed(victim);
              a.free(victim);
            } else if (o.size === 0) {
              model.live.delete(victim);
              expect(a.realloc(victim, 0)).toBe(0); // glibc: realloc(p, 0) frees p
            } else {
              model.moved(victim, a.realloc(victim, o.size), o.size);
            }
            a.checkHeap();
            expect(a.stats().inUseBlocks).toBe(model.live.size);
            expect(a.liveBlocks().map((b) => b.ptr)).toEqual(model.sorted());
          }
          for (const p of model.live.keys()) a.free(p);
          a.releaseMemory();
          a.checkHeap();
          expect(a.stats().inUseBytes).toBe(0);
          expect(a.liveBlocks()).toEqual([]);
          expect(a.stats().heapBytes).toBeLessThanOrEqual(initial);
        }),
        { seed: 11, numRuns: 60 },
      );
    });
  });
});

describe("ptmalloc's glibc behaviour", () => {
  it('starts with a heap of 33 pages holding only chunks: the arena is in libc static storage', () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(1);
      // glibc's first sysmalloc: the 656-byte tcache table + MINSIZE + 128 KiB top_pad, in pages.
      expect(a.stats().heapBytes).toBe(33 * PAGE);
      const [arena, heap] = a.ownedRegions();
      expect(p).toBeGreaterThanOrEqual(heap![0]);
      expect(arena![1] <= heap![0] || arena![0] >= heap![1]).toBe(true);
      a.checkHeap();
    });
  });

  it('caches up to 7 freed chunks of a size in the tcache and hands them back last in, first out', () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const ptrs = Array.from({ length: 9 }, () => a.malloc(200));
      for (const p of ptrs) a.free(p);
      a.checkHeap();
      // The first 7 frees filled the cache; the last 2 were coalesced into the top.
      const again = Array.from({ length: 7 }, () => a.malloc(200));
      expect(again).toEqual(ptrs.slice(0, 7).reverse());
      a.checkHeap();
    });
  });

  it('a double free into the tcache is caught by its key', () => {
    const { t, lastLog } = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(40);
      a.malloc(40);
      a.free(p);
      a.free(p);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/free\(\): double free detected in tcache 2 at 0x[0-9a-f]+/);
  });

  it('a double free of a coalesced chunk and a free of a bogus pointer abort', () => {
    const twice = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(5000); // past the tcache sizes
      a.malloc(16);
      a.free(p);
      a.free(p);
    });
    expect(WTERMSIG(twice.t.waitStatus)).toBe(SIGABRT);
    expect(twice.lastLog).toMatch(/free\(\): double free detected at 0x[0-9a-f]+/);
    const bogus = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(100);
      a.free(p + 8);
    });
    expect(WTERMSIG(bogus.t.waitStatus)).toBe(SIGABRT);
    expect(bogus.lastLog).toMatch(/free\(\): invalid (size or )?pointer/);
  });

  it('a smashed size word is caught by checkHeap', () => {
    const { t, lastLog } = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(300);
      a.malloc(300);
      ctx.cpu.store64(p - 8, 12345);
      a.checkHeap();
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/corrupted size at chunk/);
  });

  it("realloc merges with the top grown by sbrk (glibc's newp == next) instead of copying", () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(100_000); // below the mmap threshold: from the top
      const before = a.stats().heapBytes;
      const q = a.realloc(p, 120_000); // more than the top holds: sysmalloc grows it
      expect(q).toBe(p);
      // Grown by the shortfall plus top_pad, in pages; a copy would have needed ~100 KB more.
      expect(a.stats().heapBytes - before).toBeLessThan(140 * 1024);
      a.checkHeap();
    });
  });

  it('realloc of an mmapped chunk leaves the mmap threshold alone; free raises it', () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(200_000);
      expect(a.stats().heapBytes).toBeGreaterThan(200_000 + 33 * PAGE - 1);
      const q = a.realloc(p, 260_000); // mremap_chunk: the mapping grows or moves, no copy
      expect(a.tunables.mmapThreshold).toBe(128 * 1024);
      a.free(q);
      expect(a.tunables.mmapThreshold).toBe(Math.ceil((260_000 + 16) / PAGE) * PAGE);
      expect(a.tunables.trimThreshold).toBe(2 * a.tunables.mmapThreshold);
      a.checkHeap();
    });
  });

  it("realloc of an mmapped chunk is glibc's mremap_chunk: the pages move, none is copied or faulted in", () => {
    runChecked((ctx) => {
      const libc = new Libc(ctx);
      const a = new PtmallocAllocator(libc);
      const p = a.malloc(300_000);
      const blocker = libc.mapAnonymous(PAGE); // usually right below: growth in place may be refused
      for (let off = 0; off < 300_000; off += PAGE) ctx.cpu.store32(p + off, off ^ 0x5a5a);
      const frames = (at: number) =>
        Array.from({ length: Math.ceil(300_000 / PAGE) }, (_, k) =>
          Math.floor(ctx.sys.vmlab_pageinfo(at + k * PAGE).physAddr / PAGE),
        );
      const before = frames(p);
      const q = a.realloc(p, 3_000_000);
      let kept = 0;
      for (let off = 0; off < 300_000; off += PAGE) if (ctx.cpu.load32(q + off) === (off ^ 0x5a5a)) kept++;
      expect(kept).toBe(Math.ceil(300_000 / PAGE));
      expect(frames(q)).toEqual(before); // the same frames: moved, not copied
      expect(ctx.sys.vmlab_pageinfo(q + 2_000_000).present).toBe(false); // and nothing new faulted in
      expect(a.usableSize(q)).toBeGreaterThanOrEqual(3_000_000);
      expect(a.mallinfo2().hblkhd).toBe(Math.ceil((3_000_000 + 16) / PAGE) * PAGE);
      const r = a.realloc(q, 100_000); // shrinks in place: the tail goes back to the kernel
      expect(r).toBe(q);
      expect(a.mallinfo2().hblkhd).toBe(Math.ceil((100_000 + 16) / PAGE) * PAGE);
      a.free(r);
      expect(a.mallinfo2().hblkhd).toBe(0);
      libc.munmap(blocker, PAGE);
      a.checkHeap();
    });
  });

  it('serves a request at the mmap threshold from a free chunk of the heap when one fits', () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      a.mallopt(-3, 64 * 1024); // M_MMAP_THRESHOLD: fixed, so the dynamic threshold stays out
      a.mallopt(-1, 1024 * 1024); // M_TRIM_THRESHOLD: keep the freed space
      const small = Array.from({ length: 40 }, () => a.malloc(4000));
      const keep = a.malloc(16); // keeps the freed run off the top
      for (const p of small) a.free(p);
      const mapped = a.stats().heapBytes;
      const big = a.malloc(100_000); // above the threshold, but 160 KB lie free in the heap
      expect(a.stats().heapBytes).toBe(mapped);
      expect(big).toBeLessThan(keep);
      a.checkHeap();
    });
  });
});

describe('ptmalloc: mallopt M_TOP_PAD and M_MMAP_MAX', () => {
  it('M_TOP_PAD sets what the heap grows by past the request (glibc: 128 KiB)', () => {
    runChecked((ctx) => {
      const none = new PtmallocAllocator(new Libc(ctx));
      expect(none.mallopt(M_TOP_PAD, 0)).toBe(1);
      none.malloc(1);
      // The first growth: the 656-byte tcache table + MINSIZE, in pages, and no pad.
      expect(none.stats().heapBytes).toBe(PAGE);
      const brk = ctx.sys.brk(0);
      none.malloc(10_000); // a 10,016-byte chunk; the top holds 4096 - 656 - 32 = 3408 bytes
      // Grown by the shortfall (and MINSIZE for the new top) alone, in pages.
      expect(ctx.sys.brk(0) - brk).toBe(Math.ceil((10_016 + 32 - 3408) / PAGE) * PAGE);
      none.checkHeap();
    });
    runChecked((ctx) => {
      const big = new PtmallocAllocator(new Libc(ctx));
      expect(big.mallopt(M_TOP_PAD, 1024 * 1024)).toBe(1);
      big.malloc(1);
      expect(big.stats().heapBytes).toBe(1024 * 1024 + PAGE);
      expect(big.mallopt(M_TOP_PAD, -1)).toBe(0); // a bad value is refused
      expect(big.tunables.topPad).toBe(1024 * 1024);
      big.checkHeap();
    });
  });

  it('M_MMAP_MAX caps the mapped chunks: past it, big requests come from the heap', () => {
    runChecked((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      expect(a.mallopt(M_MMAP_MAX, 1)).toBe(1);
      const first = a.malloc(300 * 1024);
      expect(a.mallinfo2()).toMatchObject({ hblks: 1 });
      const heapBefore = a.mallinfo2().arena;
      const second = a.malloc(300 * 1024); // the one mapping allowed is taken: sbrk instead
      expect(a.mallinfo2().hblks).toBe(1);
      expect(a.mallinfo2().arena - heapBefore).toBeGreaterThanOrEqual(300 * 1024);
      expect(a.usableSize(second)).toBeGreaterThanOrEqual(300 * 1024);
      a.free(first);
      a.free(second);
      expect(a.mallopt(M_MMAP_MAX, 0)).toBe(1); // none at all
      const third = a.malloc(2 * 1024 * 1024);
      expect(a.mallinfo2().hblks).toBe(0);
      a.free(third);
      a.checkHeap();
    });
  });
});

describe('ptmalloc: a corrupted free-list link', () => {
  it('ends in SIGABRT with glibc\'s "corrupted double-linked list" when free unlinks the chunk', () => {
    let chunk = 0;
    const { t, lastLog } = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(2000); // past the tcache and the fast bins: freed into the unsorted bin
      const q = a.malloc(2000);
      a.malloc(2000); // keeps q off the top
      a.free(p);
      ctx.cpu.store64(p, p + 64); // the bug: a write through a stale pointer, over p's fd link
      chunk = p - 16;
      a.free(q); // coalesces with p: unlinking p follows the bad link
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toContain(`corrupted double-linked list at chunk 0x${chunk.toString(16)}`);
  });

  it('is found by checkHeap when no call follows the link', () => {
    const { t, lastLog } = runProgram((ctx) => {
      const a = new PtmallocAllocator(new Libc(ctx));
      const p = a.malloc(2000);
      a.malloc(2000);
      a.free(p);
      ctx.cpu.store64(p + 8, p); // p's bk
      a.checkHeap();
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/malloc\(\): corrupted double-linked list at 0x[0-9a-f]+/);
  });
});

describe('ptmalloc with hostile sizes', () => {
  it('returns NULL with ENOMEM for sizes it cannot serve, keeps the block a failed realloc had, and never crashes', () => {
    const got: Record<string, number> = {};
    runChecked((ctx) => {
      const libc = new Libc(ctx);
      const a = new PtmallocAllocator(libc);
      const zero = a.malloc(0); // glibc: a minimum chunk, not NULL
      got.zeroUsable = a.usableSize(zero);
      for (const [name, n] of [
        ['negative', -1],
        ['fraction', 1.5],
        ['nan', Number.NaN],
        ['huge', 2 ** 50],
        ['overSafe', 2 ** 64],
      ] as const) {
        libc.errno = 0;
        got[name] = a.malloc(n) + libc.errno;
      }
      libc.errno = 0;
      got.callocOverflow = a.calloc(2 ** 40, 2 ** 30) + libc.errno;
      const one = a.malloc(1);
      libc.errno = 0;
      got.reallocHuge = a.realloc(one, 2 ** 50) + libc.errno;
      got.stillUsable = a.usableSize(one);
      got.badAlignment = a.memalign(48, 10) + libc.errno;
      const aligned = a.memalign(4096, 100);
      got.aligned = aligned % 4096;
      a.free(aligned);
      a.free(one);
      a.free(zero);
      a.free(0);
      a.checkHeap();
    });
    expect(got).toEqual({
      zeroUsable: 24,
      negative: ENOMEM,
      fraction: ENOMEM,
      nan: ENOMEM,
      huge: ENOMEM,
      overSafe: ENOMEM,
      callocOverflow: ENOMEM,
      reallocHuge: ENOMEM,
      stillUsable: 24,
      badAlignment: ENOMEM,
      aligned: 0,
    });
  });
});
