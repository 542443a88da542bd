/**
 * Processes: system calls with hostile arguments, every fault kind, fork and copy-on-write seen
 * through vmlab_pageinfo, isolation, zeroing, signals and waits, and a randomized multi-process
 * workload with the whole-machine invariants checked after every step.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BootedMachine, bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { renderMaps } from '../kernel/observe/procpid.ts';
import type { Task } from '../kernel/proc/task.ts';
import {
  ECHILD,
  EEXIST,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOMEM,
  EPERM,
  ESRCH,
  MADV_DONTNEED,
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  SIGSEGV,
  SIGTERM,
  type UserContext,
  type UserMain,
  WEXITSTATUS,
  WIFEXITED,
  WIFSIGNALED,
  WNOHANG,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';

const PAGE = 4096;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function boot(options: { memoryMiB?: number } = {}): BootedMachine & { start: (main: UserMain) => Task } {
  const programs = new Map<string, UserMain>();
  const m = bootKernel(buildMachine({ memoryBytes: (options.memoryMiB ?? 32) * 1024 * 1024 }), {
    loader: (path) => {
      const main = programs.get(path);
      return main === undefined
        ? undefined
        : { path, main, textBytes: 8192, dataBytes: 4096, bssBytes: 4096 };
    },
  });
  let n = 0;
  const start = (main: UserMain): Task => {
    const path = `/bin/t${n++}`;
    programs.set(path, main);
    const t = m.kernel.spawn(path, [path]);
    if (typeof t === 'number') throw new Error(`spawn: ${t}`);
    return t;
  };
  return Object.assign(m, { start });
}

/** Run one program to completion; `body` returns values to check. */
function run(
  body: (ctx: UserContext) => Generator<void, number | undefined, void>,
  options: { memoryMiB?: number } = {},
) {
  const m = boot(options);
  const t = m.start(body);
  m.kernel.run();
  m.kernel.checkInvariants();
  return { m, t, kernel: m.kernel };
}

