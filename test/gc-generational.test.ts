import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GcReport, SIGABRT, type UserContext, WIFSIGNALED, WTERMSIG } from '../kernel/proc/uapi.ts';
import type { GcTunables } from '../userland/gc/collector.ts';
import { GENERATIONAL_CONSTANTS, GenerationalCollector } from '../userland/gc/generational.ts';
import { GC_AGE_SHIFT, H_GC } from '../userland/gc/object.ts';
import { CARD_BYTES } from '../userland/gc/oldspace.ts';
import { ManagedHeap, type ManagedHeapOptions } from '../userland/gc/runtime.ts';
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
import { bootTestMachine, PAGE, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const generational: ManagedHeapOptions['collector'] = (env) => new GenerationalCollector(env);

/** The collector behind `heap`. */
const gen = (heap: ManagedHeap): GenerationalCollector => heap.collector as GenerationalCollector;

interface Run {
  m: TestMachine;
  status: number;
  report: GcReport;
  log: string;
}

/**
 * Run `body` in a process of a fresh machine with a generational heap of `tunables`; the heap
 * is destroyed after it. Free frames and the commit charge must come back after the process
 * (the baseline is taken before it starts), and, inside it, destroy() must leave the commit
 * charge and the mappings as they were before the heap.
 */
function runHeap(
  tunables: Partial<GcTunables>,
  body: (heap: ManagedHeap, ctx: UserContext) => void,
  options: { memoryMiB?: number } = {},
): Run {
  const m = bootTestMachine({ memoryMiB: options.memoryMiB ?? 16 });
  const free0 = settleFreePages(m);
  const committed0 = m.kernel.committedAs;
  let inside: { pages: number; maps: number } | undefined;
  const t = m.start(function* (ctx) {
    const libc = new Libc(ctx);
    libc.staticData(16); // the clock's timespec lives in libc's static storage, mapped once
    const mm = m.kernel.current!.mm!;
    const before = { pages: mm.committedPages, maps: ctx.sys.vmlab_maps().length };
    const heap = new ManagedHeap(libc, { collector: generational, tunables });
    body(heap, ctx);
    heap.destroy();
    inside = { pages: mm.committedPages - before.pages, maps: ctx.sys.vmlab_maps().length - before.maps };
    yield;
    return 0;
  });
  m.runToEnd();
  if (t.waitStatus === 0) {
    expect(inside).toEqual({ pages: 0, maps: 0 });
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  }
  return { m, status: t.waitStatus ?? -1, report: t.gc!, log: m.lastLog() };
}

/** A rooted object of `nptrs` fields and `dataBytes` data, stamped with `id` (checkHeap's pattern). */
function allocStamped(heap: ManagedHeap, model: ShadowModel, nptrs: number, dataBytes: number): number {
  const obj = heap.alloc(nptrs, dataBytes);
  stampObject(heap, obj, model.alloc(nptrs, dataBytes), dataBytes);
  return obj;
}

describe('generational: random mutator programs', () => {
  beforeAll(() => fc.configureGlobal({ baseSize: 'large' }));
  afterAll(() => fc.resetConfigureGlobal());

  const config = fc.record({
    nurseryBytes: fc.constantFrom(4096, 8192),
    promotionAge: fc.constantFrom(1, 2, 2, 3),
    minHeapBytes: fc.constantFrom(0, 16384, 1 << 20, 1 << 20),
    gogc: fc.constantFrom(0, 100, -1),
    check: fc.constantFrom<'cheap' | 'full'>('cheap', 'full'),
    checkEveryStep: fc.boolean(),
  });

  it('keeps every reachable object intact, frees the rest at full collections, gives all memory back', () => {
    let minors = 0;
    let majors = 0;
    let promoted = 0;
    let hits = 0;
    fc.assert(
      fc.property(mutatorOps(), config, (ops: MutatorOp[], c) => {
        const m = bootTestMachine({ memoryMiB: 16 });
        const free0 = settleFreePages(m);
        const committed0 = m.kernel.committedAs;
        const failures: unknown[] = [];
        const { check, checkEveryStep, ...tunables } = c;
        const t = m.start(
          mutatorProgram(
            ops,
            { heap: { collector: generational, tunables, check }, checkEveryStep },
            failures,
          ),
        );
        m.runToEnd();
        expect(failures).toEqual([]);
        expect(t.waitStatus).toBe(0);
        const r = t.gc!;
        expect(r.collector).toBe('generational');
        expect(r.objectsFreed).toBe(r.objectsAllocated);
        expect(r.bytesFreed).toBe(r.bytesAllocated);
        expect(r.liveBytes).toBe(0);
        expect(r.objectsPromoted).toBeLessThanOrEqual(r.objectsMoved);
        expect(m.kernel.committedAs).toBe(committed0);
        expect(settleFreePages(m)).toBe(free0);
        minors += r.minorCollections;
        majors += r.majorCollections;
        promoted += r.objectsPromoted;
        hits += r.barrierHits;
      }),
      { numRuns: 100, seed: 16 },
    );
    // The programs reached every path: minor and full collections, promotion, card marking.
    expect(minors).toBeGreaterThan(40);
    expect(majors).toBeGreaterThan(160);
    expect(promoted).toBeGreaterThan(100);
    expect(hits).toBeGreaterThan(10);
  });
});

describe('generational: promotion by age', () => {
  it('an object lives in the nursery until it has survived promotionAge minor collections, then in the old space', () => {
    const where: string[] = [];
    const ages: number[] = [];
    const run = runHeap({ promotionAge: 3, nurseryBytes: 64 << 10 }, (heap) => {
      const model = new ShadowModel(0);
      allocStamped(heap, model, 1, 24);
      const g = gen(heap);
      where.push(g.spaceOf(heap.slot(0)));
      for (let k = 1; k <= 3; k++) {
        heap.collect('minor');
        const obj = heap.slot(0);
        where.push(g.spaceOf(obj));
        ages.push(heap.cpu.load8(obj + H_GC) >>> GC_AGE_SHIFT);
        checkHeap(heap, model, { noGarbage: false });
      }
      expect(g.oldBytes()).toBe(48);
      expect(g.nurseryBytes()).toBe(0);
    });
    expect(run.status).toBe(0);
    expect(where).toEqual(['nursery', 'nursery', 'nursery', 'old']);
    expect(ages).toEqual([1, 2, 0]); // an old object's gc byte is 0
    expect(run.report.objectsPromoted).toBe(1);
    expect(run.report.objectsMoved).toBe(3); // two copies to the to-space, one promotion
    expect(run.report.minorCollections).toBe(3);
  });

  it('a full collection promotes every survivor and leaves the nursery empty', () => {
    const run = runHeap({ promotionAge: 7 }, (heap) => {
      const model = new ShadowModel(0);
      for (let i = 0; i < 50; i++) allocStamped(heap, model, 2, 16);
      const g = gen(heap);
      heap.collect('full');
      expect(g.nurseryBytes()).toBe(0);
      expect(g.oldBytes()).toBe(50 * 48);
      for (let i = 0; i < 50; i++) expect(g.spaceOf(heap.slot(i))).toBe('old');
      checkHeap(heap, model, { noGarbage: true });
    });
    expect(run.status).toBe(0);
    expect(run.report.objectsPromoted).toBe(50);
  });
});

describe('generational: the card-marking write barrier', () => {
  /**
   * An old object O and a young object Y that only O's field 0 reaches; a minor collection.
   * What the barrier (on or off) left on O's card, and what O's field holds after.
   */
  function oldToYoung(barrier: boolean, promotionAge: number) {
    const seen = { dirtyBefore: false, invariant: '', dirtyAfter: false, kept: false, space: '', id: 0 };
    const run = runHeap({ barrier, promotionAge }, (heap) => {
      const g = gen(heap);
      const model = new ShadowModel(0);
      const o = allocStamped(heap, model, 2, 8);
      heap.collect(promotionAge === 1 ? 'minor' : 'full'); // O is old now
      expect(g.spaceOf(heap.slot(0))).toBe('old');
      const y = allocStamped(heap, model, 0, 32);
      heap.set(heap.slot(0), 0, y);
      heap.pop();
      model.stack.pop();
      model.objects.get(1)!.fields[0] = 2;
      const field = heap.slot(0) + 16;
      seen.dirtyBefore = g.cardIsDirty(field);
      try {
        g.checkInvariants();
      } catch (err) {
        seen.invariant = (err as Error).message;
      }
      heap.collect('minor');
      seen.dirtyAfter = g.cardIsDirty(field);
      const ref = heap.get(heap.slot(0), 0);
      seen.kept = g.isObject(ref);
      seen.space = g.spaceOf(ref);
      seen.id = heap.cpu.load32(ref + 16); // Y has no fields: its id is the first data word
      if (seen.kept) checkHeap(heap, model, { noGarbage: false });
      else {
        expect(() => checkHeap(heap, model, { noGarbage: false })).toThrow(/not an allocated object/);
        heap.collect('full'); // the dangling field: the collector aborts the process
      }
      void o;
    });
    return { run, seen };
  }

  it('with the barrier, the young object survives (promoted: the card is cleaned)', () => {
    const { run, seen } = oldToYoung(true, 1);
    expect(run.status).toBe(0);
    expect(seen).toMatchObject({
      dirtyBefore: true,
      invariant: '',
      dirtyAfter: false,
      kept: true,
      space: 'old',
      id: 2,
    });
    expect(run.report.barrierHits).toBe(1);
    expect(run.report.barrierStores).toBe(1);
  });

  it('with the barrier, a young object still in the nursery keeps its card dirty', () => {
    const { run, seen } = oldToYoung(true, 3);
    expect(run.status).toBe(0);
    expect(seen).toMatchObject({ dirtyBefore: true, dirtyAfter: true, kept: true, space: 'nursery', id: 2 });
  });

  it('without the barrier, the invariant check names the remembered set, the object is freed and the field dangles', () => {
    const { run, seen } = oldToYoung(false, 1);
    expect(seen.dirtyBefore).toBe(false);
    expect(seen.invariant).toMatch(/remembered set/);
    expect(seen.kept).toBe(false);
    expect(seen.id).toBe(0); // the freed copy's memory is zeroed
    expect(run.report.barrierHits).toBe(0);
    expect(run.report.objectsFreed).toBe(1);
    expect(WIFSIGNALED(run.status) && WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/not an object of the heap/);
  });

  it('an object promoted while its child stays young gets its card dirtied by the collector', () => {
    const cards: boolean[] = [];
    const run = runHeap({ promotionAge: 2 }, (heap) => {
      const g = gen(heap);
      const model = new ShadowModel(0);
      allocStamped(heap, model, 1, 8); // P
      heap.collect('minor'); // P is 1 minor old
      allocStamped(heap, model, 0, 8); // C
      heap.set(heap.slot(0), 0, heap.slot(1));
      model.objects.get(1)!.fields[0] = 2;
      heap.pop();
      model.stack.pop();
      heap.collect('minor'); // P promoted, C copied to the to-space
      expect(g.spaceOf(heap.slot(0))).toBe('old');
      expect(g.spaceOf(heap.get(heap.slot(0), 0))).toBe('nursery');
      cards.push(g.cardIsDirty(heap.slot(0) + 16));
      checkHeap(heap, model, { noGarbage: false });
      heap.collect('minor'); // C promoted too: nothing young is left on the card
      expect(g.spaceOf(heap.get(heap.slot(0), 0))).toBe('old');
      cards.push(g.cardIsDirty(heap.slot(0) + 16));
      checkHeap(heap, model, { noGarbage: false });
    });
    expect(run.status).toBe(0);
    expect(cards).toEqual([true, false]);
    expect(run.report.barrierHits).toBe(0); // the store was young -> young
    expect(run.report.objectsPromoted).toBe(2);
  });

  it('a store of an old or a null reference, or into a young object, marks no card', () => {
    const run = runHeap({ promotionAge: 1 }, (heap) => {
      const g = gen(heap);
      heap.alloc(2, 8);
      heap.alloc(2, 8);
      heap.collect('minor');
      heap.set(heap.slot(0), 0, heap.slot(1)); // old -> old
      heap.set(heap.slot(0), 1, 0);
      heap.alloc(2, 8);
      heap.set(heap.slot(2), 0, heap.slot(0)); // young -> old
      expect(g.cardIsDirty(heap.slot(0) + 16)).toBe(false);
      g.checkInvariants();
    });
    expect(run.status).toBe(0);
    expect(run.report.barrierStores).toBe(3);
    expect(run.report.barrierHits).toBe(0);
  });
});

describe('generational: large objects and the block offset table', () => {
  it('an object larger than a quarter semispace is allocated old; a field deep in it keeps its young target alive', () => {
    const run = runHeap({ nurseryBytes: 16 << 10, promotionAge: 2 }, (heap) => {
      const g = gen(heap);
      const model = new ShadowModel(0);
      const big = allocStamped(heap, model, 1000, 64); // 8080 bytes, 16 cards
      expect(g.spaceOf(big)).toBe('old');
      expect(g.pretenureBytes).toBe(4096);
      allocStamped(heap, model, 1, 16);
      heap.set(heap.slot(0), 900, heap.slot(1));
      model.objects.get(1)!.fields[900] = 2;
      heap.pop();
      model.stack.pop();
      const field = heap.slot(0) + 16 + 8 * 900;
      expect(g.cardIsDirty(field)).toBe(true);
      expect(g.cardIsDirty(heap.slot(0))).toBe(false);
      for (let k = 0; k < 2; k++) {
        // many short-lived objects in between: minors happen by themselves
        for (let i = 0; i < 2000; i++) {
          heap.alloc(0, 16);
          heap.pop();
        }
        checkHeap(heap, model, { noGarbage: false });
      }
      expect(g.spaceOf(heap.get(heap.slot(0), 900))).toBe('old');
      expect(g.cardIsDirty(field)).toBe(false);
      const b = heap.slot(0);
      expect(g.isObject(b)).toBe(true);
      for (const inside of [16, 512, 4096, 8064]) expect(g.isObject(b + inside)).toBe(false);
    });
    expect(run.status).toBe(0);
    expect(run.report.minorCollections).toBeGreaterThanOrEqual(4);
  });

  it('old objects that straddle cards: the fields in a dirty card are found from it, before and after a compaction', () => {
    const run = runHeap({ promotionAge: 1, nurseryBytes: 64 << 10 }, (heap) => {
      const g = gen(heap);
      const model = new ShadowModel(0);
      for (let i = 0; i < 200; i++) allocStamped(heap, model, 3, 8 + (i % 7) * 40); // 48 to 288 bytes
      heap.collect('minor');
      for (let i = 0; i < 200; i += 2) expect(g.spaceOf(heap.slot(i))).toBe('old');
      // drop every third object, then every old object points at a new young one
      for (let i = 199; i >= 0; i -= 3) {
        heap.setSlot(i, 0);
        model.stack[i] = 0;
      }
      heap.collect('full');
      model.dropUnreachable();
      checkHeap(heap, model, { noGarbage: true });
      for (let i = 0; i < 200; i++) {
        if (model.stack[i] === 0) continue;
        allocStamped(heap, model, 0, 8);
        heap.set(heap.slot(i), 2, heap.top());
        model.objects.get(model.stack[i]!)!.fields[2] = model.stack.at(-1)!;
        heap.pop();
        model.stack.pop();
      }
      g.checkInvariants();
      heap.collect('minor');
      checkHeap(heap, model, { noGarbage: false });
      heap.collect('full');
      checkHeap(heap, model, { noGarbage: true });
    });
    expect(run.status).toBe(0);
  });
});

describe('generational: a long-lived structure under short-lived churn', () => {
  it('minor collections trace far fewer bytes than full ones, and scan few cards', () => {
    const perMinor: number[] = [];
    const perFull: number[] = [];
    let cards = 0;
    const run = runHeap({ nurseryBytes: 64 << 10, promotionAge: 2, minHeapBytes: 64 << 20 }, (heap) => {
      const g = gen(heap);
      // a list of 3000 nodes (next, a spare field, 24 data bytes: 64 bytes each) in global 0
      for (let i = 0; i < 3000; i++) {
        heap.alloc(2, 24);
        heap.set(heap.top(), 0, heap.getGlobal(0));
        heap.store32(heap.top(), 0, i);
        heap.setGlobal(0, heap.top());
        heap.pop();
      }
      heap.collect('full');
      expect(g.nurseryBytes()).toBe(0);
      const r = heap.report();
      for (let round = 0; round < 3; round++) {
        const m0 = r.minorCollections;
        const b0 = r.bytesMarked;
        for (let i = 0; i < 20000; i++) {
          heap.alloc(i % 3, 8 + (i % 5) * 8);
          if (i % 1000 === 0) heap.set(heap.getGlobal(0), 1, heap.top()); // a young object into the old head
          heap.pop();
        }
        perMinor.push((r.bytesMarked - b0) / (r.minorCollections - m0));
        const b1 = r.bytesMarked;
        heap.collect('full');
        perFull.push(r.bytesMarked - b1);
      }
      cards = g.cardsScanned;
    });
    expect(run.status).toBe(0);
    expect(run.report.minorCollections).toBeGreaterThan(30);
    for (let i = 0; i < 3; i++) {
      expect(perFull[i]).toBeGreaterThan(3000 * 64);
      expect(perMinor[i]! * 20).toBeLessThan(perFull[i]!);
    }
    // one dirty card (the head node's) at most per collection, never the whole old space
    expect(cards).toBeGreaterThanOrEqual(20);
    expect(cards).toBeLessThanOrEqual(run.report.minorCollections + run.report.majorCollections);
    expect(run.report.objectsPromoted).toBeGreaterThanOrEqual(3000);
  });
});

describe('generational: the nursery after a minor collection', () => {
  it('a small nursery is zeroed in place; a 4 MiB one is madvised away (its frames go back)', () => {
    const present: number[] = [];
    for (const nurseryBytes of [1 << 20, 4 << 20]) {
      const run = runHeap(
        { nurseryBytes },
        (heap, ctx) => {
          const g = gen(heap);
          const from = heap.alloc(0, 8);
          heap.pop();
          for (let i = 0; i < 10000; i++) {
            heap.alloc(1, 40);
            heap.pop();
          }
          heap.collect('minor');
          expect(g.spaceOf(from)).toBe('none'); // the old semispace is the to-space now
          let n = 0;
          for (let va = from; va < from + 10000 * 64; va += PAGE) if (ctx.sys.vmlab_pageinfo(va).present) n++;
          present.push(n);
          g.checkInvariants();
        },
        { memoryMiB: 32 },
      );
      expect(run.status).toBe(0);
    }
    expect(present[0]).toBe(Math.ceil((10000 * 64) / PAGE));
    expect(present[1]).toBe(0);
    expect(GENERATIONAL_CONSTANTS.madviseSemispaceBytes).toBe(4 << 20);
  });
});

describe('generational: limits', () => {
  const semi = 16 << 10;
  const markStack = GENERATIONAL_CONSTANTS.markStackEntries * 8;
  // the old generation may commit 8 KiB of objects, one page of cards and one of offsets
  const maxHeapBytes = 2 * semi + markStack + 8192 + 2 * PAGE;

  it('a refused promotion leaves the survivor young and runs a full collection; the heap stays within maxHeapBytes', () => {
    const run = runHeap({ nurseryBytes: semi, promotionAge: 1, maxHeapBytes }, (heap) => {
      const g = gen(heap);
      const model = new ShadowModel(1);
      // a list of 300 nodes of 64 bytes: 128 fit in the old generation, the rest stay young
      for (let i = 0; i < 300; i++) {
        const id = model.alloc(1, 40);
        const node = heap.alloc(1, 40);
        stampObject(heap, node, id, 40);
        heap.set(node, 0, heap.getGlobal(0));
        model.objects.get(id)!.fields[0] = model.globals[0]!;
        heap.setGlobal(0, heap.top());
        model.globals[0] = id;
        heap.pop();
        model.stack.pop();
        expect(heap.report().heapBytes).toBeLessThanOrEqual(maxHeapBytes);
      }
      heap.collect('minor');
      checkHeap(heap, model, { noGarbage: false });
      expect(g.oldBytes()).toBe(8192);
      expect(g.nurseryBytes()).toBe((300 - 128) * 64);
      expect(heap.report().heapBytes).toBe(maxHeapBytes);
    });
    expect(run.status).toBe(0);
    expect(run.report.majorCollections).toBeGreaterThanOrEqual(1);
    expect(run.report.objectsPromoted).toBe(128);
  });

  it('a heap that cannot grow ends the process with SIGABRT and "out of memory"', () => {
    const run = runHeap({ nurseryBytes: semi, promotionAge: 1, maxHeapBytes }, (heap) => {
      for (let i = 0; i < 1000; i++) {
        heap.alloc(1, 40);
        heap.set(heap.top(), 0, heap.getGlobal(0));
        heap.setGlobal(0, heap.top());
        heap.pop();
      }
    });
    expect(WIFSIGNALED(run.status) && WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/out of memory/);
    expect(run.report.heapBytes).toBeLessThanOrEqual(maxHeapBytes);
  });

  it('a maxHeapBytes below the nursery is refused when the heap is made', () => {
    const run = runHeap({ nurseryBytes: semi, maxHeapBytes: semi }, () => {});
    expect(WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/maxHeapBytes/);
  });
});

describe('generational: corruption and misuse abort the process', () => {
  it('a root holding an address outside the heap', () => {
    const run = runHeap({}, (heap) => {
      heap.alloc(0, 8);
      heap.setGlobal(1, 0x10000);
      heap.collect('minor');
    });
    expect(WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/holds 0x10000, not an object of the heap/);
  });

  it('a header whose size runs past the nursery', () => {
    const run = runHeap({}, (heap) => {
      const obj = heap.alloc(0, 8);
      heap.cpu.store16(obj, 0xffff); // 65535 fields: far past the nursery's top
      heap.collect('minor');
    });
    expect(WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/corrupt object header/);
  });

  it('a corrupt old header found by a full collection', () => {
    const run = runHeap({ promotionAge: 1 }, (heap) => {
      heap.alloc(1, 8);
      heap.collect('minor');
      heap.cpu.store32(heap.slot(0) + 4, 1 << 20); // data bytes past the old top
      heap.collect('full');
    });
    expect(WTERMSIG(run.status)).toBe(SIGABRT);
    expect(run.log).toMatch(/corrupt object header/);
  });
});

describe('generational: queries', () => {
  it('forEachObject walks both generations in address order; isObject knows objects from interiors', () => {
    const run = runHeap({ promotionAge: 1 }, (heap) => {
      const g = gen(heap);
      for (let i = 0; i < 40; i++) heap.alloc(i % 4, 8 + i * 8);
      heap.collect('minor');
      for (let i = 0; i < 25; i++) heap.alloc(1, 16);
      const seen: number[] = [];
      g.forEachObject((obj) => seen.push(obj));
      expect(seen).toHaveLength(65);
      expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      expect(seen.filter((a) => g.spaceOf(a) === 'old')).toHaveLength(40);
      for (const obj of seen) {
        expect(g.isObject(obj)).toBe(true);
        expect(g.isObject(obj + 16)).toBe(false);
        expect(g.isObject(obj + 8)).toBe(false);
      }
      expect(g.isObject(0)).toBe(false);
      expect(g.isObject(seen.at(-1)! + CARD_BYTES * 64)).toBe(false);
    });
    expect(run.status).toBe(0);
  });
});

describe('generational: determinism', () => {
  it('the same program gives the same addresses, statistics and pause times', () => {
    fc.configureGlobal({ baseSize: 'large' });
    const [ops] = fc.sample(mutatorOps(300), { numRuns: 1, seed: 7 });
    fc.resetConfigureGlobal();
    const once = () => {
      const addresses: number[] = [];
      const run = runHeap({ nurseryBytes: 4096, minHeapBytes: 8192 }, (heap) => {
        const model = new ShadowModel(GLOBALS);
        for (const op of ops!) {
          applyOp(heap, model, op);
          if (op.op === 'alloc') addresses.push(heap.top());
        }
        heap.collect('full');
      });
      expect(run.status).toBe(0);
      return { addresses, report: run.report };
    };
    const a = once();
    const b = once();
    expect(a.report.objectsAllocated).toBeGreaterThan(20);
    expect(a.report.minorCollections + a.report.majorCollections).toBeGreaterThan(3);
    expect(b).toEqual(a);
  });
});
