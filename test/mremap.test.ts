import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDWR,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGSEGV,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, settleFreePages } from './helpers/kernel.ts';
import {
  chargeDrift,
  dirtyKb,
  fileMachine,
  hostByte,
  lengthsIn,
  runLeakFree,
  vmasIn,
} from './helpers/mremap.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const A = 0x20000000;

describe('mremap arguments', () => {
  it('refuses what Linux refuses, with its errno values, and changes nothing', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys }) {
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(sys.mremap(a + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0)); // unaligned
      r.push(sys.mremap(a, PAGE, 2 * PAGE, 8, 0)); // unknown flag
      r.push(sys.mremap(a, PAGE, 2 * PAGE, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0)); // DONTUNMAP: sizes differ
      r.push(sys.mremap(a, PAGE, 2 * PAGE, MREMAP_FIXED, A + 64 * PAGE)); // FIXED needs MAYMOVE
      r.push(sys.mremap(a, PAGE, 0, MREMAP_MAYMOVE, 0)); // new size 0
      r.push(sys.mremap(a, 0, PAGE, MREMAP_MAYMOVE, 0)); // old size 0 duplicates shared mappings only
      r.push(sys.mremap(a, PAGE, PAGE, MREMAP_DONTUNMAP, 0)); // DONTUNMAP needs MAYMOVE
      r.push(sys.mremap(a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + PAGE)); // overlap
      r.push(sys.mremap(A + 64 * PAGE, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0)); // nothing mapped
      sys.mprotect(a + 2 * PAGE, PAGE, PROT_READ); // two VMAs now: [a, a+2p) and [a+2p, a+3p) ...
      r.push(sys.mremap(a, 3 * PAGE, 6 * PAGE, MREMAP_MAYMOVE, 0)); // spans two VMAs
      r.push(vmasIn(sys, a, a + 4 * PAGE).length);
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -EFAULT,
      -EFAULT,
      3,
    ]);
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

describe('mremap refusals that change nothing', () => {
  it('MREMAP_FIXED below mmap_min_addr is EPERM, as mmap MAP_FIXED there is, and the old mapping stays', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(A, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 42);
      r.push(sys.mmap(PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0)); // the rule mmap already keeps
      r.push(sys.mremap(a, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, PAGE));
      r.push(vmasIn(sys, 0, 65536).length, vmasIn(sys, a, a + PAGE).length);
      if (vmasIn(sys, a, a + PAGE).length === 1) r.push(cpu.load8(a));
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([-EPERM, -EPERM, 0, 1, 42]);
  });

  it('a move the commit limit refuses is ENOMEM and leaves the VMA whole (not split around the range)', () => {
    const r: number[] = [];
    const m = bootTestMachine({ tunables: { overcommitMemory: 2 } });
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, i + 1);
      const committed = m.kernel.committedAs;
      // The second page alone, grown far past CommitLimit: it has to move (it does not end the VMA).
      r.push(sys.mremap(a + PAGE, PAGE, 64 * 1024 * 1024, MREMAP_MAYMOVE, 0));
      r.push(vmasIn(sys, a, a + 4 * PAGE).length, m.kernel.committedAs - committed, chargeDrift(mm));
      for (let i = 0; i < 4; i++) r.push(cpu.load8(a + i * PAGE));
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([-ENOMEM, 1, 0, 0, 1, 2, 3, 4]);
  });
});