describe('brk', () => {
  it('returns the current break when refused, the new one when it moves, and frees pages on shrink', () => {
    const seen: number[] = [];
    const { t } = run(function* ({ sys, cpu }) {
      const start = sys.brk(0);
      seen.push(start, sys.brk(start - PAGE)); // below the heap start: refused
      seen.push(sys.brk(start + 5 * PAGE + 10));
      for (let i = 0; i < 5; i++) cpu.store8(start + i * PAGE, 1);
      const info = sys.vmlab_pageinfo(start + 4 * PAGE);
      seen.push(info.present ? 1 : 0);
      seen.push(sys.brk(start + PAGE));
      seen.push(sys.vmlab_pageinfo(start + 4 * PAGE).present ? 1 : 0);
      seen.push(sys.brk(2 ** 47)); // beyond user space: refused
      yield;
      return 0;
    });
    const [start, refused, grown, present, shrunk, presentAfter, huge] = seen;
    expect(refused).toBe(start);
    expect(grown).toBe(start! + 5 * PAGE + 10);
    expect(present).toBe(1);
    expect(shrunk).toBe(start! + PAGE);
    expect(presentAfter).toBe(0);
    expect(huge).toBe(start! + PAGE);
    expect(t.waitStatus).toBe(0);
  });

  it('refuses to grow into another mapping', () => {
    let result = 0;
    let start = 0;
    run(function* ({ sys }) {
      start = sys.brk(0);
      sys.mmap(start + 4 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      result = sys.brk(start + 8 * PAGE);
      yield;
      return 0;
    });
    expect(result).toBe(start);
  });
});

describe('mmap', () => {
  it('refuses hostile arguments with Linux errno values', () => {
    const r: Record<string, number> = {};
    run(function* ({ sys }) {
      r.zero = sys.mmap(0, 0, RW, ANON, -1, 0);
      r.noType = sys.mmap(0, PAGE, RW, MAP_ANONYMOUS, -1, 0);
      r.unalignedOffset = sys.mmap(0, PAGE, RW, ANON, -1, 100);
      r.fixedUnaligned = sys.mmap(0x10000001, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.fixedLow = sys.mmap(0x1000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.huge = sys.mmap(0, 2 ** 50, RW, ANON, -1, 0);
      r.overflow = sys.mmap(2 ** 47 - PAGE, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.file = sys.mmap(0, PAGE, RW, MAP_PRIVATE, 3, 0);
      r.badProt = sys.mmap(0, PAGE, 0x100, ANON, -1, 0);
      const a = sys.mmap(0x20000000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.noReplace = sys.mmap(a, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
      r.hint = sys.mmap(0x30000000, PAGE, RW, ANON, -1, 0);
      yield;
      return 0;
    });
    expect(r).toEqual({
      zero: -EINVAL,
      noType: -EINVAL,
      unalignedOffset: -EINVAL,
      fixedUnaligned: -EINVAL,
      fixedLow: -EPERM,
      huge: -ENOMEM,
      overflow: -ENOMEM,
      file: -ENODEV,
      badProt: -EINVAL,
      noReplace: -EEXIST,
      hint: 0x30000000,
    });
  });

  it('MAP_FIXED replaces what was there; MAP_POPULATE makes every page resident', () => {
    let value = -1;
    const vec = new Uint8Array(4);
    run(function* ({ sys, cpu }) {
      const a = sys.mmap(0x20000000, 4 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 7);
      sys.mmap(a, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      value = cpu.load8(a);
      const b = sys.mmap(0, 4 * PAGE, RW, ANON | MAP_POPULATE, -1, 0);
      const v = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      sys.mincore(b, 4 * PAGE, v);
      cpu.loadBytes(v, vec);
      yield;
      return 0;
    });
    expect(value).toBe(0);
    expect([...vec]).toEqual([1, 1, 1, 1]);
  });

  it('places mappings top-down below the mmap base', () => {
    const got: number[] = [];
    run(function* ({ sys }) {
      got.push(sys.mmap(0, PAGE, RW, ANON, -1, 0), sys.mmap(0, PAGE, RW, ANON, -1, 0));
      yield;
      return 0;
    });
    expect(got[1]).toBeLessThan(got[0]!);
    expect(got[0]).toBeGreaterThan(0x7f0000000000);
  });
});

describe('munmap, mprotect, madvise, mincore', () => {
  it('munmap: bad arguments, partial unmaps split, access afterwards is SIGSEGV', () => {
    const r: number[] = [];
    let maps = '';
    const m = boot();
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0x20000000, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(
        sys.munmap(a + 1, PAGE),
        sys.munmap(a, 0),
        sys.munmap(a + PAGE, PAGE),
        sys.munmap(0x50000000, PAGE),
      );
      maps = renderMaps(m.kernel.current!);
      cpu.store8(a, 1);
      cpu.store8(a + 2 * PAGE, 1);
      yield;
      cpu.store8(a + PAGE, 1);
      return 0;
    });
    m.kernel.run();
    expect(r).toEqual([-EINVAL, -EINVAL, 0, 0]);
    expect(maps).toContain(
      '20000000-20001000 rw-p 00000000 00:00 0 \n20002000-20003000 rw-p 00000000 00:00 0 \n',
    );
    expect(WIFSIGNALED(t.waitStatus) && WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.kernel.log.at(-1)!.text).toMatch(
      /^t0\[\d+\]: segfault at 20001000 ip [0-9a-f]{16} sp [0-9a-f]{16} error 6 in t0\[/,
    );
  });

  it('mprotect: the middle of a region read-only makes three VMAs; restoring merges them', () => {
    const counts: number[] = [];
    const r: number[] = [];
    const m = boot();
    const count = (): number =>
      renderMaps(m.kernel.current!)
        .split('\n')
        .filter((l) => /^2000[012]000-/.test(l)).length;
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0x20000000, 3 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a + PAGE, 9); // now in the TLB, writable
      r.push(sys.mprotect(a + 1, PAGE, PROT_READ), sys.mprotect(0x60000000, PAGE, PROT_READ));
      r.push(sys.mprotect(a + PAGE, PAGE, PROT_READ));
      counts.push(count());
      r.push(cpu.load8(a + PAGE));
      r.push(sys.mprotect(a + PAGE, PAGE, RW));
      counts.push(count());
      r.push(sys.mprotect(a, PAGE, PROT_NONE));
      r.push(sys.mprotect(a, PAGE, RW));
      r.push(cpu.load8(a + PAGE));
      sys.mprotect(a + PAGE, PAGE, PROT_READ);
      yield;
      cpu.store8(a + PAGE, 1); // the live PTE changed and the TLB entry was flushed: this faults
      return 0;
    });
    m.kernel.run();
    expect(r).toEqual([-EINVAL, -ENOMEM, 0, 9, 0, 0, 0, 9]);
    expect(counts).toEqual([3, 1]);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(m.kernel.log.at(-1)!.text).toMatch(/error 7 in/); // protection, write, user
  });

  it('PROT_NONE keeps the data, SEGV_ACCERR on access, restoring brings it back', () => {
    let back = -1;
    const m = boot();
    const t1 = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 0x1234);
      sys.mprotect(a, PAGE, PROT_NONE);
      sys.mprotect(a, PAGE, RW);
      back = cpu.load32(a);
      sys.mprotect(a, PAGE, PROT_NONE);
      yield;
      cpu.load8(a);
      return 0;
    });
    m.kernel.run();
    expect(back).toBe(0x1234);
    expect(WTERMSIG(t1.waitStatus)).toBe(SIGSEGV);
    // PROT_NONE entries are not present (as x86 Linux's protnone): user read, not present.
    expect(m.kernel.log.at(-1)!.text).toMatch(/error 4 in/);
  });

  it('madvise: DONTNEED zero-fills, FREE keeps data without pressure, bad advice EINVAL', () => {
    const r: number[] = [];
    run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      cpu.store8(a, 5);
      cpu.store8(a + PAGE, 6);
      r.push(sys.madvise(a, PAGE, MADV_DONTNEED), cpu.load8(a));
      r.push(sys.madvise(a + PAGE, PAGE, MADV_FREE), cpu.load8(a + PAGE));
      r.push(
        sys.madvise(a, PAGE, 77),
        sys.madvise(a + 1, PAGE, MADV_DONTNEED),
        sys.madvise(0x70000000, PAGE, MADV_DONTNEED),
      );
      yield;
      return 0;
    });
    expect(r).toEqual([0, 0, 0, 6, -EINVAL, -EINVAL, -ENOMEM]);
  });

  it('mincore: unaligned EINVAL, unmapped ENOMEM, bad vector EFAULT', () => {
    const r: number[] = [];
    run(function* ({ sys }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const v = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      r.push(sys.mincore(a + 1, PAGE, v), sys.mincore(0x70000000, PAGE, v), sys.mincore(a, PAGE, 0x10));
      yield;
      return 0;
    });
    expect(r).toEqual([-EINVAL, -ENOMEM, -EFAULT]);
  });
});

