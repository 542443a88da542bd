/**
 * The whole machine under random workloads: several processes run random sequences of mmap,
 * munmap, mremap, mprotect, madvise, brk, reads and writes, fork, exit, kill and deliberate faults. Each
 * process checks what it reads against a model of its memory (private pages copied at fork,
 * shared pages shared), the machine is stepped a slice at a time with every invariant checked
 * after each step, and when all have exited every free page is back. The same workload twice
 * gives identical counters, kernel log and clock.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  ENOMEM,
  MADV_DONTNEED,
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_MAYMOVE,
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
  WTERMSIG,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const PROTS = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE] as const;

type LeafOp =
  | { k: 'mmap'; pages: number; prot: number; shared: boolean }
  | { k: 'fixed'; target: number; page: number; pages: number }
  | { k: 'munmap'; target: number; page: number; pages: number }
  | { k: 'mremap'; target: number; pages: number; keep: boolean }
  | { k: 'mprotect'; target: number; page: number; pages: number; prot: number }
  | { k: 'madvise'; target: number; page: number; pages: number; free: boolean }
  | { k: 'brk'; delta: number }
  | { k: 'write'; target: number; page: number; value: number }
  | { k: 'read'; target: number; page: number }
  | { k: 'fill'; target: number; value: number }
  | { k: 'sweep' }
  | { k: 'heap'; page: number; value: number }
  | { k: 'kill'; target: number; sig: number }
  | { k: 'sleep'; us: number }
  | { k: 'exit'; code: number }
  | { k: 'segv' };
type Op = LeafOp | { k: 'fork'; wait: boolean; ops: Op[] };

const n = (max: number) => fc.nat({ max });
const leafOp: fc.Arbitrary<LeafOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('mmap' as const),
      pages: fc.integer({ min: 1, max: 8 }),
      prot: n(3),
      shared: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('fixed' as const),
      target: n(99),
      page: n(7),
      pages: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('munmap' as const),
      target: n(99),
      page: n(7),
      pages: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('mremap' as const),
      target: n(99),
      pages: fc.integer({ min: 1, max: 10 }),
      keep: fc.boolean(), // MREMAP_DONTUNMAP: the region's size, the old range left mapped and empty
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('mprotect' as const),
      target: n(99),
      page: n(7),
      pages: fc.integer({ min: 1, max: 4 }),
      prot: n(3),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('madvise' as const),
      target: n(99),
      page: n(7),
      pages: fc.integer({ min: 1, max: 4 }),
      free: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('brk' as const), delta: fc.integer({ min: -3, max: 4 }) }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant('write' as const), target: n(99), page: n(7), value: fc.nat() }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('read' as const), target: n(99), page: n(7) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('fill' as const), target: n(99), value: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('sweep' as const) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('heap' as const), page: n(7), value: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('kill' as const),
      target: n(9),
      sig: fc.constantFrom(0, SIGKILL, SIGTERM),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('sleep' as const), us: fc.integer({ min: 1, max: 300 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.record({ k: fc.constant('exit' as const), code: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ k: fc.constant('segv' as const) }),
    ),
  },
);
const fork = (child: fc.Arbitrary<Op[]>): fc.Arbitrary<Op> =>
  fc.record({ k: fc.constant('fork' as const), wait: fc.boolean(), ops: child });
const leafScript = fc.array(leafOp, { minLength: 2, maxLength: 12 });
const midScript = fc.array(
  fc.oneof({ weight: 12, arbitrary: leafOp as fc.Arbitrary<Op> }, { weight: 1, arbitrary: fork(leafScript) }),
  {
    minLength: 3,
    maxLength: 16,
  },
);
const topScript = fc.array(
  fc.oneof({ weight: 10, arbitrary: leafOp as fc.Arbitrary<Op> }, { weight: 2, arbitrary: fork(midScript) }),
  {
    minLength: 6,
    maxLength: 30,
  },
);
const workloadArb = fc.array(topScript, { minLength: 1, maxLength: 3 });

/** One page's expected word (at offsetIn); `lazy` after MADV_FREE: reclaim may have dropped it (reads 0). */
interface Cell {
  v: number;
  lazy: boolean;
  /** Where in its page the word is, once mremap moved the page (else offsetIn of its address). */
  off?: number;
}
interface Region {
  start: number;
  pages: number;
  prot: number[];
  /** The shared object's contents (by page address) for MAP_SHARED regions, else null. */
  shared: Map<number, Cell> | null;
}
/** What one process knows its memory must hold. */
interface Model {
  regions: Region[];
  priv: Map<number, Cell>;
  heapStart: number;
  brk: number;
  children: Array<{ pid: number; expect: number; killedBy: number }>;
}

