import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import {
  kBestConverged,
  type MallocTrace,
  mallocReplay,
  parseMallocTrace,
} from '../kernel/boot/mallocreplay.ts';
import { ENOMEM, SIGABRT, type UserMain, WTERMSIG } from '../kernel/proc/uapi.ts';
import { Libc } from '../userland/libc/libc.ts';
import { ALLOCATOR_NAMES, createAllocator } from '../userland/malloc/index.ts';

/** A consistent random trace in the malloc-lab format, built from fast-check choices. */
function traceText(steps: Array<{ kind: number; id: number; size: number }>, ids: number): string {
  const live = new Set<number>();
  const lines: string[] = [];
  for (const s of steps) {
    const id = s.id % ids;
    if (!live.has(id)) {
      lines.push(`a ${id} ${s.size}`);
      live.add(id);
    } else if (s.kind === 0) {
      lines.push(`f ${id}`);
      live.delete(id);
    } else {
      lines.push(`r ${id} ${s.size}`);
    }
  }
  for (const id of live) lines.push(`f ${id}`);
  return `1\n${ids}\n${lines.length}\n1\n${lines.join('\n')}\n`;
}

const step = fc.record({
  kind: fc.nat({ max: 2 }),
  id: fc.nat({ max: 40 }),
  size: fc.integer({ min: 1, max: 5000 }),
});

describe('allocators on generated traces', () => {
  it('never return overlapping or misaligned blocks and keep payloads across realloc', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 120 }),
        fc.constantFrom(...ALLOCATOR_NAMES),
        (steps, name) => {
          const trace = parseMallocTrace('gen.rep', traceText(steps, 12));
          const r = mallocReplay(trace, name, { memoryBytes: 32 * 1024 * 1024 });
          expect(r.outcome).toBe('ok');
          expect(r.heapHighWaterBytes).toBeGreaterThanOrEqual(r.peakPayloadBytes);
          expect(r.utilization).toBeLessThanOrEqual(1);
        },
      ),
      { seed: 17, numRuns: 40 },
    );
  });

  it('best fit does no worse than worst fit on a fragmenting trace', () => {
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) lines.push(`a ${i} ${i % 2 === 0 ? 64 : 512}`);
    for (let i = 0; i < 40; i += 2) lines.push(`f ${i}`);
    for (let i = 40; i < 60; i++) lines.push(`a ${i} 48`);
    for (let i = 1; i < 40; i += 2) lines.push(`f ${i}`);
    for (let i = 40; i < 60; i++) lines.push(`f ${i}`);
    const trace: MallocTrace = parseMallocTrace(
      'frag.rep',
      `1\n60\n${lines.length}\n1\n${lines.join('\n')}\n`,
    );
    const best = mallocReplay(trace, 'explicit-best-fit');
    const worst = mallocReplay(trace, 'explicit-worst-fit');
    expect(best.outcome).toBe('ok');
    expect(best.utilization).toBeGreaterThanOrEqual(worst.utilization);
  });
});

describe('malloc-replay speed runs', () => {
  it('take the fastest of 3 by default, and run until the 3 fastest agree (at most 20) with k-best', () => {
    const trace = parseMallocTrace(
      'speed.rep',
      traceText(
        [
          { kind: 0, id: 0, size: 100 },
          { kind: 0, id: 0, size: 0 },
        ],
        2,
      ),
    );
    const quick = mallocReplay(trace, 'segfit', { memoryBytes: 32 * 1024 * 1024 });
    expect(quick.speedRuns).toBe(3);
    expect(quick.opsPerSecond).toBeGreaterThan(0);
    // malloc(100) then free: a few loads and stores each, and the heap's first page faults in.
    expect(quick.speedCost.accessesPerOp).toBeGreaterThan(2);
    expect(quick.speedCost.accessesPerOp).toBeLessThan(100);
    expect(quick.speedCost.faultsPerOp).toBeGreaterThan(0);
    const kBest = mallocReplay(trace, 'segfit', { memoryBytes: 32 * 1024 * 1024, speed: 'k-best' });
    expect(kBest.speedRuns).toBeGreaterThanOrEqual(3);
    expect(kBest.speedRuns).toBeLessThanOrEqual(20);
    expect(kBest.opsPerSecond).toBeGreaterThan(0);
  });

  it('k-best converges when the 3 fastest runs agree within 1%', () => {
    expect(kBestConverged([1, 1.005])).toBe(false); // only two runs
    expect(kBestConverged([1, 1.005, 1.01])).toBe(true);
    expect(kBestConverged([1, 1.005, 1.02])).toBe(false);
  });
});

