/**
 * fork and copy-on-write, seen through vmlab_pageinfo: parent and child share frames until one
 * writes; grandchildren still copy; the kernel writes into copy-on-write and not-yet-faulted
 * pages on a process's behalf; shared anonymous memory stays shared; orphans go to init;
 * every frame comes back when everyone has exited.
 */
import { describe, expect, it } from 'vitest';
import {
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  type PageInfo,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  WEXITSTATUS,
  WIFEXITED,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, settleFreePages } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED = MAP_SHARED | MAP_ANONYMOUS;

describe('fork shares frames copy-on-write', () => {
  it('parent and child map the same frame until the child writes; then they differ and the parent is unchanged', () => {
    const seen: Record<string, PageInfo | number> = {};
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 111);
      const child = sys.fork(function* (c) {
        seen.childBefore = c.sys.vmlab_pageinfo(a);
        c.cpu.store32(a, 222);
        seen.childAfter = c.sys.vmlab_pageinfo(a);
        seen.childValue = c.cpu.load32(a);
        yield;
        return 0;
      });
      seen.parentAtFork = sys.vmlab_pageinfo(a);
      yield* sys.wait4(child, 0, 0);
      seen.parentAfter = sys.vmlab_pageinfo(a);
      seen.parentValue = cpu.load32(a);
      cpu.store32(a, 333); // alone again: reused in place
      seen.parentWritten = sys.vmlab_pageinfo(a);
      return 0;
    });
    m.runToEnd();
    const p0 = seen.parentAtFork as PageInfo;
    const c0 = seen.childBefore as PageInfo;
    const c1 = seen.childAfter as PageInfo;
    const p1 = seen.parentAfter as PageInfo;
    const p2 = seen.parentWritten as PageInfo;
    expect([p0.shared, p0.copyOnWrite, p0.writable, p0.mapCount, p0.refCount]).toEqual([
      true,
      true,
      false,
      2,
      2,
    ]);
    expect([c0.physAddr, c0.copyOnWrite]).toEqual([p0.physAddr, true]);
    expect(c1.physAddr).not.toBe(p0.physAddr);
    expect([c1.copyOnWrite, c1.writable, c1.dirty, c1.mapCount]).toEqual([false, true, true, 1]);
    expect(seen.childValue).toBe(222);
    expect(seen.parentValue).toBe(111);
    expect([p1.physAddr, p1.copyOnWrite, p1.mapCount, p1.refCount]).toEqual([p0.physAddr, true, 1, 1]);
    expect([p2.physAddr, p2.writable]).toEqual([p0.physAddr, true]);
    expect(m.kernel.events.cow_fault).toBe(1);
    expect(m.kernel.events.pgreuse).toBe(1);
    expect(settleFreePages(m)).toBe(free0);
  });

  it('a grandchild forked before any write still copies on write (it does not die)', () => {
    const values: number[] = [];
    let refs = 0;
    const m = bootTestMachine();
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 1);
      const child = sys.fork(function* (c) {
        const gc = c.sys.fork(function* (g) {
          refs = g.sys.vmlab_pageinfo(a).refCount;
          g.cpu.store32(a, 3);
          values.push(g.cpu.load32(a));
          yield;
          return 0;
        });
        yield* c.sys.wait4(gc, 0, 0);
        values.push(c.cpu.load32(a));
        c.cpu.store32(a, 2);
        values.push(c.cpu.load32(a));
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      values.push(cpu.load32(a));
      return 0;
    });
    m.runToEnd();
    expect(refs).toBe(3);
    expect(values).toEqual([3, 1, 2, 1]);
    for (const t of m.kernel.tasks.values()) if (!t.kernelThread) expect(t.waitStatus).toBe(0);
  });

  it('read-only and PROT_NONE private memory is inherited too, and copies when made writable', () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 10);
      cpu.store32(a + PAGE, 20);
      sys.mprotect(a, PAGE, PROT_READ);
      sys.mprotect(a + PAGE, PAGE, PROT_NONE);
      const child = sys.fork(function* (c) {
        c.sys.mprotect(a, 2 * PAGE, RW);
        r.push(c.cpu.load32(a), c.cpu.load32(a + PAGE));
        c.cpu.store32(a, 11);
        c.cpu.store32(a + PAGE, 21);
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      sys.mprotect(a, 2 * PAGE, PROT_READ);
      r.push(cpu.load32(a), cpu.load32(a + PAGE));
      return 0;
    });
    expect(r).toEqual([10, 20, 10, 20]);
  });

  it("a child's MADV_DONTNEED and munmap leave the parent's memory alone", () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 5);
      cpu.store32(a + PAGE, 6);
      const child = sys.fork(function* (c) {
        c.sys.madvise(a, PAGE, MADV_DONTNEED);
        r.push(c.cpu.load32(a));
        c.sys.munmap(a + PAGE, PAGE);
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      r.push(cpu.load32(a), cpu.load32(a + PAGE), sys.vmlab_pageinfo(a).mapCount);
      return 0;
    });
    expect(r).toEqual([0, 5, 6, 1]);
  });

  it('after the child execs, the parent owns its pages alone again: its writes reuse them', () => {
    const m = bootTestMachine();
    const other = m.register(function* () {
      yield;
      return 4;
    });
    let status = -1;
    let reuse = -1;
    m.start(function* ({ sys, cpu }) {
      const st = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const a = sys.mmap(0, 8 * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < 8; p++) cpu.store32(a + p * PAGE, p);
      const child = sys.fork(function* (c) {
        yield;
        c.sys.execve(other, [other]);
        return 99; // not reached
      });
      yield* sys.wait4(child, st, 0);
      status = cpu.load32(st);
      const before = m.kernel.events.pgreuse;
      for (let p = 0; p < 8; p++) cpu.store32(a + p * PAGE, 100 + p);
      reuse = m.kernel.events.pgreuse - before;
      return 0;
    });
    m.runToEnd();
    expect(WIFEXITED(status) && WEXITSTATUS(status)).toBe(4);
    expect(reuse).toBe(8);
  });
});

