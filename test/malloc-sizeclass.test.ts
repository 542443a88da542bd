import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { SizeClassAllocator } from '../userland/malloc/sizeclass.ts';
import { PayloadModel, runAllocatorProgram, runChecked } from './helpers/malloc.ts';

/** Run `body` as a process on a fresh machine; the task and the kernel log's last line. */
const runProgram = (body: (ctx: UserContext) => void) =>
  runAllocatorProgram('sizeclass', body, { overcommit: 1 });

/** Sizes for every path: small classes, big classes (one object a span), large spans, arenas of their own. */
const size = fc.oneof(
  fc.integer({ min: 1, max: 256 }),
  fc.integer({ min: 257, max: 32 * 1024 }),
  fc.integer({ min: 32 * 1024 + 1, max: 300_000 }),
  fc.integer({ min: 1_100_000, max: 1_500_000 }),
);
const op = fc.record({ kind: fc.constantFrom('malloc', 'malloc', 'free', 'realloc'), pick: fc.nat(), size });

describe('sizeclass against a model', () => {
  it('blocks never overlap and keep their bytes; the heap checks after every step and gives its arenas back', () => {
    runChecked(
      'sizeclass',
      (ctx) => {
        fc.assert(
          fc.property(fc.array(op, { minLength: 1, maxLength: 120, size: 'max' }), (ops) => {
            const a = new SizeClassAllocator(new Libc(ctx));
            const first = a.malloc(16);
            const initial = a.stats().heapBytes;
            const model = new PayloadModel(ctx, a);
            for (const o of ops) {
              const victim = model.victim(o.pick);
              if (o.kind === 'malloc' || victim === 0) model.add(a.malloc(o.size), o.size);
              else if (o.kind === 'free') {
                model.freed(victim);
                a.free(victim);
              } else {
                model.moved(victim, a.realloc(victim, o.size), o.size);
              }
              a.checkHeap();
              expect(a.stats().inUseBlocks).toBe(model.live.size + 1);
              expect(a.liveBlocks().map((b) => b.ptr)).toEqual(
                [...model.live.keys(), first].sort((x, y) => x - y),
              );
            }
            for (const p of model.live.keys()) a.free(p);
            a.releaseMemory();
            a.checkHeap();
            expect(a.stats().heapBytes).toBe(initial);
            for (const [start] of a.ownedRegions().slice(1)) expect(start % (1024 * 1024)).toBe(0);
            a.free(first);
          }),
          { seed: 5, numRuns: 40 },
        );
      },
      { overcommit: 1 },
    );
  });

  it('a double free into the thread cache is caught by its key', () => {
    const { t, lastLog } = runProgram((ctx) => {
      const a = new SizeClassAllocator(new Libc(ctx));
      const p = a.malloc(100);
      a.malloc(100);
      a.free(p);
      a.free(p);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/free\(\): double free detected in tcache at 0x[0-9a-f]+/);
  });

  it('a free of a pointer outside every arena aborts', () => {
    const { t, lastLog } = runProgram((ctx) => {
      const a = new SizeClassAllocator(new Libc(ctx));
      a.malloc(100);
      a.free(ctx.sys.brk(0) + 4096);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/free\(\): invalid pointer/);
  });
});
