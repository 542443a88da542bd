import { describe, expect, it } from 'vitest';
import type { AddressSpace } from '../kernel/mm/mm.ts';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MS_SYNC,
  O_RDWR,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGSEGV,
  type Syscalls,
  type UserCpu,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, type TestMachine } from './helpers/kernel.ts';
import {
  baseline,
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
const SHANON = MAP_SHARED | MAP_ANONYMOUS;
const MOVE = MREMAP_MAYMOVE;
const DONTUNMAP = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
const DONTUNMAP_TO = MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED;
const A = 0x20000000;
const B = A + 1024 * PAGE;
const C = A + 4096 * PAGE;

/** The users count of the shared anonymous object mapped at `va` (-1 when it is not one). */
function shmemUsers(mm: AddressSpace, va: number): number {
  const v = mm.vmas.find(va);
  return v !== undefined && v.backing.kind === 'shmem' ? v.backing.object.users : -1;
}

/** The VMAs of `mm` that map the same shared object as the VMA at `va`. */
function vmasOfObject(mm: AddressSpace, va: number): number {
  const v = mm.vmas.find(va);
  if (v === undefined || v.backing.kind !== 'shmem') return -1;
  const obj = v.backing.object;
  return mm.vmas.all().filter((w) => w.backing.kind === 'shmem' && w.backing.object === obj).length;
}

/** mapUsers of the file mapped at `va` (-1 when it is not a file mapping). */
function fileUsers(mm: AddressSpace, va: number): number {
  const v = mm.vmas.find(va);
  return v !== undefined && v.backing.kind === 'file' ? v.backing.file.mapUsers : -1;
}

/** How many of the `pages` pages from `va` are swapped out / present. */
function countPages(sys: Syscalls, va: number, pages: number, what: 'swapped' | 'present'): number {
  let n = 0;
  for (let i = 0; i < pages; i++) if (sys.vmlab_pageinfo(va + i * PAGE)[what]) n++;
  return n;
}

/**
 * Make the running process reclaim its own pages: a resident limit of `limit` pages while it
 * touches every page of `scratch` (`pages` pages); the limit is lifted after.
 */
function* squeeze(m: TestMachine, cpu: UserCpu, scratch: number, pages: number, limit = 24) {
  const self = m.kernel.current!;
  self.residentLimitPages = limit;
  for (let i = 0; i < pages; i++) {
    cpu.store8(scratch + i * PAGE, i + 1);
    if (i % 16 === 0) yield;
  }
  self.residentLimitPages = 0;
}

describe('MREMAP_DONTUNMAP: arguments', () => {
  it('refuses what Linux refuses (raw lengths that differ, overlap, two VMAs, no MAYMOVE) and changes nothing', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, i + 1);
      const committed = mm.committedPages;
      r.push(sys.mremap(a, PAGE, PAGE - 1, DONTUNMAP, 0)); // the same once page-aligned, but not raw
      r.push(sys.mremap(a, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, a + PAGE)); // overlaps the old range
      r.push(sys.mremap(a, 2 * PAGE, 2 * PAGE, MREMAP_DONTUNMAP | MREMAP_FIXED, B)); // no MAYMOVE
      sys.mprotect(a + 2 * PAGE, 2 * PAGE, PROT_READ);
      r.push(sys.mremap(a, 4 * PAGE, 4 * PAGE, DONTUNMAP, 0)); // spans two VMAs
      r.push(sys.mremap(a + 3 * PAGE, 2 * PAGE, 2 * PAGE, DONTUNMAP, 0)); // runs past the mapping
      r.push(lengthsIn(sys, a, a + 4 * PAGE), mm.committedPages - committed, vmasIn(sys, B, B + PAGE).length);
      for (let i = 0; i < 4; i++) r.push(cpu.load8(a + i * PAGE));
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([-EINVAL, -EINVAL, -EINVAL, -EFAULT, -EFAULT, '2,2', 0, 0, 1, 2, 3, 4]);
  });
});