describe('the kernel writing user memory on a process behalf', () => {
  it('wait4 writes its status into a fresh heap page and into a copy-on-write page (a sibling keeps its copy)', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    m.start(function* ({ sys, cpu }) {
      const heap = sys.brk(0);
      sys.brk(heap + PAGE); // never touched
      const c1 = sys.fork(function* () {
        yield;
        return 7;
      });
      yield* sys.wait4(c1, heap, 0); // the kernel's write faults the page in
      r.push(cpu.load32(heap));
      const pa = sys.vmlab_pageinfo(heap).physAddr;
      const watcher = sys.fork(function* (c) {
        yield* c.sys.nanosleep(2_000_000); // until after the parent's next wait4
        return WEXITSTATUS(c.cpu.load32(heap)); // still c1's status in its copy
      });
      const c3 = sys.fork(function* () {
        yield;
        return 9;
      });
      r.push(sys.vmlab_pageinfo(heap).copyOnWrite ? 1 : 0);
      yield* sys.wait4(c3, heap, 0); // the heap page is copy-on-write: the kernel's write copies it
      r.push(cpu.load32(heap), sys.vmlab_pageinfo(heap).physAddr === pa ? 1 : 0);
      const st = heap + 64;
      yield* sys.wait4(watcher, st, 0);
      r.push(cpu.load32(st));
      return 0;
    });
    m.runToEnd();
    expect(WIFEXITED(r[0]!) && WEXITSTATUS(r[0]!)).toBe(7);
    expect(r[1]).toBe(1);
    expect(WEXITSTATUS(r[2]!)).toBe(9);
    expect(r[3]).toBe(0); // the parent got a copy of its own
    expect(WEXITSTATUS(r[4]!)).toBe(7); // the watcher's page was not written through
    expect(m.kernel.events.cow_fault).toBeGreaterThanOrEqual(1);
  });

  it('mincore writes its vector into a copy-on-write page', () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      const vec = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store8(a, 1);
      cpu.store32(vec, 0xffffffff);
      const child = sys.fork(function* (c) {
        yield* c.sys.nanosleep(1_000_000);
        r.push(c.cpu.load32(vec));
        return 0;
      });
      r.push(sys.mincore(a, 2 * PAGE, vec), cpu.load8(vec), cpu.load8(vec + 1), cpu.load8(vec + 2));
      yield* sys.wait4(child, 0, 0);
      return 0;
    });
    expect(r).toEqual([0, 1, 0, 0xff, 0xffffffff]);
  });
});

