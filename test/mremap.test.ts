/**
 * mremap(2) from inside emulated processes: Linux's argument checks and errno values, shrinking
 * and growing in place, moving with MREMAP_MAYMOVE (the page-table entries move, the frames and
 * their contents stay, nothing faults again), MREMAP_FIXED, and moved pages that still reclaim,
 * swap and fork correctly (their reverse mapping follows the VMA's anonDelta).
 */
import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_READ,
  PROT_WRITE,
  SIGSEGV,
  type Syscalls,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, settleFreePages } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const A = 0x20000000;

function vmasIn(sys: Syscalls, start: number, end: number) {
  return sys.vmlab_maps().filter((e) => e.end > start && e.start < end);
}

describe('mremap arguments', () => {
  it('refuses what Linux refuses, with its errno values, and changes nothing', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys }) {
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(sys.mremap(a + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0)); // unaligned
      r.push(sys.mremap(a, PAGE, 2 * PAGE, 8, 0)); // unknown flag
      r.push(sys.mremap(a, PAGE, 2 * PAGE, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0)); // not modelled
      r.push(sys.mremap(a, PAGE, 2 * PAGE, MREMAP_FIXED, A + 64 * PAGE)); // FIXED needs MAYMOVE
      r.push(sys.mremap(a, PAGE, 0, MREMAP_MAYMOVE, 0)); // new size 0
      r.push(sys.mremap(a, 0, PAGE, MREMAP_MAYMOVE, 0)); // old size 0 (shared duplication)
      r.push(sys.mremap(a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + PAGE)); // overlap
      r.push(sys.mremap(A + 64 * PAGE, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0)); // nothing mapped
      sys.mprotect(a + 2 * PAGE, PAGE, PROT_READ); // two VMAs now: [a, a+2p) and [a+2p, a+3p) ...
      r.push(sys.mremap(a, 3 * PAGE, 6 * PAGE, MREMAP_MAYMOVE, 0)); // spans two VMAs
      r.push(vmasIn(sys, a, a + 4 * PAGE).length);
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EFAULT, -EFAULT, 3]);
  });
});

describe('mremap in place', () => {
  it('a shrink keeps the address and the data and unmaps the tail (a touch there is SIGSEGV)', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, 10 + i);
      const rss = m.kernel.current!.mm!.rss();
      r.push(sys.mremap(a, 4 * PAGE, PAGE + 1, 0, 0) - a); // rounds up to two pages
      r.push(rss - m.kernel.current!.mm!.rss(), cpu.load8(a), cpu.load8(a + PAGE));
      yield;
      cpu.load8(a + 2 * PAGE);
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 2, 10, 11]);
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
  });

  it('a growth into free addresses keeps the address: one VMA, old pages as they were, new ones zero', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store32(a + 8, 0xcafe);
      const before = sys.vmlab_pageinfo(a).physAddr;
      r.push(sys.mremap(a, 2 * PAGE, 8 * PAGE, 0, 0) - a);
      r.push(vmasIn(sys, a, a + 8 * PAGE).length, vmasIn(sys, a, a + 8 * PAGE)[0]!.end - a);
      r.push(cpu.load32(a + 8), cpu.load8(a + 7 * PAGE), sys.vmlab_pageinfo(a).physAddr === before ? 1 : 0);
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0, 1, 8 * PAGE, 0xcafe, 0, 1]);
  });

  it('a growth blocked by the next mapping is ENOMEM without MREMAP_MAYMOVE, and nothing changes', () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.mmap(A + 2 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 5);
      r.push(sys.mremap(a, 2 * PAGE, 4 * PAGE, 0, 0), cpu.load8(a));
      r.push(vmasIn(sys, a, a + 3 * PAGE).length);
      yield;
      return 0;
    });
    expect(r).toEqual([-ENOMEM, 5, 1]);
  });
});