describe('faults', () => {
  it('fresh pages are zero: no data leaks from a process that exited', () => {
    const m = boot({ memoryMiB: 8 });
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 1000 * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < 1000; p++) {
        cpu.fillBytes(a + p * PAGE, PAGE, 0xee);
        yield;
      }
      return 0;
    });
    let nonzero = 0;
    let firstDone = false;
    m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(50_000_000); // until the first process has exited
      firstDone = m.kernel.liveTasks().length === 1;
      const a = sys.mmap(0, 1000 * PAGE, RW, ANON, -1, 0);
      const buf = new Uint8Array(PAGE);
      for (let p = 0; p < 1000; p++) {
        cpu.loadBytes(a + p * PAGE, buf);
        for (const b of buf) if (b !== 0) nonzero++;
        yield;
      }
      return 0;
    });
    m.kernel.run();
    expect(firstDone).toBe(true);
    expect(m.kernel.events.pgfault).toBeGreaterThanOrEqual(2000);
    expect(nonzero).toBe(0);
  });

  it('the stack grows on demand down to its limit; below the limit or into the guard gap is SIGSEGV', () => {
    const m = boot();
    let grew = false;
    const ok = m.start(function* ({ sys, cpu }) {
      const top = 0x7ffffffff000; // the top of the user half: the stack's end
      cpu.store8(top - 1024 * 1024, 1); // 1 MiB below the top: within RLIMIT_STACK
      grew = sys.vmlab_pageinfo(top - 1024 * 1024).present;
      yield;
      cpu.store8(top - 16 * 1024 * 1024, 1); // 16 MiB: past the 8 MiB limit
      return 0;
    });
    m.kernel.run();
    expect(grew).toBe(true);
    expect(WTERMSIG(ok.waitStatus)).toBe(SIGSEGV);
    expect(m.kernel.events.stack_grow).toBe(1);
    // A mapping just below the stack: growing into the 256-page guard gap is refused.
    const m2 = boot();
    let grewAbove = false;
    const gap = m2.start(function* ({ sys, cpu }) {
      const top = 0x7ffffffff000;
      const stackLow = top - 32 * PAGE;
      sys.mmap(stackLow - 300 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(stackLow - 10 * PAGE, 1); // 290 pages above that mapping: allowed
      grewAbove = sys.vmlab_pageinfo(stackLow - 10 * PAGE).present;
      yield;
      cpu.store8(stackLow - 100 * PAGE, 1); // 200 pages above it: inside the guard gap
      return 0;
    });
    m2.kernel.run();
    expect(grewAbove).toBe(true);
    expect(WTERMSIG(gap.waitStatus)).toBe(SIGSEGV);
  });

  it('executing a page without VM_EXEC is SEGV_ACCERR', () => {
    const { t, kernel } = run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store8(a, 0x90);
      yield;
      cpu.fetch8(a);
      return 0;
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    expect(kernel.log.at(-1)!.text).toMatch(/error 21 in/); // protection + user + instruction fetch
  });
});

