/**
 * The memory-map system calls from inside emulated processes, with hostile arguments: brk,
 * mmap, munmap, mprotect, madvise and mincore return Linux's results and errno values
 * (shared/reference/linux-mm.md §2.7-2.9), and what they promise holds when the process then
 * touches its memory.
 */
import { describe, expect, it } from 'vitest';
import { PG_LAZYFREE } from '../kernel/mm/page.ts';
import {
  EBADF,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_NORMAL,
  MADV_WILLNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  type MapEntry,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGSEGV,
  type Syscalls,
  type UserContext,
  WIFSIGNALED,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED = MAP_SHARED | MAP_ANONYMOUS;
/** x86-64's TASK_SIZE in vmlab: the top of the user half less a page. */
const TASK_SIZE = 2 ** 47 - PAGE;
/** The first kernel address of x86-64 (0xffff800000000000) as a JavaScript number. */
const KERNEL_VA = 2 ** 64 - 2 ** 47;
const A = 0x20000000; // a free user address for MAP_FIXED

/** Mappings of the process overlapping [start, end). */
function mapsIn(sys: Syscalls, start: number, end: number): MapEntry[] {
  return sys.vmlab_maps().filter((e) => e.end > start && e.start < end);
}

/** Run `body` in a process on a fresh machine; returns what it recorded and the task. */
function inProcess<T>(
  body: (ctx: UserContext, out: T) => Generator<void, void, void>,
  out: T,
  memoryMiB = 32,
) {
  const { m, t } = runOne(
    function* (ctx) {
      yield* body(ctx, out);
      return 0;
    },
    { memoryMiB },
  );
  return { m, t, out };
}

describe('brk', () => {
  it('returns the new break when it moves and the current one when refused (raw syscall)', () => {
    const { out, t } = inProcess(
      function* ({ sys }, r) {
        const start = sys.brk(0);
        r.start = start;
        r.same = sys.brk(0);
        r.below = sys.brk(start - PAGE);
        r.grown = sys.brk(start + 5 * PAGE + 10);
        r.inPage = sys.brk(start + 5 * PAGE + 100); // same last page: only the break moves
        r.beyondTask = sys.brk(TASK_SIZE + PAGE);
        r.kernel = sys.brk(KERNEL_VA);
        r.negative = sys.brk(-PAGE);
        r.nan = sys.brk(Number.NaN);
        r.tooBig = sys.brk(start + 2 ** 40); // more than RAM + swap: the commit is refused
        yield;
      },
      {} as Record<string, number>,
    );
    const s = out.start!;
    expect(s % PAGE).toBe(0);
    expect(out).toEqual({
      start: s,
      same: s,
      below: s,
      grown: s + 5 * PAGE + 10,
      inPage: s + 5 * PAGE + 100,
      beyondTask: s + 5 * PAGE + 100,
      kernel: s + 5 * PAGE + 100,
      negative: s + 5 * PAGE + 100,
      nan: s + 5 * PAGE + 100,
      tooBig: s + 5 * PAGE + 100,
    });
    expect(t.waitStatus).toBe(0);
  });

  it('the heap is one VMA with the bss below it; shrinking frees pages and regrowing reads zeros', () => {
    const r: Record<string, number | boolean> = {};
    const m = bootTestMachine();
    m.start(function* ({ sys, cpu }) {
      const start = sys.brk(0);
      sys.brk(start + 6 * PAGE);
      for (let i = 0; i < 6; i++) cpu.store32(start + i * PAGE, 0x1000 + i);
      r.vmas = mapsIn(sys, start - 1, start + 6 * PAGE).length;
      const rss = m.kernel.current!.mm!.rss();
      r.shrunk = sys.brk(start + PAGE + 8);
      r.freed = rss - m.kernel.current!.mm!.rss();
      r.gone = sys.vmlab_pageinfo(start + 3 * PAGE).present;
      r.kept = cpu.load32(start); // below the new break: untouched
      r.regrown = sys.brk(start + 6 * PAGE);
      r.fresh = cpu.load32(start + 3 * PAGE);
      yield;
      r.start = start;
      return 0;
    });
    m.runToEnd();
    const s = r.start as number;
    expect(r).toMatchObject({
      vmas: 1,
      shrunk: s + PAGE + 8,
      freed: 4, // pages 2..5
      gone: false,
      kept: 0x1000,
      regrown: s + 6 * PAGE,
      fresh: 0,
    });
  });

  it('refuses to grow into another mapping, keeping a page clear below it', () => {
    const r: number[] = [];
    let start = 0;
    runOne(function* ({ sys }) {
      start = sys.brk(0);
      sys.mmap(start + 4 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(sys.brk(start + 8 * PAGE)); // across the mapping
      r.push(sys.brk(start + 3 * PAGE + 1)); // its last page would touch the mapping
      r.push(sys.brk(start + 3 * PAGE)); // one page clear
      yield;
      return 0;
    });
    expect(r).toEqual([start, start, start + 3 * PAGE]);
  });
});

describe('mmap', () => {
  it('refuses hostile arguments with Linux errno values', () => {
    const { out } = inProcess(
      function* ({ sys }, r) {
        r.zeroLength = sys.mmap(0, 0, RW, ANON, -1, 0);
        r.nanLength = sys.mmap(0, Number.NaN, RW, ANON, -1, 0);
        r.neither = sys.mmap(0, PAGE, RW, MAP_ANONYMOUS, -1, 0);
        r.both = sys.mmap(0, PAGE, RW, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        r.validate = sys.mmap(0, PAGE, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0);
        r.sharedGrowsDown = sys.mmap(0, PAGE, RW, SHARED | MAP_GROWSDOWN, -1, 0);
        r.badProt = sys.mmap(0, PAGE, 0x100, ANON, -1, 0);
        r.unalignedOffset = sys.mmap(0, PAGE, RW, ANON, -1, 100);
        r.negativeOffset = sys.mmap(0, PAGE, RW, ANON, -1, -PAGE);
        r.fixedUnaligned = sys.mmap(A + 1, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.fixedLow = sys.mmap(0x1000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.fixedZero = sys.mmap(0, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.huge = sys.mmap(0, 2 ** 50, RW, ANON, -1, 0);
        r.taskSized = sys.mmap(0, TASK_SIZE + PAGE, RW, ANON, -1, 0);
        r.negativeLength = sys.mmap(0, -PAGE, RW, ANON, -1, 0);
        r.overflow = sys.mmap(TASK_SIZE - PAGE, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.overflowNoReplace = sys.mmap(TASK_SIZE - PAGE, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
        r.fixedKernel = sys.mmap(KERNEL_VA, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.fixedNegative = sys.mmap(-PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        r.file = sys.mmap(0, PAGE, RW, MAP_PRIVATE, 3, 0); // no descriptor 3: EBADF
        r.fileShared = sys.mmap(0, PAGE, RW, MAP_SHARED, 3, 0);
        yield;
      },
      {} as Record<string, number>,
    );
    expect(out).toEqual({
      zeroLength: -EINVAL,
      nanLength: -EINVAL,
      neither: -EINVAL,
      both: -EINVAL,
      validate: -EINVAL,
      sharedGrowsDown: -EINVAL,
      badProt: -EINVAL,
      unalignedOffset: -EINVAL,
      negativeOffset: -EINVAL,
      fixedUnaligned: -EINVAL,
      fixedLow: -EPERM,
      fixedZero: -EPERM,
      huge: -ENOMEM,
      taskSized: -ENOMEM,
      negativeLength: -ENOMEM,
      overflow: -ENOMEM,
      overflowNoReplace: -ENOMEM,
      fixedKernel: -ENOMEM,
      fixedNegative: -ENOMEM,
      file: -EBADF,
      fileShared: -EBADF,
    });
  });

  it('a refused call leaves the address space as it was', () => {
    const r: number[] = [];
    runOne(function* ({ sys }) {
      const before = JSON.stringify(sys.vmlab_maps());
      sys.mmap(0, 2 ** 50, RW, ANON, -1, 0);
      sys.mmap(0x1000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.mmap(0, PAGE, RW, MAP_PRIVATE, 3, 0);
      r.push(JSON.stringify(sys.vmlab_maps()) === before ? 1 : 0);
      yield;
      return 0;
    });
    expect(r).toEqual([1]);
  });

  it('MAP_FIXED replaces what was there (whole or in part); MAP_FIXED_NOREPLACE refuses with EEXIST', () => {
    const { out } = inProcess(function* ({ sys, cpu }, r) {
      const a = sys.mmap(A, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 4; i++) cpu.store8(a + i * PAGE, 10 + i);
      r.push(sys.mmap(a + PAGE, PAGE, PROT_READ, ANON | MAP_FIXED, -1, 0) === a + PAGE ? 1 : 0);
      r.push(cpu.load8(a), cpu.load8(a + PAGE), cpu.load8(a + 2 * PAGE)); // 10, fresh 0, 12
      r.push(mapsIn(sys, a, a + 4 * PAGE).length); // rw | r | rw
      r.push(sys.mmap(a, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0));
      r.push(sys.mmap(a + 3 * PAGE, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0)); // overlaps its first page
      r.push(cpu.load8(a + 3 * PAGE)); // still there
      r.push(sys.mmap(a + 4 * PAGE, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0) === a + 4 * PAGE ? 1 : 0);
      r.push(sys.mmap(a, 5 * PAGE, RW, ANON | MAP_FIXED, -1, 0) === a ? 1 : 0); // replaces all five
      r.push(mapsIn(sys, a, a + 5 * PAGE).length, cpu.load8(a), cpu.load8(a + 3 * PAGE));
      yield;
    }, [] as number[]);
    expect(out).toEqual([1, 10, 0, 12, 3, -EEXIST, -EEXIST, 13, 1, 1, 1, 0, 0]);
  });

  it('honours a free hint, rounds it to a page, and places elsewhere (top-down) when it is taken or too low', () => {
    const { out } = inProcess(
      function* ({ sys }, r) {
        r.hint = sys.mmap(0x30000000, PAGE, RW, ANON, -1, 0);
        r.unaligned = sys.mmap(0x30100010, PAGE, RW, ANON, -1, 0);
        r.taken = sys.mmap(0x30000000, PAGE, RW, ANON, -1, 0);
        r.low = sys.mmap(0x1000, PAGE, RW, ANON, -1, 0);
        r.kernelHint = sys.mmap(KERNEL_VA, PAGE, RW, ANON, -1, 0);
        r.first = sys.mmap(0, 3 * PAGE, RW, ANON, -1, 0);
        r.second = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
        r.merged = mapsIn(sys, r.second, r.first + 3 * PAGE).length;
        r.stackStart = sys.vmlab_maps().at(-1)!.start;
        yield;
      },
      {} as Record<string, number>,
    );
    expect(out.hint).toBe(0x30000000);
    expect(out.unaligned).toBe(0x30101000);
    for (const k of ['taken', 'low', 'kernelHint', 'first']) {
      expect(out[k]).toBeGreaterThan(0x7f0000000000); // top-down from mmap_base
      expect(out[k]! % PAGE).toBe(0);
    }
    // Placement is top-down: each below the last, adjacent, and anonymous neighbours merge.
    expect(out.low! + PAGE).toBe(out.taken);
    expect(out.second! + 2 * PAGE).toBe(out.first);
    expect(out.merged).toBe(1);
    // All below mmap_base, which lies 128 MiB (at least) under the stack.
    expect(out.taken! + PAGE).toBeLessThanOrEqual(out.stackStart! - 128 * 1024 * 1024 + 32 * PAGE);
  });

  it('MAP_POPULATE makes every page resident (mincore), without it nothing is', () => {
    const { out } = inProcess(function* ({ sys, cpu }, r) {
      const vec = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const buf = new Uint8Array(4);
      const a = sys.mmap(0, 4 * PAGE, RW, ANON | MAP_POPULATE, -1, 0);
      sys.mincore(a, 4 * PAGE, vec);
      cpu.loadBytes(vec, buf);
      r.push([...buf]);
      const b = sys.mmap(0, 4 * PAGE, PROT_READ, ANON | MAP_POPULATE, -1, 0);
      sys.mincore(b, 4 * PAGE, vec);
      cpu.loadBytes(vec, buf);
      r.push([...buf]);
      const c = sys.mmap(0, 4 * PAGE, RW, ANON, -1, 0);
      sys.mincore(c, 4 * PAGE, vec);
      cpu.loadBytes(vec, buf);
      r.push([...buf]);
      const d = sys.mmap(0, 2 * PAGE, PROT_NONE, ANON | MAP_POPULATE, -1, 0); // nothing to populate
      r.push([d > 0 ? 1 : 0, sys.vmlab_pageinfo(d).present ? 1 : 0]);
      r.push([sys.vmlab_pageinfo(a).writable ? 1 : 0, sys.vmlab_pageinfo(b).writable ? 1 : 0]);
      yield;
    }, [] as number[][]);
    expect(out).toEqual([
      [1, 1, 1, 1],
      [1, 1, 1, 1],
      [0, 0, 0, 0],
      [1, 0],
      [1, 0],
    ]);
  });

  it('MAP_GROWSDOWN grows on a touch below it, up to the stack limit', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    const t = m.start(function* ({ sys, cpu }) {
      const top = 0x40000000;
      const a = sys.mmap(top - PAGE, PAGE, RW, ANON | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
      cpu.store8(a - 3 * PAGE, 1); // three pages below: grows
      r.push(mapsIn(sys, top - 64 * PAGE, top)[0]!.start === top - 4 * PAGE ? 1 : 0);
      r.push(m.kernel.events.stack_grow);
      yield;
      cpu.store8(top - 9 * 1024 * 1024, 1); // past RLIMIT_STACK (8 MiB)
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([1, 1]);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.lastLog()).toMatch(/segfault at 3f700000 .* error 6 in/);
  });

  it('MAP_NORESERVE skips the commit charge (except under overcommit_memory=2)', () => {
    const big = 48 * 1024 * 1024; // more than the 32 MiB of RAM, no swap
    const modes = [0, 2] as const;
    const results = modes.map((mode) => {
      const m = bootTestMachine({ tunables: { overcommitMemory: mode } });
      const r: number[] = [];
      m.start(function* ({ sys, cpu }) {
        const before = m.kernel.committedAs;
        r.push(sys.mmap(0, big, RW, ANON, -1, 0) > 0 ? 1 : 0);
        const a = sys.mmap(0, big, RW, ANON | MAP_NORESERVE, -1, 0);
        r.push(a > 0 ? 1 : 0, m.kernel.committedAs - before);
        if (a > 0) {
          cpu.store8(a + big - PAGE, 5); // the pages themselves come on demand
          r.push(cpu.load8(a + big - PAGE));
        }
        yield;
        return 0;
      });
      m.runToEnd();
      return r;
    });
    expect(results[0]).toEqual([0, 1, 0, 5]);
    expect(results[1]).toEqual([0, 0, 0]);
  });

  it('a PROT_NONE mapping exists but any access to it is SIGSEGV', () => {
    const m = bootTestMachine();
    let ok = 0;
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, PROT_NONE, ANON | MAP_FIXED, -1, 0);
      ok = mapsIn(sys, a, a + 2 * PAGE)[0]!.prot === PROT_NONE ? 1 : 0;
      yield;
      cpu.load8(a + PAGE);
      return 0;
    });
    m.runToEnd();
    expect(ok).toBe(1);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.lastLog()).toMatch(/segfault at 20001000 ip [0-9a-f]{16} sp [0-9a-f]{16} error 4 in /);
  });
});

describe('munmap', () => {
  it('refuses bad arguments with EINVAL; unmapping a hole is fine', () => {
    const { out } = inProcess(function* ({ sys }, r) {
      const a = sys.mmap(A, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(
        sys.munmap(a + 1, PAGE),
        sys.munmap(a, 0),
        sys.munmap(a, -PAGE),
        sys.munmap(TASK_SIZE - PAGE, 2 * PAGE),
        sys.munmap(KERNEL_VA, PAGE),
        sys.munmap(-PAGE, PAGE),
        sys.munmap(0x50000000, PAGE), // a hole
        mapsIn(sys, a, a + 3 * PAGE).length,
      );
      yield;
    }, [] as number[]);
    expect(out).toEqual([-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, 0, 1]);
  });

  it('a partial unmap splits the VMA; the rest keeps its data; the hole is SIGSEGV', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 3; i++) cpu.store8(a + i * PAGE, 20 + i);
      const rss = m.kernel.current!.mm!.rss();
      r.push(sys.munmap(a + PAGE, 1)); // the length rounds up to a page
      r.push(rss - m.kernel.current!.mm!.rss());
      const maps = mapsIn(sys, a, a + 3 * PAGE);
      r.push(maps.length, maps[0]!.end - a, maps[1]!.start - a);
      r.push(cpu.load8(a), cpu.load8(a + 2 * PAGE));
      r.push(sys.munmap(a - PAGE, 5 * PAGE), mapsIn(sys, a, a + 3 * PAGE).length); // across holes
      sys.mmap(a, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.munmap(a + PAGE, PAGE);
      yield;
      cpu.store8(a + PAGE, 1);
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 1, 2, PAGE, 2 * PAGE, 20, 22, 0, 0]);
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.lastLog()).toMatch(
      /^t0\[\d+\]: segfault at 20001000 ip [0-9a-f]{16} sp [0-9a-f]{16} error 6 in t0\[/,
    );
  });
});

describe('mprotect', () => {
  it('refuses bad arguments: unaligned EINVAL, bad prot EINVAL, unmapped or outside ENOMEM; zero length is 0', () => {
    const { out } = inProcess(function* ({ sys, cpu }, r) {
      const a = sys.mmap(A, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      sys.munmap(a + 2 * PAGE, PAGE);
      r.push(
        sys.mprotect(a + 1, PAGE, PROT_READ),
        sys.mprotect(a, PAGE, 0x80),
        sys.mprotect(0x60000000, PAGE, PROT_READ),
        sys.mprotect(a, 3 * PAGE, PROT_READ), // its last page is a hole: nothing changes
        sys.mprotect(a, 0, PROT_READ),
        sys.mprotect(a, -PAGE, PROT_READ),
        sys.mprotect(TASK_SIZE, PAGE, PROT_READ),
        sys.mprotect(KERNEL_VA, PAGE, PROT_READ),
        sys.mprotect(-PAGE, PAGE, PROT_READ),
      );
      cpu.store8(a, 1); // still writable
      r.push(mapsIn(sys, a, a + 2 * PAGE).length);
      yield;
    }, [] as number[]);
    expect(out).toEqual([-EINVAL, -EINVAL, -ENOMEM, -ENOMEM, 0, -ENOMEM, -ENOMEM, -ENOMEM, -ENOMEM, 1]);
  });

  it('read-only in the middle makes three VMAs; a write there is SIGSEGV while the rest works; restoring merges back', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      for (let i = 0; i < 3; i++) cpu.store8(a + i * PAGE, 30 + i);
      r.push(sys.mprotect(a + PAGE, PAGE, PROT_READ));
      r.push(...mapsIn(sys, a, a + 3 * PAGE).map((e) => e.prot));
      cpu.store8(a, 40);
      cpu.store8(a + 2 * PAGE, 42);
      r.push(cpu.load8(a + PAGE));
      r.push(sys.mprotect(a + PAGE, PAGE, RW), mapsIn(sys, a, a + 3 * PAGE).length);
      cpu.store8(a + PAGE, 41); // writable again
      r.push(cpu.load8(a), cpu.load8(a + PAGE), cpu.load8(a + 2 * PAGE));
      r.push(sys.mprotect(a + PAGE, PAGE, PROT_READ));
      yield;
      cpu.store8(a + PAGE, 1);
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, RW, PROT_READ, RW, 31, 0, 1, 40, 41, 42, 0]);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.lastLog()).toMatch(/segfault at 20001000 .* error 7 in /); // protection, write, user
  });

  it('changes live entries and flushes the TLB: a write right after mprotect(READ) faults', () => {
    const m = bootTestMachine();
    let tlbHadIt = false;
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 1);
      cpu.store8(a, 2); // the writable translation is in the TLB now
      tlbHadIt = m.mmu.dtlb.probe(m.mmu.vpnOf(a), m.mmu.asid) >= 0;
      sys.mprotect(a, PAGE, PROT_READ);
      cpu.store8(a, 3);
      yield;
      return 0;
    });
    m.runToEnd();
    expect(tlbHadIt).toBe(true);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.lastLog()).toMatch(/error 7 in/);
  });

  it('PROT_NONE keeps the data; restoring brings it back without a copy', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store32(a, 0x1234);
      cpu.store32(a + PAGE, 0x5678);
      const pa = sys.vmlab_pageinfo(a).physAddr;
      r.push(sys.mprotect(a, 2 * PAGE, PROT_NONE), sys.vmlab_pageinfo(a).present ? 1 : 0);
      r.push(sys.mprotect(a, 2 * PAGE, PROT_READ), cpu.load32(a));
      r.push(sys.mprotect(a, 2 * PAGE, RW), cpu.load32(a + PAGE));
      cpu.store32(a, 0x9999);
      r.push(sys.vmlab_pageinfo(a).physAddr === pa ? 1 : 0, cpu.load32(a));
      yield;
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 0, 0, 0x1234, 0, 0x5678, 1, 0x9999]);
    expect(m.kernel.events.cow_fault).toBe(0);
  });

  it('PROT_NONE and back keeps written data through reclaim (the dirty bit is not lost)', () => {
    // Regression: a PROT_NONE entry dropped the PTE's dirty bit, so after restoring the page
    // was evicted as clean and read back as zeros.
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 32 });
    let bad = -1;
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 64 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 64; i++) cpu.store8(a + i * PAGE, 0x77);
      sys.madvise(a + 32 * PAGE, 32 * PAGE, MADV_FREE); // then written again: must survive too
      for (let i = 32; i < 64; i++) cpu.store8(a + i * PAGE, 0x77);
      sys.mprotect(a, 64 * PAGE, PROT_NONE);
      sys.mprotect(a, 64 * PAGE, RW);
      yield* sys.nanosleep(100_000_000);
      bad = 0;
      for (let i = 0; i < 64; i++) if (cpu.load8(a + i * PAGE) !== 0x77) bad++;
      return 0;
    });
    m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(1_000_000);
      const a = sys.mmap(0, 4000 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 4000; i++) {
        cpu.store8(a + i * PAGE, 1);
        if (i % 16 === 0) yield;
      }
      return 0;
    });
    m.runToEnd();
    m.shutdown();
    expect(m.kernel.events.pswpout).toBeGreaterThan(0);
    expect(bad).toBe(0);
  });

  it('shared anonymous memory stays shared through mprotect', () => {
    let seen = -1;
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, SHARED, -1, 0);
      cpu.store32(a, 1);
      sys.mprotect(a, 2 * PAGE, PROT_READ);
      sys.mprotect(a, PAGE, RW);
      const child = sys.fork(function* (c) {
        c.cpu.store32(a, 99);
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      seen = cpu.load32(a);
      return 0;
    });
    expect(seen).toBe(99);
  });
});