/** mremap calls that moved a region, over all runs: the generator must reach the move. */
let mremapMoves = 0;
/** Of those, the MREMAP_DONTUNMAP moves. */
let mremapKeeps = 0;
const offsetIn = (va: number): number => ((va / PAGE) % 61) * 64;
const pageUp = (x: number): number => Math.ceil(x / PAGE) * PAGE;

/** The status a script ends with if nobody kills it: its first exit or deliberate fault, else 0. */
function expectedStatus(ops: Op[]): number {
  for (const o of ops) {
    if (o.k === 'exit') return (o.code & 0xff) << 8;
    if (o.k === 'segv') return SIGSEGV;
  }
  return 0;
}

function copyModel(m: Model): Model {
  const priv = new Map<number, Cell>();
  for (const [va, c] of m.priv) priv.set(va, { ...c });
  return {
    regions: m.regions.map((r) => ({ ...r, prot: [...r.prot] })),
    priv,
    heapStart: m.heapStart,
    brk: m.brk,
    children: [],
  };
}

/** Remove [start, end) from the model's regions (munmap, or MAP_FIXED over it). */
function unmapModel(model: Model, start: number, end: number): void {
  const out: Region[] = [];
  for (const r of model.regions) {
    const rEnd = r.start + r.pages * PAGE;
    if (rEnd <= start || r.start >= end) {
      out.push(r);
      continue;
    }
    if (r.start < start)
      out.push({ ...r, pages: (start - r.start) / PAGE, prot: r.prot.slice(0, (start - r.start) / PAGE) });
    if (rEnd > end)
      out.push({ ...r, start: end, pages: (rEnd - end) / PAGE, prot: r.prot.slice((end - r.start) / PAGE) });
  }
  model.regions = out;
  for (let va = start; va < end; va += PAGE) model.priv.delete(va);
}

