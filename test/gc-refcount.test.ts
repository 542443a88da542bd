import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type GcReport, SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import type { CollectorFactory, GcTunables } from '../userland/gc/collector.ts';
import { setAux, storeField } from '../userland/gc/object.ts';
import { ARENA_SIZE, SMALL_REQUEST_THRESHOLD } from '../userland/gc/pymalloc.ts';
import { GC_HEAD_BYTES, LARGE_LINK_BYTES, RefcountCollector } from '../userland/gc/refcount.ts';
import { ManagedHeap } from '../userland/gc/runtime.ts';
import { Libc } from '../userland/libc/libc.ts';
import {
  applyOp,
  checkHeap,
  GLOBALS,
  type MutatorOp,
  mutatorOps,
  mutatorProgram,
  ShadowModel,
} from './helpers/gc.ts';
import { bootTestMachine, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const refcount: CollectorFactory = (env) => new RefcountCollector(env);

interface HeapOptions {
  tunables?: Partial<GcTunables>;
  memoryMiB?: number;
}

/** The free and committed pages now; the check it returns expects both back. */
function baseline(m: TestMachine): () => void {
  const free0 = settleFreePages(m);
  const committed0 = m.kernel.committedAs;
  return () => {
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  };
}

/**
 * Run `body` on a refcount heap in a process of a fresh machine, destroy the heap; the process
 * must exit 0 and leave no frame or commit charge behind. The report as it was before destroy.
 */
function runHeap(
  body: (heap: ManagedHeap, gc: RefcountCollector, ctx: UserContext) => void,
  options: HeapOptions = {},
): GcReport {
  const m = bootTestMachine({ memoryMiB: options.memoryMiB ?? 32 });
  const nothingLeft = baseline(m);
  let failure: unknown;
  let report: GcReport | undefined;
  const t = m.start(function* (ctx) {
    try {
      const heap = new ManagedHeap(new Libc(ctx), { collector: refcount, tunables: options.tunables });
      body(heap, heap.collector as RefcountCollector, ctx);
      heap.collector.checkInvariants();
      report = { ...heap.report() };
      heap.destroy();
    } catch (err) {
      failure = err;
    }
    yield;
    return 0;
  });
  m.runToEnd();
  if (failure !== undefined) throw failure;
  expect(t.waitStatus).toBe(0);
  nothingLeft();
  return report!;
}

/** Run `body` on a refcount heap; the process must die with SIGABRT. The kernel log's last line. */
function runAborting(
  body: (heap: ManagedHeap, gc: RefcountCollector) => void,
  options: HeapOptions = {},
): string {
  const m = bootTestMachine({ memoryMiB: options.memoryMiB ?? 32 });
  const nothingLeft = baseline(m);
  const t = m.start(function* (ctx) {
    const heap = new ManagedHeap(new Libc(ctx), { collector: refcount, tunables: options.tunables });
    body(heap, heap.collector as RefcountCollector);
    yield;
    return 0;
  });
  m.runToEnd();
  expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
  nothingLeft();
  return m.lastLog();
}

/**
 * Long mutator programs: up to 12 mutatorOps() programs one after another (about 900 steps on
 * average), so that objects live through several collections and reach the older generations.
 */
const programs = fc
  .array(mutatorOps(), { minLength: 1, maxLength: 12, size: 'max' })
  .map((parts) => parts.flat());

/** The ids of the objects in the heap (each holds its id at data offset 0), sorted. */
function idsInHeap(heap: ManagedHeap): number[] {
  const ids: number[] = [];
  heap.collector.forEachObject((obj) => ids.push(heap.cpu.load32(heap.data(obj))));
  return ids.sort((a, b) => a - b);
}

/**
 * What counting alone leaves: the objects reachable from the roots or from a cycle (a cycle's
 * members keep each other's counts above 0, and they hold what they point to). The model keeps
 * every object ever allocated, so a freed object's last fields are there too; none of them can
 * be on a cycle, as no field of a live object points at it.
 */
function refcountSurvivors(model: ShadowModel): number[] {
  const reach = (starts: number[]): Set<number> => {
    const seen = new Set<number>();
    const work = starts.filter((id) => id !== 0);
    while (work.length > 0) {
      const id = work.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      for (const f of model.objects.get(id)!.fields) if (f !== 0) work.push(f);
    }
    return seen;
  };
  const onCycles = [...model.objects.values()].filter((o) => reach(o.fields).has(o.id)).map((o) => o.id);
  return [...reach([...model.stack, ...model.globals, ...onCycles])].sort((a, b) => a - b);
}

describe('random mutator programs', () => {
  it('with the cycle collector, collections free exactly the unreachable (heap and every count checked at each step)', () => {
    fc.assert(
      fc.property(programs, (ops) => {
        const m = bootTestMachine({ memoryMiB: 16 });
        const nothingLeft = baseline(m);
        const failures: unknown[] = [];
        const t = m.start(
          mutatorProgram(ops, { heap: { collector: refcount }, checkEveryStep: true }, failures),
        );
        m.runToEnd();
        if (failures.length > 0) throw failures[0];
        expect(t.waitStatus).toBe(0);
        nothingLeft();
      }),
      { seed: 7, numRuns: 40 },
    );
  });

  it('without it, the heap holds after every step exactly what the roots and the garbage cycles reach', () => {
    let leakedCycles = 0;
    fc.assert(
      fc.property(programs, (ops) => {
        const m = bootTestMachine({ memoryMiB: 16 });
        const nothingLeft = baseline(m);
        const failures: unknown[] = [];
        const t = m.start(function* (ctx) {
          try {
            const heap = new ManagedHeap(new Libc(ctx), {
              globals: GLOBALS,
              collector: refcount,
              tunables: { cycleCollector: false },
            });
            const model = new ShadowModel(GLOBALS);
            for (const step of ops) {
              if (applyOp(heap, model, step)) checkHeap(heap, model, { noGarbage: false });
              expect(idsInHeap(heap)).toEqual(refcountSurvivors(model));
              yield;
            }
            heap.pop(heap.depth());
            model.stack.length = 0;
            for (let g = 0; g < GLOBALS; g++) {
              heap.setGlobal(g, 0);
              model.globals[g] = 0;
            }
            heap.collect('full');
            const left = idsInHeap(heap);
            expect(left).toEqual(refcountSurvivors(model));
            if (left.length > 0) leakedCycles++;
            checkHeap(heap, model, { noGarbage: false });
            expect(heap.report().majorCollections + heap.report().minorCollections).toBe(0);
            heap.destroy();
          } catch (err) {
            failures.push(err);
          }
          return 0;
        });
        m.runToEnd();
        if (failures.length > 0) throw failures[0];
        expect(t.waitStatus).toBe(0);
        nothingLeft();
      }),
      { seed: 8, numRuns: 40 },
    );
    expect(leakedCycles).toBeGreaterThan(0);
  });
});

describe('counting', () => {
  it('frees an object the moment its last reference goes; the next allocation of its size reuses the block', () => {
    runHeap((heap, gc) => {
      const a = heap.alloc(2, 24);
      expect(gc.refcount(a)).toBe(1);
      heap.pop();
      expect(heap.report().objectsFreed).toBe(1);
      expect(gc.isObject(a)).toBe(false);
      expect(heap.alloc(2, 20)).toBe(a);
      const b = heap.alloc(0, 8);
      heap.set(a, 1, b);
      heap.pop();
      expect(gc.isObject(b)).toBe(true);
      heap.set(a, 1, 0);
      expect(gc.isObject(b)).toBe(false);
      expect(heap.report().objectsFreed).toBe(2);
      expect(gc.freedBy().cycles.objects).toBe(0);
    });
  });

  it('counts a field store up for the new referent and down for the old; every update is a barrier store', () => {
    const report = runHeap((heap, gc) => {
      const a = heap.alloc(2, 8); // +1 (push)
      const b = heap.alloc(0, 8); // +1
      heap.set(a, 0, b); // +1
      heap.set(a, 1, b); // +1
      expect(gc.refcount(b)).toBe(3);
      heap.setGlobal(0, b); // +1
      expect(gc.refcount(b)).toBe(4);
      heap.pop(); // -1
      heap.set(a, 0, a); // +1 a, -1 b
      expect([gc.refcount(a), gc.refcount(b)]).toEqual([2, 2]);
      heap.set(a, 0, 0); // -1
      heap.setGlobal(0, 0); // -1
      heap.pop(); // -1: a goes, and with it its field's b (-1): 12 updates
      expect(heap.report().objectsFreed).toBe(2);
    });
    expect(report.barrierStores).toBe(12);
    expect(report.barrierHits).toBe(2);
    expect(report.liveBytes).toBe(0);
    expect(report.bytesAllocated).toBe(report.bytesFreed);
  });

  it('frees a 100 000-node list with one pop, iteratively', () => {
    const n = 100_000;
    const report = runHeap(
      (heap, gc) => {
        heap.alloc(1, 8);
        for (let i = 1; i < n; i++) {
          const node = heap.alloc(1, 8);
          heap.set(node, 0, heap.slot(0));
          heap.setSlot(0, node);
          heap.pop();
        }
        expect(gc.refcount(heap.slot(0))).toBe(1);
        heap.pop();
        expect(heap.report().objectsFreed).toBe(n);
        expect(gc.freedBy().refcount.objects).toBe(n);
      },
      { memoryMiB: 48 },
    );
    expect(report.objectsAllocated).toBe(n);
    expect(report.liveBytes).toBe(0);
  }, 120_000);

  it('large objects come from malloc, walk in address order with the small ones, and are freed the same way', () => {
    runHeap((heap, gc) => {
      const big = heap.alloc(100, 16); // 16 + 16 + 800 + 16 > 512
      const small = heap.alloc(1, 8);
      const huge = heap.alloc(0, 200_000);
      heap.set(big, 99, small);
      expect(gc.isObject(big)).toBe(true);
      expect(gc.isObject(huge)).toBe(true);
      expect(gc.isObject(big + 16)).toBe(false);
      expect(gc.pymalloc.addressInRange(big)).toBe(false);
      expect(gc.pymalloc.addressInRange(small)).toBe(true);
      const walked: number[] = [];
      gc.forEachObject((obj) => walked.push(obj));
      expect(walked).toEqual([big, small, huge].sort((x, y) => x - y));
      const r = heap.report();
      const bigBytes = LARGE_LINK_BYTES + GC_HEAD_BYTES + 16 + 800 + 16;
      expect(bigBytes).toBeGreaterThan(SMALL_REQUEST_THRESHOLD);
      expect(r.liveBytes).toBe(
        bigBytes + GC_HEAD_BYTES + 32 + LARGE_LINK_BYTES + GC_HEAD_BYTES + 16 + 200_000,
      );
      expect(r.heapBytes).toBeGreaterThan(ARENA_SIZE + 200_000);
      gc.checkInvariants();
      heap.pop(3);
      expect(r.objectsFreed).toBe(3);
      expect(gc.pymalloc.rawBlockBytes()).toBe(0);
      expect(r.heapBytes).toBeLessThan(ARENA_SIZE + 8192);
    });
  });
});

describe('the cycle collector', () => {
  /** a <-> b, both dropped; their addresses. */
  const pairCycle = (heap: ManagedHeap): [number, number] => {
    const a = heap.alloc(2, 8);
    const b = heap.alloc(2, 8);
    heap.set(a, 0, b);
    heap.set(b, 0, a);
    heap.pop(2);
    return [a, b];
  };

  it('frees a cycle of two, which counting alone cannot', () => {
    runHeap((heap, gc) => {
      const [a, b] = pairCycle(heap);
      expect([gc.refcount(a), gc.refcount(b)]).toEqual([1, 1]);
      expect(heap.report().objectsFreed).toBe(0);
      heap.collect('minor');
      expect(gc.isObject(a) || gc.isObject(b)).toBe(false);
      expect(gc.freedBy().cycles).toEqual({ objects: 2, bytes: 2 * (GC_HEAD_BYTES + 48) });
      expect(gc.generationStats(0)).toMatchObject({ collections: 1, collected: 2 });
      expect(heap.report().minorCollections).toBe(1);
    });
  });

  it('leaves the cycle, and the tail it holds, to leak with the collector off', () => {
    const report = runHeap(
      (heap, gc) => {
        const [a, b] = pairCycle(heap);
        const c = heap.alloc(1, 8);
        const d = heap.alloc(0, 8);
        heap.set(c, 0, d);
        heap.set(b, 1, c);
        heap.pop(2);
        heap.collect('full');
        for (const x of [a, b, c, d]) expect(gc.isObject(x)).toBe(true);
        expect([a, b, c, d].map((x) => gc.refcount(x))).toEqual([1, 1, 1, 1]);
        expect(gc.generationStats(0).count).toBe(3);
      },
      { tunables: { cycleCollector: false } },
    );
    expect(report.objectsFreed).toBe(0);
    expect(report.majorCollections + report.minorCollections).toBe(0);
  });

  it('frees a cycle with a tail (and the leaf at its end) whole', () => {
    const report = runHeap((heap, gc) => {
      const [a, b] = pairCycle(heap);
      const c = heap.alloc(1, 8);
      const d = heap.alloc(0, 8);
      heap.set(c, 0, d);
      heap.set(b, 1, c);
      heap.pop(2);
      const keep = heap.alloc(1, 8);
      heap.set(keep, 0, heap.alloc(0, 8));
      heap.pop();
      heap.collect('full');
      for (const x of [a, b, c, d]) expect(gc.isObject(x)).toBe(false);
      expect(gc.isObject(keep)).toBe(true);
      expect(gc.freedBy().cycles.objects).toBe(4);
      expect(gc.generationStats(2)).toMatchObject({ collections: 1, collected: 3 });
    });
    expect(report.majorCollections).toBe(1);
    expect(report.objectsFreed).toBe(4);
    expect(report.bytesMarked).toBeGreaterThan(0);
  });

  it("a minor collection leaves an older generation's cycle alone; a full one frees it", () => {
    runHeap((heap, gc) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(1, 8);
      heap.set(a, 0, b);
      heap.set(b, 0, a);
      heap.collect('minor');
      expect(gc.generationLength(1)).toBe(2);
      expect(heap.report().objectsPromoted).toBe(2);
      heap.pop(2);
      heap.collect('minor');
      expect(gc.isObject(a) && gc.isObject(b)).toBe(true);
      heap.collect('full');
      expect(gc.isObject(a) || gc.isObject(b)).toBe(false);
      expect(heap.report().majorCollections).toBe(1);
    });
  });

  it('frees a cycle through a large object, and a 100 000-node ring in one collection', () => {
    runHeap(
      (heap, gc) => {
        const big = heap.alloc(80, 8);
        const small = heap.alloc(1, 8);
        heap.set(big, 79, small);
        heap.set(small, 0, big);
        heap.pop(2);
        heap.collect('full');
        expect(gc.isObject(big) || gc.isObject(small)).toBe(false);
        const n = 100_000;
        heap.alloc(1, 8);
        heap.push(heap.slot(0));
        for (let i = 1; i < n; i++) {
          const node = heap.alloc(1, 8);
          heap.set(node, 0, heap.slot(1));
          heap.setSlot(1, node);
          heap.pop();
        }
        heap.set(heap.slot(0), 0, heap.slot(1));
        heap.pop(2);
        const before = heap.report().objectsFreed;
        heap.collect('full');
        expect(heap.report().objectsFreed - before).toBe(n);
        expect(gc.generationLength(0) + gc.generationLength(1) + gc.generationLength(2)).toBe(0);
      },
      { memoryMiB: 48 },
    );
  }, 120_000);
});

