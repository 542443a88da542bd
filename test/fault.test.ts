/**
 * The page-fault handler, kind by kind: demand-zero (fresh pages are zero, nothing leaks between
 * processes), copy-on-write (copy and reuse), stack growth (limit and guard gap), shared
 * anonymous pages, the refusals with their si_code (SEGV_MAPERR / SEGV_ACCERR) and the kernel
 * log line, spurious faults, and running out of memory.
 */
import { describe, expect, it } from 'vitest';
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessKind,
  type FaultKind,
  type MmuFault,
  MODE_USER,
} from '../kernel/hw/mmu.ts';
import { handleFault } from '../kernel/mm/fault.ts';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SEGV_ACCERR,
  SEGV_MAPERR,
  SIGKILL,
  SIGSEGV,
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, runOne, settleFreePages } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const STACK_TOP = 2 ** 47 - PAGE; // x86-64 TASK_SIZE: the stack's end
const STACK_LOW = STACK_TOP - 32 * PAGE; // where a new process's stack VMA starts
/** The segfault line: NAME[PID]: segfault at ADDR ip IP sp SP error N in NAME[START+LEN]. */
const SEGFAULT =
  /^(\w+)\[(\d+)\]: segfault at ([0-9a-f]+) ip ([0-9a-f]{16}) sp ([0-9a-f]{16}) error (\d+) in (\w+)\[([0-9a-f]+)\+([0-9a-f]+)\]$/;

describe('demand-zero', () => {
  it('fresh pages read zero, and no data from a process that exited ever reaches another', () => {
    const m = bootTestMachine({ memoryMiB: 8 });
    const pages = 1400; // most of the free memory, so the second process reuses the same frames
    const firstFrames = new Set<number>();
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
      for (let p = 0; p < pages; p++) {
        cpu.fillBytes(a + p * PAGE, PAGE, 0xee);
        firstFrames.add(sys.vmlab_pageinfo(a + p * PAGE).physAddr / PAGE);
        if (p % 32 === 0) yield;
      }
      return 0;
    });
    let nonzero = 0;
    let reused = 0;
    let firstGone = false;
    m.start(function* ({ sys, cpu }) {
      yield* sys.nanosleep(100_000_000); // until the first process has exited
      firstGone = m.kernel.liveTasks().length === 1;
      const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0);
      const buf = new Uint8Array(PAGE);
      for (let p = 0; p < pages; p++) {
        cpu.loadBytes(a + p * PAGE, buf);
        for (const b of buf) if (b !== 0) nonzero++;
        if (firstFrames.has(sys.vmlab_pageinfo(a + p * PAGE).physAddr / PAGE)) reused++;
        if (p % 32 === 0) yield;
      }
      return 0;
    });
    m.runToEnd();
    expect(firstGone).toBe(true);
    expect(reused).toBeGreaterThan(pages * 0.9);
    expect(nonzero).toBe(0);
  });

  it('a read maps a clean zero page, a write a dirty one; each is one minor fault', () => {
    const r: Array<number | boolean> = [];
    const { m, t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      r.push(sys.vmlab_pageinfo(a).present);
      r.push(cpu.load32(a + 100));
      const read = sys.vmlab_pageinfo(a);
      r.push(read.present, read.dirty, read.writable);
      cpu.store32(a + PAGE, 1);
      r.push(sys.vmlab_pageinfo(a + PAGE).dirty);
      yield;
      return 0;
    });
    expect(r).toEqual([false, 0, true, false, true, true]);
    expect(t.minFlt).toBeGreaterThanOrEqual(2);
    expect(m.kernel.events.pgfault).toBeGreaterThanOrEqual(2);
  });
});