describe('fork and copy-on-write', () => {
  it('parent and child share a frame until the child writes; then they differ and the parent is unchanged', () => {
    const seen: Record<string, unknown> = {};
    run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 111);
      const child = sys.fork(function* (c) {
        const before = c.sys.vmlab_pageinfo(a);
        seen.childBefore = before;
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
      return 0;
    });
    const p0 = seen.parentAtFork as { physAddr: number; shared: boolean; copyOnWrite: boolean };
    const c0 = seen.childBefore as { physAddr: number };
    const c1 = seen.childAfter as { physAddr: number; copyOnWrite: boolean };
    const p1 = seen.parentAfter as { physAddr: number; copyOnWrite: boolean; writable: boolean };
    expect(p0.shared && p0.copyOnWrite).toBe(true);
    expect(c0.physAddr).toBe(p0.physAddr);
    expect(c1.physAddr).not.toBe(p0.physAddr);
    expect(c1.copyOnWrite).toBe(false);
    expect(seen.childValue).toBe(222);
    expect(seen.parentValue).toBe(111);
    expect(p1.physAddr).toBe(p0.physAddr);
  });

  it('a grandchild forked before any write still copies on write', () => {
    const values: number[] = [];
    const { kernel } = run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 1);
      const child = sys.fork(function* (c) {
        const gc = c.sys.fork(function* (g) {
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
    expect(values).toEqual([3, 1, 2, 1]);
    for (const t of kernel.tasks.values()) if (!t.kernelThread) expect(t.waitStatus).toBe(0);
  });

  it('the kernel writes into fresh and copy-on-write pages on a process behalf (wait4 status)', () => {
    let status = -1;
    let statusCow = -1;
    run(function* ({ sys, cpu }) {
      const fresh = sys.mmap(0, PAGE, RW, ANON, -1, 0); // never touched
      const c1 = sys.fork(function* () {
        yield;
        return 7;
      });
      yield* sys.wait4(c1, fresh, 0);
      status = cpu.load32(fresh);
      const c2 = sys.fork(function* () {
        yield;
        return 9;
      }); // `fresh` is now copy-on-write in the parent
      yield* sys.wait4(c2, fresh, 0);
      statusCow = cpu.load32(fresh);
      return 0;
    });
    expect(WIFEXITED(status) && WEXITSTATUS(status)).toBe(7);
    expect(WEXITSTATUS(statusCow)).toBe(9);
  });

  it('a parent exiting before its child leaves the child to init, running', () => {
    const m = boot();
    let childPpid = -1;
    let childValue = -1;
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 42);
      sys.fork(function* (c) {
        yield* c.sys.nanosleep(1_000_000);
        childPpid = c.sys.getppid();
        childValue = c.cpu.load32(a);
        return 0;
      });
      yield;
      return 0;
    });
    m.kernel.run();
    m.kernel.checkInvariants();
    expect(childPpid).toBe(1);
    expect(childValue).toBe(42);
  });

  it('forking a process holding two thirds of memory succeeds', () => {
    const pages = Math.floor((2 / 3) * ((32 * 1024 * 1024) / PAGE));
    let child = -1;
    run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < pages; p++) {
        cpu.store8(a + p * PAGE, 1);
        if (p % 64 === 0) yield;
      }
      child = sys.fork(function* () {
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      return 0;
    });
    expect(child).toBeGreaterThan(0);
  });

  it('MAP_SHARED|MAP_ANONYMOUS stays shared across fork', () => {
    let seen = -1;
    run(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      const child = sys.fork(function* (c) {
        c.cpu.store32(a + PAGE, 77); // a page the parent never touched before fork
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      seen = cpu.load32(a + PAGE);
      return 0;
    });
    expect(seen).toBe(77);
  });
});