describe('malloc-lab trace parsing', () => {
  it('refuses a malformed trace with the file, line and reason', () => {
    expect(() => parseMallocTrace('t.rep', '1\n2\n1\n')).toThrow(/t\.rep: header: missing fourth number/);
    expect(() => parseMallocTrace('t.rep', '1\n2\n1\n1\nx 0 5\n')).toThrow(/t\.rep:5: unknown operation 'x'/);
    expect(() => parseMallocTrace('t.rep', '1\n2\n1\n1\nf 1\n')).toThrow(
      /t\.rep:5: block 1 freed before allocation/,
    );
    expect(() => parseMallocTrace('t.rep', '1\n2\n2\n1\na 0 8\na 0 8\n')).toThrow(
      /t\.rep:6: block 0 allocated twice/,
    );
    expect(() => parseMallocTrace('t.rep', '1\n2\n3\n1\na 0 8\nf 0\n')).toThrow(
      /says 3 operations, the file has 2/,
    );
    expect(() => parseMallocTrace('t.rep', '1\n2\n1\n1\na 5 8\n')).toThrow(/id '5' is not in 0\.\.1/);
  });
});

describe('heap checking and hostile sizes', () => {
  function runProgram(main: UserMain) {
    const m = bootKernel(buildMachine({ memoryBytes: 32 * 1024 * 1024 }), {
      loader: (path) => ({ path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 }),
    });
    const t = m.kernel.spawn('/bin/m', ['m']);
    if (typeof t === 'number') throw new Error('spawn');
    m.kernel.run();
    return { t, kernel: m.kernel };
  }

  it('a double free ends the process with SIGABRT and says where', () => {
    const { t, kernel } = runProgram(function* (ctx) {
      const a = createAllocator('explicit-first-fit', new Libc(ctx));
      const p = a.malloc(100);
      a.free(p);
      yield;
      a.free(p);
      return 0;
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(kernel.log.at(-1)!.text).toMatch(/free\(\): double free detected at 0x[0-9a-f]+/);
  });

  it('an invalid free and a smashed header are caught', () => {
    const invalid = runProgram(function* (ctx) {
      const a = createAllocator('implicit-first-fit', new Libc(ctx));
      const p = a.malloc(64);
      yield;
      a.free(p + 16);
      return 0;
    });
    expect(WTERMSIG(invalid.t.waitStatus)).toBe(SIGABRT);
    expect(invalid.kernel.log.at(-1)!.text).toMatch(/free\(\): invalid pointer/);
    const smashed = runProgram(function* (ctx) {
      const a = createAllocator('explicit-best-fit', new Libc(ctx));
      const p = a.malloc(64);
      a.malloc(64);
      ctx.cpu.store64(p - 8, 12345); // overwrite the block's header
      yield;
      a.checkHeap();
      return 0;
    });
    expect(WTERMSIG(smashed.t.waitStatus)).toBe(SIGABRT);
    expect(smashed.kernel.log.at(-1)!.text).toMatch(/corrupted block header|header and footer disagree/);
  });

  it('malloc(0) is NULL; huge requests and calloc overflow are NULL with ENOMEM, not a crash', () => {
    const got: number[] = [];
    const { t } = runProgram(function* (ctx) {
      const libc = new Libc(ctx);
      const a = createAllocator('explicit-first-fit', libc);
      got.push(a.malloc(0));
      got.push(a.malloc(2 ** 50), libc.errno);
      libc.errno = 0;
      got.push(a.calloc(2 ** 40, 2 ** 30), libc.errno);
      got.push(a.malloc(1 << 30), libc.errno); // more than the machine: sbrk fails
      const z = a.calloc(10, 10);
      let nonzero = 0;
      for (let i = 0; i < 100; i++) nonzero += ctx.cpu.load8(z + i);
      got.push(nonzero, z % 16);
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(got).toEqual([0, 0, ENOMEM, 0, ENOMEM, 0, ENOMEM, 0, 0]);
  });
});

describe('the malloc family on ptmalloc', () => {
  it('grows realloc in place at the top, trims the top, and uses mmap above the threshold with the dynamic threshold', async () => {
    const { Malloc } = await import('../userland/libc/malloc.ts');
    const { M_MMAP_THRESHOLD, M_TRIM_THRESHOLD } = await import('../userland/malloc/ptmalloc.ts');
    const seen: Record<string, number> = {};
    const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
      loader: (path) => ({
        path,
        textBytes: 4096,
        dataBytes: 4096,
        bssBytes: 4096,
        main: function* (ctx) {
          const libc = new Libc(ctx);
          const heap = new Malloc(libc);
          const a = heap.malloc(1000);
          const b = heap.realloc(a, 5000); // a is next to the top chunk: grows in place
          seen.inPlace = a === b ? 1 : 0;
          const big = heap.malloc(200 * 1024); // above 128 KiB: its own mapping
          seen.bigMapped = heap.allocator.stats().heapBytes >= 200 * 1024 ? 1 : 0;
          heap.free(big); // 200 KiB > threshold: the threshold rises to it
          const again = heap.malloc(150 * 1024); // now below the threshold: from the heap
          seen.fromHeap = heap.allocator.stats().heapBytes - 150 * 1024 > 0 ? 1 : 0;
          heap.free(again);
          // The trim threshold rose with the mmap threshold (to 2 x 200 KiB); lower it, and
          // a big free at the top gives memory back with a negative sbrk.
          seen.trimSet = heap.mallopt(M_TRIM_THRESHOLD, 64 * 1024);
          const top = heap.malloc(120 * 1024);
          seen.brkAfter = ctx.sys.brk(0);
          heap.free(top);
          heap.free(b);
          seen.brkTrimmed = ctx.sys.brk(0);
          const out: number[] = [];
          seen.posix = heap.posixMemalign(out, 4096, 100);
          seen.aligned = out[0]! % 4096;
          seen.badAlign = heap.posixMemalign(out, 12, 100);
          seen.mallopt = heap.mallopt(M_MMAP_THRESHOLD, 64 * 1024);
          heap.allocator.checkHeap();
          heap.mallocStats();
          yield;
          return 0;
        },
      }),
    });
    const t = m.kernel.spawn('/bin/m', ['m']);
    if (typeof t === 'number') throw new Error('spawn');
    m.kernel.run();
    expect(t.waitStatus).toBe(0);
    expect(seen).toMatchObject({
      inPlace: 1,
      bigMapped: 1,
      fromHeap: 1,
      trimSet: 1,
      posix: 0,
      aligned: 0,
      badAlign: 22,
      mallopt: 1,
    });
    expect(seen.brkTrimmed).toBeLessThan(seen.brkAfter!);
    expect(t.stderr).toContain('in use bytes     =');
  });
});

describe('footprint after freeing everything', () => {
  it('ptmalloc trims the heap back; the size-class allocator gives its arenas back', () => {
    const result: Record<string, number> = {};
    const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
      loader: (path) => ({
        path,
        textBytes: 4096,
        dataBytes: 4096,
        bssBytes: 4096,
        main: function* (ctx) {
          for (const name of ['ptmalloc', 'sizeclass']) {
            const libc = new Libc(ctx);
            const a = createAllocator(name, libc);
            const first = a.malloc(16);
            const initial = a.stats().heapBytes;
            const ptrs: number[] = [];
            for (let i = 0; i < 3000; i++) ptrs.push(a.malloc(16 + ((i * 97) % 3000)));
            result[`${name}Peak`] = a.stats().heapBytes;
            for (const p of ptrs) a.free(p);
            a.releaseMemory?.();
            a.checkHeap();
            result[`${name}Initial`] = initial;
            result[`${name}After`] = a.stats().heapBytes;
            a.free(first);
            yield;
          }
          return 0;
        },
      }),
    });
    const t = m.kernel.spawn('/bin/m', ['m']);
    if (typeof t === 'number') throw new Error('spawn');
    m.kernel.run();
    expect(t.waitStatus).toBe(0);
    expect(result.ptmallocPeak).toBeGreaterThan(4 * 1024 * 1024);
    expect(result.ptmallocAfter).toBeLessThanOrEqual(result.ptmallocInitial!);
    expect(result.sizeclassPeak).toBeGreaterThan(result.sizeclassAfter!);
    expect(result.sizeclassAfter).toBe(result.sizeclassInitial);
  });
});