describe('mremap and shared anonymous memory', () => {
  it('a shared anonymous mapping moved by the parent stays shared with its forked child both ways', () => {
    const r: number[] = [];
    let child: number[] = [];
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      sys.mmap(A + 4 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0); // the growth has to move
      for (let i = 0; i < 4; i++) cpu.store32(s + i * PAGE, 0x300 + i);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        yield* cs.nanosleep(50_000_000);
        child = [0, 1, 2, 3].map((i) => c.load32(s + i * PAGE));
        c.store32(s + 3 * PAGE, 0x55);
        return 0;
      });
      const frame = sys.vmlab_pageinfo(s).physAddr;
      const t2 = sys.mremap(s, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE, 0);
      r.push(t2 !== s && t2 > 0 ? 1 : 0, sys.vmlab_pageinfo(t2).physAddr === frame ? 1 : 0);
      r.push(sys.vmlab_pageinfo(t2).mapCount, vmasIn(sys, s, s + 4 * PAGE).length);
      for (let i = 0; i < 4; i++) cpu.store32(t2 + i * PAGE, 0x400 + i);
      m.kernel.checkInvariants();
      yield* sys.wait4(pid, 0, 0);
      r.push(cpu.load32(t2 + 3 * PAGE));
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([1, 1, 2, 0, 0x55]);
    expect(child).toEqual([0x400, 0x401, 0x402, 0x403]);
    expect(settleFreePages(m)).toBe(free0);
  });

  it('a shared anonymous mapping grown back over an unmapped part finds its data; past its size a touch is SIGBUS', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      cpu.store8(s + PAGE, 0x58);
      sys.munmap(s + PAGE, PAGE); // the object keeps the page
      r.push(sys.mremap(s, PAGE, 2 * PAGE, 0, 0) - s, cpu.load8(s + PAGE));
      // The object is two pages (a shmem file of the mapping's size): growing the mapping does
      // not grow the object, and a page past its end has nothing to map.
      r.push(sys.mremap(s, 2 * PAGE, 4 * PAGE, 0, 0) - s);
      yield;
      cpu.store8(s + 2 * PAGE, 1);
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 0x58, 0]);
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGBUS);
  });
});

