import { describe, expect, it } from 'vitest';
import { withPageSize } from '../kernel/boot/formatfile.ts';
import { type BootedMachine, bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { mallocReplay, parseMallocTrace } from '../kernel/boot/mallocreplay.ts';
import type { PagingFormat } from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';
import { x86_32 } from '../kernel/hw/paging/x86_32.ts';
import { type LeakCheck, leakReport, renderLeakReport } from '../userland/libc/leak.ts';
import { Libc, withLibc } from '../userland/libc/libc.ts';
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
    expect(t.stdout).toMatch(/definitely lost: 10 bytes in 1 blocks/); // the bytes asked for, as valgrind counts
  });

  it('malloc-replay reports what a trace leaves allocated', () => {
    const trace = parseMallocTrace('leak.rep', '1\n3\n4\n1\na 0 100\na 1 200\na 2 300\nf 1\n');
    const r = mallocReplay(trace, 'segfit', { leakCheck: 'summary', memoryBytes: 32 * 1024 * 1024 });
    expect(r.outcome).toBe('ok');
    expect(r.leakReport).toMatch(/definitely lost: \d+ bytes in 2 blocks/);
    expect(mallocReplay(trace, 'segfit', { memoryBytes: 32 * 1024 * 1024 }).leakReport).toBe('');
  });
});

/** Run `main` (through libc's start-up code) on a machine of `format`; the task and the machine. */
function runOnFormat(
  format: PagingFormat,
  main: (libc: Libc, m: BootedMachine) => Generator<void, number, void>,
) {
  const m = bootKernel(buildMachine({ memoryBytes: 32 * 1024 * 1024, format }), {
    loader: (path) => ({
      path,
      textBytes: format.pageBytes,
      dataBytes: format.pageBytes,
      bssBytes: format.pageBytes,
      main: withLibc((libc) => main(libc, m)),
    }),
  });
  const t = m.kernel.spawn('/bin/leaky', ['leaky']);
  if (typeof t === 'number') throw new Error('spawn');
  m.kernel.run();
  return t;
}

describe('the leak report counts what was asked for', () => {
  it("reports a 1000-byte block as 1000 bytes, not the size class's 1040 (as valgrind)", () => {
    let usable = 0;
    const t = runWithLibc(function* (libc) {
      const heap = new Malloc(libc, { allocator: 'sizeclass', leakCheck: 'full' });
      const lost = heap.malloc(1000);
      usable = heap.mallocUsableSize(lost);
      const grown = heap.realloc(heap.malloc(10), 3000); // counted at its new size
      libc.ctx.cpu.store64(lost, 0);
      libc.ctx.cpu.store64(grown, 0);
      yield;
      return 0;
    });
    expect(usable).toBe(1040);
    expect(t.stdout).toContain('in use at exit: 4000 bytes in 2 blocks');
    expect(t.stdout).toContain('definitely lost: 4000 bytes in 2 blocks');
    expect(t.stdout).toMatch(/^1000 bytes in 1 blocks are definitely lost at 0x/m);
    expect(t.stdout).toMatch(/^3000 bytes in 1 blocks are definitely lost at 0x/m);
  });
});

describe("the leak report scans a page at a time, at the machine's page size", () => {
  for (const allocator of ['ptmalloc', 'segfit']) {
    it(`on 16 KiB pages (${allocator})`, () => {
      let page = 0;
      let pageinfoCalls = 0;
      let pageinfoBound = 0;
      const t = runOnFormat(withPageSize(PRESET_FORMATS['x86-64']!, 16384), function* (libc) {
        page = libc.getpagesize();
        const heap = new Malloc(libc, { allocator, leakCheck: 'summary' });
        const globals = libc.mapAnonymous(3 * page);
        const kept = heap.malloc(64);
        libc.ctx.cpu.store64(globals + 2 * page + 8, kept); // in the third page of the root
        libc.ctx.cpu.store64(kept, heap.malloc(100)); // reachable through `kept`
        const big = heap.malloc(300 * 1024); // ptmalloc maps it
        libc.ctx.cpu.store64(globals + page + 16, big);
        libc.memset(heap.malloc(48), 0, 48); // lost
        // One vmlab_pageinfo call per 16 KiB page of the mappings (and per scanned block), not
        // one per 4 KiB.
        const sys = libc.ctx.sys;
        const counting: typeof sys = Object.create(sys);
        counting.vmlab_pageinfo = (va) => {
          pageinfoCalls++;
          return sys.vmlab_pageinfo(va);
        };
        const maps = sys.vmlab_maps();
        pageinfoBound = maps.reduce((n, e) => n + (e.end - e.start) / page, 0) + 2 * 5;
        leakReport(new Libc({ ...libc.ctx, sys: counting }), heap.allocator);
        yield;
        return 0;
      });
      expect(page).toBe(16384);
      expect(pageinfoCalls).toBeGreaterThan(0);
      expect(pageinfoCalls).toBeLessThanOrEqual(pageinfoBound);
      expect(t.waitStatus).toBe(0);
      expect(t.stdout).toContain('definitely lost: 48 bytes in 1 blocks');
      expect(t.stdout).toContain(`still reachable: ${64 + 100 + 300 * 1024} bytes in 3 blocks`);
    });
  }

  it('on 1 KiB pages, and faults nothing in (pages never touched are skipped)', () => {
    let page = 0;
    let faults = -1;
    let report = '';
    const t = runOnFormat(withPageSize(x86_32, 1024), function* (libc, m) {
      page = libc.getpagesize();
      const task = m.kernel.tasks.get(libc.ctx.sys.getpid())!;
      const heap = new Malloc(libc, 'ptmalloc');
      const globals = libc.mapAnonymous(16 * page);
      libc.ctx.cpu.store64(globals, heap.malloc(64)); // the root's first page only is touched
      libc.memset(heap.malloc(48), 0, 48);
      const before = task.minFlt + task.majFlt;
      report = renderLeakReport(leakReport(libc, heap.allocator));
      faults = task.minFlt + task.majFlt - before;
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(page).toBe(1024);
    expect(faults).toBe(0);
    expect(report).toContain('definitely lost: 56 bytes in 1 blocks'); // no requested sizes: usable
    expect(report).toContain('still reachable: 72 bytes in 1 blocks');
  });
});