describe('the leak report', () => {
  it('finds a deliberate leak and does not flag reachable blocks', async () => {
    const { leakReport } = await import('../userland/libc/leak.ts');
    const reports: Record<
      string,
      { lost: number; lostBytes: number; reachable: number; leakedFound: boolean }
    > = {};
    const m = bootKernel(buildMachine({ memoryBytes: 64 * 1024 * 1024 }), {
      loader: (path) => ({
        path,
        textBytes: 4096,
        dataBytes: 4096,
        bssBytes: 4096,
        main: function* (ctx) {
          for (const name of ['ptmalloc', 'sizeclass', 'explicit-first-fit']) {
            const libc = new Libc(ctx);
            const a = createAllocator(name, libc);
            const globals = libc.mapAnonymous(4096); // a root: like the program's data segment
            const kept = a.malloc(64);
            ctx.cpu.store64(globals + (name.length % 4) * 8, kept);
            const child = a.malloc(200); // reachable only through `kept`
            ctx.cpu.store64(kept + 8, child);
            const big = a.malloc(300 * 1024); // mmapped (ptmalloc), referenced from a root
            ctx.cpu.store64(globals + 64, big);
            const leaked = a.malloc(48); // its only pointer is this JavaScript variable
            ctx.cpu.fillBytes(leaked, 48, 0);
            const r = leakReport(libc, a);
            reports[name] = {
              lost: r.definitelyLost.blocks,
              lostBytes: r.definitelyLost.bytes,
              reachable: r.stillReachable.blocks,
              leakedFound: r.lostAddresses.includes(leaked),
            };
            a.free(kept);
            a.free(child);
            a.free(big);
            a.free(leaked);
            libc.munmap(globals, 4096);
            yield;
          }
          return 0;
        },
      }),
    });
    const t = m.kernel.spawn('/bin/m', ['m']);
    if (typeof t === 'number') throw new Error('spawn');
    m.kernel.run();
    expect(t.waitStatus).toBe(0);
    for (const name of ['ptmalloc', 'sizeclass', 'explicit-first-fit']) {
      expect(reports[name]).toMatchObject({ lost: 1, reachable: 3, leakedFound: true });
      expect(reports[name]!.lostBytes).toBeGreaterThanOrEqual(48);
    }
  });
});