describe('MREMAP_DONTUNMAP and fork', () => {
  it('fork, then DONTUNMAP in the parent: the child keeps its pages; the old range reads zeros; the new one copies on write', () => {
    const pages = 8;
    const r: number[] = [];
    let child: number[] = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x100 + i);
      const frames = Array.from({ length: pages }, (_, i) => sys.vmlab_pageinfo(a + i * PAGE).physAddr);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        yield* cs.nanosleep(100_000_000); // the parent has moved and written by then
        child = Array.from({ length: pages }, (_, i) => c.load32(a + i * PAGE));
        let same = 0;
        for (let i = 0; i < pages; i++) if (cs.vmlab_pageinfo(a + i * PAGE).physAddr === frames[i]) same++;
        child.push(same);
        c.store32(a + PAGE, 0xc1); // the child's own copy
        child.push(c.load32(a + PAGE));
        return 0;
      });
      const b = sys.mremap(a, pages * PAGE, pages * PAGE, DONTUNMAP, 0);
      r.push(b > 0 && b !== a ? 1 : 0);
      let shared = 0;
      for (let i = 0; i < pages; i++) {
        const info = sys.vmlab_pageinfo(b + i * PAGE);
        if (info.physAddr === frames[i] && info.mapCount === 2 && info.copyOnWrite) shared++;
      }
      r.push(shared, countPages(sys, a, pages, 'present'));
      r.push(cpu.load32(a + 2 * PAGE)); // a fresh zero page, not the child's
      cpu.store32(a, 0xaa);
      r.push(sys.vmlab_pageinfo(a).mapCount, sys.vmlab_pageinfo(a).physAddr === frames[0] ? 1 : 0);
      cpu.store32(b + 3 * PAGE, 0xbb); // copy on write at the new address
      const info3 = sys.vmlab_pageinfo(b + 3 * PAGE);
      r.push(info3.physAddr === frames[3] ? 1 : 0, info3.mapCount);
      m.kernel.checkInvariants();
      yield* sys.wait4(pid, 0, 0);
      r.push(sys.vmlab_pageinfo(b).mapCount);
      r.push(
        cpu.load32(b),
        cpu.load32(b + PAGE),
        cpu.load32(b + 3 * PAGE),
        cpu.load32(a),
        cpu.load32(a + PAGE),
      );
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual([1, pages, 0, 0, 1, 0, 0, 1, 1, 0x100, 0x101, 0xbb, 0xaa, 0]);
    expect(child).toEqual([...Array.from({ length: pages }, (_, i) => 0x100 + i), pages, 0xc1]);
  });

  it('DONTUNMAP, then fork: the child sees the moved pages and the old range as the parent left it; writes stay private', () => {
    const r: number[] = [];
    let child: number[] = [];
    let parentCommitted = -1;
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store32(a + i * PAGE, 0x200 + i);
      const b = sys.mremap(a, 4 * PAGE, 4 * PAGE, DONTUNMAP, 0);
      cpu.store32(a + PAGE, 0x55); // one fresh page in the old range
      parentCommitted = mm.committedPages;
      const pid = sys.fork(function* ({ cpu: c }) {
        const cmm = m.kernel.current!.mm!;
        child = [0, 1, 2, 3].map((i) => c.load32(b + i * PAGE));
        child.push(...[0, 1, 2, 3].map((i) => c.load32(a + i * PAGE)));
        child.push(chargeDrift(cmm), cmm.committedPages);
        c.store32(a + PAGE, 0x66);
        c.store32(b, 0x77);
        c.store32(a + 3 * PAGE, 0x88);
        yield;
        return 0;
      });
      yield* sys.wait4(pid, 0, 0);
      r.push(...[0, 1, 2, 3].map((i) => cpu.load32(b + i * PAGE)));
      r.push(...[0, 1, 2, 3].map((i) => cpu.load32(a + i * PAGE)));
      r.push(chargeDrift(mm));
      m.kernel.checkInvariants();
      return 0;
    });
    expect(child.slice(0, 8)).toEqual([0x200, 0x201, 0x202, 0x203, 0, 0x55, 0, 0]);
    expect(child.slice(8)).toEqual([0, parentCommitted]);
    expect(r).toEqual([0x200, 0x201, 0x202, 0x203, 0, 0x55, 0, 0, 0]);
  });
});

