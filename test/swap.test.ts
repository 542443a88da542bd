import { describe, expect, it } from 'vitest';
import { type BootedMachine, bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { type MemoryGroup, Reclaimer } from '../kernel/mm/reclaim.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  type UserMain,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';

const PAGE = 4096;

/** Boot a small machine with swap; programs by name. */
function machine(options: {
  memoryMiB: number;
  swapMiB: number;
  programs: Record<string, UserMain>;
  policy?: string;
  overcommit?: 0 | 1 | 2;
}): BootedMachine {
  return bootKernel(buildMachine({ memoryBytes: options.memoryMiB * 1024 * 1024 }), {
    loader: (path) => {
      const main = options.programs[path];
      return main === undefined
        ? undefined
        : { path, main, textBytes: 4096, dataBytes: 4096, bssBytes: 4096 };
    },
    policy: options.policy ?? 'clock',
    swap: options.swapMiB > 0 ? { bytes: options.swapMiB * 1024 * 1024, profile: 'nvme' } : undefined,
    tunables: { overcommitMemory: options.overcommit ?? 1 },
  });
}

/** A program that writes a seeded pattern over `pages` pages, then verifies it `rounds` times. */
function patternProgram(pages: number, seed: number, rounds = 2): UserMain {
  return function* ({ cpu, sys }) {
    const base = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base < 0) return 10;
    for (let p = 0; p < pages; p++) {
      cpu.store32(base + p * PAGE, (p * 2654435761 + seed) >>> 0);
      cpu.store32(base + p * PAGE + PAGE - 4, (p ^ seed) >>> 0);
      yield;
    }
    for (let r = 0; r < rounds; r++) {
      for (let p = 0; p < pages; p++) {
        if (cpu.load32(base + p * PAGE) !== (p * 2654435761 + seed) >>> 0) return 11;
        if (cpu.load32(base + p * PAGE + PAGE - 4) !== (p ^ seed) >>> 0) return 12;
        yield;
      }
    }
    return 0;
  };
}

function checkAll(m: BootedMachine): void {
  m.kernel.checkInvariants();
  m.kernel.reclaimer.checkInvariants();
  const swap = m.kernel.swap;
  if (swap !== null) {
    const spaces = [...m.kernel.tasks.values()].flatMap((t) => (t.mm === null ? [] : [t.mm]));
    swap.checkInvariants(Reclaimer.countSwapPtes(spaces, swap.slots));
  }
}

/** Run in slices, checking every invariant between them. */
function runChecked(m: BootedMachine, sliceCycles = 2_000_000): void {
  for (let i = 0; i < 100_000 && m.kernel.state !== 'halted' && m.kernel.state !== 'panic'; i++) {
    m.kernel.run({ untilCycles: m.clock.now + sliceCycles });
    checkAll(m);
  }
  expect(m.kernel.state).toBe('halted');
}