describe('generations and thresholds', () => {
  it('the 701st container allocation collects generation 0; leaves do not count and deallocations count down', () => {
    runHeap((heap, gc) => {
      for (let i = 0; i < 700; i++) heap.alloc(1, 8);
      for (let i = 0; i < 1000; i++) {
        heap.alloc(0, 8);
        heap.pop();
      }
      expect(gc.generationStats(0).count).toBe(700);
      heap.pop(100);
      expect(gc.generationStats(0).count).toBe(600);
      for (let i = 0; i < 100; i++) heap.alloc(1, 8);
      expect(heap.report().minorCollections).toBe(0);
      heap.alloc(1, 8);
      expect(heap.report().minorCollections).toBe(1);
      expect(gc.generationStats(0)).toMatchObject({ count: 0, collections: 1 });
      expect(gc.generationStats(1).count).toBe(1);
      expect([gc.generationLength(0), gc.generationLength(1)]).toEqual([1, 700]);
      expect(heap.report().objectsPromoted).toBe(700);
    });
  });

  it('generation 1 is collected at the 12th trigger (its count passes 10), and its survivors reach generation 2', () => {
    runHeap((heap, gc) => {
      for (let i = 0; i < 11 * 701; i++) heap.alloc(1, 8);
      expect(heap.report().minorCollections).toBe(11);
      expect(gc.generationStats(1)).toMatchObject({ count: 11, collections: 0 });
      expect(gc.generationLength(1)).toBe(700 + 10 * 701);
      for (let i = 0; i < 701; i++) heap.alloc(1, 8);
      expect(heap.report().minorCollections).toBe(12);
      expect(gc.generationStats(0).collections).toBe(11);
      expect(gc.generationStats(1)).toMatchObject({ count: 0, collections: 1 });
      expect(gc.generationStats(2)).toMatchObject({ count: 1, collections: 0 });
      expect([0, 1, 2].map((g) => gc.generationLength(g))).toEqual([1, 0, 8411]);
      expect(heap.report().objectsPromoted).toBe(700 + 10 * 701 + 8411);
      expect(gc.longLived().pending).toBe(8411);
      expect(heap.report().majorCollections).toBe(0);
    });
  });

  it('the full collection waits until long_lived_pending is a quarter of long_lived_total', () => {
    runHeap(
      (heap, gc) => {
        for (let i = 0; i < 400; i++) heap.alloc(1, 8);
        heap.collect('full');
        expect(gc.longLived()).toEqual({ pending: 0, total: 400 });
        const majors = heap.report().majorCollections;
        let heldBack = 0;
        for (let i = 0; heap.report().majorCollections === majors; i++) {
          expect(i).toBeLessThan(5000);
          const before = { ...gc.longLived(), gen2: gc.generationStats(2).count };
          const minor = heap.report().minorCollections;
          heap.alloc(1, 8);
          if (heap.report().majorCollections > majors) {
            expect(before.gen2).toBeGreaterThan(1);
            expect(before.pending).toBeGreaterThanOrEqual(Math.floor(before.total / 4));
          } else if (heap.report().minorCollections > minor && before.gen2 > 1) {
            expect(before.pending).toBeLessThan(Math.floor(before.total / 4));
            heldBack++;
          }
        }
        expect(heldBack).toBeGreaterThan(0);
        expect(gc.longLived().pending).toBe(0);
        expect(gc.longLived().total).toBe(gc.generationLength(2));
      },
      { tunables: { thresholds: [10, 1, 1] } },
    );
  });
});