describe('MREMAP_DONTUNMAP and reclaim', () => {
  it('the moved pages (shared with a child forked before) and the fresh pages of the old range swap out and come back', () => {
    const pages = 48;
    const r: number[] = [];
    let childBad = -1;
    let childSwapped = -1;
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x7000 + i);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        yield* cs.nanosleep(1_000_000_000);
        childSwapped = countPages(cs, a, pages, 'swapped');
        childBad = 0;
        for (let i = 0; i < pages; i++) if (c.load32(a + i * PAGE) !== 0x7000 + i) childBad++;
        return 0;
      });
      const b = sys.mremap(a, pages * PAGE, pages * PAGE, DONTUNMAP_TO, B);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x8000 + i); // the old range, afresh
      for (let i = 0; i < pages; i += 3) cpu.store32(b + i * PAGE + 4, 0x9000 + i); // some copies
      m.kernel.checkInvariants();
      const scratch = sys.mmap(0, 128 * PAGE, RW, ANON, -1, 0);
      yield* squeeze(m, cpu, scratch, 128);
      m.kernel.checkInvariants();
      r.push(b - B, countPages(sys, b, pages, 'swapped') > 0 ? 1 : 0);
      r.push(countPages(sys, a, pages, 'swapped') > 0 ? 1 : 0);
      const major = self.majFlt;
      let bad = 0;
      for (let i = 0; i < pages; i++) {
        if (cpu.load32(b + i * PAGE) !== 0x7000 + i) bad++;
        if (cpu.load32(b + i * PAGE + 4) !== (i % 3 === 0 ? 0x9000 + i : 0)) bad++;
        if (cpu.load32(a + i * PAGE) !== 0x8000 + i) bad++;
      }
      r.push(bad, self.majFlt - major > 0 ? 1 : 0);
      m.kernel.checkInvariants();
      yield* sys.wait4(pid, 0, 0);
      return 0;
    });
    expect(r).toEqual([0, 1, 1, 0, 1]);
    expect(childSwapped).toBeGreaterThan(0);
    expect(childBad).toBe(0);
  });

  it('DONTUNMAP of the middle of a VMA: the old range stays in it, its fresh pages share the lineage; all reclaim right', () => {
    const pages = 32;
    const r: Array<number | string> = [];
    let childBad = -1;
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const mm = self.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x7000 + i);
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        yield* cs.nanosleep(1_000_000_000);
        childBad = 0;
        for (let i = 0; i < pages; i++) if (c.load32(a + i * PAGE) !== 0x7000 + i) childBad++;
        return 0;
      });
      const lo = 8;
      const n = 16;
      const committed = mm.committedPages;
      r.push(sys.mremap(a + lo * PAGE, n * PAGE, n * PAGE, DONTUNMAP_TO, B) - B);
      // Linux does not split the old VMA (nothing is unmapped): one VMA still.
      r.push(lengthsIn(sys, a, a + pages * PAGE), lengthsIn(sys, B, B + n * PAGE));
      r.push(mm.committedPages - committed, chargeDrift(mm));
      for (let i = lo; i < lo + n; i++) cpu.store32(a + i * PAGE, 0x9000 + i);
      m.kernel.checkInvariants();
      const scratch = sys.mmap(0, 128 * PAGE, RW, ANON, -1, 0);
      yield* squeeze(m, cpu, scratch, 128);
      m.kernel.checkInvariants();
      r.push(countPages(sys, a, pages, 'swapped') > 0 ? 1 : 0, countPages(sys, B, n, 'swapped') > 0 ? 1 : 0);
      let bad = 0;
      for (let i = 0; i < pages; i++) {
        const want = i >= lo && i < lo + n ? 0x9000 + i : 0x7000 + i;
        if (cpu.load32(a + i * PAGE) !== want) bad++;
      }
      for (let j = 0; j < n; j++) if (cpu.load32(B + j * PAGE) !== 0x7000 + lo + j) bad++;
      r.push(bad);
      m.kernel.checkInvariants();
      // Squeezed again, with everything resident: each frame must be found where it is mapped.
      yield* squeeze(m, cpu, scratch, 128);
      bad = 0;
      for (let j = 0; j < n; j++) if (cpu.load32(B + j * PAGE) !== 0x7000 + lo + j) bad++;
      for (let i = lo; i < lo + n; i++) if (cpu.load32(a + i * PAGE) !== 0x9000 + i) bad++;
      r.push(bad);
      m.kernel.checkInvariants();
      yield* sys.wait4(pid, 0, 0);
      return 0;
    });
    expect(r).toEqual([0, '32', '16', 16, 0, 1, 1, 0, 0]);
    expect(childBad).toBe(0);
  });

  it('swapped-out and PROT_NONE-kept entries move with DONTUNMAP; the old range holds none of them', () => {
    const pages = 48;
    const r: number[] = [];
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x3000 + i);
      const scratch = sys.mmap(0, 96 * PAGE, RW, ANON, -1, 0);
      yield* squeeze(m, cpu, scratch, 96);
      for (let i = 0; i < pages; i += 2) cpu.load32(a + i * PAGE); // half of them back
      const swapped = countPages(sys, a, pages, 'swapped');
      r.push(swapped > 0 ? 1 : 0);
      sys.mprotect(a, pages * PAGE, PROT_NONE);
      const swapEntries = mm.swapEntries;
      const rss = mm.rss();
      r.push(sys.mremap(a, pages * PAGE, pages * PAGE, DONTUNMAP_TO, B) - B);
      r.push(countPages(sys, B, pages, 'swapped') - swapped, countPages(sys, a, pages, 'swapped'));
      r.push(mm.swapEntries - swapEntries, mm.rss() - rss);
      m.kernel.checkInvariants();
      sys.mprotect(a, pages * PAGE, RW);
      sys.mprotect(B, pages * PAGE, RW);
      let bad = 0;
      for (let i = 0; i < pages; i++) if (cpu.load32(B + i * PAGE) !== 0x3000 + i) bad++;
      for (let i = 0; i < pages; i++) if (cpu.load32(a + i * PAGE) !== 0) bad++;
      r.push(bad);
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual([1, 0, 0, 0, 0, 0, 0]);
  });
});