describe('swap', () => {
  it('keeps every byte through heavy swapping: 4 processes write 4x more memory than RAM and verify it', () => {
    // 16 MiB of RAM; 4 x 16 MiB of data.
    const pages = 4096;
    const programs: Record<string, UserMain> = {};
    for (let i = 0; i < 4; i++) programs[`/bin/p${i}`] = patternProgram(pages, 1000 + i);
    const m = machine({ memoryMiB: 16, swapMiB: 96, programs });
    const tasks = Object.keys(programs).map((p) => m.kernel.spawn(p, [p]));
    runChecked(m, 50_000_000);
    for (const t of tasks) {
      if (typeof t === 'number') throw new Error('spawn failed');
      expect(m.kernel.describeEnd(t)).toBe('exited 0');
    }
    expect(m.kernel.events.pswpout).toBeGreaterThan(4096);
    expect(m.kernel.events.pswpin).toBeGreaterThan(4096);
    // Every major fault is a swap-in or a text page read again from the program's file.
    const e = m.kernel.events;
    expect(e.pgmajfault).toBeGreaterThanOrEqual(e.pswpin);
    expect(e.pgmajfault - e.pswpin).toBeLessThanOrEqual(m.kernel.pageCache.misses);
    m.shutdown();
  });

  it('shares swapped pages after fork: both sides read the pre-fork data, and writes stay private', () => {
    const pages = 2048; // 8 MiB in a 6 MiB machine
    const main: UserMain = function* ({ cpu, sys }) {
      const base = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < pages; p++) {
        cpu.store32(base + p * PAGE, p + 7);
        yield;
      }
      const child = sys.fork(function* (c) {
        for (let p = 0; p < pages; p++) {
          if (c.cpu.load32(base + p * PAGE) !== p + 7) return 21;
          c.cpu.store32(base + p * PAGE, p + 9000);
          yield;
        }
        for (let p = 0; p < pages; p++) {
          if (c.cpu.load32(base + p * PAGE) !== p + 9000) return 22;
          yield;
        }
        return 0;
      });
      if (child < 0) return 23;
      const st = yield* sys.wait4(child, 0, 0);
      if (st !== child) return 24;
      for (let p = 0; p < pages; p++) {
        if (cpu.load32(base + p * PAGE) !== p + 7) return 25;
        yield;
      }
      return 0;
    };
    const m = machine({ memoryMiB: 6, swapMiB: 64, programs: { '/bin/f': main } });
    const t = m.kernel.spawn('/bin/f', ['f']);
    runChecked(m, 20_000_000);
    if (typeof t === 'number') throw new Error('spawn failed');
    expect(m.kernel.describeEnd(t)).toBe('exited 0');
    const all = [...m.kernel.tasks.values()].filter((x) => !x.kernelThread);
    for (const x of all) expect(m.kernel.describeEnd(x)).toBe('exited 0');
    expect(m.kernel.events.pswpout).toBeGreaterThan(0);
    m.shutdown();
  });

  it('returns every frame and slot when all processes exit', () => {
    const m = machine({ memoryMiB: 8, swapMiB: 32, programs: { '/bin/a': patternProgram(3000, 5, 1) } });
    for (const c of m.slab.caches()) c.shrink();
    m.buddy.drainPcp();
    const free0 = m.buddy.freePages();
    m.kernel.spawn('/bin/a', ['a']);
    runChecked(m, 20_000_000);
    // The program's text stays in the page cache after it exits (as on Linux); drop it.
    m.kernel.pageCache.dropCaches();
    for (const c of m.slab.caches()) c.shrink();
    m.buddy.drainPcp();
    expect(m.buddy.freePages()).toBe(free0);
    expect(m.kernel.swap!.freeSlots).toBe(m.kernel.swap!.usableSlots);
    expect(m.kernel.committedAs).toBe(0);
    m.shutdown();
  });

  it('with swap full, the OOM killer acts and the machine goes on', () => {
    const m = machine({
      memoryMiB: 8,
      swapMiB: 2,
      programs: { '/bin/hog': patternProgram(4096, 3, 1), '/bin/small': patternProgram(64, 4, 3) },
    });
    const hog = m.kernel.spawn('/bin/hog', ['hog']);
    const small = m.kernel.spawn('/bin/small', ['small']);
    runChecked(m, 20_000_000);
    if (typeof hog === 'number' || typeof small === 'number') throw new Error('spawn failed');
    expect(WIFSIGNALED(hog.waitStatus)).toBe(true);
    expect(WTERMSIG(hog.waitStatus)).toBe(SIGKILL);
    expect(m.kernel.describeEnd(small)).toBe('exited 0');
    expect(m.kernel.events.oom_kill).toBeGreaterThanOrEqual(1);
    expect(
      m.kernel.log.some((l) =>
        /^Out of memory: Killed process \d+ \(hog\) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB/.test(
          l.text,
        ),
      ),
    ).toBe(true);
    m.shutdown();
  });

  it('the OOM killer picks the largest process and spares oom_score_adj -1000', () => {
    const grow = (pages: number): UserMain =>
      function* ({ cpu, sys }) {
        const base = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (let p = 0; p < pages; p++) {
          cpu.store8(base + p * PAGE, 1);
          yield;
        }
        for (;;) yield* sys.nanosleep(1_000_000);
      };
    // ~3800 usable frames: big (1500, unkillable) + mid (900) leave ~1300 for last (wants 1800).
    const m = machine({
      memoryMiB: 16,
      swapMiB: 0,
      programs: { '/bin/big': grow(1500), '/bin/mid': grow(900), '/bin/last': grow(1800) },
    });
    const big = m.kernel.spawn('/bin/big', ['big'], { oomScoreAdj: -1000 });
    const mid = m.kernel.spawn('/bin/mid', ['mid']);
    m.kernel.run({ untilCycles: m.clock.now + 400_000_000 });
    const last = m.kernel.spawn('/bin/last', ['last']);
    m.kernel.run({ untilCycles: m.clock.now + 400_000_000 });
    checkAll(m);
    if (typeof big === 'number' || typeof mid === 'number' || typeof last === 'number')
      throw new Error('spawn failed');
    expect(m.kernel.events.oom_kill).toBe(1);
    // When memory ran out, 'last' (about 1300 pages) was bigger than 'mid' (900); 'big' is exempt.
    expect(big.isAlive()).toBe(true);
    expect(mid.isAlive()).toBe(true);
    expect(last.isAlive()).toBe(false);
    expect(WTERMSIG(last.waitStatus)).toBe(SIGKILL);
    expect(
      m.kernel.log.some((l) => l.text.startsWith(`Out of memory: Killed process ${last.pid} (last)`)),
    ).toBe(true);
    m.shutdown();
  });

  it('overcommit mode 2 refuses a commitment past CommitLimit; mode 1 grants it', () => {
    let result = 0;
    const main: UserMain = function* ({ sys }) {
      result = sys.mmap(0, 64 * 1024 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      yield;
      return 0;
    };
    const strict = machine({ memoryMiB: 16, swapMiB: 8, programs: { '/bin/m': main }, overcommit: 2 });
    strict.kernel.spawn('/bin/m', ['m']);
    strict.kernel.run();
    expect(result).toBe(-12);
    expect(strict.kernel.commitLimit()).toBe(
      Math.floor(strict.buddy.managedPages() / 2) + strict.kernel.swap!.usableSlots,
    );
    strict.shutdown();
    const lax = machine({ memoryMiB: 16, swapMiB: 8, programs: { '/bin/m': main }, overcommit: 1 });
    lax.kernel.spawn('/bin/m', ['m']);
    lax.kernel.run();
    expect(result).toBeGreaterThan(0);
    lax.shutdown();
  });
});

