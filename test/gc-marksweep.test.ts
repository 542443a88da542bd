import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Task } from '../kernel/proc/task.ts';
import { SIGABRT, type UserContext, WIFSIGNALED, WTERMSIG } from '../kernel/proc/uapi.ts';
import { GcAbort, type GcTunables } from '../userland/gc/collector.ts';
import { MarkSweepCollector, type MarkSweepOptions } from '../userland/gc/marksweep.ts';
import { ManagedHeap, type ManagedHeapOptions } from '../userland/gc/runtime.ts';
import {
  ARENA_BYTES,
  CLASS_BYTES,
  CLASS_PAGES,
  CLASS_SLOTS,
  NCLASSES,
  PAGE_BYTES,
  POISON_BYTE,
  SIZE_TO_CLASS,
} from '../userland/gc/spans.ts';
import { Libc } from '../userland/libc/libc.ts';
import {
  applyOp,
  checkHeap,
  GLOBALS,
  type MutatorOp,
  mutatorOps,
  mutatorProgram,
  ShadowModel,
  stampObject,
} from './helpers/gc.ts';
import {
  bootTestMachine,
  settleFreePages,
  type TestMachine,
  type TestMachineOptions,
} from './helpers/kernel.ts';

// fast-check's default size makes mutator programs of a handful of steps; these want hundreds.
fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'large' });

interface HeapSetup {
  machine?: TestMachineOptions;
  heap?: Omit<ManagedHeapOptions, 'collector'>;
  marksweep?: Partial<MarkSweepOptions>;
}

interface HeapRun {
  m: TestMachine;
  t: Task;
  log: string;
}

/**
 * Run `body` as a process with a mark-sweep ManagedHeap, then destroy the heap. A GcAbort
 * ends the process (SIGABRT, as the kernel does with any program error); any other error
 * (a failed expect) is rethrown here.
 */
function onHeap(
  body: (
    heap: ManagedHeap,
    c: MarkSweepCollector,
    m: TestMachine,
    ctx: UserContext,
  ) => Generator<void, void, void> | undefined,
  setup: HeapSetup = {},
): HeapRun {
  const failures: unknown[] = [];
  const m = bootTestMachine({ memoryMiB: 16, ...setup.machine });
  const t = m.start(function* (ctx) {
    let c: MarkSweepCollector | undefined;
    const heap = new ManagedHeap(new Libc(ctx), {
      ...setup.heap,
      collector: (env) => {
        c = new MarkSweepCollector(env, setup.marksweep);
        return c;
      },
    });
    try {
      const g = body(heap, c!, m, ctx);
      if (g !== undefined) yield* g;
    } catch (err) {
      if (err instanceof GcAbort) throw err;
      failures.push(err);
      return 1;
    }
    heap.destroy();
    return 0;
  });
  m.runToEnd();
  if (failures.length > 0) throw failures[0];
  return { m, t, log: m.lastLog() };
}

/** An object of `nptrs` fields and 8 data bytes holding `id`, left on the shadow stack. */
function node(heap: ManagedHeap, model: ShadowModel, nptrs: number): number {
  const obj = heap.alloc(nptrs, 8);
  stampObject(heap, obj, model.alloc(nptrs, 8), 8);
  return obj;
}

/** Link field `field` of model object at stack slot `from` to the one at slot `to` (both heap and model). */
function link(heap: ManagedHeap, model: ShadowModel, from: number, field: number, to: number): void {
  heap.set(heap.slot(from), field, to < 0 ? 0 : heap.slot(to));
  model.objects.get(model.stack[from]!)!.fields[field] = to < 0 ? 0 : model.stack[to]!;
}

function runMutator(
  ops: readonly MutatorOp[],
  tunables: Partial<GcTunables>,
  options: { checkEveryStep: boolean },
): void {
  const failures: unknown[] = [];
  const m = bootTestMachine({ memoryMiB: 16 });
  const t = m.start(
    mutatorProgram(
      ops,
      {
        heap: {
          collector: (env) => new MarkSweepCollector(env, { poison: 'freed' }),
          tunables,
          check: 'full',
        },
        checkEveryStep: options.checkEveryStep,
      },
      failures,
    ),
  );
  m.runToEnd();
  if (failures.length > 0) throw failures[0];
  expect(t.waitStatus).toBe(0);
}

/**
 * Mutator steps the shared helpers lack, which read references out of the heap: push field
 * `field` of the object at stack slot `from`; copy it into field `toField` of the object at
 * slot `to` (x.f = y.g). With them a program can hide a white object behind a black one.
 */
type HeapReadOp =
  | { op: 'load'; from: number; field: number }
  | { op: 'copy'; from: number; field: number; to: number; toField: number };

const heapReadOp: fc.Arbitrary<HeapReadOp> = fc.oneof(
  fc.record({ op: fc.constant('load' as const), from: fc.nat(), field: fc.nat() }),
  fc.record({
    op: fc.constant('copy' as const),
    from: fc.nat(),
    field: fc.nat(),
    to: fc.nat(),
    toField: fc.nat(),
  }),
);

/** Mutator programs with heap reads spliced in. */
const programsWithReads = fc
  .tuple(mutatorOps(), fc.array(fc.tuple(fc.nat(), heapReadOp), { maxLength: 150 }))
  .map(([ops, reads]) => {
    const out: Array<MutatorOp | HeapReadOp> = [...ops];
    for (const [at, read] of reads) out.splice(at % (out.length + 1), 0, read);
    return out;
  });

/** The stack slot and field a heap read names, or undefined when there is none. */
function fieldAt(
  model: ShadowModel,
  from: number,
  field: number,
): { slot: number; field: number } | undefined {
  const depth = model.stack.length;
  if (depth === 0) return undefined;
  const slot = from % depth;
  const id = model.stack[slot]!;
  if (id === 0) return undefined;
  const nptrs = model.objects.get(id)!.nptrs;
  return nptrs === 0 ? undefined : { slot, field: field % nptrs };
}

function applyRead(heap: ManagedHeap, model: ShadowModel, step: HeapReadOp): void {
  const src = fieldAt(model, step.from, step.field);
  if (src === undefined) return;
  const ref = heap.get(heap.slot(src.slot), src.field);
  const id = model.objects.get(model.stack[src.slot]!)!.fields[src.field]!;
  if (step.op === 'load') {
    heap.push(ref);
    model.stack.push(id);
    return;
  }
  const dst = fieldAt(model, step.to, step.toField);
  if (dst === undefined) return;
  heap.set(heap.slot(dst.slot), dst.field, ref);
  model.objects.get(model.stack[dst.slot]!)!.fields[dst.field] = id;
}

