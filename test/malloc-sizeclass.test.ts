import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { SizeClassAllocator } from '../userland/malloc/sizeclass.ts';

/** Run `body` as a process on a fresh machine; the task and the kernel log's last line. */
function runProgram(body: (ctx: UserContext) => void) {
  const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
    loader: (path) => ({
      path,
      textBytes: 4096,
      dataBytes: 4096,
      bssBytes: 4096,
      main: function* (ctx) {
        body(ctx);
        yield;
        return 0;
      },
    }),
    tunables: { overcommitMemory: 1 },
  });
  const t = m.kernel.spawn('/bin/sizeclass', ['sizeclass']);
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  return { t, lastLog: m.kernel.log.at(-1)?.text ?? '' };
}

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
    let failure: unknown;
    const { t } = runProgram((ctx) => {
      try {
        fc.assert(
          fc.property(fc.array(op, { minLength: 1, maxLength: 120, size: 'max' }), (ops) => {
            const a = new SizeClassAllocator(new Libc(ctx));
            const first = a.malloc(16);
            const initial = a.stats().heapBytes;
            const live = new Map<number, { size: number; byte: number }>();
            let stamp = 0;
            const check = (p: number, n: number): void => {
              const info = live.get(p)!;
              const got = new Uint8Array(Math.min(info.size, n));
              ctx.cpu.loadBytes(p, got);
              expect(got.every((b) => b === info.byte)).toBe(true);
            };
            const add = (p: number, n: number): void => {
              expect(p % 16).toBe(0);
              expect(a.usableSize(p)).toBeGreaterThanOrEqual(n);
              for (const [q, b] of live) expect(p + n <= q || q + b.size <= p).toBe(true);
              const byte = ++stamp & 0xff;
              ctx.cpu.fillBytes(p, n, byte);
              live.set(p, { size: n, byte });
            };
            for (const o of ops) {
              const ptrs = [...live.keys()];
              const victim = ptrs.length > 0 ? ptrs[o.pick % ptrs.length]! : 0;
              if (o.kind === 'malloc' || victim === 0) add(a.malloc(o.size), o.size);
              else if (o.kind === 'free') {
                check(victim, live.get(victim)!.size);
                live.delete(victim);
                a.free(victim);
              } else {
                const old = live.get(victim)!;
                const p = a.realloc(victim, o.size);
                live.delete(victim);
                live.set(p, old);
                check(p, o.size);
                live.delete(p);
                add(p, o.size);
              }
              a.checkHeap();
              expect(a.stats().inUseBlocks).toBe(live.size + 1);
              expect(a.liveBlocks().map((b) => b.ptr)).toEqual([...live.keys(), first].sort((x, y) => x - y));
            }
            for (const p of live.keys()) a.free(p);
            a.releaseMemory();
            a.checkHeap();
            expect(a.stats().heapBytes).toBe(initial);
            for (const [start] of a.ownedRegions().slice(1)) expect(start % (1024 * 1024)).toBe(0);
            a.free(first);
          }),
          { seed: 5, numRuns: 40 },
        );
      } catch (err) {
        failure = err;
      }
    });
    if (failure !== undefined) throw failure;
    expect(t.waitStatus).toBe(0);
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