describe('process lifetimes and memory', () => {
  it('a parent exiting before its child leaves the child to init, still running on its memory', () => {
    const m = bootTestMachine();
    let childPpid = -1;
    let childValue = -1;
    let parentPid = -1;
    m.start(function* ({ sys, cpu }) {
      parentPid = sys.getpid();
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 42);
      sys.fork(function* (c) {
        const before = c.sys.getppid();
        yield* c.sys.nanosleep(1_000_000);
        childPpid = c.sys.getppid();
        childValue = c.cpu.load32(a) + (before === parentPid ? 0 : 1000);
        c.cpu.store32(a, 43); // the parent's share is gone: no copy needed
        return 0;
      });
      yield* sys.nanosleep(100_000); // the child starts while its parent lives
      return 0;
    });
    m.runToEnd();
    expect(childPpid).toBe(1);
    expect(childValue).toBe(42);
  });

  it('forking a process that holds two thirds of memory succeeds, and both can still write', () => {
    const pages = Math.floor((2 / 3) * ((32 * 1024 * 1024) / PAGE));
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    let child = -1;
    let status = -1;
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < pages; p++) {
        cpu.store8(a + p * PAGE, 1);
        if (p % 64 === 0) yield;
      }
      const st = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      child = sys.fork(function* (c) {
        for (let p = 0; p < 100; p++) c.cpu.store8(a + p * PAGE, 2);
        yield;
        return c.cpu.load8(a) === 2 && c.cpu.load8(a + 100 * PAGE) === 1 ? 0 : 1;
      });
      for (let p = pages - 100; p < pages; p++) cpu.store8(a + p * PAGE, 3);
      yield* sys.wait4(child, st, 0);
      status = cpu.load32(st);
      return cpu.load8(a) === 1 ? 0 : 1;
    });
    m.runToEnd();
    expect(child).toBeGreaterThan(0);
    expect(status).toBe(0);
    expect(settleFreePages(m)).toBe(free0);
  });

  it('MAP_SHARED|MAP_ANONYMOUS stays shared across fork, both ways, even for pages touched after it', () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 3 * PAGE, RW, SHARED, -1, 0);
      cpu.store32(a, 1);
      const child = sys.fork(function* (c) {
        c.cpu.store32(a + PAGE, 77); // never touched before the fork
        yield* c.sys.nanosleep(1_000_000);
        r.push(c.cpu.load32(a + 2 * PAGE)); // the parent's write
        c.cpu.store32(a, 2);
        return 0;
      });
      yield;
      cpu.store32(a + 2 * PAGE, 88);
      yield* sys.wait4(child, 0, 0);
      const info = sys.vmlab_pageinfo(a);
      r.push(cpu.load32(a), cpu.load32(a + PAGE), info.copyOnWrite ? 1 : 0, info.writable ? 1 : 0);
      return 0;
    });
    expect(r).toEqual([88, 2, 77, 0, 1]);
  });

  it('a partial munmap of shared memory in one process does not unshare the rest for the others', () => {
    // Regression: splitting a shared anonymous VMA did not count a new user of the object, so a
    // partial munmap then exit dropped the object's pages while the parent still used it.
    let seen = -1;
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 3 * PAGE, RW, SHARED, -1, 0);
      const first = sys.fork(function* (c) {
        c.sys.munmap(a, PAGE);
        yield;
        return 0;
      });
      yield* sys.wait4(first, 0, 0);
      const second = sys.fork(function* (c) {
        c.cpu.store32(a + 2 * PAGE, 42);
        yield;
        return 0;
      });
      yield* sys.wait4(second, 0, 0);
      seen = cpu.load32(a + 2 * PAGE);
      return 0;
    });
    m.runToEnd();
    expect(seen).toBe(42);
    expect(settleFreePages(m)).toBe(free0);
  });
});