/** Run a program with heap reads, checking the heap after every step; the first failure, or undefined. */
function runWithReads(ops: ReadonlyArray<MutatorOp | HeapReadOp>, tunables: Partial<GcTunables>): unknown {
  const failures: unknown[] = [];
  const m = bootTestMachine({ memoryMiB: 16 });
  m.start(function* (ctx) {
    try {
      const heap = new ManagedHeap(new Libc(ctx), {
        globals: GLOBALS,
        collector: (env) => new MarkSweepCollector(env, { poison: 'freed' }),
        tunables,
        check: 'full',
      });
      const model = new ShadowModel(GLOBALS);
      for (const step of ops) {
        if (step.op === 'load' || step.op === 'copy') applyRead(heap, model, step);
        else if (applyOp(heap, model, step)) model.dropUnreachable();
        checkHeap(heap, model, { noGarbage: step.op === 'collect' });
        yield;
      }
      heap.collect('full');
      model.dropUnreachable();
      checkHeap(heap, model, { noGarbage: true });
      heap.destroy();
      return 0;
    } catch (err) {
      failures.push(err);
      return 1;
    }
  });
  m.runToEnd();
  return failures[0];
}

describe('size classes', () => {
  it("are Go's classes without 8 and 24 bytes, and a size maps to the smallest class that holds it", () => {
    expect(NCLASSES).toBe(66);
    expect(CLASS_BYTES[1]).toBe(16);
    expect(CLASS_BYTES[NCLASSES - 1]).toBe(32768);
    for (let c = 1; c < NCLASSES; c++) {
      expect(CLASS_BYTES[c]! % 16).toBe(0);
      if (c > 1) expect(CLASS_BYTES[c]!).toBeGreaterThan(CLASS_BYTES[c - 1]!);
      expect(CLASS_SLOTS[c]!).toBeGreaterThanOrEqual(1);
      expect(CLASS_SLOTS[c]!).toBeLessThanOrEqual(512);
      expect(CLASS_SLOTS[c]! * CLASS_BYTES[c]!).toBeLessThanOrEqual(CLASS_PAGES[c]! * PAGE_BYTES);
      expect(CLASS_PAGES[c]! * PAGE_BYTES - CLASS_SLOTS[c]! * CLASS_BYTES[c]!).toBeLessThan(CLASS_BYTES[c]!);
    }
    for (let bytes = 16; bytes <= 32768; bytes += 16) {
      const c = SIZE_TO_CLASS[bytes >>> 4]!;
      expect(CLASS_BYTES[c]!).toBeGreaterThanOrEqual(bytes);
      if (c > 1) expect(CLASS_BYTES[c - 1]!).toBeLessThan(bytes);
    }
  });
});

describe('marksweep against random mutator programs', () => {
  const pacing = fc.record({
    gogc: fc.constantFrom(0, 25, 100),
    minHeapBytes: fc.constantFrom(0, 4096, 65536),
  });

  it('stop-the-world: reachable objects intact, garbage gone after each full collection, the heap checked', () => {
    fc.assert(
      fc.property(mutatorOps(), pacing, (ops, p) => runMutator(ops, p, { checkEveryStep: false })),
      { numRuns: 150 },
    );
  });

  it('incremental with the barrier, slices of 16 to 256 bytes between the steps, the heap checked after every step', () => {
    fc.assert(
      fc.property(mutatorOps(), pacing, fc.constantFrom(16, 64, 256), (ops, p, slice) =>
        runMutator(ops, { ...p, incremental: true, markSliceBytes: slice }, { checkEveryStep: true }),
      ),
      { numRuns: 150 },
    );
  });

  it('incremental, with reads from the heap: the barrier keeps every reachable object', () => {
    fc.assert(
      fc.property(programsWithReads, (ops) => {
        const failure = runWithReads(ops, {
          gogc: 0,
          minHeapBytes: 0,
          incremental: true,
          markSliceBytes: 16,
        });
        if (failure !== undefined) throw failure;
      }),
      { numRuns: 60 },
    );
  });
});

/**
 * One step of a mutator working on a tree of 3-field nodes under global 0 while a cycle is in
 * progress; nodes are named by paths of field numbers from the root (a path stops at a null).
 */
type CycleStep =
  | { op: 'move'; src: number[]; srcField: number; dst: number[]; dstField: number }
  | { op: 'unlink'; path: number[]; field: number }
  | { op: 'load'; path: number[] }
  | { op: 'pop' }
  | { op: 'slice'; budgetBytes: number };

const path = fc.array(fc.nat(2), { maxLength: 2 });
const cycleStep: fc.Arbitrary<CycleStep> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('move' as const),
      src: path,
      srcField: fc.nat(2),
      dst: path,
      dstField: fc.nat(2),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unlink' as const), path, field: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('load' as const), path }) },
  { weight: 1, arbitrary: fc.constant({ op: 'pop' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('slice' as const), budgetBytes: fc.integer({ min: 1, max: 40 }) }),
  },
);

/** A complete tree of 4 to 40 nodes (node i hangs from node (i - 1) / 3) and what the mutator does to it. */
const cycleProgram = fc.record({
  nodes: fc.integer({ min: 4, max: 40 }),
  steps: fc.array(cycleStep, { maxLength: 60 }),
});

/** The node at `path` from global 0, in the heap and in the model. */
function walk(heap: ManagedHeap, model: ShadowModel, steps: number[]): { addr: number; id: number } {
  let addr = heap.getGlobal(0);
  let id = model.globals[0]!;
  for (const f of steps) {
    const next = model.objects.get(id)!.fields[f]!;
    if (next === 0) break;
    addr = heap.get(addr, f);
    id = next;
  }
  return { addr, id };
}