describe('copy-on-write', () => {
  it('copies while the page is shared (cow_fault) and reuses it once it is not (pgreuse)', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
      cpu.store32(a, 1);
      cpu.store32(a + PAGE, 2);
      const pa0 = sys.vmlab_pageinfo(a).physAddr;
      const pa1 = sys.vmlab_pageinfo(a + PAGE).physAddr;
      const child = sys.fork(function* (c) {
        yield* c.sys.nanosleep(1_000_000);
        r.push(c.cpu.load32(a), c.cpu.load32(a + PAGE));
        return 0;
      });
      const cow0 = m.kernel.events.cow_fault;
      cpu.store32(a, 11); // the child still maps it: copy
      r.push(m.kernel.events.cow_fault - cow0, sys.vmlab_pageinfo(a).physAddr === pa0 ? 1 : 0);
      yield* sys.wait4(child, 0, 0);
      const reuse0 = m.kernel.events.pgreuse;
      cpu.store32(a + PAGE, 12); // read-only still, but ours alone now: reuse in place
      const after = sys.vmlab_pageinfo(a + PAGE);
      r.push(m.kernel.events.pgreuse - reuse0, after.physAddr === pa1 ? 1 : 0, after.writable ? 1 : 0);
      r.push(cpu.load32(a), cpu.load32(a + PAGE));
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([1, 0, 1, 2, 1, 1, 1, 11, 12]);
  });
});

describe('stack growth', () => {
  it('a touch below the stack within RLIMIT_STACK grows it; beyond the limit is SIGSEGV, logged', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    const t = m.start(
      function* ({ sys, cpu }) {
        cpu.store8(STACK_TOP - 1024 * 1024, 1); // 1 MiB below the top
        const stack = sys.vmlab_maps().at(-1)!;
        r.push(stack.start === STACK_TOP - 1024 * 1024 ? 1 : 0, stack.end === STACK_TOP ? 1 : 0);
        r.push(sys.vmlab_pageinfo(STACK_TOP - 1024 * 1024).present ? 1 : 0);
        cpu.store8(STACK_TOP - 8 * 1024 * 1024, 1); // exactly the limit: allowed
        r.push(m.kernel.events.stack_grow);
        yield;
        cpu.store8(STACK_TOP - 8 * 1024 * 1024 - 1, 1); // one byte more
        return 0;
      },
      { name: 'grower' },
    );
    m.runToEnd();
    expect(r).toEqual([1, 1, 1, 2]);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    const line = m.lastLog().match(SEGFAULT);
    expect(line).not.toBeNull();
    const [, comm, pid, addr, ip, sp, error, inName, start, len] = line!;
    expect([comm, Number(pid), inName]).toEqual(['grower', t.pid, 'grower']);
    expect(Number.parseInt(addr!, 16)).toBe(STACK_TOP - 8 * 1024 * 1024 - 1);
    expect(Number.parseInt(ip!, 16)).toBe(0x400000);
    expect(Number.parseInt(sp!, 16)).toBe(STACK_TOP - PAGE);
    expect(error).toBe('6'); // not present, write, user
    expect([start, len]).toEqual(['400000', '2000']);
  });

  it('growing into the 256-page guard gap above the next mapping is SIGSEGV; the gap edge itself is allowed', () => {
    const m = bootTestMachine();
    const r: number[] = [];
    const below = STACK_LOW - 300 * PAGE; // a one-page mapping, 299 pages below the stack
    const t = m.start(function* ({ sys, cpu }) {
      sys.mmap(below, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      cpu.store8(below + PAGE + 256 * PAGE, 1); // exactly the gap above it: allowed
      r.push(sys.vmlab_maps().at(-1)!.start === below + 257 * PAGE ? 1 : 0);
      yield;
      cpu.store8(below + PAGE + 255 * PAGE, 1); // one page into the gap
      return 0;
    });
    m.runToEnd();
    expect(r).toEqual([1]);
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    const gapPage = (below + 256 * PAGE).toString(16);
    expect(m.lastLog()).toMatch(new RegExp(`segfault at ${gapPage} .* error 6 in `));
  });

  it('a PROT_NONE mapping below the stack keeps no guard gap (Linux: only accessible VMAs do)', () => {
    const r: number[] = [];
    const { t } = runOne(function* ({ sys, cpu }) {
      const guard = STACK_LOW - 10 * PAGE;
      sys.mmap(guard, PAGE, PROT_NONE, ANON | MAP_FIXED, -1, 0);
      cpu.store8(guard + PAGE, 1); // right above the guard mapping
      r.push(sys.vmlab_maps().at(-1)!.start === guard + PAGE ? 1 : 0);
      yield;
      return 0;
    });
    expect(r).toEqual([1]);
    expect(t.waitStatus).toBe(0);
  });

  it('mmap keeps its placements out of the stack guard gap, even when hinted there', () => {
    const r: number[] = [];
    runOne(function* ({ sys }) {
      const hinted = sys.mmap(STACK_LOW - 2 * PAGE, PAGE, RW, ANON, -1, 0);
      r.push(hinted < STACK_LOW - 256 * PAGE ? 1 : 0);
      yield;
      return 0;
    });
    expect(r).toEqual([1]);
  });
});

