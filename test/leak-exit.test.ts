import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { mallocReplay, parseMallocTrace } from '../kernel/boot/mallocreplay.ts';
import type { LeakCheck } from '../userland/libc/leak.ts';
import { type Libc, withLibc } from '../userland/libc/libc.ts';
import { Malloc } from '../userland/libc/malloc.ts';

/** Run `main` (through libc's start-up code) on a fresh machine; its task. */
function runWithLibc(main: (libc: Libc) => Generator<void, number | undefined, void>) {
  const m = bootKernel(buildMachine({ memoryBytes: 32 * 1024 * 1024 }), {
    loader: (path) => ({ path, textBytes: 4096, dataBytes: 4096, bssBytes: 4096, main: withLibc(main) }),
  });
  const t = m.kernel.spawn('/bin/leaky', ['leaky']);
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  return t;
}

/** A program with one block kept in a global, one reachable through it, and one leaked. */
function leakyProgram(allocator: string, leakCheck: LeakCheck, addresses: number[]) {
  return function* (libc: Libc): Generator<void, number, void> {
    const heap = new Malloc(libc, { allocator, leakCheck });
    const globals = libc.mapAnonymous(4096); // a root, like the data segment
    const kept = heap.malloc(64);
    libc.ctx.cpu.store64(globals, kept);
    libc.ctx.cpu.store64(kept, heap.malloc(100)); // reachable through `kept`
    const leaked = heap.malloc(48);
    libc.memset(leaked, 0, 48);
    addresses.push(leaked);
    yield;
    return 3;
  };
}

describe('the leak report at exit', () => {
  for (const allocator of ['ptmalloc', 'segfit']) {
    it(`prints valgrind's summary to stdout when main returns (${allocator})`, () => {
      const t = runWithLibc(leakyProgram(allocator, 'summary', []));
      expect(t.waitStatus >> 8).toBe(3);
      expect(t.stdout).toContain('HEAP SUMMARY:');
      expect(t.stdout).toMatch(/definitely lost: \d+ bytes in 1 blocks/);
      expect(t.stdout).toMatch(/still reachable: \d+ bytes in 2 blocks/);
      expect(t.stdout).not.toContain('are definitely lost at');
    });
  }

  it('lists every lost block with full', () => {
    const addresses: number[] = [];
    const t = runWithLibc(leakyProgram('segfit', 'full', addresses));
    expect(t.stdout).toContain(`48 bytes in 1 blocks are definitely lost at 0x${addresses[0]!.toString(16)}`);
  });

  it('prints nothing when off (the default), and runs at an explicit exit() too', () => {
    expect(runWithLibc(leakyProgram('segfit', 'off', [])).stdout).toBe('');
    const t = runWithLibc(function* (libc) {
      const heap = new Malloc(libc, { allocator: 'segfit', leakCheck: 'summary' });
      heap.malloc(10);
      yield;
      return libc.exit(0);
    });
    expect(t.waitStatus).toBe(0);
    expect(t.stdout).toMatch(/definitely lost: 16 bytes in 1 blocks/);
  });

  it('malloc-replay reports what a trace leaves allocated', () => {
    const trace = parseMallocTrace('leak.rep', '1\n3\n4\n1\na 0 100\na 1 200\na 2 300\nf 1\n');
    const r = mallocReplay(trace, 'segfit', { leakCheck: 'summary', memoryBytes: 32 * 1024 * 1024 });
    expect(r.outcome).toBe('ok');
    expect(r.leakReport).toMatch(/definitely lost: \d+ bytes in 2 blocks/);
    expect(mallocReplay(trace, 'segfit', { memoryBytes: 32 * 1024 * 1024 }).leakReport).toBe('');
  });
});