function applyCycleStep(heap: ManagedHeap, model: ShadowModel, c: MarkSweepCollector, step: CycleStep): void {
  switch (step.op) {
    case 'slice':
      c.markSlice(step.budgetBytes);
      return;
    case 'load': {
      const at = walk(heap, model, step.path);
      heap.push(at.addr);
      model.stack.push(at.id);
      return;
    }
    case 'pop':
      if (model.stack.length === 0) return;
      heap.pop();
      model.stack.pop();
      return;
    case 'unlink': {
      const at = walk(heap, model, step.path);
      heap.set(at.addr, step.field, 0);
      model.objects.get(at.id)!.fields[step.field] = 0;
      return;
    }
    case 'move': {
      const src = walk(heap, model, step.src);
      const dst = walk(heap, model, step.dst);
      heap.set(dst.addr, step.dstField, heap.get(src.addr, step.srcField));
      model.objects.get(dst.id)!.fields[step.dstField] = model.objects.get(src.id)!.fields[step.srcField]!;
      return;
    }
  }
}

/**
 * Build the tree, start a cycle, run the steps (slices among them), finish the cycle, sweep,
 * and check the heap; the first failure, or undefined.
 */
function runCycleProgram(p: { nodes: number; steps: CycleStep[] }, barrier: boolean): unknown {
  let failure: unknown;
  const m = bootTestMachine({ memoryMiB: 16 });
  m.start(function* (ctx) {
    try {
      let c: MarkSweepCollector | undefined;
      const heap = new ManagedHeap(new Libc(ctx), {
        globals: 1,
        collector: (env) => {
          c = new MarkSweepCollector(env, { poison: 'freed' });
          return c;
        },
        tunables: { incremental: true, gogc: -1, barrier },
        check: 'full',
      });
      const model = new ShadowModel(1);
      for (let i = 0; i < p.nodes; i++) {
        node(heap, model, 3);
        if (i > 0) link(heap, model, Math.floor((i - 1) / 3), (i - 1) % 3, i);
      }
      heap.setGlobal(0, heap.slot(0));
      model.globals[0] = model.stack[0]!;
      heap.pop(model.stack.length);
      model.stack.length = 0;
      c!.startCycle();
      for (const step of p.steps) {
        applyCycleStep(heap, model, c!, step);
        yield;
      }
      for (let more = true; more; ) more = c!.markSlice(64);
      c!.heap.finishSweep('collect');
      checkHeap(heap, model, { noGarbage: false });
      heap.destroy();
      return 0;
    } catch (err) {
      failure = err;
      return 1;
    }
  });
  m.runToEnd();
  return failure;
}

describe('incremental marking against random mutations during a cycle', () => {
  it('with the barrier (and the final root rescan) every reachable object survives the cycle', () => {
    fc.assert(
      fc.property(cycleProgram, (p) => {
        const failure = runCycleProgram(p, true);
        if (failure !== undefined) throw failure;
      }),
      { numRuns: 200 },
    );
  });

  it('the final pause rescans the roots: an object whose only reference moved to the stack survives', () => {
    const seen: Array<string | number> = [];
    onHeap(
      (heap, c) => {
        const g = heap.alloc(1, 8);
        heap.setGlobal(0, g);
        const w = heap.alloc(0, 8);
        heap.store32(w, 0, 77);
        heap.set(g, 0, w);
        heap.pop(2);
        c.startCycle();
        heap.push(heap.get(g, 0));
        heap.set(g, 0, 0);
        seen.push(c.colourOf(w));
        for (let more = true; more; ) more = c.markSlice(64);
        seen.push(c.colourOf(w), c.counters.rootRescans);
        c.heap.finishSweep('collect');
        seen.push(c.isObject(w) ? heap.load32(w, 0) : -1);
        heap.pop();
        return undefined;
      },
      { heap: { tunables: { incremental: true, gogc: -1 } }, marksweep: { poison: 'freed' } },
    );
    expect(seen).toEqual(['white', 'black', 1, 77]);
  });
});

describe('the lost object: incremental marking with and without the write barrier', () => {
  /**
   * G (global 0) -> W, B (global 1). The cycle shades G and B; one slice blackens B (the top of
   * the grey stack). The mutator then moves W into B and removes it from its first place:
   * from G's field, or from a stack slot it was loaded into. Returns what it saw.
   */
  function lostObject(barrier: boolean, from: 'grey object' | 'root slot') {
    const seen = {
      colours: [] as string[],
      barrier: [0, 0],
      checkError: '',
      survived: false,
      collectError: '',
    };
    const run = onHeap(
      (heap, c) => {
        const model = new ShadowModel(2);
        const g = node(heap, model, 1);
        const b = node(heap, model, 1);
        const w = node(heap, model, 0);
        link(heap, model, 0, 0, 2);
        heap.setGlobal(0, g);
        heap.setGlobal(1, b);
        model.globals[0] = model.stack[0]!;
        model.globals[1] = model.stack[1]!;
        heap.pop(3);
        model.stack.length = 0;
        const colours = () => seen.colours.push([g, b, w].map((o) => c.colourOf(o)).join(' '));
        c.startCycle();
        colours();
        c.markSlice(1);
        colours();
        if (from === 'root slot') {
          heap.push(heap.get(g, 0));
          model.stack.push(model.objects.get(model.globals[0]!)!.fields[0]!);
          heap.set(g, 0, 0);
          model.objects.get(model.globals[0]!)!.fields[0] = 0;
        }
        heap.set(b, 0, w);
        model.objects.get(model.globals[1]!)!.fields[0] = 3;
        colours();
        if (from === 'grey object') {
          heap.set(g, 0, 0);
          model.objects.get(model.globals[0]!)!.fields[0] = 0;
        } else {
          heap.pop();
          model.stack.pop();
        }
        for (let more = true; more; ) more = c.markSlice(64);
        colours();
        seen.barrier = [heap.report().barrierStores, heap.report().barrierHits];
        c.heap.finishSweep('collect');
        colours();
        seen.survived = heap.collector.isObject(w) && heap.cpu.load32(heap.data(w)) === 3;
        try {
          checkHeap(heap, model, { noGarbage: false });
        } catch (err) {
          seen.checkError = String(err);
        }
        if (!seen.survived) {
          expect(heap.cpu.load32(w + 8)).toBe(POISON_BYTE * 0x01010101);
          try {
            heap.collect();
          } catch (err) {
            seen.collectError = String(err);
            heap.setGlobal(1, 0);
          }
        }
        return undefined;
      },
      {
        heap: { globals: 2, tunables: { incremental: true, barrier, gogc: -1 } },
        marksweep: { poison: 'freed' },
      },
    );
    expect(run.t.waitStatus).toBe(0);
    return seen;
  }

  for (const from of ['grey object', 'root slot'] as const) {
    it(`without the barrier, W moved from a ${from} into black B is freed while B still points at it`, () => {
      const seen = lostObject(false, from);
      expect(seen.colours).toEqual([
        'grey grey white',
        'grey black white',
        'grey black white',
        'black black white',
        'white white free',
      ]);
      expect(seen.barrier).toEqual([0, 0]);
      expect(seen.survived).toBe(false);
      expect(seen.checkError).toMatch(
        /object 2 field 0 points at 0x[0-9a-f]+, not an allocated object \(object 3\)/,
      );
      expect(seen.collectError).toMatch(
        /GcAbort: marksweep: field 0 of the object at 0x[0-9a-f]+ holds 0x[0-9a-f]+, not an object/,
      );
    });

    it(`with the barrier, the same store shades W (moved from a ${from}) and the cycle keeps it`, () => {
      const seen = lostObject(true, from);
      expect(seen.colours.slice(2)).toEqual(['grey black grey', 'black black black', 'white white white']);
      expect(seen.barrier).toEqual([2, 1]);
      expect(seen.survived).toBe(true);
      expect(seen.checkError).toBe('');
    });
  }
});

