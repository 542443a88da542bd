/**
 * Malloc's stricter debug mode (check: 'full', VMLAB_MALLOC_CHECK): checkHeap around every
 * call, poisoned fresh and freed blocks, freed blocks held in a quarantine whose poison is
 * checked at every call.
 */
import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { Prng } from '../kernel/lib/prng.ts';
import type { Task } from '../kernel/proc/task.ts';
import { SIGABRT, type UserMain, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { Malloc } from '../userland/libc/malloc.ts';
import { FREED_POISON, FRESH_POISON } from '../userland/libc/mallocdebug.ts';
import { ALLOCATOR_NAMES } from '../userland/malloc/index.ts';

/** Run `body` in a fresh process; the task and the kernel log's last line. */
function run(body: (libc: Libc) => void, env: Record<string, string> = {}): { t: Task; lastLog: string } {
  const main: UserMain = function* (ctx) {
    body(new Libc(ctx));
    yield;
    return 0;
  };
  const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
    loader: (path) => ({ path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 }),
    tunables: { overcommitMemory: 1 },
  });
  const t = m.kernel.spawn('/bin/debug', ['debug'], { env });
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  return { t, lastLog: m.kernel.log.at(-1)?.text ?? '' };
}

/** Run `body`, rethrowing what it threw (expect failures inside the process). */
function runChecked(body: (libc: Libc) => void, env: Record<string, string> = {}): Task {
  let failure: unknown;
  const { t } = run((libc) => {
    try {
      body(libc);
    } catch (err) {
      failure = err;
    }
  }, env);
  if (failure !== undefined) throw failure;
  expect(t.waitStatus).toBe(0);
  return t;
}

const bytesAt = (libc: Libc, va: number, n: number): number[] =>
  Array.from({ length: n }, (_, i) => libc.ctx.cpu.load8(va + i));

describe('the debug mode', () => {
  for (const allocator of ['ptmalloc', 'segfit', 'explicit-first-fit']) {
    it(`reports a write after free at the next call, naming the address (${allocator})`, () => {
      let written = 0;
      const { t, lastLog } = run((libc) => {
        const heap = new Malloc(libc, { allocator, check: 'full' });
        const p = heap.malloc(200);
        heap.malloc(200);
        heap.free(p);
        written = p + 100;
        libc.ctx.cpu.store8(written, 0x41); // the bug: a write through a stale pointer
        heap.malloc(50);
      });
      expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
      expect(lastLog).toContain(`malloc(): write after free at 0x${written.toString(16)}`);
    });
  }

  it('is what VMLAB_MALLOC_CHECK=1 turns on, as MALLOC_CHECK_ does', () => {
    const { t, lastLog } = run(
      (libc) => {
        const heap = new Malloc(libc);
        expect(heap.check).toBe('full');
        const p = heap.malloc(64);
        heap.free(p);
        libc.ctx.cpu.store64(p + 32, 0);
        heap.free(heap.malloc(16));
      },
      { VMLAB_MALLOC_CHECK: '1' },
    );
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(
      /malloc\(\): write after free at 0x[0-9a-f]+ \(block 0x[0-9a-f]+ of \d+ bytes, freed\)/,
    );
  });

  it('poisons fresh blocks (calloc stays zeroed) and freed ones', () => {
    runChecked((libc) => {
      const heap = new Malloc(libc, { allocator: 'ptmalloc', check: 'full' });
      const p = heap.malloc(100);
      expect(bytesAt(libc, p, 100).every((b) => b === FRESH_POISON)).toBe(true);
      libc.memset(p, 7, 100);
      heap.free(p);
      expect(bytesAt(libc, p, 100).every((b) => b === FREED_POISON)).toBe(true);
      const z = heap.calloc(10, 10);
      expect(bytesAt(libc, z, 100).every((b) => b === 0)).toBe(true);
      const r = heap.realloc(heap.malloc(16), 4000); // the bytes realloc adds are fresh
      expect(libc.ctx.cpu.load8(r + 3999)).toBe(FRESH_POISON);
    });
  });

  it('catches a double free of a block in quarantine and a free of a pointer malloc never returned', () => {
    const double = run((libc) => {
      const heap = new Malloc(libc, { allocator: 'sizeclass', check: 'full' });
      const p = heap.malloc(48);
      heap.free(p);
      heap.free(p);
    });
    expect(WTERMSIG(double.t.waitStatus)).toBe(SIGABRT);
    expect(double.lastLog).toMatch(/free\(\): double free detected at 0x/);
    const invalid = run((libc) => {
      const heap = new Malloc(libc, { allocator: 'segfit', check: 'full' });
      heap.free(heap.malloc(48) + 16);
    });
    expect(WTERMSIG(invalid.t.waitStatus)).toBe(SIGABRT);
    expect(invalid.lastLog).toMatch(/free\(\): invalid pointer 0x/);
  });

  it('runs checkHeap before each call: a smashed header shows at the next call, whatever it is', () => {
    const { t, lastLog } = run((libc) => {
      const heap = new Malloc(libc, { allocator: 'explicit-best-fit', check: 'full' });
      const p = heap.malloc(64);
      heap.malloc(64);
      libc.ctx.cpu.store64(p - 8, 12345);
      heap.calloc(1, 1);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(
      /calloc\(\): heap check before the call: malloc: (corrupted block header|header and footer disagree)/,
    );
  });

  it('gives no false alarm on a random run of any allocator, and the leak report counts no quarantined block', () => {
    for (const allocator of ALLOCATOR_NAMES) {
      const t = runChecked((libc) => {
        const heap = new Malloc(libc, { allocator, check: 'full' });
        const prng = new Prng(allocator.length);
        const live: number[] = [];
        for (let step = 0; step < 150; step++) {
          const op = prng.below(3);
          if (op === 0 || live.length === 0) {
            const p = heap.malloc(1 + prng.below(prng.below(8) === 0 ? 40_000 : 300));
            libc.ctx.cpu.store8(p, 1); // the program writes its block
            live.push(p);
          } else if (op === 1) {
            heap.free(live.splice(prng.below(live.length), 1)[0]!);
          } else {
            const i = prng.below(live.length);
            live[i] = heap.realloc(live[i]!, 1 + prng.below(3000));
          }
        }
        for (const p of live.slice(1)) heap.free(p);
        heap.printLeakReport('summary'); // live[0] is still allocated; the quarantine is not
      });
      expect(t.stdout, allocator).toMatch(/in use at exit: \d+ bytes in 1 blocks/);
    }
  });
});