describe('madvise', () => {
  it('refuses bad advice, unaligned starts and unmapped or outside ranges', () => {
    const { out } = inProcess(function* ({ sys }, r) {
      const a = sys.mmap(A, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      const s = sys.mmap(0, PAGE, RW, SHARED, -1, 0);
      r.push(
        sys.madvise(a, PAGE, 77),
        sys.madvise(a + 1, PAGE, MADV_DONTNEED),
        sys.madvise(a, -1, MADV_DONTNEED),
        sys.madvise(0x70000000, PAGE, MADV_DONTNEED),
        sys.madvise(a, 3 * PAGE, MADV_DONTNEED), // runs past the mapping
        sys.madvise(a, 0, MADV_DONTNEED),
        sys.madvise(TASK_SIZE, PAGE, MADV_DONTNEED),
        sys.madvise(KERNEL_VA, PAGE, MADV_DONTNEED),
        sys.madvise(-PAGE, PAGE, MADV_DONTNEED), // wraps past the top
        sys.madvise(s, PAGE, MADV_FREE), // private anonymous memory only
        sys.madvise(a, PAGE, MADV_NORMAL),
        sys.madvise(a, PAGE, MADV_WILLNEED),
      );
      yield;
    }, [] as number[]);
    expect(out).toEqual([
      -EINVAL,
      -EINVAL,
      -EINVAL,
      -ENOMEM,
      -ENOMEM,
      0,
      -ENOMEM,
      -ENOMEM,
      -EINVAL,
      -EINVAL,
      0,
      0,
    ]);
  });

  it('MADV_DONTNEED: private anonymous pages read zero again, shared ones keep their contents', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      const s = sys.mmap(0, PAGE, RW, SHARED, -1, 0);
      cpu.store8(a, 5);
      cpu.store8(a + PAGE, 6);
      cpu.store8(s, 7);
      const rss = m.kernel.current!.mm!.rss();
      r.push(sys.madvise(a, 2 * PAGE, MADV_DONTNEED), rss - m.kernel.current!.mm!.rss());
      r.push(sys.vmlab_pageinfo(a).present ? 1 : 0, cpu.load8(a), cpu.load8(a + PAGE));
      r.push(sys.madvise(s, PAGE, MADV_DONTNEED), sys.vmlab_pageinfo(s).present ? 1 : 0, cpu.load8(s));
      yield;
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 2, 0, 0, 0, 0, 0, 7]);
  });

  it('MADV_FREE marks pages lazily free; without pressure the data stays readable', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      cpu.store8(a, 5);
      cpu.store8(a + PAGE, 6);
      r.push(sys.madvise(a, 2 * PAGE, MADV_FREE));
      const info = sys.vmlab_pageinfo(a);
      r.push(m.frames.has(Math.floor(info.physAddr / PAGE), PG_LAZYFREE) ? 1 : 0, info.dirty ? 1 : 0);
      r.push(cpu.load8(a), cpu.load8(a + PAGE), m.kernel.events.pglazyfree);
      yield;
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([0, 1, 0, 5, 6, 2]);
  });

  it('MADV_FREE under memory pressure: clean pages are dropped (zeros), rewritten ones survive', () => {
    const m = bootTestMachine({ memoryMiB: 16, swapMiB: 32 });
    const r: number[] = [];
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 64 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 64; i++) cpu.store8(a + i * PAGE, 9);
      sys.madvise(a, 64 * PAGE, MADV_FREE);
      for (let i = 0; i < 32; i++) cpu.store8(a + i * PAGE, 8); // the lower half is wanted again
      yield* sys.nanosleep(100_000_000);
      let kept = 0;
      let zero = 0;
      for (let i = 0; i < 32; i++) if (cpu.load8(a + i * PAGE) === 8) kept++;
      for (let i = 32; i < 64; i++) {
        const v = cpu.load8(a + i * PAGE);
        if (v === 0) zero++;
        else if (v !== 9) zero = -1000;
      }
      r.push(kept, zero);
      return 0;
    });
    m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(1_000_000);
      const a = sys.mmap(0, 4000 * PAGE, RW, ANON, -1, 0);
      for (let i = 0; i < 4000; i++) {
        cpu.store8(a + i * PAGE, 1);
        if (i % 16 === 0) yield;
      }
      return 0;
    });
    m.runToEnd();
    m.shutdown();
    expect(r[0]).toBe(32);
    expect(r[1]).toBeGreaterThan(0); // some clean lazy pages were discarded rather than swapped
    expect(m.kernel.events.pglazyfreed).toBe(r[1]);
  });
});