describe('memory limits', () => {
  /** 2000 garbage cycles of two 440-byte objects: 1.7 MiB, under a 512 KiB limit. */
  const churnCycles = (heap: ManagedHeap): void => {
    for (let i = 0; i < 2000; i++) {
      const a = heap.alloc(1, 400);
      const b = heap.alloc(1, 400);
      heap.set(a, 0, b);
      heap.set(b, 0, a);
      heap.pop(2);
    }
  };
  const limited = { maxHeapBytes: 2 * ARENA_SIZE, thresholds: [1_000_000, 10, 10] as const };

  it('an allocation that finds no room collects the garbage cycles first and then succeeds', () => {
    const report = runHeap(
      (heap, gc) => {
        churnCycles(heap);
        expect(gc.pymalloc.arenaHistory().highwater).toBeLessThanOrEqual(2);
      },
      { tunables: limited },
    );
    expect(report.majorCollections).toBeGreaterThanOrEqual(3);
    expect(report.objectsFreed).toBeGreaterThan(3000);
  });

  it('without the cycle collector the same program runs out of memory', () => {
    const log = runAborting(churnCycles, { tunables: { ...limited, cycleCollector: false } });
    expect(log).toMatch(/out of memory: refcount cannot allocate/);
  });

  it('destroy unmaps the arenas, the state page and the roots: the mappings are back as they were', () => {
    const m = bootTestMachine({ memoryMiB: 32 });
    const nothingLeft = baseline(m);
    let failure: unknown;
    const t = m.start(function* (ctx) {
      try {
        const libc = new Libc(ctx);
        const mapped = (va: number) => ctx.sys.vmlab_maps().some((e) => e.start <= va && va < e.end);
        const fill = (heap: ManagedHeap): number[] => {
          const objects: number[] = [];
          for (let i = 0; i < 3000; i++) objects.push(heap.alloc(2, 100));
          objects.push(heap.alloc(0, 5000), heap.alloc(0, 300_000));
          heap.set(objects[0]!, 0, objects[1]!);
          heap.set(objects[1]!, 0, objects[0]!);
          return objects;
        };
        // The first heap leaves libc's static storage (the clock's timespec) and malloc's heap behind.
        const first = new ManagedHeap(libc, { collector: refcount });
        fill(first);
        first.destroy();
        const maps = ctx.sys.vmlab_maps();
        const heap = new ManagedHeap(libc, { collector: refcount });
        const objects = fill(heap);
        yield;
        expect((heap.collector as RefcountCollector).pymalloc.arenaCount()).toBe(2);
        heap.collector.checkInvariants();
        heap.destroy();
        expect(heap.report().heapBytes).toBe(0);
        // The arenas' objects and the 300 000-byte one (malloc maps it alone) are unmapped; the
        // 5000-byte one was in malloc's brk heap, trimmed back to what it was.
        expect(objects.slice(0, 3000).some(mapped)).toBe(false);
        expect(mapped(objects[3001]!)).toBe(false);
        expect(ctx.sys.vmlab_maps()).toEqual(maps);
      } catch (err) {
        failure = err;
      }
      return 0;
    });
    m.runToEnd();
    if (failure !== undefined) throw failure;
    expect(t.waitStatus).toBe(0);
    nothingLeft();
  });
});