describe('mremap of file mappings', () => {
  it('a private file mapping moved and grown maps the file pages that follow; its copied page moves too', () => {
    const r: number[] = [];
    const { m, dir } = fileMachine(6);
    const t = m.start(function* ({ sys, cpu }) {
      const fd = sys.open('/f.bin', O_RDWR);
      const p = sys.mmap(A, 2 * PAGE, RW, MAP_PRIVATE | MAP_FIXED, fd, PAGE); // file pages 1 and 2
      sys.mmap(A + 2 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0); // the growth has to move
      r.push(cpu.load8(p));
      cpu.store8(p + PAGE, 0x99); // a private copy of file page 2
      const q = sys.mremap(p, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, 0);
      r.push(q !== p && q > 0 ? 1 : 0, vmasIn(sys, q, q + 4 * PAGE).length);
      for (let i = 0; i < 4; i++) r.push(cpu.load8(q + i * PAGE));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0x41, 1, 1, 0x41, 0x99, 0x43, 0x44]);
    expect(hostByte(dir, 2 * PAGE)).toBe(0x42); // private: the file never sees the write
  });

  it('moving a shared file mapping keeps its dirty page dirty and writable: a move writes nothing back', () => {
    const r: Array<number | boolean> = [];
    const { m, dir } = fileMachine(2);
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 2 * PAGE, RW, MAP_SHARED | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      cpu.store8(s, 7);
      r.push(dirtyKb(m));
      const target = A + 64 * PAGE;
      r.push(sys.mremap(s, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target) - target);
      const info = sys.vmlab_pageinfo(target);
      r.push(dirtyKb(m), info.dirty, info.writable, cpu.load8(target));
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([4, 0, 4, true, true, 7]);
    expect(hostByte(dir, 0)).toBe(7); // written back when the process exited
  });

  it('a shared file mapping moved next to the mapping of the file pages before it merges with it', () => {
    const r: number[] = [];
    const { m } = fileMachine(4);
    const t = m.start(function* ({ sys, cpu }) {
      const fd = sys.open('/f.bin', O_RDWR);
      sys.mmap(A, 2 * PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
      const c = sys.mmap(A + 64 * PAGE, 2 * PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 2 * PAGE);
      // Same file, same flags, file offsets running on: one VMA, as Linux's vma_merge makes it.
      r.push(sys.mremap(c, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, A + 2 * PAGE) - A);
      r.push(cpu.load8(A + 2 * PAGE), cpu.load8(A + 3 * PAGE));
      r.push(lengthsIn(sys, A, A + 4 * PAGE) === '4' ? 1 : 0);
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([2 * PAGE, 0x42, 0x43, 1]);
  });
});

describe('mremap: splits, merges and the commit charge', () => {
  it('halves moved the same distance join again, a part moved away and back merges home, and the charge follows', () => {
    const r: Array<number | string> = [];
    const inChild: number[] = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 8 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 8; i++) cpu.store8(a + i * PAGE, i + 1);
      const b = A + 512 * PAGE;
      sys.mremap(a + 4 * PAGE, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b + 4 * PAGE);
      r.push(lengthsIn(sys, b, b + 8 * PAGE));
      sys.mremap(a, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b);
      r.push(lengthsIn(sys, b, b + 8 * PAGE), vmasIn(sys, a, a + 8 * PAGE).length);
      sys.mremap(b + 2 * PAGE, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + 2 * PAGE);
      r.push(lengthsIn(sys, b, b + 8 * PAGE));
      sys.mremap(a + 2 * PAGE, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b + 2 * PAGE);
      r.push(lengthsIn(sys, b, b + 8 * PAGE), chargeDrift(mm));
      let bad = 0;
      for (let i = 0; i < 8; i++) if (cpu.load8(b + i * PAGE) !== i + 1) bad++;
      r.push(bad);
      let charged = mm.committedPages;
      sys.mremap(b, 8 * PAGE, 3 * PAGE, 0, 0); // shrink
      r.push(charged - mm.committedPages);
      charged = mm.committedPages;
      sys.mremap(b, 3 * PAGE, 6 * PAGE, 0, 0); // grow in place
      r.push(mm.committedPages - charged, cpu.load8(b + 2 * PAGE), cpu.load8(b + 5 * PAGE));
      const pid = sys.fork(function* ({ sys: cs }) {
        const cmm = m.kernel.current!.mm!;
        cs.mmap(b + 6 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        const c = cs.mremap(b, 6 * PAGE, 10 * PAGE, MREMAP_MAYMOVE, 0); // moves, grows
        inChild.push(c > 0 && c !== b ? 1 : 0, chargeDrift(cmm));
        yield;
        return 0;
      });
      yield* sys.wait4(pid, 0, 0);
      r.push(chargeDrift(mm));
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual(['4', '8', 0, '2,4', '8', 0, 0, 5, 3, 3, 0, 0]);
    expect(inChild).toEqual([1, 0]);
  });

  it('an anonymous VMA never touched, moved next to a compatible one, merges with it', () => {
    const r: Array<number | string> = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 1);
      cpu.store8(a + PAGE, 2);
      const x = sys.mmap(A + 64 * PAGE, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0); // no page yet
      // Linux's copy_vma gives a VMA with no anon_vma the page offset of its new place, so it
      // merges as if it had been mapped there.
      r.push(sys.mremap(x, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + 2 * PAGE) - a);
      r.push(lengthsIn(sys, a, a + 4 * PAGE));
      cpu.store8(a + 3 * PAGE, 4);
      r.push(cpu.load8(a), cpu.load8(a + PAGE), cpu.load8(a + 2 * PAGE), cpu.load8(a + 3 * PAGE));
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([2 * PAGE, '4', 1, 2, 0, 4]);
  });
});

describe('mremap, fork and reclaim', () => {
  it('a move in the parent keeps the frames the child shares (map counts, RSS); a write copies; reclaim unmaps both', () => {
    const r: number[] = [];
    const pages = 64;
    let childSwapped = -1;
    let childBad = -1;
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const mm = self.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.mmap(A + pages * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0); // the growth has to move
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x7000 + i);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        yield* cs.nanosleep(1_000_000_000); // the parent has moved, written and reclaimed by then
        childSwapped = 0;
        for (let i = 0; i < pages; i++) if (cs.vmlab_pageinfo(a + i * PAGE).swapped) childSwapped++;
        childBad = 0;
        for (let i = 0; i < pages; i++) if (c.load32(a + i * PAGE) !== 0x7000 + i) childBad++;
        return 0;
      });
      const frames = Array.from({ length: pages }, (_, i) => sys.vmlab_pageinfo(a + i * PAGE).physAddr);
      const rss = mm.rss();
      const faults = self.minFlt;
      const b = sys.mremap(a, pages * PAGE, 2 * pages * PAGE, MREMAP_MAYMOVE, 0);
      let same = 0;
      let shared = 0;
      for (let i = 0; i < pages; i++) {
        const info = sys.vmlab_pageinfo(b + i * PAGE);
        if (info.physAddr === frames[i]) same++;
        if (info.mapCount === 2 && info.copyOnWrite) shared++;
      }
      r.push(b !== a && b > 0 ? 1 : 0, same, shared, mm.rss() - rss, self.minFlt - faults);
      cpu.store32(b, 0xbeef); // copy on write, at the new address
      r.push(sys.vmlab_pageinfo(b).mapCount, sys.vmlab_pageinfo(b).physAddr === frames[0] ? 1 : 0);
      m.kernel.checkInvariants();
      // A resident limit makes the parent reclaim its own pages, shared ones included: each goes
      // out of the child's tables too, found through the moved VMA's anonDelta in the parent.
      self.residentLimitPages = 24;
      const scratch = sys.mmap(0, 128 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 128; i++) {
        cpu.store8(scratch + i * PAGE, 1);
        if (i % 16 === 0) yield;
      }
      self.residentLimitPages = 0;
      m.kernel.checkInvariants();
      const major = self.majFlt;
      let bad = cpu.load32(b) === 0xbeef ? 0 : 1;
      for (let i = 1; i < pages; i++) if (cpu.load32(b + i * PAGE) !== 0x7000 + i) bad++;
      r.push(bad, self.majFlt - major > 0 ? 1 : 0);
      yield* sys.wait4(pid, 0, 0);
      return 0;
    });
    expect(r).toEqual([1, pages, pages, 0, 0, 1, 0, 0, 1]);
    expect(childSwapped).toBeGreaterThan(0);
    expect(childBad).toBe(0);
  });

  it('swapped-out pages and pages under PROT_NONE move with their entries, twice, and come back after reclaim', () => {
    const r: number[] = [];
    const pages = 48;
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const mm = self.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x9000 + i);
      const scratch = sys.mmap(0, 96 * PAGE, RW, ANON, -1, 0);
      const squeeze = function* () {
        self.residentLimitPages = 24;
        for (let i = 0; i < 96; i++) {
          cpu.store8(scratch + i * PAGE, i);
          if (i % 16 === 0) yield;
        }
        self.residentLimitPages = 0;
      };
      yield* squeeze();
      for (let i = 0; i < pages; i += 2) cpu.load32(a + i * PAGE); // half of them back in
      let swapped = 0;
      for (let i = 0; i < pages; i++) if (sys.vmlab_pageinfo(a + i * PAGE).swapped) swapped++;
      r.push(swapped);
      sys.mprotect(a, pages * PAGE, PROT_NONE); // the resident ones are kept in non-present entries
      const swapEntries = mm.swapEntries;
      const rss = mm.rss();
      const b = A + 1024 * PAGE;
      const c = A + 4096 * PAGE;
      r.push(sys.mremap(a, pages * PAGE, pages * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b) - b);
      r.push(sys.mremap(b, pages * PAGE, 2 * pages * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, c) - c);
      r.push(mm.swapEntries - swapEntries, mm.rss() - rss);
      m.kernel.checkInvariants();
      yield* squeeze(); // the PROT_NONE-kept frames at c are found and go out too
      r.push(mm.swapEntries > swapEntries ? 1 : 0);
      m.kernel.checkInvariants();
      sys.mprotect(c, 2 * pages * PAGE, RW);
      const major = self.majFlt;
      let bad = 0;
      for (let i = 0; i < pages; i++) if (cpu.load32(c + i * PAGE) !== 0x9000 + i) bad++;
      for (let i = pages; i < 2 * pages; i++) if (cpu.load32(c + i * PAGE) !== 0) bad++;
      r.push(bad, self.majFlt - major > 0 ? 1 : 0);
      return 0;
    });
    expect(r).toEqual([pages / 2, 0, 0, 0, 0, 1, 0, 1]);
  });
});

