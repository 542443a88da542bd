import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENOMEM, SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { SegfitAllocator } from '../userland/malloc/segfit.ts';
import { PayloadModel, runAllocatorProgram, runChecked } from './helpers/malloc.ts';

/** Run `body` as a process on a fresh machine; the task and the kernel log's last line. */
const runProgram = (body: (ctx: UserContext) => void) => runAllocatorProgram('segfit', body);

/** Sizes that reach every path: slab classes, regular blocks, big blocks. */
const size = fc.oneof(
  fc.integer({ min: 1, max: 80 }),
  fc.integer({ min: 81, max: 2000 }),
  fc.integer({ min: 2000, max: 40000 }),
);
const op = fc.record({ kind: fc.constantFrom('malloc', 'malloc', 'free', 'realloc'), pick: fc.nat(), size });

describe('segfit against a model', () => {
  it('blocks never overlap, are 16-byte aligned, keep their bytes; the heap checks after every step and returns to its footprint', () => {
    runChecked('segfit', (ctx) => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 120, size: 'max' }), (ops) => {
          const a = new SegfitAllocator(new Libc(ctx));
          a.free(a.malloc(1));
          a.releaseMemory();
          const initial = a.stats().heapBytes;
          const model = new PayloadModel(ctx, a);
          for (const o of ops) {
            const victim = model.victim(o.pick);
            if (o.kind === 'malloc' || victim === 0) {
              model.add(a.malloc(o.size), o.size);
            } else if (o.kind === 'free') {
              model.freed(victim);
              a.free(victim);
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
          expect(a.stats().heapBytes).toBe(initial);
        }),
        { seed: 7, numRuns: 80 },
      );
    });
  });

  it('puts small objects in headerless slabs and grows realloc in place at the top', () => {
    const seen: Record<string, number> = {};
    runProgram((ctx) => {
      const a = new SegfitAllocator(new Libc(ctx));
      const x = a.malloc(32);
      const y = a.malloc(32);
      seen.slabStride = y - x; // no header between them
      seen.usable32 = a.usableSize(x);
      a.checkHeap();
      const b = new SegfitAllocator(new Libc(ctx)); // a heap of its own, above a's
      const big = b.malloc(1000);
      const before = b.stats().heapBytes;
      const grown = b.realloc(big, 5000);
      seen.samePlace = grown === big ? 1 : 0;
      seen.grewBy = b.stats().heapBytes - before; // exactly the shortfall: 5008 - 1008
      b.checkHeap();
    });
    expect(seen).toEqual({ slabStride: 32, usable32: 32, samePlace: 1, grewBy: 4000 });
  });
});

describe('segfit placement', () => {
  it('a split whose remainder keeps its list hands out the high end and leaves the free block in place', () => {
    const seen: Record<string, number> = {};
    runProgram((ctx) => {
      const a = new SegfitAllocator(new Libc(ctx));
      const big = a.malloc(6000); // a 6016-byte block
      a.malloc(100); // keeps the freed block off the top
      a.free(big);
      const p = a.malloc(200); // 208 bytes: the 5808 left stay on the 4 KiB..8 KiB list
      seen.highEnd = p - big; // 6016 - 208
      const q = a.malloc(5000); // 5008 of the 5808: the rest moves to another list, low end
      seen.lowEnd = q - big;
      a.checkHeap();
    });
    expect(seen).toEqual({ highEnd: 5808, lowEnd: 0 });
  });
});