/** Prepend `n` objects of one field and 8 data bytes (32-byte slots) to the list in global `g`. */
function growList(heap: ManagedHeap, n: number, g = 0, dataBytes = 8): void {
  for (let i = 0; i < n; i++) {
    const o = heap.alloc(1, dataBytes);
    heap.set(o, 0, heap.getGlobal(g));
    heap.store32(o, 0, i);
    heap.setGlobal(g, o);
    heap.pop();
  }
}

/** Allocate `n` garbage objects of `dataBytes`, calling `each` after every one. */
function garbage(heap: ManagedHeap, n: number, dataBytes: number, each?: (k: number) => void): void {
  for (let k = 1; k <= n; k++) {
    heap.alloc(0, dataBytes);
    heap.pop();
    each?.(k);
  }
}

describe('the pacer', () => {
  for (const [gogc, minHeapBytes] of [
    [0, 0],
    [50, 0],
    [100, 0],
    [300, 0],
    [100, 1 << 20],
  ] as const) {
    it(`after a collection the goal is live x (1 + ${gogc}/100), at least minHeapBytes ${minHeapBytes}`, () => {
      let seen: number[] = [];
      onHeap(
        (heap, c) => {
          growList(heap, 1000);
          heap.collect();
          seen = [heap.report().liveBytes, heap.report().nextGcBytes, c.goalBytes];
          return undefined;
        },
        { heap: { tunables: { gogc, minHeapBytes } } },
      );
      const goal = Math.max(minHeapBytes, 32000 + Math.floor((32000 * gogc) / 100));
      expect(seen).toEqual([32000, goal, goal]);
    });
  }

  it('a cycle starts at the first allocation that finds heapLive at the goal, and again a goal later', () => {
    const starts: number[] = [];
    let after: number[] = [];
    onHeap(
      (heap) => {
        growList(heap, 1000);
        heap.collect();
        const before = heap.report().majorCollections;
        garbage(heap, 1600, 8, (k) => {
          if (heap.report().majorCollections > before + starts.length) starts.push(k);
        });
        after = [heap.report().liveBytes, heap.report().nextGcBytes];
        return undefined;
      },
      { heap: { tunables: { gogc: 50, minHeapBytes: 0 } } },
    );
    // live 32000, goal 48000: the 501st garbage object finds heapLive = 32000 + 500 * 32.
    expect(starts).toEqual([501, 1001, 1501]);
    expect(after).toEqual([32000, 48000]);
  });

  it('GOGC=off never collects by itself while the heap can grow', () => {
    let seen: number[] = [];
    onHeap(
      (heap) => {
        garbage(heap, 20000, 240);
        seen = [heap.report().majorCollections, heap.report().nextGcBytes, heap.report().heapBytes];
        return undefined;
      },
      { heap: { tunables: { gogc: -1 } } },
    );
    expect(seen[0]).toBe(0);
    expect(seen[1]).toBe(0);
    expect(seen[2]).toBeGreaterThan(20000 * 256);
  });

  it('GOGC=off collects when the heap cannot grow (maxHeapBytes), and the heap stays within it', () => {
    const limit = 3 << 20;
    let peak = 0;
    let firstAt = -1;
    let heapBeforeFirst = 0;
    let seen: number[] = [];
    onHeap(
      (heap, c) => {
        let last = heap.report().heapBytes;
        garbage(heap, 40000, 240, (k) => {
          const r = heap.report();
          peak = Math.max(peak, r.heapBytes);
          if (firstAt < 0 && r.majorCollections > 0) {
            firstAt = k;
            heapBeforeFirst = last;
          }
          last = r.heapBytes;
        });
        seen = [heap.report().majorCollections, c.counters.memoryCollections];
        return undefined;
      },
      { heap: { tunables: { gogc: -1, maxHeapBytes: limit } } },
    );
    expect(seen[0]).toBeGreaterThan(1);
    expect(seen[1]).toBe(seen[0]);
    expect(peak).toBeLessThanOrEqual(limit);
    expect(firstAt).toBeGreaterThan(5000);
    expect(heapBeforeFirst + ARENA_BYTES).toBeGreaterThan(limit);
  });

  it('incremental: the cycle starts at the goal, marks in slices between allocations and ends counted once', () => {
    let seen: Record<string, number | string> = {};
    onHeap(
      (heap, c) => {
        growList(heap, 2000);
        heap.collect();
        const base = { ...heap.report() };
        const slices0 = c.counters.slices;
        let started = -1;
        let ended = -1;
        garbage(heap, 3000, 8, (k) => {
          if (started < 0 && c.phase() === 'mark') started = k;
          if (started > 0 && ended < 0 && c.phase() !== 'mark') ended = k;
        });
        const r = heap.report();
        seen = {
          started,
          ended,
          slices: c.counters.slices - slices0,
          collections: r.majorCollections - base.majorCollections,
          live: r.liveBytes,
          marked: r.bytesMarked - base.bytesMarked,
          markNs: r.markNs - base.markNs,
        };
        return undefined;
      },
      { heap: { tunables: { gogc: 100, minHeapBytes: 0, incremental: true, markSliceBytes: 512 } } },
    );
    // live 64000, goal 128000: the 2001st garbage object starts the cycle.
    expect(seen.started).toBe(2001);
    expect(seen.ended).toBeGreaterThan(2001);
    expect(seen.slices).toBeGreaterThan(10);
    expect(seen.collections).toBe(1);
    // What was allocated during the cycle was black: it counts as live until the next one.
    expect(seen.live).toBe(64000 + 32 * ((seen.ended as number) - 2001));
    expect(seen.marked).toBe(64000);
    expect(seen.markNs).toBeGreaterThan(0);
  });

  it('incremental pauses are shorter than stop-the-world ones over the same program', () => {
    const maxPause = (incremental: boolean): number => {
      let pause = 0;
      onHeap(
        (heap) => {
          growList(heap, 3000);
          garbage(heap, 6000, 8);
          pause = heap.report().pauseMaxNs;
          return undefined;
        },
        { heap: { tunables: { gogc: 100, minHeapBytes: 0, incremental, markSliceBytes: 1024 } } },
      );
      return pause;
    };
    const stw = maxPause(false);
    const inc = maxPause(true);
    expect(stw).toBeGreaterThan(0);
    expect(inc).toBeGreaterThan(0);
    expect(inc * 4).toBeLessThan(stw);
  });
});