describe('MREMAP_DONTUNMAP and duplicating a shared mapping', () => {
  it('DONTUNMAP moves the pages and leaves the old range mapped, empty and charged: a touch there reads zeros', () => {
    const r: number[] = [];
    const pages = 4;
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const mm = self.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x500 + i);
      const frames = Array.from({ length: pages }, (_, i) => sys.vmlab_pageinfo(a + i * PAGE).physAddr);
      const committed = mm.committedPages;
      const rss = mm.rss();
      const faults = self.minFlt;
      const b = sys.mremap(a, pages * PAGE, pages * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
      let same = 0;
      for (let i = 0; i < pages; i++) {
        if (sys.vmlab_pageinfo(b + i * PAGE).physAddr === frames[i]) same++;
        if (cpu.load32(b + i * PAGE) === 0x500 + i) same++;
      }
      r.push(b !== a && b > 0 ? 1 : 0, same, self.minFlt - faults, mm.rss() - rss);
      r.push(mm.committedPages - committed, chargeDrift(mm), vmasIn(sys, a, a + pages * PAGE).length);
      r.push(sys.vmlab_pageinfo(a).present ? 1 : 0);
      m.kernel.checkInvariants();
      r.push(cpu.load32(a + PAGE), self.minFlt - faults); // demand zero in the old range
      cpu.store32(a, 0x77);
      r.push(cpu.load32(b), sys.vmlab_pageinfo(a).physAddr === frames[0] ? 1 : 0);
      // With MREMAP_FIXED as well: to the given address.
      const c = A + 256 * PAGE;
      r.push(
        sys.mremap(b, pages * PAGE, pages * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, c) - c,
      );
      r.push(cpu.load32(c + 3 * PAGE), cpu.load32(b + 3 * PAGE), chargeDrift(mm));
      m.kernel.checkInvariants();
      for (const x of [a, b, c]) sys.munmap(x, pages * PAGE);
      r.push(mm.committedPages - committed + pages);
      yield;
      return 0;
    });
    expect(r).toEqual([1, 2 * pages, 0, 0, pages, 0, 1, 0, 0, 1, 0x500, 0, 0, 0x503, 0, 0, 0]);
  });

  it('DONTUNMAP of a shared anonymous mapping leaves the old range seeing the same pages', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      cpu.store8(s + PAGE, 0x31);
      const b = sys.mremap(s, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
      r.push(cpu.load8(b + PAGE), cpu.load8(s + PAGE));
      cpu.store8(s, 0x32); // through the old range, seen at the new one
      r.push(cpu.load8(b));
      sys.munmap(b, 2 * PAGE); // the old range still holds the object
      r.push(cpu.load8(s), cpu.load8(s + PAGE));
      yield;
      return 0;
    });
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0x31, 0x31, 0x32, 0x32, 0x31]);
  });

  it('an old size of 0 maps a shared object a second time from the old address on; past its end is SIGBUS', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const s = sys.mmap(A, 3 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      for (let i = 0; i < 3; i++) cpu.store8(s + i * PAGE, 0x60 + i);
      r.push(sys.mremap(s + PAGE, 0, 2 * PAGE, 0, 0)); // it must move
      const d = sys.mremap(s + PAGE, 0, 2 * PAGE, MREMAP_MAYMOVE, 0); // object pages 1 and 2
      r.push(
        d > 0 && d !== s ? 1 : 0,
        cpu.load8(d),
        cpu.load8(d + PAGE),
        lengthsIn(sys, s, s + 3 * PAGE) === '3' ? 1 : 0,
      );
      cpu.store8(d + PAGE, 0x70);
      r.push(cpu.load8(s + 2 * PAGE));
      r.push(sys.vmlab_pageinfo(d).physAddr === sys.vmlab_pageinfo(s + PAGE).physAddr ? 1 : 0);
      m.kernel.checkInvariants();
      sys.munmap(s, 3 * PAGE);
      r.push(cpu.load8(d)); // the duplicate keeps the object alive
      sys.munmap(d, 2 * PAGE);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        const o = cs.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        const e = cs.mremap(o, 0, 3 * PAGE, MREMAP_MAYMOVE, 0); // one page more than the object
        c.store8(e + PAGE, 1);
        yield;
        c.store8(e + 2 * PAGE, 1); // past the object's two pages
        return 0;
      });
      const child = m.kernel.tasks.get(pid)!;
      yield* sys.wait4(pid, 0, 0);
      r.push(WIFSIGNALED(child.waitStatus) && WTERMSIG(child.waitStatus) === SIGBUS ? 1 : 0);
      return 0;
    });
    expect(r).toEqual([-ENOMEM, 1, 0x61, 0x62, 1, 0x70, 1, 0x61, 1]);
  });

  it('an old size of 0 on a shared file mapping maps the file again: a write there reaches the file', () => {
    const r: number[] = [];
    const { m, dir } = fileMachine(4);
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 4 * PAGE, RW, MAP_SHARED | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      const d = sys.mremap(s + 2 * PAGE, 0, 2 * PAGE, MREMAP_MAYMOVE, 0);
      r.push(cpu.load8(d), cpu.load8(d + PAGE));
      cpu.store8(d + PAGE + 1, 0x5a);
      r.push(cpu.load8(s + 3 * PAGE + 1));
      sys.munmap(s, 4 * PAGE);
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0x42, 0x43, 0x5a]);
    expect(hostByte(dir, 3 * PAGE + 1)).toBe(0x5a);
  });
});