describe('MREMAP_DONTUNMAP moves back and forth', () => {
  it('twice in a row, back onto the original address with MREMAP_FIXED: same frames home, the other range empty, both charged', () => {
    const pages = 6;
    const r: Array<number | string> = [];
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 16 });
    runLeakFree(m, function* ({ sys, cpu }) {
      const self = m.kernel.current!;
      const mm = self.mm!;
      const a = sys.mmap(A, pages * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < pages; i++) cpu.store32(a + i * PAGE, 0x500 + i);
      const frames = Array.from({ length: pages }, (_, i) => sys.vmlab_pageinfo(a + i * PAGE).physAddr);
      const committed = mm.committedPages;
      const b = sys.mremap(a, pages * PAGE, pages * PAGE, DONTUNMAP, 0);
      cpu.store32(a + PAGE, 0x99); // a fresh page in the old range, replaced by the move back
      r.push(sys.mremap(b, pages * PAGE, pages * PAGE, DONTUNMAP_TO, a) - a);
      let same = 0;
      for (let i = 0; i < pages; i++) if (sys.vmlab_pageinfo(a + i * PAGE).physAddr === frames[i]) same++;
      r.push(same, countPages(sys, b, pages, 'present'));
      r.push(lengthsIn(sys, a, a + pages * PAGE), lengthsIn(sys, b, b + pages * PAGE));
      r.push(mm.committedPages - committed, chargeDrift(mm));
      for (let i = 0; i < pages; i++) r.push(cpu.load32(a + i * PAGE));
      r.push(cpu.load32(b + PAGE));
      for (let i = 0; i < pages; i++) cpu.store32(b + i * PAGE, 0xb00 + i);
      m.kernel.checkInvariants();
      // And a third time, away again: the pages that came home go on.
      r.push(sys.mremap(a, pages * PAGE, pages * PAGE, DONTUNMAP_TO, C) - C);
      r.push(mm.committedPages - committed, chargeDrift(mm));
      const scratch = sys.mmap(0, 128 * PAGE, RW, ANON, -1, 0);
      yield* squeeze(m, cpu, scratch, 128);
      m.kernel.checkInvariants();
      let bad = 0;
      for (let i = 0; i < pages; i++) {
        if (cpu.load32(C + i * PAGE) !== 0x500 + i) bad++;
        if (cpu.load32(b + i * PAGE) !== 0xb00 + i) bad++;
        if (cpu.load32(a + i * PAGE) !== 0) bad++;
      }
      r.push(bad);
      for (const x of [a, b, C]) sys.munmap(x, pages * PAGE);
      sys.munmap(scratch, 128 * PAGE);
      r.push(mm.committedPages - committed + pages);
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual([
      0,
      pages,
      0,
      '6',
      '6',
      pages,
      0,
      0x500,
      0x501,
      0x502,
      0x503,
      0x504,
      0x505,
      0,
      0,
      2 * pages,
      0,
      0,
      0,
    ]);
  });

  it('a part moved out with DONTUNMAP and back into its hole merges home: one VMA, the data whole, the charge right', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 8 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 8; i++) cpu.store8(a + i * PAGE, i + 1);
      const committed = mm.committedPages;
      r.push(sys.mremap(a + 2 * PAGE, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, B) - B);
      r.push(lengthsIn(sys, a, a + 8 * PAGE), lengthsIn(sys, B, B + 2 * PAGE), mm.committedPages - committed);
      r.push(...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => cpu.load8(a + i * PAGE)));
      r.push(cpu.load8(B), cpu.load8(B + PAGE));
      r.push(sys.mremap(B, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, a + 2 * PAGE) - a);
      r.push(lengthsIn(sys, a, a + 8 * PAGE), lengthsIn(sys, B, B + 2 * PAGE), mm.committedPages - committed);
      r.push(...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => cpu.load8(a + i * PAGE)));
      r.push(cpu.load8(B), chargeDrift(mm));
      m.kernel.checkInvariants();
      sys.munmap(B, 2 * PAGE);
      r.push(mm.committedPages - committed);
      yield;
      return 0;
    });
    expect(r).toEqual([
      0,
      '8',
      '2',
      2,
      1,
      2,
      0,
      0,
      5,
      6,
      7,
      8,
      3,
      4,
      2 * PAGE,
      '8',
      '2',
      2,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      0,
      0,
      0,
    ]);
  });

  it('DONTUNMAP onto a later part of its own VMA (the FIXED unmap splits it): old, moved and rest, the charge unchanged', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 8 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 8; i++) cpu.store8(a + i * PAGE, i + 1);
      const committed = mm.committedPages;
      r.push(sys.mremap(a, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, a + 4 * PAGE) - a);
      r.push(lengthsIn(sys, a, a + 8 * PAGE), mm.committedPages - committed, chargeDrift(mm));
      r.push(...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => cpu.load8(a + i * PAGE)));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    expect(r).toEqual([4 * PAGE, '4,2,2', 0, 0, 0, 0, 3, 4, 1, 2, 7, 8]);
  });

  it('a touched VMA moved with DONTUNMAP right next to itself stays two mappings (Linux keeps the old vm_pgoff)', () => {
    const r: Array<number | string> = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 1);
      cpu.store8(a + PAGE, 2);
      r.push(sys.mremap(a, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, a + 2 * PAGE) - a);
      r.push(lengthsIn(sys, a, a + 4 * PAGE));
      // One mremap cannot span the two (EFAULT), as on Linux.
      r.push(sys.mremap(a, 4 * PAGE, 4 * PAGE, MOVE | MREMAP_FIXED, C));
      r.push(cpu.load8(a), cpu.load8(a + 2 * PAGE), cpu.load8(a + 3 * PAGE));
      yield;
      return 0;
    });
    expect(r).toEqual([2 * PAGE, '2,2', -EFAULT, 0, 1, 2]);
    expect(t.waitStatus).toBe(0);
  });

  it('an untouched VMA moved with DONTUNMAP next to itself merges with it (copy_vma resets its offset)', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(sys.mremap(a, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, a + 2 * PAGE) - a);
      r.push(lengthsIn(sys, a, a + 4 * PAGE), chargeDrift(mm));
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, i + 1);
      r.push(...[0, 1, 2, 3].map((i) => cpu.load8(a + i * PAGE)));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([2 * PAGE, '4', 0, 1, 2, 3, 4]);
  });
});