describe('mremap moves', () => {
  it('MREMAP_MAYMOVE moves the entries: same frames, same bytes, no new fault; the old range is gone', () => {
    const r: number[] = [];
    const pages = 16;
    const m = bootTestMachine();
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.mmap(A + pages * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0); // the way up is taken
      for (let i = 0; i < pages; i += 2) cpu.store32(a + i * PAGE + 4, 1000 + i); // every other page
      const frames = Array.from({ length: pages }, (_, i) => sys.vmlab_pageinfo(a + i * PAGE).physAddr);
      const task = m.kernel.current!;
      const faults = task.minFlt;
      const b = sys.mremap(a, pages * PAGE, 2 * pages * PAGE, MREMAP_MAYMOVE, 0);
      r.push(b !== a && b > 0 ? 1 : 0);
      let same = 0;
      for (let i = 0; i < pages; i++) if (sys.vmlab_pageinfo(b + i * PAGE).physAddr === frames[i]) same++;
      let kept = 0;
      for (let i = 0; i < pages; i += 2) if (cpu.load32(b + i * PAGE + 4) === 1000 + i) kept++;
      r.push(same, kept, task.minFlt - faults);
      r.push(vmasIn(sys, a, a + pages * PAGE).length, vmasIn(sys, b, b + 2 * pages * PAGE)[0]!.end - b);
      cpu.store8(b + (2 * pages - 1) * PAGE, 1); // the grown part: a first touch
      r.push(task.minFlt - faults);
      m.kernel.checkInvariants();
      yield;
      cpu.load8(a); // the old range is unmapped
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([1, 16, 8, 0, 0, 2 * pages * PAGE, 1]);
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
  });

  it('MREMAP_FIXED moves onto a given address, replacing what was there; frames all come back at exit', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      const target = A + 256 * PAGE;
      sys.mmap(target, 8 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 8; i++) cpu.store8(target + i * PAGE, 0xee);
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, i + 1);
      r.push(sys.mremap(a, 4 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target) - target);
      r.push(cpu.load8(target), cpu.load8(target + PAGE), cpu.load8(target + 2 * PAGE));
      // Only [target, target + 2 pages) was replaced; the rest of the old mapping stays, its
      // own VMA (the moved one's anonymous indices do not run on into it).
      const lengths = vmasIn(sys, target, target + 8 * PAGE).map((e) => (e.end - e.start) / PAGE);
      r.push(lengths.join() === '2,6' ? 1 : 0);
      r.push(vmasIn(sys, a, a + 4 * PAGE).length);
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0, 1, 2, 0xee, 1, 0]);
    expect(settleFreePages(m)).toBe(free0);
  });

  it('moved pages reclaim, swap out and come back with their data; a forked child shares them', () => {
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 32 });
    const pages = 256;
    let badParent = -1;
    let badChild = -1;
    let childRan = false;
    let swappedBack = 0;
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x5000 + i);
      // Keep the next addresses taken so that the growth has to move.
      sys.mmap(a + pages * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      const b = sys.mremap(a, pages * PAGE, 2 * pages * PAGE, MREMAP_MAYMOVE, 0);
      if (b < 0 || b === a) return 1;
      const pid = sys.fork(function* ({ cpu: c }) {
        yield* sys.nanosleep(50_000_000);
        badChild = 0;
        for (let i = 0; i < pages; i++) if (c.load32(b + i * PAGE) !== 0x5000 + i) badChild++;
        childRan = true;
        return 0;
      });
      if (pid < 0) return 2;
      for (let i = 0; i < pages; i += 4) cpu.store32(b + i * PAGE, 0x5000 + i); // COW copies of some
      yield* sys.nanosleep(100_000_000);
      const self = m.kernel.current!;
      const major = self.majFlt;
      badParent = 0;
      for (let i = 0; i < pages; i++) if (cpu.load32(b + i * PAGE) !== 0x5000 + i) badParent++;
      swappedBack = self.majFlt - major;
      yield* sys.wait4(pid, 0, 0);
      return 0;
    });
    m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(1_000_000);
      const a = sys.mmap(0, 3600 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 3600; i++) {
        cpu.store8(a + i * PAGE, 1);
        if (i % 16 === 0) yield;
      }
      yield* sys.nanosleep(20_000_000);
      return 0;
    });
    m.runToEnd();
    m.shutdown();
    expect(m.kernel.events.pswpout).toBeGreaterThan(pages / 4);
    expect(m.kernel.events.pswpin).toBeGreaterThan(0);
    expect(swappedBack).toBeGreaterThan(0); // moved pages went out and came back in
    expect(childRan).toBe(true);
    expect([badParent, badChild]).toEqual([0, 0]);
  });
});