describe('lazy sweeping', () => {
  it('after a cycle the spans are swept one at a time, as allocation needs them', () => {
    const seen: Record<string, number | string> = {};
    onHeap(
      (heap, c) => {
        const cn = c.heap.counters;
        garbage(heap, 8192, 8);
        seen.before = heap.report().majorCollections;
        garbage(heap, 1, 8);
        seen.phase = c.phase();
        seen.spans = c.heap.spans;
        seen.unswept = c.heap.unsweptSpans;
        seen.byAllocation = cn.sweptByAllocation;
        seen.byCredit = cn.sweptByCredit;
        garbage(heap, 10 * 256, 8);
        seen.unsweptLater = c.heap.unsweptSpans;
        seen.byAllocationLater = cn.sweptByAllocation;
        garbage(heap, 30 * 256, 8);
        seen.cycles = c.counters.cycles;
        seen.allSwept = cn.sweptByAllocation + cn.sweptByCredit + cn.sweptAtCycleStart;
        return undefined;
      },
      { heap: { tunables: { gogc: 100, minHeapBytes: 256 << 10 } } },
    );
    // 8192 objects of 32 bytes fill 32 spans and reach the 256 KiB goal: the next allocation collects.
    expect(seen.before).toBe(0);
    expect(seen.phase).toBe('sweep');
    expect(seen.spans).toBe(32);
    expect(seen.unswept).toBe(31);
    expect(seen.byAllocation).toBe(1);
    expect(seen.byCredit).toBe(0);
    expect(seen.unsweptLater).toBe(21);
    expect(seen.byAllocationLater).toBe(11);
    expect(seen.cycles).toBe(2);
    expect(seen.allSwept).toBeGreaterThanOrEqual(32);
  });

  it('the page heap sweeps spans to free pages before it maps another arena (Go reclaim)', () => {
    let seen: number[] = [];
    onHeap(
      (heap, c) => {
        garbage(heap, 32768, 8);
        garbage(heap, 1, 8);
        const arenas = c.heap.counters.arenasMapped;
        heap.alloc(0, 40);
        heap.pop();
        seen = [
          arenas,
          c.heap.counters.arenasMapped,
          c.heap.counters.sweptByReclaim,
          c.heap.counters.spansFreed,
        ];
        return undefined;
      },
      { heap: { tunables: { gogc: 100, minHeapBytes: 1 << 20 } } },
    );
    // 32768 32-byte objects fill one arena's 128 pages; the 48-byte class needs a page.
    expect(seen[0]).toBe(1);
    expect(seen[1]).toBe(1);
    expect(seen[2]).toBeGreaterThanOrEqual(1);
    expect(seen[3]).toBeGreaterThanOrEqual(1);
  });

  it('collect sweeps what the last cycle left, marks, and sweeps again before it returns', () => {
    let seen: Array<number | string> = [];
    onHeap(
      (heap, c) => {
        garbage(heap, 8193, 8);
        const unswept = c.heap.unsweptSpans;
        heap.collect();
        seen = [
          unswept,
          c.heap.unsweptSpans,
          c.phase(),
          c.heap.counters.sweptAtCycleStart,
          c.heap.counters.sweptByCollect,
        ];
        return undefined;
      },
      { heap: { tunables: { gogc: 100, minHeapBytes: 256 << 10 } } },
    );
    // The 31 spans the last cycle left are swept before collect marks; then what it leaves.
    expect(seen.slice(0, 4)).toEqual([31, 0, 'idle', 31]);
    expect(seen[4]).toBeGreaterThanOrEqual(1);
  });
});