describe('misuse', () => {
  it('a store into a freed object aborts', () => {
    const log = runAborting((heap) => {
      const a = heap.alloc(1, 8);
      heap.pop();
      heap.collector.writeField(a, 0, 0);
    });
    expect(log).toMatch(/refcount: writeField of the object at 0x[0-9a-f]+, which was freed/);
  });

  it('a reference stored without the barrier is caught when its target is released again', () => {
    const log = runAborting((heap) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(0, 8);
      storeField(heap.cpu, a, 0, b);
      heap.pop();
      heap.set(a, 0, 0);
    });
    expect(log).toMatch(/refcount: decref of the object at 0x[0-9a-f]+, which was freed/);
  });

  it('a collection finding more references than a count aborts', () => {
    const log = runAborting((heap) => {
      const a = heap.alloc(2, 8);
      const b = heap.alloc(0, 8);
      const c = heap.alloc(1, 8);
      storeField(heap.cpu, a, 0, c);
      storeField(heap.cpu, a, 1, c);
      heap.collect('minor');
      expect(b).not.toBe(0);
    });
    expect(log).toMatch(/subtract_refs: the object at 0x[0-9a-f]+ has more references than its count/);
  });

  it('checkInvariants finds a count that disagrees with the references', () => {
    const log = runAborting((heap, gc) => {
      const a = heap.alloc(1, 8);
      heap.set(a, 0, heap.alloc(0, 8));
      gc.checkInvariants();
      setAux(heap.cpu, a, 5);
      gc.checkInvariants();
    });
    expect(log).toMatch(
      /refcount checkInvariants: 1 objects' counts are wrong: the one at 0x[0-9a-f]+ has count 5 and 1 references/,
    );
  });

  it('isObject says no to inner, freed, unaligned, foreign and unmapped addresses, without faulting', () => {
    runHeap((heap, gc, ctx) => {
      const a = heap.alloc(3, 40);
      const b = heap.alloc(0, 8);
      heap.pop();
      expect(gc.isObject(a)).toBe(true);
      for (const addr of [
        a + 16,
        a + 8,
        a - GC_HEAD_BYTES,
        b,
        a + 1,
        0,
        -16,
        2 ** 47,
        2 ** 60,
        heap.roots.base,
      ])
        expect(gc.isObject(addr)).toBe(false);
      expect(gc.isObject(ctx.sys.brk(0) - 16)).toBe(false);
    });
  });
});

describe('determinism', () => {
  it('one program gives the same report, pauses included, and the same addresses on two machines', () => {
    const [ops] = fc.sample(programs, { numRuns: 1, seed: 42 }) as [MutatorOp[]];
    const run = () => {
      const addresses: number[] = [];
      const report = runHeap((heap, gc) => {
        const model = new ShadowModel(GLOBALS);
        for (const step of ops) {
          applyOp(heap, model, step);
          if (step.op === 'alloc') addresses.push(heap.top());
        }
        for (let i = 0; i < 3000; i++) {
          const a = heap.alloc(1, 8);
          heap.set(a, 0, a);
          heap.pop();
        }
        gc.checkInvariants();
      });
      return { report, addresses };
    };
    const first = run();
    expect(first.report.minorCollections).toBeGreaterThan(0);
    expect(run()).toEqual(first);
  });
});