describe('MREMAP_DONTUNMAP of shared and file mappings', () => {
  it('a shared anonymous part moved with DONTUNMAP: one object, both places see the same pages, also in a child', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 4 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(s + i * PAGE, 0x10 + i);
      const committed = mm.committedPages;
      r.push(sys.mremap(s + PAGE, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, B) - B);
      r.push(lengthsIn(sys, s, s + 4 * PAGE), mm.committedPages - committed);
      r.push(shmemUsers(mm, s), vmasOfObject(mm, s), countPages(sys, s + PAGE, 2, 'present'));
      r.push(cpu.load8(s + PAGE), cpu.load8(B + PAGE));
      r.push(sys.vmlab_pageinfo(s + PAGE).physAddr === sys.vmlab_pageinfo(B).physAddr ? 1 : 0);
      const pid = sys.fork(function* ({ cpu: c }) {
        c.store8(B, 0x77); // the object's page 1
        c.store8(s + 2 * PAGE, 0x78); // the object's page 2
        yield;
        return 0;
      });
      yield* sys.wait4(pid, 0, 0);
      r.push(cpu.load8(s + PAGE), cpu.load8(B + PAGE), shmemUsers(mm, s));
      sys.munmap(s, 4 * PAGE);
      r.push(shmemUsers(mm, B), cpu.load8(B));
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual([0, '4', 0, 2, 2, 0, 0x11, 0x12, 1, 0x77, 0x78, 2, 1, 0x77]);
  });

  it('a shared file mapping moved with DONTUNMAP: the old range maps the same cached pages; msync of either writes them', () => {
    const r: number[] = [];
    const { m, dir } = fileMachine(3);
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 3 * PAGE, RW, MAP_SHARED | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      cpu.store8(s + 1, 0x11);
      const b = sys.mremap(s, 3 * PAGE, 3 * PAGE, DONTUNMAP, 0);
      r.push(fileUsers(mm, s), vmasIn(sys, s, s + 3 * PAGE).length, countPages(sys, s, 3, 'present'));
      r.push(cpu.load8(b + 1), cpu.load8(s + 1), cpu.load8(s + 2 * PAGE));
      r.push(sys.vmlab_pageinfo(s).physAddr === sys.vmlab_pageinfo(b).physAddr ? 1 : 0);
      cpu.store8(s + PAGE + 1, 0x22); // through the old range
      r.push(cpu.load8(b + PAGE + 1));
      r.push(sys.msync(b, 3 * PAGE, MS_SYNC), dirtyKb(m), hostByte(dir, 1), hostByte(dir, PAGE + 1));
      cpu.store8(b + 2 * PAGE + 1, 0x33); // through the new range
      r.push(sys.msync(s + 2 * PAGE, PAGE, MS_SYNC), hostByte(dir, 2 * PAGE + 1));
      sys.munmap(b, 3 * PAGE);
      r.push(fileUsers(mm, s), cpu.load8(s + 2 * PAGE + 1));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([2, 1, 0, 0x11, 0x11, 0x42, 1, 0x22, 0, 0, 0x11, 0x22, 0, 0x33, 1, 0x33]);
  });

  it('a private file mapping moved with DONTUNMAP: its private copy moves; the old range reads the file again', () => {
    const r: number[] = [];
    const { m, dir } = fileMachine(3);
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const p = sys.mmap(A, 3 * PAGE, RW, MAP_PRIVATE | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      r.push(cpu.load8(p));
      cpu.store8(p + PAGE, 0x99); // a private copy of file page 1
      const committed = mm.committedPages;
      const q = sys.mremap(p, 3 * PAGE, 3 * PAGE, DONTUNMAP, 0);
      r.push(mm.committedPages - committed, chargeDrift(mm));
      r.push(cpu.load8(q), cpu.load8(q + PAGE), cpu.load8(q + 2 * PAGE));
      r.push(cpu.load8(p + PAGE), cpu.load8(p + 2 * PAGE));
      cpu.store8(p + PAGE, 0x98); // another copy, the old range's own
      r.push(cpu.load8(q + PAGE), cpu.load8(p + PAGE));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([0x40, 3, 0, 0x40, 0x99, 0x42, 0x41, 0x42, 0x99, 0x98]);
    expect(hostByte(dir, PAGE)).toBe(0x41);
  });
});