describe('segfit with hostile sizes', () => {
  it('returns NULL with ENOMEM for sizes it cannot serve, and never crashes', () => {
    const got: Record<string, number> = {};
    const { t } = runProgram((ctx) => {
      const libc = new Libc(ctx);
      const a = new SegfitAllocator(libc);
      got.zero = a.malloc(0);
      for (const [name, n] of [
        ['negative', -1],
        ['fraction', 1.5],
        ['nan', Number.NaN],
        ['huge', 2 ** 50],
        ['overSafe', 2 ** 64],
        ['justOver2GiB', 2 ** 31],
      ] as const) {
        libc.errno = 0;
        got[name] = a.malloc(n);
        got[`${name}Errno`] = libc.errno;
      }
      libc.errno = 0;
      got.callocOverflow = a.calloc(2 ** 40, 2 ** 30);
      got.callocErrno = libc.errno;
      const one = a.malloc(1);
      got.oneAligned = one % 16;
      libc.errno = 0;
      got.reallocHuge = a.realloc(one, 2 ** 50);
      got.reallocErrno = libc.errno;
      got.stillUsable = a.usableSize(one) >= 1 ? 1 : 0;
      const aligned = a.memalign(4096, 100);
      got.memalign = aligned % 4096;
      got.badAlignment = a.memalign(48, 10);
      a.free(aligned);
      a.free(one);
      a.free(0);
      a.checkHeap();
    });
    expect(t.waitStatus).toBe(0);
    expect(got).toMatchObject({
      zero: 0,
      negative: 0,
      negativeErrno: ENOMEM,
      fraction: 0,
      nan: 0,
      huge: 0,
      hugeErrno: ENOMEM,
      overSafe: 0,
      justOver2GiB: 0,
      justOver2GiBErrno: ENOMEM,
      callocOverflow: 0,
      callocErrno: ENOMEM,
      oneAligned: 0,
      reallocHuge: 0,
      reallocErrno: ENOMEM,
      stillUsable: 1,
      memalign: 0,
      badAlignment: 0,
    });
  });
});

describe('segfit heap checking', () => {
  const aborts: Array<[string, (ctx: UserContext, a: SegfitAllocator) => void, RegExp]> = [
    [
      'double free of a block',
      (_ctx, a) => {
        const p = a.malloc(200);
        a.malloc(200);
        a.free(p);
        a.free(p);
      },
      /free\(\): double free detected at 0x[0-9a-f]+/,
    ],
    [
      'double free of a block merged into its free neighbour',
      (_ctx, a) => {
        const p = a.malloc(200);
        const q = a.malloc(200);
        a.malloc(200);
        a.free(p);
        a.free(q);
        a.free(q);
      },
      /free\(\): double free detected/,
    ],
    [
      'double free of a slab object',
      (_ctx, a) => {
        const p = a.malloc(12);
        a.malloc(12);
        a.free(p);
        a.free(p);
      },
      /free\(\): double free detected at 0x[0-9a-f]+/,
    ],
    [
      'free of a pointer into a block',
      (_ctx, a) => {
        const p = a.malloc(200);
        a.free(p + 16);
      },
      /free\(\): invalid pointer/,
    ],
    [
      'free of a pointer into a slab object',
      (_ctx, a) => {
        const p = a.malloc(30);
        a.malloc(30);
        a.free(p + 16);
      },
      /free\(\): invalid pointer/,
    ],
    [
      'free of a pointer outside the heap',
      (ctx, a) => {
        a.malloc(10);
        a.free(ctx.sys.brk(0) + 4096);
      },
      /free\(\): invalid pointer/,
    ],
    [
      'a smashed header',
      (ctx, a) => {
        const p = a.malloc(200);
        a.malloc(200);
        ctx.cpu.store64(p - 8, 12345);
        a.checkHeap();
      },
      /corrupted block header|PREV_ALLOC|header and footer/,
    ],
    [
      'a smashed header, then free',
      (ctx, a) => {
        const p = a.malloc(200);
        a.malloc(200);
        ctx.cpu.store64(p - 8, 0x10);
        a.free(p);
      },
      /free\(\): invalid pointer or corrupted header/,
    ],
    [
      'a corrupted free-list link',
      (ctx, a) => {
        const p = a.malloc(300);
        const guard = a.malloc(300);
        const q = a.malloc(300);
        a.malloc(300);
        a.free(p);
        a.free(q); // p and q on the same list, q at its head
        ctx.cpu.store64(q, guard); // q's next now points at an allocated block
        a.malloc(300);
        a.malloc(300);
      },
      /corrupted double-linked list/,
    ],
  ];
  for (const [what, body, message] of aborts) {
    it(`${what} ends the process with SIGABRT and says what was wrong`, () => {
      const { t, lastLog } = runProgram((ctx) => body(ctx, new SegfitAllocator(new Libc(ctx))));
      expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
      expect(lastLog).toMatch(message);
    });
  }
});
