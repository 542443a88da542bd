/**
 * Processes: getpid/getppid, fork/execve/exit/wait4 with their statuses, kill and signals,
 * sched_yield and nanosleep, and isolation: one process never sees another's memory and no
 * kernel frame (page table, slab) is ever mapped into user space.
 */
import { describe, expect, it } from 'vitest';
import { PG_ANON, PG_PAGETABLE, PG_SLAB } from '../kernel/mm/page.ts';
import {
  ECHILD,
  EFAULT,
  EINVAL,
  ENOENT,
  ESRCH,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SIGABRT,
  SIGCHLD,
  SIGKILL,
  SIGSEGV,
  SIGTERM,
  WEXITSTATUS,
  WIFEXITED,
  WIFSIGNALED,
  WNOHANG,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, settleFreePages } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const KERNEL_VA = 2 ** 64 - 2 ** 47;

describe('identity', () => {
  it('getpid and getppid: spawned processes are children of init, forked ones of their parent', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const t = m.start(function* ({ sys }) {
      r.push(sys.getpid(), sys.getppid());
      const child = sys.fork(function* (c) {
        r.push(c.sys.getpid(), c.sys.getppid());
        yield;
        return 0;
      });
      r.push(child);
      yield* sys.wait4(child, 0, 0);
      return 0;
    });
    m.runToEnd();
    // The parent runs on after fork; the child runs at its first turn.
    const [pid, ppid, forked, childPid, childPpid] = r;
    expect([pid, ppid]).toEqual([t.pid, 1]);
    expect(childPid).toBe(forked); // the child's pid is what fork returned
    expect(childPid).not.toBe(t.pid);
    expect(childPpid).toBe(t.pid);
  });
});