describe('isolation', () => {
  it('the same virtual address in two processes is two frames; writes are invisible to the other', () => {
    const m = boot();
    const pas: number[] = [];
    const reads: number[] = [];
    for (const value of [10, 20]) {
      m.start(function* ({ sys, cpu }) {
        const a = sys.mmap(0x40000000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        cpu.store32(a, value);
        pas.push(sys.vmlab_pageinfo(a).physAddr);
        yield* sys.sched_yield();
        yield* sys.sched_yield();
        reads.push(cpu.load32(a));
        return 0;
      });
    }
    m.kernel.run();
    expect(pas[0]).not.toBe(pas[1]);
    expect(reads.sort()).toEqual([10, 20]);
  });

  it('kernel frames (tables, slabs) are never mapped into user space', () => {
    const m = boot();
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 64 * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < 64; p++) cpu.store8(a + p * PAGE, 1);
      yield* sys.nanosleep(1000);
      return 0;
    });
    m.kernel.run({ untilCycles: 200_000 });
    m.kernel.checkInvariants(); // panics if a user PTE maps a frame that is not PG_ANON
  });
});

describe('signals, exit and wait', () => {
  it('reports exit codes and deaths by signal; WNOHANG; ECHILD; ESRCH; signal 0', () => {
    const r: number[] = [];
    let killedStatus = 0;
    let exitedStatus = 0;
    run(function* ({ sys, cpu }) {
      const st = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      r.push(yield* sys.wait4(-1, 0, 0)); // no children
      const sleeper = sys.fork(function* (c) {
        for (;;) yield* c.sys.nanosleep(1_000_000);
      });
      r.push(yield* sys.wait4(sleeper, 0, WNOHANG));
      r.push(sys.kill(sleeper, 0), sys.kill(99999, SIGKILL), sys.kill(sleeper, SIGKILL));
      yield* sys.wait4(sleeper, st, 0);
      killedStatus = cpu.load32(st);
      const exiter = sys.fork(function* (c) {
        yield;
        return c.sys.exit(3);
      });
      yield* sys.wait4(exiter, st, 0);
      exitedStatus = cpu.load32(st);
      return 0;
    });
    expect(r).toEqual([-ECHILD, 0, 0, -ESRCH, 0]);
    expect(WIFSIGNALED(killedStatus) && WTERMSIG(killedStatus)).toBe(SIGKILL);
    expect(WIFEXITED(exitedStatus) && WEXITSTATUS(exitedStatus)).toBe(3);
  });

  it('a process that signals itself dies of it; only that process ends', () => {
    const m = boot();
    const victim = m.start(function* ({ sys }) {
      yield;
      sys.kill(sys.getpid(), SIGTERM);
      return 0;
    });
    const other = m.start(function* ({ sys }) {
      yield* sys.nanosleep(2_000_000);
      return 0;
    });
    m.kernel.run();
    expect(WTERMSIG(victim.waitStatus)).toBe(SIGTERM);
    expect(other.waitStatus).toBe(0);
    expect(m.kernel.state).toBe('halted');
  });

  it('nanosleep lets others run meanwhile; sched_yield interleaves', () => {
    const m = boot();
    const order: string[] = [];
    m.start(function* ({ sys }) {
      order.push('a1');
      yield* sys.nanosleep(5_000_000);
      order.push('a2');
      return 0;
    });
    m.start(function* ({ sys }) {
      order.push('b1');
      yield* sys.sched_yield();
      order.push('b2');
      return 0;
    });
    m.kernel.run();
    expect(order).toEqual(['a1', 'b1', 'b2', 'a2']);
    expect(m.clock.now).toBeGreaterThanOrEqual(5_000_000);
  });

  it('a program that throws dies of SIGABRT and the machine goes on', () => {
    const m = boot();
    const bad = m.start(function* () {
      yield;
      throw new TypeError('oops');
    });
    const good = m.start(function* () {
      yield;
      return 0;
    });
    m.kernel.run();
    expect(WTERMSIG(bad.waitStatus)).toBe(6);
    expect(good.waitStatus).toBe(0);
    expect(m.kernel.state).toBe('halted');
  });
});