describe('memory limits', () => {
  it('local replacement: a resident limit keeps the process at its limit while it works', () => {
    const m = machine({ memoryMiB: 32, swapMiB: 32, programs: { '/bin/p': patternProgram(1024, 9, 2) } });
    const t = m.kernel.spawn('/bin/p', ['p']);
    if (typeof t === 'number') throw new Error('spawn failed');
    t.residentLimitPages = 256;
    let peak = 0;
    while (m.kernel.state !== 'halted') {
      m.kernel.run({ untilCycles: m.clock.now + 1_000_000 });
      if (t.mm !== null) peak = Math.max(peak, t.mm.rss()); // its heap and its text
      checkAll(m);
    }
    expect(m.kernel.describeEnd(t)).toBe('exited 0');
    expect(peak).toBe(256);
    expect(m.kernel.events.pswpout).toBeGreaterThan(0);
    m.shutdown();
  });

  it('a group limit holds the sum of its members, like a cgroup memory.max', () => {
    // Each member touches 512 pages, slowly (so the two run interleaved), then verifies them.
    const slow: UserMain = function* ({ cpu, sys }) {
      const base = sys.mmap(0, 512 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < 512; p++) {
        cpu.store32(base + p * PAGE, p ^ 0x5a5a);
        cpu.compute(10_000);
        yield;
      }
      for (let p = 0; p < 512; p++) {
        if (cpu.load32(base + p * PAGE) !== (p ^ 0x5a5a)) return 3;
        yield;
      }
      return 0;
    };
    const m = machine({ memoryMiB: 32, swapMiB: 32, programs: { '/bin/p': slow } });
    const group: MemoryGroup = { name: 'batch', limitPages: 600, members: new Set() };
    const tasks = [m.kernel.spawn('/bin/p', ['p']), m.kernel.spawn('/bin/p', ['p'])];
    for (const t of tasks) {
      if (typeof t === 'number' || t.mm === null) throw new Error('spawn failed');
      t.group = group;
      group.members.add(t.mm);
    }
    let peak = 0;
    while (m.kernel.state !== 'halted') {
      m.kernel.run({ untilCycles: m.clock.now + 200_000 });
      peak = Math.max(peak, m.kernel.groupRss(group));
      checkAll(m);
    }
    for (const t of tasks) if (typeof t !== 'number') expect(m.kernel.describeEnd(t)).toBe('exited 0');
    expect(peak).toBeLessThanOrEqual(600);
    expect(peak).toBeGreaterThan(550);
    expect(m.kernel.events.pswpout).toBeGreaterThan(0);
    m.shutdown();
  });
});