describe('refusals: si_code and the kernel log', () => {
  it('handleFault answers SEGV_MAPERR for no mapping and the guard gap, SEGV_ACCERR for a forbidden access', () => {
    const m = bootTestMachine();
    const at: Record<string, number> = {};
    const t = m.start(function* ({ sys, cpu }) {
      at.ro = sys.mmap(0, PAGE, PROT_READ, ANON, -1, 0);
      at.rw = sys.mmap(0, PAGE, RW, ANON, -1, 0);
      at.rx = sys.mmap(0, PAGE, PROT_READ | PROT_EXEC, ANON, -1, 0);
      at.none = sys.mmap(0, PAGE, PROT_NONE, ANON, -1, 0);
      cpu.store8(at.rw, 1);
      sys.mmap(STACK_LOW - 100 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0);
      yield* sys.nanosleep(10_000_000);
      return 0;
    });
    m.kernel.run({ untilCycles: 1_000_000 }); // the process is asleep now
    const mm = t.mm!;
    const fault = (va: number, access: AccessKind, kind: FaultKind = 'not-present'): MmuFault => ({
      kind,
      reason: undefined,
      level: 0,
      va,
      access,
      mode: MODE_USER,
    });
    const code = (f: MmuFault): string => {
      const res = handleFault(mm, f, m.kernel);
      return res.kind === 'sigsegv' ? `segv ${res.code}` : res.kind === 'handled' ? res.how : res.kind;
    };
    expect(code(fault(0x10, ACCESS_READ))).toBe(`segv ${SEGV_MAPERR}`);
    expect(code(fault(0x7000_0000_0000, ACCESS_WRITE))).toBe(`segv ${SEGV_MAPERR}`);
    expect(code(fault(STACK_LOW - 50 * PAGE, ACCESS_WRITE))).toBe(`segv ${SEGV_MAPERR}`); // guard gap
    expect(code(fault(STACK_TOP - 9 * 1024 * 1024, ACCESS_WRITE))).toBe(`segv ${SEGV_MAPERR}`);
    expect(code(fault(at.ro!, ACCESS_WRITE))).toBe(`segv ${SEGV_ACCERR}`);
    expect(code(fault(at.rw!, ACCESS_EXECUTE, 'protection'))).toBe(`segv ${SEGV_ACCERR}`);
    expect(code(fault(at.none!, ACCESS_READ))).toBe(`segv ${SEGV_ACCERR}`);
    expect(code(fault(at.rx!, ACCESS_EXECUTE))).toBe('demand-zero');
    expect(code(fault(at.ro!, ACCESS_READ))).toBe('demand-zero');
    expect(code(fault(at.rw!, ACCESS_WRITE, 'protection'))).toBe('spurious'); // present and writable: a stale TLB
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
  });

  const cases: Array<
    [string, number, (a: number, cpu: import('../kernel/proc/uapi.ts').UserCpu) => void, string]
  > = [
    ['a write to a never-touched r-- page', PROT_READ, (a, cpu) => cpu.store8(a, 1), '6'],
    [
      'a write to a read r-- page',
      PROT_READ,
      (a, cpu) => {
        cpu.load8(a);
        cpu.store8(a, 1);
      },
      '7',
    ],
    [
      'executing a written rw- page',
      RW,
      (a, cpu) => {
        cpu.store8(a, 0x90);
        cpu.fetch8(a);
      },
      '21',
    ],
    ['executing a never-touched rw- page', RW, (a, cpu) => void cpu.fetch8(a), '20'],
    ['a read of a PROT_NONE page', PROT_NONE, (a, cpu) => void cpu.load8(a), '4'],
    ['a NULL pointer write', RW, (_a, cpu) => cpu.store8(0, 1), '6'],
  ];
  it.each(cases)('%s is SIGSEGV, logged with its x86 error code', (_what, prot, touch, error) => {
    const m = bootTestMachine();
    let addr = 0;
    const t = m.start(
      function* ({ sys, cpu }) {
        addr = sys.mmap(0x20000000, PAGE, prot, ANON | MAP_FIXED, -1, 0);
        yield;
        touch(addr, cpu);
        return 0;
      },
      { name: 'victim' },
    );
    m.runToEnd();
    expect(WTERMSIG(t.waitStatus)).toBe(SIGSEGV);
    const line = m.lastLog().match(SEGFAULT);
    expect(line).not.toBeNull();
    expect(line![1]).toBe('victim');
    expect(line![6]).toBe(error);
    expect(['20000000', '0']).toContain(line![3]);
  });

  it('executing a page of an r-x mapping works', () => {
    let v = -1;
    const { t } = runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, PAGE, PROT_READ | PROT_EXEC, ANON, -1, 0);
      v = cpu.fetch8(a);
      yield;
      return 0;
    });
    expect([v, t.waitStatus]).toEqual([0, 0]);
  });
});