describe('randomized multi-process workloads', () => {
  type Op = { kind: 'mmap' | 'touch' | 'unmap' | 'protect' | 'advise' | 'fork' | 'brk'; n: number };
  const op = fc.record({
    kind: fc.constantFrom('mmap', 'touch', 'unmap', 'protect', 'advise', 'fork', 'brk') as fc.Arbitrary<
      Op['kind']
    >,
    n: fc.nat({ max: 1000 }),
  });

  function program(ops: Op[], depth: number): UserMain {
    return function* ({ sys, cpu }) {
      const maps: Array<{ a: number; pages: number; value: number }> = [];
      for (const o of ops) {
        const m = maps.length > 0 ? maps[o.n % maps.length]! : undefined;
        if (o.kind === 'mmap') {
          const pages = 1 + (o.n % 8);
          const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
          if (a > 0) maps.push({ a, pages, value: 0 });
        } else if (o.kind === 'touch' && m !== undefined) {
          m.value = (o.n & 0xff) + 1;
          for (let p = 0; p < m.pages; p++) cpu.store8(m.a + p * PAGE, m.value);
          for (let p = 0; p < m.pages; p++) if (cpu.load8(m.a + p * PAGE) !== m.value) return 90;
        } else if (o.kind === 'unmap' && m !== undefined) {
          sys.munmap(m.a, m.pages * PAGE);
          maps.splice(maps.indexOf(m), 1);
        } else if (o.kind === 'protect' && m !== undefined) {
          sys.mprotect(m.a, PAGE, PROT_READ);
          sys.mprotect(m.a, PAGE, RW);
        } else if (o.kind === 'advise' && m !== undefined) {
          sys.madvise(m.a, m.pages * PAGE, MADV_DONTNEED);
          m.value = 0;
        } else if (o.kind === 'fork' && depth < 2) {
          const child = sys.fork(program(ops.slice(0, 6), depth + 1));
          if (child > 0 && o.n % 2 === 0) yield* sys.wait4(child, 0, 0);
        } else if (o.kind === 'brk') {
          const b = sys.brk(0);
          sys.brk(b + ((o.n % 5) - 2) * PAGE);
        }
        for (const x of maps) if (x.value !== 0 && cpu.load8(x.a) !== x.value) return 91;
        yield;
      }
      return 0;
    };
  }

  it('keeps every invariant after every step, reads back what was written, and frees everything at the end', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(op, { minLength: 1, maxLength: 25 }), { minLength: 1, maxLength: 4 }),
        (scripts) => {
          const m = boot({ memoryMiB: 16 });
          for (const c of m.slab.caches()) c.shrink();
          m.buddy.drainPcp();
          const free0 = m.buddy.freePages();
          const tasks = scripts.map((ops) => m.start(program(ops, 0)));
          for (let i = 0; i < 10_000 && m.kernel.state !== 'halted'; i++) {
            m.kernel.run({ untilCycles: m.clock.now + 20_000 });
            m.kernel.checkInvariants();
            m.kernel.reclaimer.checkInvariants();
          }
          expect(m.kernel.state).toBe('halted');
          for (const t of tasks) expect(t.waitStatus).toBe(0);
          for (const c of m.slab.caches()) c.shrink();
          m.buddy.drainPcp();
          expect(m.buddy.freePages()).toBe(free0);
          expect(m.kernel.committedAs).toBe(0);
        },
      ),
      { seed: 2026, numRuns: 25 },
    );
  });
});