describe('returning memory', () => {
  const rss = (m: TestMachine): number => m.kernel.current!.mm!.rss();

  it('wholly free arenas are unmapped: heapBytes and RSS drop', () => {
    let seen: number[] = [];
    onHeap(
      (heap, c, m) => {
        growList(heap, 6000, 0, 1000);
        const before = [heap.report().heapBytes, rss(m)];
        heap.setGlobal(0, 0);
        heap.collect();
        seen = [...before, heap.report().heapBytes, rss(m), c.heap.counters.arenasUnmapped];
        return undefined;
      },
      { machine: { memoryMiB: 32 }, heap: { tunables: { minHeapBytes: 256 << 10 } } },
    );
    const [heapBefore, rssBefore, heapAfter, rssAfter, unmapped] = seen as [
      number,
      number,
      number,
      number,
      number,
    ];
    expect(heapBefore).toBeGreaterThan(6000 * 1024);
    expect(heapAfter).toBeLessThan(128 << 10);
    expect(rssAfter).toBeLessThan(rssBefore - (5 << 20) / 4096);
    expect(unmapped).toBeGreaterThanOrEqual(6);
  });

  it('free pages of arenas still in use go back with MADV_DONTNEED, and come back zeroed', () => {
    let seen: number[] = [];
    let intact = true;
    let zeroed = true;
    onHeap(
      (heap, c, m) => {
        for (let i = 0; i < 6000; i++) {
          const o = heap.alloc(1, 1000);
          heap.store32(o, 996, i);
          const g = i % 16 === 0 ? 1 : 0;
          heap.set(o, 0, heap.getGlobal(g));
          heap.setGlobal(g, o);
          heap.pop();
        }
        const before = [heap.report().heapBytes, rss(m)];
        heap.setGlobal(0, 0);
        heap.collect();
        seen = [
          ...before,
          heap.report().heapBytes,
          rss(m),
          c.heap.counters.arenasUnmapped,
          c.heap.counters.pagesReleased,
        ];
        for (let o = heap.getGlobal(1), i = 5984; o !== 0; o = heap.get(o, 0), i -= 16)
          if (heap.load32(o, 996) !== i) intact = false;
        for (let i = 0; i < 3000; i++) {
          const o = heap.alloc(0, 1000);
          for (let k = 0; k < 1000; k += 100) if (heap.load32(o, k) !== 0) zeroed = false;
          heap.store32(o, 0, 0xffffffff);
          heap.pop();
        }
        return undefined;
      },
      { machine: { memoryMiB: 32 }, heap: { tunables: { minHeapBytes: 256 << 10 } } },
    );
    const [heapBefore, rssBefore, heapAfter, rssAfter, unmapped, released] = seen as number[];
    expect(unmapped).toBe(0);
    expect(heapAfter).toBe(heapBefore);
    expect(released).toBeGreaterThan(300);
    expect(rssAfter!).toBeLessThan(rssBefore! - (2 << 20) / 4096);
    expect(intact).toBe(true);
    expect(zeroed).toBe(true);
  });

  it('releaseMemory gives back every free page (Go debug.FreeOSMemory)', () => {
    let seen: number[] = [];
    onHeap(
      (heap, c) => {
        growList(heap, 2000, 0, 1000);
        growList(heap, 100, 1, 1000);
        heap.setGlobal(0, 0);
        heap.collect();
        const retained = c.heap.retainedBytes();
        c.releaseMemory();
        seen = [retained, c.heap.retainedBytes()];
        return undefined;
      },
      { heap: { tunables: { minHeapBytes: 4 << 20 } } },
    );
    expect(seen[0]).toBeGreaterThan(2 << 20);
    expect(seen[1]).toBeLessThanOrEqual(100 * PAGE_BYTES);
  });
});

describe('large objects', () => {
  it('each has a span of its own, zeroed; survives while rooted; its arena goes back when it dies', () => {
    const sizes = [40 << 10, 300 << 10, 1536 << 10];
    const seen: Record<string, unknown> = {};
    onHeap(
      (heap, c) => {
        const start = heap.report().heapBytes;
        const objs = sizes.map((bytes, g) => {
          const o = heap.alloc(1, bytes);
          heap.setGlobal(g, o);
          heap.pop();
          return o;
        });
        seen.zero = objs.every((o, i) => [0, 4096, sizes[i]! - 4].every((k) => heap.load32(o, k) === 0));
        objs.forEach((o, i) => {
          heap.store32(o, 0, i + 1);
          heap.store32(o, sizes[i]! - 4, i + 100);
        });
        seen.objects = objs.every((o) => c.isObject(o));
        seen.interior = objs.some((o) => c.isObject(o + 16) || c.isObject(o + PAGE_BYTES));
        const listed: number[] = [];
        c.forEachObject((o) => listed.push(o));
        seen.listed = listed;
        seen.sorted = [...objs].sort((a, b) => a - b);
        heap.collect();
        seen.intact = objs.every(
          (o, i) => heap.load32(o, 0) === i + 1 && heap.load32(o, sizes[i]! - 4) === i + 100,
        );
        seen.grown = heap.report().heapBytes - start;
        for (let g = 0; g < 3; g++) heap.setGlobal(g, 0);
        heap.collect();
        seen.freed = objs.every((o) => !c.isObject(o));
        seen.shrunk = heap.report().heapBytes - start;
        seen.unmapped = c.heap.counters.arenasUnmapped;
        return undefined;
      },
      { heap: { tunables: { minHeapBytes: 0 } } },
    );
    expect(seen.zero).toBe(true);
    expect(seen.objects).toBe(true);
    expect(seen.interior).toBe(false);
    expect(seen.listed).toEqual(seen.sorted);
    expect(seen.intact).toBe(true);
    expect(seen.grown).toBeGreaterThan(3 << 20);
    expect(seen.freed).toBe(true);
    // All but the grey stack's bottom block (16 KiB), kept between cycles.
    expect(seen.shrunk).toBe(16384);
    expect(seen.unmapped).toBeGreaterThanOrEqual(2);
  });

  it('a freed large object is poisoned, and the next one in its pages starts zeroed', () => {
    const seen: number[] = [];
    onHeap(
      (heap) => {
        const a = heap.alloc(0, 50000);
        for (let k = 0; k < 50000; k += 1000) heap.store32(a, k, 0xaaaaaaaa);
        heap.pop();
        heap.collect();
        seen.push(heap.cpu.load32(a + 4096));
        const b = heap.alloc(0, 50000);
        seen.push(b === a ? 1 : 0);
        let nonZero = 0;
        for (let k = 0; k < 50000; k += 1000) if (heap.load32(b, k) !== 0) nonZero++;
        seen.push(nonZero);
        heap.pop();
        return undefined;
      },
      { marksweep: { poison: 'freed' } },
    );
    expect(seen).toEqual([POISON_BYTE * 0x01010101, 1, 0]);
  });
});