describe('mincore', () => {
  it('writes one residency byte per page into user memory, even into a page never touched', () => {
    const { out } = inProcess(function* ({ sys, cpu }, r) {
      const a = sys.mmap(0, 5 * PAGE, RW, ANON, -1, 0);
      const vec = sys.mmap(0, PAGE, RW, ANON, -1, 0); // fresh: the kernel's write faults it in
      cpu.store8(a, 1);
      cpu.load8(a + 2 * PAGE);
      cpu.store8(a + 4 * PAGE, 1);
      sys.mprotect(a + 4 * PAGE, PAGE, PROT_NONE); // still in memory
      r.push(sys.mincore(a, 5 * PAGE - 100, vec)); // the length rounds up
      const buf = new Uint8Array(6);
      cpu.loadBytes(vec, buf);
      r.push(...buf);
      r.push(sys.mincore(a, 0, vec));
      yield;
    }, [] as number[]);
    expect(out).toEqual([0, 1, 0, 1, 0, 1, 0, 0]);
  });

  it('unaligned EINVAL, unmapped or outside ENOMEM, a bad vector EFAULT', () => {
    const { out } = inProcess(function* ({ sys }, r) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const v = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const ro = sys.mmap(0, PAGE, PROT_READ | PROT_EXEC, ANON, -1, 0);
      r.push(
        sys.mincore(a + 1, PAGE, v),
        sys.mincore(0x70000000, PAGE, v),
        sys.mincore(a, 2 * PAGE, v), // past the mapping
        sys.mincore(a, -1, v),
        sys.mincore(KERNEL_VA, PAGE, v),
        sys.mincore(TASK_SIZE, PAGE, v),
        sys.mincore(a, PAGE, 0x10),
        sys.mincore(a, PAGE, ro),
        sys.mincore(a, PAGE, KERNEL_VA),
        sys.mincore(a, PAGE, -PAGE),
      );
      yield;
    }, [] as number[]);
    expect(out).toEqual([
      -EINVAL,
      -ENOMEM,
      -ENOMEM,
      -ENOMEM,
      -ENOMEM,
      -ENOMEM,
      -EFAULT,
      -EFAULT,
      -EFAULT,
      -EFAULT,
    ]);
  });
});

describe('kernel addresses', () => {
  it('nothing maps at or beyond TASK_SIZE, and the kernel refuses to copy there (EFAULT)', () => {
    const { out } = inProcess(function* ({ sys, cpu }, r) {
      const src = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store8(src, 65);
      r.push(sys.write(1, KERNEL_VA, 4), sys.write(1, TASK_SIZE, 4), sys.write(1, 2 ** 48, 1));
      r.push(sys.write(1, src, 1));
      r.push(sys.vmlab_pageinfo(KERNEL_VA).present ? 1 : 0);
      yield;
    }, [] as number[]);
    expect(out).toEqual([-EFAULT, -EFAULT, -EFAULT, 1, 0]);
  });
});