/** The process body for `ops`, checking memory against `model` and reporting to `failures`. */
function program(ops: Op[], model: Model, failures: string[], depth: number): UserMain {
  return function* (ctx: UserContext) {
    const { sys, cpu } = ctx;
    const me = `pid ${sys.getpid()}`;
    const fail = (what: string): void => {
      failures.push(`${me}: ${what}`);
    };
    const cellOf = (r: Region): Map<number, Cell> => r.shared ?? model.priv;
    const check = (r: Region, va: number): void => {
      const map = cellOf(r);
      const cell = map.get(va);
      const got = cpu.load32(va + (cell?.off ?? offsetIn(va)));
      const want = cell?.v ?? 0;
      if (got === want) return;
      if (cell?.lazy === true && got === 0) {
        map.set(va, { v: 0, lazy: false }); // dropped by reclaim: zeros from now on
        return;
      }
      fail(`read ${got} at 0x${va.toString(16)}, expected ${want}`);
    };
    /** The page `page` of region `target`, clipped: [region, va] or undefined. */
    const pick = (target: number, page: number): [Region, number] | undefined => {
      if (model.regions.length === 0) return undefined;
      const r = model.regions[target % model.regions.length]!;
      return [r, r.start + (page % r.pages) * PAGE];
    };
    const span = (target: number, page: number, pages: number): [Region, number, number] | undefined => {
      const p = pick(target, page);
      if (p === undefined) return undefined;
      const [r, va] = p;
      return [r, va, Math.min(va + pages * PAGE, r.start + r.pages * PAGE)];
    };
    const statusVa = sys.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    model.regions.push({ start: statusVa, pages: 1, prot: [PROT_READ | PROT_WRITE], shared: null });
    const statusRegion = model.regions.at(-1)!;
    const reap = function* (child: { pid: number; expect: number; killedBy: number }) {
      const at = statusVa + offsetIn(statusVa); // the word the model tracks for this page
      const got = yield* sys.wait4(child.pid, at, 0);
      const st = cpu.load32(at);
      model.priv.set(statusVa, { v: st >>> 0, lazy: false }); // the kernel wrote it there
      const ok =
        got === child.pid &&
        (st === child.expect || (child.killedBy !== 0 && WIFSIGNALED(st) && WTERMSIG(st) === child.killedBy));
      if (!ok)
        fail(
          `child ${child.pid}: wait4 ${got}, status 0x${st.toString(16)}, expected 0x${child.expect.toString(16)}`,
        );
    };
    for (const o of ops) {
      switch (o.k) {
        case 'mmap': {
          const prot = PROTS[o.prot]!;
          const flags = (o.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
          const a = sys.mmap(0, o.pages * PAGE, prot, flags, -1, 0);
          if (a < 0) fail(`mmap ${a}`);
          else
            model.regions.push({
              start: a,
              pages: o.pages,
              prot: new Array(o.pages).fill(prot),
              shared: o.shared ? new Map() : null,
            });
          break;
        }
        case 'fixed': {
          const s = span(o.target, o.page, o.pages);
          if (s === undefined || s[0] === statusRegion) break;
          const [, va, end] = s;
          const a = sys.mmap(
            va,
            end - va,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            -1,
            0,
          );
          if (a !== va) fail(`mmap fixed ${a}`);
          unmapModel(model, va, end);
          model.regions.push({
            start: va,
            pages: (end - va) / PAGE,
            prot: new Array((end - va) / PAGE).fill(PROT_READ | PROT_WRITE),
            shared: null,
          });
          break;
        }
        case 'munmap': {
          const s = span(o.target, o.page, o.pages);
          if (s === undefined || s[0] === statusRegion) break;
          const r = sys.munmap(s[1], s[2] - s[1]);
          if (r !== 0) fail(`munmap ${r}`);
          unmapModel(model, s[1], s[2]);
          break;
        }
        case 'mremap': {
          // A whole private region, moved or resized: its bytes must follow it. It fails when
          // mprotect left it in several VMAs (EFAULT) or no room is found (ENOMEM).
          const p = pick(o.target, 0);
          if (p === undefined || p[0] === statusRegion || p[0].shared !== null) break;
          const r = p[0];
          const pages = o.keep ? r.pages : o.pages;
          const flags = o.keep ? MREMAP_MAYMOVE | MREMAP_DONTUNMAP : MREMAP_MAYMOVE;
          const b = sys.mremap(r.start, r.pages * PAGE, pages * PAGE, flags, 0);
          if (b < 0) {
            if (b !== -EFAULT && b !== -ENOMEM) fail(`mremap ${b}`);
            break;
          }
          if (b !== r.start) mremapMoves++;
          if (o.keep) mremapKeeps++;
          const cells: Array<[number, Cell]> = [];
          for (let i = 0; i < Math.min(r.pages, pages); i++) {
            const old = r.start + i * PAGE;
            const c = model.priv.get(old);
            if (c !== undefined) cells.push([b + i * PAGE, { ...c, off: c.off ?? offsetIn(old) }]);
          }
          const prot = r.prot[0]!;
          // DONTUNMAP: the old range stays, reading zeros; else it is gone.
          if (o.keep) for (let i = 0; i < r.pages; i++) model.priv.delete(r.start + i * PAGE);
          else unmapModel(model, r.start, r.start + r.pages * PAGE);
          for (const [va, c] of cells) model.priv.set(va, c);
          model.regions.push({ start: b, pages, prot: new Array(pages).fill(prot), shared: null });
          break;
        }
        case 'mprotect': {
          const s = span(o.target, o.page, o.pages);
          if (s === undefined || s[0] === statusRegion) break;
          const [r, va, end] = s;
          const prot = PROTS[o.prot]!;
          const res = sys.mprotect(va, end - va, prot);
          if (res !== 0) fail(`mprotect ${res}`);
          for (let p = (va - r.start) / PAGE; p < (end - r.start) / PAGE; p++) r.prot[p] = prot;
          break;
        }
        case 'madvise': {
          const s = span(o.target, o.page, o.pages);
          if (s === undefined || s[0] === statusRegion) break;
          const [r, va, end] = s;
          const res = sys.madvise(va, end - va, o.free ? MADV_FREE : MADV_DONTNEED);
          if (o.free && r.shared !== null) {
            if (res !== -22) fail(`MADV_FREE on shared memory: ${res}`);
            break;
          }
          if (res !== 0) fail(`madvise ${res}`);
          if (r.shared !== null) break; // shared memory keeps its contents
          for (let x = va; x < end; x += PAGE) {
            if (!o.free) model.priv.delete(x);
            else {
              const c = model.priv.get(x);
              if (c !== undefined) c.lazy = true;
            }
          }
          break;
        }
        case 'brk': {
          const want = Math.max(model.heapStart, model.brk + o.delta * PAGE);
          const got = sys.brk(want);
          if (got !== want) fail(`brk ${got}, expected ${want}`);
          for (let x = pageUp(want); x < pageUp(model.brk); x += PAGE) model.priv.delete(x);
          model.brk = want;
          break;
        }
        case 'heap': {
          const pages = (pageUp(model.brk) - model.heapStart) / PAGE;
          if (pages === 0) break;
          const va = model.heapStart + (o.page % pages) * PAGE;
          const before = cpu.load32(va + offsetIn(va));
          const want = model.priv.get(va)?.v ?? 0;
          if (before !== want) fail(`heap read ${before} at 0x${va.toString(16)}, expected ${want}`);
          cpu.store32(va + offsetIn(va), o.value);
          model.priv.set(va, { v: o.value, lazy: false });
          break;
        }
        case 'write': {
          const p = pick(o.target, o.page);
          if (p === undefined || p[0] === statusRegion) break;
          const [r, va] = p;
          if ((r.prot[(va - r.start) / PAGE]! & PROT_WRITE) === 0) break;
          cpu.store32(va + offsetIn(va), o.value);
          cellOf(r).set(va, { v: o.value, lazy: false });
          break;
        }
        case 'read': {
          const p = pick(o.target, o.page);
          if (p === undefined) break;
          const [r, va] = p;
          if (r.prot[(va - r.start) / PAGE] === PROT_NONE) break;
          check(r, va);
          break;
        }
        case 'fill': {
          const p = pick(o.target, 0);
          if (p === undefined || p[0] === statusRegion) break;
          const r = p[0];
          for (let i = 0; i < r.pages; i++) {
            if ((r.prot[i]! & PROT_WRITE) === 0) continue;
            const va = r.start + i * PAGE;
            cpu.store32(va + offsetIn(va), (o.value + i) >>> 0);
            cellOf(r).set(va, { v: (o.value + i) >>> 0, lazy: false });
          }
          break;
        }
        case 'sweep':
          for (const r of model.regions) {
            for (let i = 0; i < r.pages; i++) if (r.prot[i] !== PROT_NONE) check(r, r.start + i * PAGE);
          }
          break;
        case 'kill': {
          const live = model.children;
          if (live.length === 0) break;
          const child = live[o.target % live.length]!;
          const res = sys.kill(child.pid, o.sig);
          if (res === 0 && o.sig !== 0) child.killedBy = o.sig;
          break;
        }
        case 'sleep':
          yield* sys.nanosleep(o.us * 1000);
          break;
        case 'exit':
          return sys.exit(o.code);
        case 'segv': {
          const none = model.regions.find((r) => r.prot.includes(PROT_NONE));
          const va = none === undefined ? 0x10 : none.start + none.prot.indexOf(PROT_NONE) * PAGE;
          cpu.store8(va, 1);
          fail('survived a deliberate fault');
          break;
        }
        case 'fork': {
          if (depth >= 2) break;
          const childModel = copyModel(model);
          const pid = sys.fork(program(o.ops, childModel, failures, depth + 1));
          if (pid < 0) {
            fail(`fork ${pid}`);
            break;
          }
          const child = { pid, expect: expectedStatus(o.ops), killedBy: 0 };
          if (o.wait) yield* reap(child);
          else model.children.push(child);
          break;
        }
      }
      yield;
    }
    // Everything readable reads what the model says; then wait for the children left.
    for (const r of model.regions) {
      for (let p = 0; p < r.pages; p++) if (r.prot[p] !== PROT_NONE) check(r, r.start + p * PAGE);
      yield;
    }
    while (model.children.length > 0) yield* reap(model.children.shift()!);
    return 0;
  };
}

/** Boot, run the workload a slice at a time with every invariant checked after each slice. */
function runWorkload(scripts: Op[][], options: { checkEverySlice: boolean; format?: string }) {
  const m = bootTestMachine({ memoryMiB: 16, format: options.format ?? 'x86-64' });
  const free0 = settleFreePages(m);
  const failures: string[] = [];
  const tasks = scripts.map((ops) => {
    const heapHolder: Model = { regions: [], priv: new Map(), heapStart: 0, brk: 0, children: [] };
    const main = program(ops, heapHolder, failures, 0);
    return {
      ops,
      task: m.start(function* (ctx) {
        heapHolder.heapStart = ctx.sys.brk(0);
        heapHolder.brk = heapHolder.heapStart;
        return yield* main(ctx);
      }),
    };
  });
  let slices = 0;
  while (m.kernel.state !== 'halted' && m.kernel.state !== 'panic' && slices < 20_000) {
    m.kernel.run({ untilCycles: m.clock.now + 2_000 });
    if (options.checkEverySlice) {
      m.kernel.checkInvariants();
      m.kernel.reclaimer.checkInvariants();
    }
    slices++;
  }
  return { m, free0, failures, tasks };
}

function finish(m: TestMachine): number {
  m.kernel.checkInvariants();
  return settleFreePages(m);
}

describe('random multi-process workloads', () => {
  it('keep every invariant after every step, read back what was written, and give back every page', () => {
    let runs = 0;
    let forks = 0;
    fc.assert(
      fc.property(workloadArb, (scripts) => {
        runs++;
        const { m, free0, failures, tasks } = runWorkload(scripts, { checkEverySlice: true });
        expect(m.kernel.state).toBe('halted');
        expect(failures).toEqual([]);
        for (const { ops, task } of tasks) expect(task.waitStatus).toBe(expectedStatus(ops));
        expect(m.kernel.events.pgscan_kswapd + m.kernel.events.pgscan_direct).toBe(0); // no reclaim here
        expect(m.kernel.liveTasks()).toEqual([]);
        expect(m.kernel.committedAs).toBe(0);
        expect(finish(m)).toBe(free0);
        forks += [...m.kernel.tasks.values()].length - tasks.length - 1;
      }),
      { seed: 20260, numRuns: 40 },
    );
    expect(runs).toBe(40);
    expect(forks).toBeGreaterThan(10); // the generator does reach fork
    expect(mremapMoves).toBeGreaterThan(10); // and mremap moves regions, their bytes with them
    expect(mremapKeeps).toBeGreaterThan(3); // some with MREMAP_DONTUNMAP
  });
});

describe.each(['x86-32', 'sv39', 'x86-64-la57'])('random workloads on %s', (format) => {
  it('keep every invariant and read back what was written', () => {
    fc.assert(
      fc.property(workloadArb, (scripts) => {
        const { m, free0, failures, tasks } = runWorkload(scripts, { checkEverySlice: true, format });
        expect(m.kernel.state).toBe('halted');
        expect(failures).toEqual([]);
        for (const { ops, task } of tasks) expect(task.waitStatus).toBe(expectedStatus(ops));
        expect(finish(m)).toBe(free0);
      }),
      { seed: 7, numRuns: 6 },
    );
  });
});

describe('determinism', () => {
  it('the same workload twice gives identical counters, kernel log, clock and statuses', () => {
    const [scripts] = fc.sample(
      workloadArb.filter((w) => w.length === 3 && w.flat().length > 30),
      { seed: 99, numRuns: 1 },
    );
    const snapshot = () => {
      const { m, failures, tasks } = runWorkload(scripts!, { checkEverySlice: false });
      m.kernel.run(); // to the end
      return JSON.stringify({
        failures,
        clock: m.clock.now,
        events: { ...m.kernel.events },
        log: m.kernel.log,
        statuses: [...m.kernel.tasks.values()].map((t) => [
          t.pid,
          t.comm,
          t.waitStatus,
          t.minFlt,
          t.cpuCycles,
        ]),
        tlb: [m.mmu.dtlb.hits, m.mmu.dtlb.misses, m.mmu.walks],
        free: m.buddy.freePages(),
        exits: tasks.map(({ task }) =>
          WIFEXITED(task.waitStatus) ? WEXITSTATUS(task.waitStatus) : -WTERMSIG(task.waitStatus),
        ),
      });
    };
    const first = snapshot();
    expect(snapshot()).toBe(first);
    expect(JSON.parse(first).events.pgfault).toBeGreaterThan(0);
  });

  it('so does a workload under memory pressure: reclaim, swap I/O and the OOM killer', () => {
    const snapshot = () => {
      const m = bootTestMachine({ memoryMiB: 8, swapMiB: 1, seed: 5 });
      // Four of them: the OOM killer takes one while the others still wander over swapped pages.
      for (let i = 0; i < 4; i++) {
        m.start(function* ({ sys, cpu, seed }) {
          // Each writes all of its 1000 pages (more than memory and swap hold together), then
          // wanders over them.
          const pages = 1000;
          const a = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          for (let i = 0; i < pages; i++) {
            cpu.store8(a + i * PAGE, i);
            if (i % 8 === 0) yield;
          }
          let x = seed;
          for (let step = 0; step < 3000; step++) {
            x = (Math.imul(x, 1103515245) + 12345) >>> 0;
            const va = a + (x % pages) * PAGE;
            if (step % 2 === 0) cpu.store32(va, step);
            else cpu.load32(va);
            if (step % 8 === 0) yield;
          }
          return 0;
        });
      }
      m.runToEnd();
      m.shutdown();
      const e = m.kernel.events;
      return {
        text: JSON.stringify({
          clock: m.clock.now,
          events: { ...e },
          log: m.kernel.log,
          tasks: [...m.kernel.tasks.values()].map((t) => [
            t.pid,
            t.waitStatus,
            t.minFlt,
            t.majFlt,
            t.cpuCycles,
          ]),
        }),
        pressure: e.pswpout > 0 && e.pswpin > 0 && e.pgscan_kswapd + e.pgscan_direct > 0 && e.oom_kill > 0,
      };
    };
    const first = snapshot();
    expect(first.pressure).toBe(true);
    expect(snapshot().text).toBe(first.text);
  });
});