describe('objects', () => {
  it('isObject: allocated slot starts only; forEachObject: every allocated object, in address order', () => {
    const seen: Record<string, unknown> = {};
    onHeap((heap, c) => {
      const objs: number[] = [];
      for (let i = 0; i < 300; i++) objs.push(heap.alloc(i % 5, 8 + ((i * 37) % 700)));
      const all = new Set(objs);
      seen.all = objs.every((o) => c.isObject(o));
      seen.inside = objs.some((o) => c.isObject(o + 8) || (c.isObject(o + 16) && !all.has(o + 16)));
      seen.strangers = [0, -16, 8, 2 ** 60, Number.NaN, 1.5, heap.roots.base].map((a) => c.isObject(a));
      const listed: number[] = [];
      c.forEachObject((o) => listed.push(o));
      seen.listed = listed;
      seen.sorted = [...objs].sort((a, b) => a - b);
      for (let i = 299; i >= 0; i--) {
        if (i % 3 !== 0) heap.setSlot(i, 0);
      }
      heap.collect();
      const kept = objs.filter((_, i) => i % 3 === 0);
      const after: number[] = [];
      c.forEachObject((o) => after.push(o));
      seen.after = after;
      seen.kept = kept.sort((a, b) => a - b);
      seen.dead = objs.filter((_, i) => i % 3 !== 0).some((o) => c.isObject(o));
      heap.pop(300);
      return undefined;
    }, {});
    expect(seen.all).toBe(true);
    expect(seen.inside).toBe(false);
    expect(seen.strangers).toEqual([false, false, false, false, false, false, false]);
    expect(seen.listed).toEqual(seen.sorted);
    expect(seen.after).toEqual(seen.kept);
    expect(seen.dead).toBe(false);
  });

  it('a freed slot is poisoned when swept, and zeroed when it is handed out again', () => {
    const seen: number[] = [];
    onHeap(
      (heap, c) => {
        const a = heap.alloc(2, 24);
        heap.store32(a, 0, 0x12345678);
        heap.pop();
        heap.collect();
        seen.push(c.isObject(a) ? 1 : 0, heap.cpu.load32(a), heap.cpu.load32(a + 40));
        let b = 0;
        for (let i = 0; i < 600 && b !== a; i++) {
          b = heap.alloc(2, 24);
          if (b !== a) heap.setGlobal(i % 4, b);
          heap.pop();
        }
        seen.push(
          b === a ? 1 : 0,
          heap.fields(a),
          heap.dataBytes(a),
          heap.get(a, 0),
          heap.get(a, 1),
          heap.load32(a, 0),
        );
        return undefined;
      },
      { marksweep: { poison: 'freed' } },
    );
    const poison = POISON_BYTE * 0x01010101;
    expect(seen).toEqual([0, poison, poison, 1, 2, 24, 0, 0, 0]);
  });
  for (const env of [{}, { VMLAB_GC_POISON: '1' }] as Array<Record<string, string>>) {
    it(`VMLAB_GC_POISON=1 in the environment turns the poison on (${JSON.stringify(env)})`, () => {
      const seen: number[] = [];
      const m = bootTestMachine({ memoryMiB: 16 });
      const path = m.register(function* (ctx) {
        const heap = new ManagedHeap(new Libc(ctx), { collector: (e) => new MarkSweepCollector(e) });
        const a = heap.alloc(0, 8);
        heap.store32(a, 0, 0x12345678);
        heap.pop();
        heap.collect();
        seen.push(heap.collector.isObject(a) ? 1 : 0, heap.cpu.load32(a + 16));
        heap.destroy();
        yield;
        return 0;
      });
      const t = m.kernel.spawn(path, [path], { env });
      m.runToEnd();
      expect(typeof t === 'number' ? t : t.waitStatus).toBe(0);
      expect(seen).toEqual([0, 'VMLAB_GC_POISON' in env ? POISON_BYTE * 0x01010101 : 0x12345678]);
    });
  }
});

describe('the grey stack', () => {
  /** A complete 4-ary tree of depth 4 (341 nodes) under global 0, in the model too. */
  function tree(heap: ManagedHeap, model: ShadowModel): void {
    const build = (depth: number): void => {
      node(heap, model, 4);
      if (depth > 0)
        for (let f = 0; f < 4; f++) {
          build(depth - 1);
          link(heap, model, model.stack.length - 2, f, model.stack.length - 1);
          heap.pop();
          model.stack.pop();
        }
    };
    build(4);
    heap.setGlobal(0, heap.top());
    model.globals[0] = model.stack.at(-1)!;
    heap.pop();
    model.stack.pop();
  }

  for (const incremental of [false, true]) {
    it(`overflows into a rescan of the marked objects when it cannot grow${incremental ? ' (incremental)' : ''}`, () => {
      const seen: number[] = [];
      onHeap(
        (heap, c) => {
          const model = new ShadowModel(GLOBALS);
          tree(heap, model);
          if (incremental) {
            c.startCycle();
            for (let more = true; more; ) more = c.markSlice(200);
          }
          heap.collect();
          checkHeap(heap, model, { noGarbage: true });
          seen.push(c.greyOverflows(), c.counters.overflowRescans, heap.report().liveBytes);
          return undefined;
        },
        { heap: { globals: GLOBALS }, marksweep: { greyBlockBytes: 64, maxGreyBlocks: 1 } },
      );
      expect(seen[0]).toBeGreaterThan(0);
      expect(seen[1]).toBeGreaterThan(0);
      expect(seen[2]).toBe(341 * 64);
    });
  }

  it('grows by mapping blocks and gives them back as it empties', () => {
    const seen: number[] = [];
    onHeap(
      (heap) => {
        const model = new ShadowModel(GLOBALS);
        tree(heap, model);
        const before = heap.report().heapBytes;
        heap.collect();
        checkHeap(heap, model, { noGarbage: true });
        seen.push(heap.report().heapBytes - before);
        return undefined;
      },
      { heap: { globals: GLOBALS }, marksweep: { greyBlockBytes: 64 } },
    );
    // The bottom block stays: one machine page for a 64-byte block.
    expect(seen[0]).toBe(4096);
  });
});