describe('duplicating a shared mapping (old size 0)', () => {
  it('mprotect and munmap of parts of the duplicate and of the original: the object lives while any part maps it', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 4 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(s + i * PAGE, 0x10 + i);
      const committed = mm.committedPages;
      const d = sys.mremap(s, 0, 4 * PAGE, MOVE, 0);
      r.push(d > 0 && d !== s ? 1 : 0, mm.committedPages - committed, shmemUsers(mm, s));
      r.push(...[0, 1, 2, 3].map((i) => cpu.load8(d + i * PAGE)));
      r.push(sys.mprotect(d + PAGE, PAGE, PROT_READ), lengthsIn(sys, d, d + 4 * PAGE), shmemUsers(mm, s));
      cpu.store8(s + PAGE, 0x21);
      r.push(cpu.load8(d + PAGE), vmasOfObject(mm, s));
      r.push(sys.munmap(s, 4 * PAGE), shmemUsers(mm, d), cpu.load8(d + 3 * PAGE));
      r.push(sys.munmap(d + 2 * PAGE, 2 * PAGE), shmemUsers(mm, d), cpu.load8(d), cpu.load8(d + PAGE));
      r.push(sys.mprotect(d, 2 * PAGE, RW), lengthsIn(sys, d, d + 2 * PAGE), shmemUsers(mm, d));
      // The object's pages 2 and 3 are mapped nowhere now but live on: a duplicate of d grown
      // to the object's size finds them.
      const e = sys.mremap(d, 0, 4 * PAGE, MOVE, 0);
      r.push(cpu.load8(e + 2 * PAGE), cpu.load8(e + 3 * PAGE), shmemUsers(mm, d));
      m.kernel.checkInvariants();
      const pid = sys.fork(function* ({ sys: cs, cpu: c }) {
        cs.mprotect(e + PAGE, PAGE, PROT_READ);
        c.store8(e, 0x30); // allowed, and seen by the parent
        yield;
        c.store8(e + PAGE, 0x31); // read-only here: SIGSEGV
        return 0;
      });
      const child = m.kernel.tasks.get(pid)!;
      yield* sys.wait4(pid, 0, 0);
      r.push(WIFSIGNALED(child.waitStatus) && WTERMSIG(child.waitStatus) === SIGSEGV ? 1 : 0);
      r.push(cpu.load8(d), cpu.load8(d + PAGE), shmemUsers(mm, d));
      return 0;
    });
    expect(r).toEqual([
      1,
      0,
      2,
      0x10,
      0x11,
      0x12,
      0x13,
      0,
      '1,1,2',
      4,
      0x21,
      4,
      0,
      3,
      0x13,
      0,
      2,
      0x10,
      0x21,
      0,
      '2',
      1,
      0x12,
      0x13,
      2,
      1,
      0x30,
      0x21,
      2,
    ]);
  });

  it('a shared part moved with DONTUNMAP right after a duplicate of the pages before it merges with that duplicate', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 4 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(s + i * PAGE, 0x50 + i);
      const d = sys.mremap(s, 0, 2 * PAGE, MOVE | MREMAP_FIXED, B); // object pages 0 and 1
      // Object pages 2 and 3, moved to follow them: the object and its offsets run on.
      r.push(d - B, sys.mremap(s + 2 * PAGE, 2 * PAGE, 2 * PAGE, DONTUNMAP_TO, B + 2 * PAGE) - B);
      r.push(lengthsIn(sys, B, B + 4 * PAGE), lengthsIn(sys, s, s + 4 * PAGE));
      r.push(shmemUsers(mm, s), vmasOfObject(mm, s));
      r.push(...[0, 1, 2, 3].map((i) => cpu.load8(B + i * PAGE)));
      r.push(...[0, 1, 2, 3].map((i) => cpu.load8(s + i * PAGE)));
      m.kernel.checkInvariants();
      sys.munmap(s, 4 * PAGE);
      r.push(shmemUsers(mm, B), cpu.load8(B + 3 * PAGE));
      yield;
      return 0;
    });
    expect(r).toEqual([0, 2 * PAGE, '4', '4', 2, 2, 0x50, 0x51, 0x52, 0x53, 0x50, 0x51, 0x52, 0x53, 1, 0x53]);
  });

  it('old size 0 with MREMAP_FIXED onto the old address itself is EFAULT (the FIXED unmap removes it), not a crash', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const nothingLeft = baseline(m);
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 2 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      cpu.store8(s, 5);
      r.push(sys.mremap(s, 0, 2 * PAGE, MOVE | MREMAP_FIXED, s));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    m.runToEnd();
    expect(m.kernel.log.map((l) => l.text).filter((l) => l.includes('program error'))).toEqual([]);
    expect(r).toEqual([-EFAULT]);
    expect(t.waitStatus).toBe(0);
    nothingLeft();
  });

  it('old size 0 with MREMAP_FIXED inside the same VMA, after the old address: the object page of the old address there', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 4 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(s + i * PAGE, 0x60 + i);
      r.push(sys.mremap(s + PAGE, 0, PAGE, MOVE | MREMAP_FIXED, s + 3 * PAGE) - s);
      r.push(lengthsIn(sys, s, s + 4 * PAGE), shmemUsers(mm, s), cpu.load8(s + 3 * PAGE));
      r.push(sys.vmlab_pageinfo(s + PAGE).physAddr === sys.vmlab_pageinfo(s + 3 * PAGE).physAddr ? 1 : 0);
      cpu.store8(s + 3 * PAGE + 1, 0x6f);
      r.push(cpu.load8(s + PAGE + 1));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    expect(r).toEqual([3 * PAGE, '3,1', 2, 0x61, 1, 0x6f]);
  });

  it('a duplicate of a duplicate keeps the object alive after both originals are gone; a child shares it', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 2 * PAGE, RW, SHANON | MAP_FIXED, -1, 0);
      cpu.store8(s, 0x41);
      cpu.store8(s + PAGE, 0x42);
      const d1 = sys.mremap(s, 0, 2 * PAGE, MOVE, 0);
      sys.munmap(s, 2 * PAGE);
      const d2 = sys.mremap(d1 + PAGE, 0, PAGE, MOVE, 0); // the object's page 1 alone
      sys.munmap(d1, 2 * PAGE);
      r.push(shmemUsers(mm, d2), cpu.load8(d2), mm.vmas.find(d2)!.pgoff);
      const pid = sys.fork(function* ({ cpu: c }) {
        c.store8(d2 + 1, 0x43);
        yield;
        return 0;
      });
      yield* sys.wait4(pid, 0, 0);
      r.push(cpu.load8(d2 + 1), shmemUsers(mm, d2));
      const d3 = sys.mremap(d2, 0, PAGE, MOVE, 0);
      sys.munmap(d2, PAGE);
      r.push(cpu.load8(d3), cpu.load8(d3 + 1), shmemUsers(mm, d3));
      m.kernel.checkInvariants();
      return 0;
    });
    expect(r).toEqual([1, 0x42, 1, 0x43, 1, 0x42, 0x43, 1]);
  });

  it('the duplicate of a shared file mapping: a write there is dirty in the cache, msync of either range writes it', () => {
    const r: number[] = [];
    const { m, dir } = fileMachine(4);
    let child = -1;
    const t = m.start(function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const s = sys.mmap(A, 4 * PAGE, RW, MAP_SHARED | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      const d = sys.mremap(s + PAGE, 0, 2 * PAGE, MOVE, 0); // file pages 1 and 2
      r.push(fileUsers(mm, s), mm.vmas.find(d)!.pgoff, cpu.load8(d), cpu.load8(d + PAGE));
      cpu.store8(d + 1, 0x5b); // file page 1
      r.push(dirtyKb(m), hostByte(dir, PAGE + 1));
      r.push(sys.msync(d, 2 * PAGE, MS_SYNC), dirtyKb(m), hostByte(dir, PAGE + 1));
      r.push(sys.vmlab_pageinfo(d).dirty ? 1 : 0, sys.vmlab_pageinfo(s + PAGE).dirty ? 1 : 0);
      cpu.store8(d + PAGE + 2, 0x5c); // file page 2, written through the duplicate ...
      r.push(sys.msync(s + 2 * PAGE, PAGE, MS_SYNC), hostByte(dir, 2 * PAGE + 2)); // ... synced by the original
      sys.munmap(s, 4 * PAGE);
      r.push(fileUsers(mm, d), cpu.load8(d + 1));
      cpu.store8(d + 3, 0x5d);
      m.kernel.checkInvariants();
      const pid = sys.fork(function* ({ cpu: c }) {
        yield;
        c.load8(d + 2 * PAGE); // past the duplicate: SIGSEGV
        return 0;
      });
      const task = m.kernel.tasks.get(pid)!;
      yield* sys.wait4(pid, 0, 0);
      child = WIFSIGNALED(task.waitStatus) ? WTERMSIG(task.waitStatus) : 0;
      sys.munmap(d, 2 * PAGE); // the last mapping: written back
      r.push(hostByte(dir, PAGE + 3));
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(r).toEqual([2, 1, 0x41, 0x42, 4, 0, 0, 0, 0x5b, 0, 0, 0, 0x5c, 1, 0x5b, 0x5d]);
    expect(child).toBe(SIGSEGV);
  });

  it('a duplicate of a shared file mapping grown past the end of the file is SIGBUS there', () => {
    const { m } = fileMachine(2);
    const r: number[] = [];
    const t = m.start(function* ({ sys, cpu }) {
      const s = sys.mmap(A, 2 * PAGE, RW, MAP_SHARED | MAP_FIXED, sys.open('/f.bin', O_RDWR), 0);
      const d = sys.mremap(s + PAGE, 0, 2 * PAGE, MOVE, 0); // file page 1, then nothing
      r.push(cpu.load8(d));
      yield;
      cpu.load8(d + PAGE);
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0x41]);
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGBUS);
  });
});