describe('exit and wait4', () => {
  it('reports exit codes and deaths by signal through WIFEXITED/WEXITSTATUS and WIFSIGNALED/WTERMSIG', () => {
    const statuses: number[] = [];
    const m = bootTestMachine();
    m.start(function* ({ sys, cpu }) {
      const st = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const kids = [
        sys.fork(function* (c) {
          yield;
          return c.sys.exit(3);
        }),
        sys.fork(function* () {
          yield;
          return 256 + 5; // only the low 8 bits survive
        }),
        sys.fork(function* (c) {
          yield;
          c.cpu.store8(0, 1);
          return 0;
        }),
        sys.fork(function* () {
          yield;
          throw new Error('a bug in the program');
        }),
      ];
      for (const k of kids) {
        yield* sys.wait4(k, st, 0);
        statuses.push(cpu.load32(st));
      }
      return 0;
    });
    m.runToEnd();
    const [exit3, exit5, segv, abort] = statuses;
    expect([WIFEXITED(exit3!), WEXITSTATUS(exit3!), WIFSIGNALED(exit3!)]).toEqual([true, 3, false]);
    expect([WIFEXITED(exit5!), WEXITSTATUS(exit5!)]).toEqual([true, 5]);
    expect([WIFEXITED(segv!), WIFSIGNALED(segv!), WTERMSIG(segv!)]).toEqual([false, true, SIGSEGV]);
    expect([WIFSIGNALED(abort!), WTERMSIG(abort!)]).toEqual([true, SIGABRT]);
    expect(m.kernel.log.some((l) => /^t0\[\d+\]: program error: a bug in the program$/.test(l.text))).toBe(
      true,
    );
  });

  it('WNOHANG returns 0 while children run; ECHILD without children, for strangers and grandchildren', () => {
    const r: number[] = [];
    const m = bootTestMachine();
    const other = m.start(function* ({ sys }) {
      yield* sys.nanosleep(5_000_000);
      return 0;
    });
    m.start(function* ({ sys }) {
      r.push(yield* sys.wait4(-1, 0, 0)); // no children
      r.push(yield* sys.wait4(-1, 0, WNOHANG));
      let grandchild = 0;
      const child = sys.fork(function* (c) {
        grandchild = c.sys.fork(function* (g) {
          yield* g.sys.nanosleep(2_000_000);
          return 0;
        });
        yield* c.sys.nanosleep(3_000_000);
        return 0;
      });
      yield* sys.nanosleep(100_000); // the child has forked by now
      r.push(yield* sys.wait4(child, 0, WNOHANG));
      r.push(yield* sys.wait4(grandchild, 0, 0));
      r.push(yield* sys.wait4(other.pid, 0, 0));
      r.push(yield* sys.wait4(child, 0, 0x40)); // unknown option bits
      r.push((yield* sys.wait4(child, 0, 0)) === child ? 1 : 0);
      r.push(yield* sys.wait4(child, 0, 0)); // already reaped
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([-ECHILD, -ECHILD, 0, -ECHILD, -ECHILD, -EINVAL, 1, -ECHILD]);
  });

  it('wait4 for a specific pid waits for that child even when another ends first', () => {
    const order: string[] = [];
    runOne(function* ({ sys }) {
      const slow = sys.fork(function* (c) {
        yield* c.sys.nanosleep(3_000_000);
        return 1;
      });
      const fast = sys.fork(function* () {
        yield;
        return 2;
      });
      const got = yield* sys.wait4(slow, 0, 0);
      order.push(`slow:${got === slow}`);
      const any = yield* sys.wait4(-1, 0, WNOHANG); // the fast one is a zombie by now
      order.push(`any:${any === fast}`);
      return 0;
    });
    expect(order).toEqual(['slow:true', 'any:true']);
  });

  it('a zombie stays until its parent waits; wait4 with a bad status pointer is EFAULT', () => {
    const m = bootTestMachine();
    const r: Array<number | string> = [];
    m.start(function* ({ sys }) {
      const child = sys.fork(function* () {
        yield;
        return 0;
      });
      yield* sys.nanosleep(1_000_000);
      r.push(m.kernel.tasks.get(child)!.state);
      r.push(yield* sys.wait4(child, KERNEL_VA, 0));
      r.push(yield* sys.wait4(child, 0x10, 0));
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual(['zombie', -EFAULT, -EFAULT]);
  });

  it('a parent that exits without waiting has its zombie children reaped by init', () => {
    const m = bootTestMachine();
    let child = 0;
    m.start(function* ({ sys }) {
      child = sys.fork(function* () {
        yield;
        return 0;
      });
      yield* sys.nanosleep(1_000_000);
      return 0;
    });
    m.runToEnd();
    expect(m.kernel.tasks.get(child)!.state).toBe('reaped');
    expect(m.kernel.state).toBe('halted');
  });
});

describe('execve', () => {
  it('replaces the program and its memory, keeping the pid; a missing program is ENOENT', () => {
    const m = bootTestMachine();
    const r: Array<number | string> = [];
    const next = m.register(function* ({ sys, argv }) {
      r.push(`new:${sys.getpid()}:${argv.join(',')}`);
      r.push(sys.vmlab_maps().some((e) => e.start === 0x20000000) ? 1 : 0); // the old mapping is gone
      const a = sys.mmap(0x20000000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      r.push(sys.vmlab_pageinfo(a).present ? 1 : 0);
      yield;
      return 6;
    }, '/bin/next');
    const t = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0x20000000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(a, 1);
      r.push(`old:${sys.getpid()}`);
      r.push(sys.execve('/bin/missing', ['missing']));
      r.push(cpu.load8(a)); // still the old program
      yield;
      sys.execve(next, ['next', 'x']);
      r.push('not reached');
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([`old:${t.pid}`, -ENOENT, 1, `new:${t.pid}:next,x`, 0, 0]);
    expect(WEXITSTATUS(t.waitStatus)).toBe(6);
    expect(t.comm).toBe('next');
  });
});

describe('signals', () => {
  it('kill: ESRCH for no such process, signal 0 probes, SIGKILL ends another, bad numbers EINVAL', () => {
    const r: number[] = [];
    let killedStatus = 0;
    const m = bootTestMachine();
    m.start(function* ({ sys, cpu }) {
      const st = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      const sleeper = sys.fork(function* (c) {
        for (;;) yield* c.sys.nanosleep(1_000_000);
      });
      r.push(sys.kill(99999, SIGKILL), sys.kill(sleeper, 0), sys.kill(sleeper, -1), sys.kill(sleeper, 64));
      r.push(sys.kill(sleeper, SIGCHLD)); // ignored by default: it keeps running
      yield* sys.nanosleep(2_000_000);
      r.push(sys.kill(sleeper, 0));
      r.push(sys.kill(sleeper, SIGKILL));
      yield* sys.wait4(sleeper, st, 0);
      killedStatus = cpu.load32(st);
      r.push(sys.kill(sleeper, 0)); // reaped: gone
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([-ESRCH, 0, -EINVAL, -EINVAL, 0, 0, 0, -ESRCH]);
    expect(WIFSIGNALED(killedStatus) && WTERMSIG(killedStatus)).toBe(SIGKILL);
  });

  it('a process that sends itself SIGTERM dies of it; the others go on', () => {
    const m = bootTestMachine();
    let after = false;
    const victim = m.start(function* ({ sys }) {
      yield;
      sys.kill(sys.getpid(), SIGTERM);
      after = true;
      return 0;
    });
    const other = m.start(function* ({ sys }) {
      yield* sys.nanosleep(2_000_000);
      return 0;
    });
    m.runToEnd();
    expect(after).toBe(false);
    expect(WTERMSIG(victim.waitStatus)).toBe(SIGTERM);
    expect(other.waitStatus).toBe(0);
    expect(m.kernel.state).toBe('halted');
  });

  it('killing a process frees all its memory at once, even while it sleeps', () => {
    const m = bootTestMachine();
    const free0 = settleFreePages(m);
    m.start(function* ({ sys, cpu }) {
      const victim = sys.fork(function* (c) {
        const a = c.sys.mmap(0, 256 * PAGE, RW, ANON, -1, 0);
        for (let p = 0; p < 256; p++) c.cpu.store8(a + p * PAGE, 1);
        for (;;) yield* c.sys.nanosleep(1_000_000);
      });
      yield* sys.nanosleep(500_000);
      sys.kill(victim, SIGKILL);
      yield* sys.wait4(victim, 0, 0);
      cpu.compute(1);
      return 0;
    });
    m.runToEnd();
    expect(settleFreePages(m)).toBe(free0);
  });
});

describe('scheduling', () => {
  it('sched_yield hands the CPU to the next ready process: strict interleaving', () => {
    const order: string[] = [];
    const m = bootTestMachine();
    for (const name of ['a', 'b']) {
      m.start(function* ({ sys }) {
        for (let i = 1; i <= 3; i++) {
          order.push(`${name}${i}`);
          yield* sys.sched_yield();
        }
        return 0;
      });
    }
    m.runToEnd();
    expect(order).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'b3']);
  });

  it('nanosleep advances emulated time, lets others run meanwhile, and refuses negative times', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    let busyWork = 0;
    let sleeping = true;
    m.start(function* ({ sys }) {
      const t0 = m.clock.now;
      r.push(yield* sys.nanosleep(-1));
      r.push(yield* sys.nanosleep(5_000_000)); // 5 ms at 1 GHz: 5e6 cycles
      r.push(m.clock.now - t0 >= 5_000_000 ? 1 : 0);
      sleeping = false;
      return 0;
    });
    m.start(function* ({ cpu }) {
      while (sleeping) {
        cpu.compute(1000);
        busyWork++;
        yield;
      }
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([-EINVAL, 0, 1]);
    expect(busyWork).toBeGreaterThan(1000); // it ran while the other slept
    expect(m.clock.now).toBeGreaterThanOrEqual(5_000_000);
  });
});

describe('isolation', () => {
  it('the same virtual address in two processes is two frames; writes are invisible to the other', () => {
    const m = bootTestMachine();
    const pas: number[] = [];
    const reads: number[] = [];
    for (const value of [10, 20]) {
      m.start(function* ({ sys, cpu }) {
        const a = sys.mmap(0x40000000, PAGE, RW, ANON | MAP_FIXED, -1, 0);
        cpu.store32(a, value);
        pas.push(sys.vmlab_pageinfo(a).physAddr);
        yield* sys.sched_yield(); // the other writes its value now
        yield* sys.sched_yield();
        reads.push(cpu.load32(a));
        return 0;
      });
    }
    m.runToEnd();
    expect(pas[0]).not.toBe(pas[1]);
    expect(reads).toEqual([10, 20]);
  });

  it('a process cannot reach another process memory by its address, nor the kernel memory', () => {
    const m = bootTestMachine();
    let secretVa = 0;
    const holder = m.start(function* ({ sys, cpu }) {
      secretVa = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      cpu.store32(secretVa, 0x5ec2e7);
      yield* sys.nanosleep(3_000_000);
      return cpu.load32(secretVa) === 0x5ec2e7 ? 0 : 1;
    });
    const spy = m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(1_000_000);
      cpu.store32(secretVa, 0xbad); // not mapped here: SIGSEGV
      return 0;
    });
    const kernelPoker = m.start(function* ({ cpu }) {
      yield;
      cpu.store8(KERNEL_VA, 1);
      return 0;
    });
    m.runToEnd();
    expect(holder.waitStatus).toBe(0);
    expect(WTERMSIG(spy.waitStatus)).toBe(SIGSEGV);
    expect(WTERMSIG(kernelPoker.waitStatus)).toBe(SIGSEGV);
  });

  it('every frame a user page table maps is a user page: never a page table or a slab', () => {
    const m = bootTestMachine();
    for (let i = 0; i < 3; i++) {
      m.start(function* ({ sys, cpu }) {
        const a = sys.mmap(0, 64 * PAGE, RW, ANON, -1, 0);
        const s = sys.mmap(0, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        for (let p = 0; p < 64; p++) cpu.store8(a + p * PAGE, 1);
        cpu.store8(s, 1);
        const child = sys.fork(function* (c) {
          c.cpu.store8(a, 2);
          yield* c.sys.nanosleep(2_000_000);
          return 0;
        });
        yield* sys.nanosleep(1_000_000);
        yield* sys.wait4(child, 0, 0);
        return 0;
      });
    }
    m.kernel.run({ untilCycles: 1_500_000 }); // everyone alive, asleep
    const pte = m.kernel.pte;
    let mapped = 0;
    let users = 0;
    for (const t of m.kernel.tasks.values()) {
      if (t.mm === null) continue;
      users++;
      t.mm.tables.forEachEntry(0, 2 ** m.format.vaBits, (_va, _pa, lo, hi) => {
        if (!pte.isPresent(lo, hi)) return;
        const pfn = pte.pfnOf(lo, hi);
        expect(m.frames.has(pfn, PG_ANON)).toBe(true);
        expect(m.frames.has(pfn, PG_PAGETABLE) || m.frames.has(pfn, PG_SLAB)).toBe(false);
        mapped++;
      });
    }
    expect(users).toBe(6);
    expect(mapped).toBeGreaterThan(6 * 64);
    m.kernel.checkInvariants();
    m.runToEnd();
  });
});