describe('misuse and corruption end the process with SIGABRT', () => {
  const aborted = (run: HeapRun, message: RegExp): void => {
    expect(WIFSIGNALED(run.t.waitStatus)).toBe(true);
    expect(WTERMSIG(run.t.waitStatus)).toBe(SIGABRT);
    expect(run.log).toMatch(message);
  };

  it('a field index out of range', () => {
    const run = onHeap((heap) => {
      const o = heap.alloc(2, 8);
      heap.get(o, 2);
      return undefined;
    });
    aborted(run, /program error: get: field 2 out of range \(the object at 0x[0-9a-f]+ has 2\)/);
  });

  it("a reference that is not an object, with check 'full'", () => {
    const run = onHeap(
      (heap) => {
        const a = heap.alloc(1, 8);
        const b = heap.alloc(1, 40);
        heap.set(a, 0, b + 16);
        return undefined;
      },
      { heap: { check: 'full' } },
    );
    aborted(run, /program error: set: 0x[0-9a-f]+ is not an object of the marksweep heap/);
  });

  it('a field overwritten with a stray address, found by marking', () => {
    const run = onHeap((heap) => {
      const a = heap.alloc(1, 8);
      heap.cpu.store64(a + 16, a + 48);
      heap.collect();
      return undefined;
    });
    aborted(
      run,
      /program error: marksweep: field 0 of the object at 0x[0-9a-f]+ holds 0x[0-9a-f]+, not an object/,
    );
  });

  it('a header whose fields run past its slot', () => {
    const run = onHeap((heap) => {
      heap.alloc(1, 8);
      heap.cpu.store16(heap.top(), 500);
      heap.collect();
      return undefined;
    });
    aborted(
      run,
      /program error: marksweep: the object at 0x[0-9a-f]+ has a corrupt header \(500 fields, 8 data bytes in a 32-byte slot\)/,
    );
  });

  it('a heap that cannot grow even after a full collection: out of memory', () => {
    const run = onHeap(
      (heap) => {
        for (;;) growList(heap, 1, 0, 1000);
      },
      { heap: { tunables: { maxHeapBytes: 2 << 20 } } },
    );
    aborted(
      run,
      /program error: out of memory: marksweep cannot allocate an object of 1 fields and 1000 data bytes/,
    );
    // The last report the kernel got: the full collection tried before giving up, within the limit.
    expect(run.t.gc!.majorCollections).toBe(1);
    expect(run.t.gc!.heapBytes).toBeLessThanOrEqual(2 << 20);
  });

  it('a root left pointing at a freed object', () => {
    const run = onHeap((heap) => {
      const a = heap.alloc(1, 8);
      heap.pop();
      heap.collect();
      heap.setGlobal(0, a);
      heap.collect();
      return undefined;
    });
    aborted(run, /program error: marksweep: root slot 0 holds 0x[0-9a-f]+, not an object/);
  });
});

describe('determinism and leaks', () => {
  it('the same program twice gives the same statistics, pauses included', () => {
    const ops = fc.sample(mutatorOps(), { numRuns: 1, seed: 11 })[0]!;
    const reports = [false, true].flatMap((incremental) =>
      [0, 1].map(() => {
        const failures: unknown[] = [];
        const m = bootTestMachine({ memoryMiB: 16 });
        const t = m.start(
          mutatorProgram(
            ops,
            {
              heap: {
                collector: (env) => new MarkSweepCollector(env),
                tunables: { incremental, markSliceBytes: 64, minHeapBytes: 0, gogc: 50 },
              },
            },
            failures,
          ),
        );
        m.runToEnd();
        expect(failures).toEqual([]);
        return { ...t.gc!, pauses: [...t.gcPausesNs] };
      }),
    );
    expect(ops.length).toBeGreaterThan(50);
    expect(reports[0]).toEqual(reports[1]);
    expect(reports[2]).toEqual(reports[3]);
    expect(reports[2]!.majorCollections).toBeGreaterThan(0);
    expect(reports[0]!.pauseTotalNs).toBeGreaterThan(0);
  });

  it('destroy unmaps every byte, and the process leaves no frame or commit charge behind', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    const free0 = settleFreePages(m);
    const committed0 = m.kernel.committedAs;
    const inside: number[] = [];
    const t = m.start(function* (ctx) {
      const libc = new Libc(ctx);
      libc.staticData(16);
      const mm = m.kernel.current!.mm!;
      const maps0 = ctx.sys.vmlab_maps().length;
      const charge0 = mm.committedPages;
      const heap = new ManagedHeap(libc, {
        collector: (env) => new MarkSweepCollector(env),
        tunables: { incremental: true, minHeapBytes: 64 << 10 },
      });
      growList(heap, 3000, 0, 100);
      garbage(heap, 20000, 60);
      heap.alloc(0, 2 << 20);
      heap.collect();
      yield;
      inside.push(heap.report().heapBytes, heap.report().majorCollections);
      heap.destroy();
      inside.push(ctx.sys.vmlab_maps().length - maps0, mm.committedPages - charge0);
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(inside[0]).toBeGreaterThan(2 << 20);
    expect(inside[1]).toBeGreaterThan(1);
    expect(inside.slice(2)).toEqual([0, 0]);
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  });
});

describe('collect during an incremental cycle', () => {
  it('finishes the cycle (its final pause), then runs a full one and sweeps', () => {
    const seen: Array<number | string> = [];
    onHeap(
      (heap, c) => {
        growList(heap, 500);
        garbage(heap, 500, 8);
        c.startCycle();
        c.markSlice(100);
        seen.push(c.phase(), heap.report().majorCollections);
        heap.collect();
        seen.push(
          c.phase(),
          heap.report().majorCollections,
          c.counters.rootRescans,
          heap.report().objectsFreed,
        );
        return undefined;
      },
      { heap: { tunables: { incremental: true, gogc: -1 } } },
    );
    expect(seen).toEqual(['mark', 0, 'idle', 2, 1, 500]);
  });
});

describe('statistics', () => {
  it('counts allocations, frees, marks and pauses, and reports them to the kernel', () => {
    let r: Record<string, number | string> = {};
    const { t } = onHeap(
      (heap) => {
        growList(heap, 500);
        garbage(heap, 1000, 8);
        heap.collect();
        r = { ...heap.report() };
        return undefined;
      },
      { heap: { tunables: { minHeapBytes: 0, gogc: 100 } } },
    );
    expect(r.collector).toBe('marksweep');
    expect(r.objectsAllocated).toBe(1500);
    expect(r.bytesAllocated).toBe(1500 * 32);
    expect(r.liveBytes).toBe(500 * 32);
    expect(r.objectsFreed).toBe(1000);
    expect(r.bytesFreed).toBe(1000 * 32);
    expect(r.objectsMoved).toBe(0);
    expect(r.majorCollections).toBeGreaterThan(1);
    expect(r.pauseMaxNs as number).toBeGreaterThan(0);
    expect(r.pauseTotalNs as number).toBeGreaterThanOrEqual(r.pauseMaxNs as number);
    expect(r.markNs as number).toBeGreaterThan(0);
    expect(r.markNs as number).toBeLessThanOrEqual(r.pauseTotalNs as number);
    expect(r.bytesMarked as number).toBeGreaterThanOrEqual(500 * 32);
    expect(r.nextGcBytes).toBe(1000 * 32);
    expect(t.gc!.majorCollections).toBe(r.majorCollections);
  });
});