describe('MREMAP_DONTUNMAP and the commit limit', () => {
  it('overcommit mode 2: a DONTUNMAP that would pass CommitLimit is ENOMEM and changes nothing; shared ones cost nothing', () => {
    const r: Array<number | string> = [];
    const m = bootTestMachine({ tunables: { overcommitMemory: 2 } });
    runLeakFree(m, function* ({ sys, cpu }) {
      const mm = m.kernel.current!.mm!;
      const room = m.kernel.commitLimit() - m.kernel.committedAs;
      const n = Math.floor(room / 2) + 4; // fits once, not twice
      const a = sys.mmap(0, n * PAGE, RW, ANON, -1, 0);
      r.push(a > 0 ? 1 : 0);
      cpu.store8(a, 1);
      cpu.store8(a + (n - 1) * PAGE, 2);
      const vmas = mm.vmas.count;
      const committed = m.kernel.committedAs;
      r.push(sys.mremap(a, n * PAGE, n * PAGE, DONTUNMAP, 0));
      r.push(sys.mremap(a, n * PAGE, n * PAGE, DONTUNMAP_TO, C));
      r.push(m.kernel.committedAs - committed, mm.vmas.count - vmas, vmasIn(sys, C, C + n * PAGE).length);
      r.push(cpu.load8(a), cpu.load8(a + (n - 1) * PAGE), chargeDrift(mm));
      // A small part fits: it moves, and both ranges are charged.
      const b = sys.mremap(a + (n - 1) * PAGE, PAGE, PAGE, DONTUNMAP, 0);
      r.push(b > 0 ? 1 : 0, m.kernel.committedAs - committed, cpu.load8(b), chargeDrift(mm));
      // Shared memory is not charged: its DONTUNMAP and its duplicate cost nothing.
      const s = sys.mmap(0, n * PAGE, RW, SHANON, -1, 0);
      cpu.store8(s, 9);
      const s2 = sys.mremap(s, n * PAGE, n * PAGE, DONTUNMAP, 0);
      const s3 = sys.mremap(s, 0, n * PAGE, MOVE, 0);
      r.push(s2 > 0 ? 1 : 0, s3 > 0 ? 1 : 0, m.kernel.committedAs - committed, cpu.load8(s2), cpu.load8(s3));
      m.kernel.checkInvariants();
      yield;
      return 0;
    });
    expect(r).toEqual([1, -ENOMEM, -ENOMEM, 0, 0, 0, 1, 2, 0, 1, 1, 2, 0, 1, 1, 1, 9, 9]);
  });
});