describe('shared anonymous pages', () => {
  it('two processes fault in the same frame for the same page of the object', () => {
    const r: number[] = [];
    runOne(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      const child = sys.fork(function* (c) {
        c.cpu.store32(a + 3 * PAGE, 7); // first touch, in the child
        r.push(c.sys.vmlab_pageinfo(a + 3 * PAGE).physAddr);
        yield;
        return 0;
      });
      yield* sys.wait4(child, 0, 0);
      r.push(cpu.load32(a + 3 * PAGE), sys.vmlab_pageinfo(a + 3 * PAGE).physAddr);
      return 0;
    });
    expect(r[1]).toBe(7);
    expect(r[2]).toBe(r[0]);
  });
});

describe('out of memory', () => {
  it('a fault with no frame left (no swap) OOM-kills the biggest process; the rest go on and memory comes back', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    const free0 = settleFreePages(m);
    const hog = (pages: number) =>
      function* ({ sys, cpu }: import('../kernel/proc/uapi.ts').UserContext) {
        const a = sys.mmap(0, pages * PAGE, RW, ANON, -1, 0); // each fits the overcommit heuristic
        for (let p = 0; p < pages; p++) {
          cpu.store8(a + p * PAGE, 1);
          if (p % 16 === 0) yield;
        }
        yield* sys.nanosleep(1_000_000);
        return 0;
      };
    const big = m.start(hog(2600), { name: 'hog1' });
    const bigger = m.start(hog(2600), { name: 'hog2' });
    const small = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 16 * PAGE, RW, ANON, -1, 0);
      for (let round = 0; round < 50; round++) {
        for (let p = 0; p < 16; p++) cpu.store8(a + p * PAGE, round);
        yield* sys.nanosleep(100_000);
      }
      return 0;
    });
    m.runToEnd();
    // Exactly one of the two hogs dies, the one the log names; the small process never does.
    const killed = [big, bigger].filter((t) => WTERMSIG(t.waitStatus) === SIGKILL);
    expect(killed.length).toBe(1);
    expect([big, bigger].filter((t) => t.waitStatus === 0).length).toBe(1);
    expect(small.waitStatus).toBe(0);
    expect(m.kernel.events.oom_kill).toBe(1);
    const victim = killed[0]!;
    const oomLine = new RegExp(
      `^Out of memory: Killed process ${victim.pid} \\(${victim.comm}\\) total-vm:\\d+kB, anon-rss:\\d+kB`,
    );
    expect(m.kernel.log.some((l) => oomLine.test(l.text))).toBe(true);
    expect(settleFreePages(m)).toBe(free0);
  });
});
