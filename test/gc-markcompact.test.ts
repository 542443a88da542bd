import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../kernel/proc/task.ts';
import { SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import { type CollectorEnv, GcAbort, type GcTunables } from '../userland/gc/collector.ts';
import { MarkCompactCollector, type MarkCompactTunables } from '../userland/gc/markcompact.ts';
import {
  GC_FORWARDED,
  GC_MARK,
  H_AUX,
  H_DATA_BYTES,
  H_GC,
  objectBytes as objectSize,
} from '../userland/gc/object.ts';
import { type GcCheck, ManagedHeap } from '../userland/gc/runtime.ts';
import { Libc } from '../userland/libc/libc.ts';
import { mutatorOps, mutatorProgram } from './helpers/gc.ts';
import {
  bootTestMachine,
  PAGE,
  settleFreePages,
  type TestMachine,
  type TestMachineOptions,
} from './helpers/kernel.ts';

interface RunOptions {
  tunables?: Partial<GcTunables>;
  /** 'full': the runtime checks every reference passed in with isObject. */
  check?: GcCheck;
  markcompact?: Partial<MarkCompactTunables>;
  machine?: TestMachineOptions;
}

const heapOptions = (o: RunOptions) => ({
  collector: (env: CollectorEnv) => new MarkCompactCollector(env, o.markcompact),
  tunables: o.tunables ?? {},
  check: o.check ?? 'cheap',
});

/**
 * Run `body` on a ManagedHeap with the mark-compact collector in a fresh machine; the heap is
 * destroyed after it. An exception in the body (a failed expect) is rethrown here; the process
 * must exit 0 and leave no frame and no commit charge behind.
 */
function runHeap(
  body: (heap: ManagedHeap, ctx: UserContext, m: TestMachine) => void,
  o: RunOptions = {},
): { m: TestMachine; t: Task } {
  const m = bootTestMachine({ memoryMiB: 16, ...o.machine });
  const free0 = settleFreePages(m);
  const committed0 = m.kernel.committedAs;
  const failures: unknown[] = [];
  const t = m.start(function* (ctx) {
    try {
      const heap = new ManagedHeap(new Libc(ctx), heapOptions(o));
      body(heap, ctx, m);
      heap.destroy();
    } catch (err) {
      failures.push(err);
    }
    yield;
    return 0;
  });
  m.runToEnd();
  if (failures.length > 0) throw failures[0];
  expect(t.waitStatus).toBe(0);
  expect(m.kernel.committedAs).toBe(committed0);
  expect(settleFreePages(m)).toBe(free0);
  return { m, t };
}

/** Run `body` and let what it throws end the process (SIGABRT); the task and the last log line. */
function runAborting(body: (heap: ManagedHeap, ctx: UserContext) => void, o: RunOptions = {}) {
  const m = bootTestMachine({ memoryMiB: 16, ...o.machine });
  const t = m.start(function* (ctx) {
    const heap = new ManagedHeap(new Libc(ctx), heapOptions(o));
    body(heap, ctx);
    yield;
    return 0;
  });
  m.runToEnd();
  return { t, log: m.lastLog() };
}

/** Every object of the heap, in address order. */
function objects(heap: ManagedHeap): number[] {
  const all: number[] = [];
  heap.collector.forEachObject((obj) => all.push(obj));
  return all;
}

/** Fill the data of `obj` with bytes (seed + k) & 0xff. */
function fillPattern(heap: ManagedHeap, obj: number, seed: number): void {
  const n = heap.dataBytes(obj);
  const bytes = new Uint8Array(n);
  for (let k = 0; k < n; k++) bytes[k] = (seed + k) & 0xff;
  heap.cpu.storeBytes(heap.data(obj), bytes);
}

/** Does the data of `obj` still hold fillPattern's bytes? */
function holdsPattern(heap: ManagedHeap, obj: number, seed: number): boolean {
  const n = heap.dataBytes(obj);
  const bytes = new Uint8Array(n);
  heap.cpu.loadBytes(heap.data(obj), bytes, 0, n);
  for (let k = 0; k < n; k++) if (bytes[k] !== ((seed + k) & 0xff)) return false;
  return true;
}

/** A list of `n` objects (1 field, `dataBytes` of data) left on top of the stack; object i holds id i. */
function buildList(heap: ManagedHeap, n: number, dataBytes: number): void {
  heap.alloc(1, dataBytes);
  heap.store32(heap.top(), 0, 0);
  for (let i = 1; i < n; i++) {
    const node = heap.alloc(1, dataBytes);
    heap.store32(node, 0, i);
    heap.set(node, 0, heap.top(1));
    heap.setSlot(heap.depth() - 2, heap.top());
    heap.pop();
  }
}

/** The ids along the list from `head`. */
function listIds(heap: ManagedHeap, head: number): number[] {
  const ids: number[] = [];
  for (let p = head; p !== 0; p = heap.get(p, 0)) ids.push(heap.load32(p, 0));
  return ids;
}

/** Binary trees: a complete tree of `depth` left on the stack (2 fields, 8 data bytes a node). */
function buildTree(heap: ManagedHeap, depth: number): void {
  heap.alloc(2, 8);
  if (depth === 0) return;
  buildTree(heap, depth - 1);
  heap.set(heap.top(1), 0, heap.top());
  heap.pop();
  buildTree(heap, depth - 1);
  heap.set(heap.top(1), 1, heap.top());
  heap.pop();
}

function treeNodes(heap: ManagedHeap, node: number): number {
  if (node === 0) return 0;
  return 1 + treeNodes(heap, heap.get(node, 0)) + treeNodes(heap, heap.get(node, 1));
}

const rssPages = (m: TestMachine): number => m.kernel.current!.mm!.rss();
const committedPages = (m: TestMachine): number => m.kernel.current!.mm!.committedPages;

describe('markcompact: random mutator programs', () => {
  beforeAll(() => {
    // Programs up to mutatorOps' 300 steps, not fast-check's small default.
    fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'xlarge' });
  });
  afterAll(() => {
    fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'small' });
  });

  const property = (options: RunOptions, checkEveryStep: boolean) =>
    fc.property(mutatorOps(), (ops) => {
      const m = bootTestMachine({ memoryMiB: 16 });
      const free0 = settleFreePages(m);
      const committed0 = m.kernel.committedAs;
      const failures: unknown[] = [];
      const t = m.start(mutatorProgram(ops, { heap: heapOptions(options), checkEveryStep }, failures));
      m.runToEnd();
      if (failures.length > 0) throw failures[0];
      expect(t.waitStatus).toBe(0);
      expect(m.kernel.committedAs).toBe(committed0);
      expect(settleFreePages(m)).toBe(free0);
    });

  it('keeps exactly the reachable objects, intact, with every pointer updated; nothing leaks', () => {
    fc.assert(property({ tunables: { minHeapBytes: 1024 } }, false), { seed: 16, numRuns: 100 });
  });

  it('holds its invariants after every step, collecting at twice the live bytes (no minimum heap), every reference checked', () => {
    fc.assert(property({ tunables: { minHeapBytes: 0 }, check: 'full' }, true), { seed: 61, numRuns: 60 });
  });
});

describe('markcompact: sliding', () => {
  it('slides the survivors of a hand-drawn heap down in address order, to the addresses worked out by hand', () => {
    // before: | A 32 | B 32 | C 64 | D 32 | E 128 |      A.f0 -> E, B.f0 -> C, D.f0 -> E
    //         h      h+32   h+64   h+128  h+160   h+288
    // after:  | A 32 | C 64 | E 128 |                    B and D are garbage
    //         h      h+32   h+96    h+224
    runHeap((heap) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(1, 8);
      const c = heap.alloc(0, 40);
      const d = heap.alloc(2, 0);
      const e = heap.alloc(0, 100);
      const h = a;
      expect([b, c, d, e]).toEqual([h + 32, h + 64, h + 128, h + 160]);
      heap.set(a, 0, e);
      heap.set(b, 0, c);
      heap.set(d, 0, e);
      fillPattern(heap, a, 1);
      fillPattern(heap, c, 3);
      fillPattern(heap, e, 5);
      heap.setSlot(1, 0);
      heap.setSlot(3, 0);
      const before = { ...heap.report() };
      heap.collect('full');
      const r = heap.report();
      expect([heap.slot(0), heap.slot(2), heap.slot(4)]).toEqual([h, h + 32, h + 96]);
      expect(heap.get(h, 0)).toBe(h + 96);
      expect(objects(heap)).toEqual([h, h + 32, h + 96]);
      expect([
        holdsPattern(heap, h, 1),
        holdsPattern(heap, h + 32, 3),
        holdsPattern(heap, h + 96, 5),
      ]).toEqual([true, true, true]);
      expect(r.objectsMoved - before.objectsMoved).toBe(2);
      expect(r.bytesMoved - before.bytesMoved).toBe(64 + 128);
      expect(r.objectsFreed - before.objectsFreed).toBe(2);
      expect(r.bytesFreed - before.bytesFreed).toBe(32 + 32);
      expect(r.bytesMarked - before.bytesMarked).toBe(224);
      expect(r.liveBytes).toBe(224);
      expect(r.majorCollections - before.majorCollections).toBe(1);
      for (const obj of [h, h + 32, h + 96]) {
        expect(heap.cpu.load8(obj + H_GC)).toBe(0);
        expect(heap.cpu.load64(obj + H_AUX)).toBe(0);
      }
      expect(heap.alloc(0, 8)).toBe(h + 224);
      heap.collector.checkInvariants();
    });
  });

  it('updates pointers between moved objects, from globals and from the stack', () => {
    runHeap((heap) => {
      for (let i = 0; i < 20; i++) heap.alloc(0, 200); // garbage below, so everything moves
      const x = heap.alloc(2, 16);
      const y = heap.alloc(2, 16);
      const z = heap.alloc(0, 16);
      heap.set(x, 0, y);
      heap.set(y, 0, x);
      heap.set(y, 1, z);
      heap.set(x, 1, x);
      heap.setGlobal(0, z);
      heap.setGlobal(1, y);
      for (const [obj, id] of [
        [x, 1],
        [y, 2],
        [z, 3],
      ] as const)
        heap.store32(obj, 0, id);
      const depth = heap.depth();
      heap.setSlot(depth - 2, 0); // y: only the global and x keep it
      heap.setSlot(depth - 1, 0); // z: only the global and y keep it
      for (let i = 0; i < 20; i++) heap.setSlot(i, 0);
      heap.collect('full');
      const x2 = heap.slot(depth - 3);
      const y2 = heap.getGlobal(1);
      const z2 = heap.getGlobal(0);
      expect(x2).toBeLessThan(x);
      expect(y2).toBeLessThan(y);
      expect(z2).toBeLessThan(z);
      expect([heap.load32(x2, 0), heap.load32(y2, 0), heap.load32(z2, 0)]).toEqual([1, 2, 3]);
      expect([heap.get(x2, 0), heap.get(x2, 1), heap.get(y2, 0), heap.get(y2, 1)]).toEqual([y2, x2, x2, z2]);
      expect(objects(heap)).toEqual([x2, y2, z2]);
      expect(heap.report().objectsMoved).toBe(3);
      heap.collector.checkInvariants();
    });
  });

  it('moves a big object (many pages, not a whole number of copy chunks) below its garbage and keeps every byte', () => {
    runHeap(
      (heap) => {
        for (let i = 0; i < 8; i++) heap.alloc(0, 3000);
        const big = heap.alloc(3, 300_001);
        fillPattern(heap, big, 7);
        const huge = heap.alloc(0, 2 << 20); // past the heap goal and the grow step: committed as needed
        fillPattern(heap, huge, 9);
        heap.set(big, 0, huge);
        heap.set(big, 2, big);
        heap.setSlot(heap.depth() - 1, 0);
        for (let i = 0; i < 8; i++) heap.setSlot(i, 0);
        heap.collect('full');
        const big2 = heap.slot(8);
        const huge2 = heap.get(big2, 0);
        expect(big2).toBe(big - 8 * objectSize(0, 3000));
        expect(huge2).toBe(big2 + objectSize(3, 300_001));
        expect(heap.get(big2, 1)).toBe(0);
        expect(heap.get(big2, 2)).toBe(big2);
        expect(holdsPattern(heap, big2, 7)).toBe(true);
        expect(holdsPattern(heap, huge2, 9)).toBe(true);
        expect(heap.report().bytesMoved).toBe(objectSize(3, 300_001) + objectSize(0, 2 << 20));
        heap.collector.checkInvariants();
      },
      { tunables: { minHeapBytes: 256 << 10 } },
    );
  });

  it('frees a cycle of garbage, and the next object goes where the cycle was', () => {
    runHeap((heap) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(1, 8);
      const c = heap.alloc(1, 8);
      heap.set(a, 0, b);
      heap.set(b, 0, c);
      heap.set(c, 0, a);
      heap.pop(3);
      heap.collect('full');
      expect(objects(heap)).toEqual([]);
      expect(heap.report().objectsFreed).toBe(3);
      expect(heap.report().liveBytes).toBe(0);
      expect(heap.alloc(0, 8)).toBe(a);
      heap.collector.checkInvariants();
    });
  });

  it('hands out zeroed fields and data over memory a collection freed', () => {
    runHeap((heap) => {
      heap.alloc(0, 8);
      for (let i = 0; i < 30; i++) {
        const obj = heap.alloc(3, 100);
        heap.cpu.fillBytes(heap.data(obj), 100, 0xff);
        for (let f = 0; f < 3; f++) heap.set(obj, f, obj);
        heap.pop();
      }
      heap.collect('full');
      const bytes = new Uint8Array(100);
      for (let i = 0; i < 30; i++) {
        const obj = heap.alloc(3, 100);
        expect([heap.get(obj, 0), heap.get(obj, 1), heap.get(obj, 2)]).toEqual([0, 0, 0]);
        heap.cpu.loadBytes(heap.data(obj), bytes, 0, 100);
        expect(bytes.every((v) => v === 0)).toBe(true);
        heap.pop();
      }
    });
  });

  it('marks a wide object past a full mark stack by rescanning the heap', () => {
    runHeap(
      (heap) => {
        heap.alloc(2000, 8);
        for (let i = 0; i < 2000; i++) {
          heap.alloc(0, 40); // garbage between the children, so they move
          heap.pop();
          const child = heap.alloc(1, 8);
          heap.store32(child, 0, i);
          const grandchild = heap.alloc(0, 8);
          heap.store32(grandchild, 0, 10_000 + i);
          heap.set(child, 0, grandchild);
          heap.set(heap.slot(0), i, child);
          heap.pop(2);
        }
        const collector = heap.collector as MarkCompactCollector;
        const rescans = collector.overflowRescans;
        heap.collect('full');
        expect(collector.overflowRescans).toBeGreaterThan(rescans);
        const w = heap.slot(0);
        for (let i = 0; i < 2000; i++) {
          const child = heap.get(w, i);
          expect(heap.load32(child, 0)).toBe(i);
          expect(heap.load32(heap.get(child, 0), 0)).toBe(10_000 + i);
        }
        expect(objects(heap).length).toBe(4001);
        heap.collector.checkInvariants();
      },
      { markcompact: { markStackBytes: 1024 } },
    );
  });

  it("collect('minor') is a full collection", () => {
    runHeap((heap) => {
      heap.alloc(0, 8);
      heap.alloc(0, 8);
      heap.pop();
      heap.collect('minor');
      expect(heap.report().majorCollections).toBe(1);
      expect(heap.report().minorCollections).toBe(0);
      expect(heap.report().objectsFreed).toBe(1);
      expect(objects(heap).length).toBe(1);
    });
  });
});

describe('markcompact: the object-start bitmap', () => {
  it('isObject is true exactly at object starts below the bump pointer', () => {
    runHeap((heap) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(0, 100);
      const c = heap.alloc(0, 8);
      const isObject = (addr: number) => heap.collector.isObject(addr);
      expect([a, b, c].map(isObject)).toEqual([true, true, true]);
      expect([a + 16, b + 16, b + 64, b + 1, c + 32, a - 16, 0].map(isObject)).toEqual(Array(7).fill(false));
      heap.setSlot(1, 0);
      heap.collect('full');
      expect([heap.slot(0), heap.slot(2)].map(isObject)).toEqual([true, true]);
      expect(heap.slot(2)).toBe(b);
      expect(isObject(b + objectSize(0, 8))).toBe(false); // c's old address, past the bump pointer now
    });
  });
});

describe('markcompact: returning memory', () => {
  it('after most objects die, RSS, heapBytes and the commit charge drop; the same live set then keeps the same heap', () => {
    const n = 4000;
    runHeap(
      (heap, _ctx, m) => {
        buildList(heap, n, 1024);
        heap.setGlobal(0, heap.top());
        heap.pop();
        heap.collect('full');
        const rssBig = rssPages(m);
        const heapBig = heap.report().heapBytes;
        const commitBig = committedPages(m);
        expect(heapBig).toBeGreaterThan(n * 1056);
        // Keep the first 10 nodes of the list.
        let p = heap.getGlobal(0);
        for (let i = 0; i < 9; i++) p = heap.get(p, 0);
        heap.set(p, 0, 0);
        heap.collect('full');
        const r = heap.report();
        expect(r.liveBytes).toBe(10 * 1056);
        expect(r.nextGcBytes).toBe(64 << 10);
        // The goal (64 KiB) plus 10%, in pages, the bitmap's page and the mark stack's 16 pages.
        const kept = Math.ceil(((64 << 10) * 1.1) / PAGE) * PAGE;
        expect(r.heapBytes).toBe(kept + PAGE + (64 << 10));
        // Every page given back was resident but the last grow step's untouched slack.
        expect(rssBig - rssPages(m)).toBeGreaterThanOrEqual((heapBig - r.heapBytes - (256 << 10)) / PAGE);
        expect(rssPages(m)).toBeLessThan(rssBig / 4);
        expect(commitBig - committedPages(m)).toBe((heapBig - r.heapBytes) / PAGE);
        expect(listIds(heap, heap.getGlobal(0))).toEqual(Array.from({ length: 10 }, (_, i) => n - 1 - i));
        // Hysteresis: garbage up to the goal and a collection, five times: nothing mapped or given back.
        for (let round = 0; round < 5; round++) {
          for (let i = 0; i < 50; i++) {
            heap.alloc(0, 1000);
            heap.pop();
          }
          heap.collect('full');
          expect(heap.report().heapBytes).toBe(r.heapBytes);
        }
        heap.collector.checkInvariants();
      },
      { tunables: { minHeapBytes: 64 << 10 }, machine: { memoryMiB: 32 } },
    );
  });

  it('collects a heap whose pages are swapped out, and gives back its swap slots with its pages', () => {
    const { m } = runHeap(
      (heap, _ctx, m) => {
        const self = m.kernel.current!;
        self.residentLimitPages = 96;
        buildList(heap, 2000, 1024); // 2 MiB live, more than 96 pages
        heap.setGlobal(0, heap.top());
        heap.pop();
        for (let i = 0; i < 500; i++) {
          heap.alloc(0, 1000);
          heap.pop();
        }
        heap.collect('full');
        const swapped = self.mm!.swapEntries;
        expect(swapped).toBeGreaterThan(0);
        expect(listIds(heap, heap.getGlobal(0))).toEqual(Array.from({ length: 2000 }, (_, i) => 1999 - i));
        heap.setGlobal(0, 0);
        heap.collect('full');
        self.residentLimitPages = 0;
        expect(self.mm!.swapEntries).toBeLessThan(swapped / 4);
        expect(heap.report().heapBytes).toBeLessThan(1 << 20);
        heap.collector.checkInvariants();
      },
      { tunables: { minHeapBytes: 64 << 10 }, machine: { swapMiB: 16 } },
    );
    expect(m.kernel.swap!.freeSlots).toBe(m.kernel.swap!.usableSlots);
  });

  it('leaves no frame and no commit charge behind when the process exits', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    const free0 = settleFreePages(m);
    const committed0 = m.kernel.committedAs;
    let commitInside = 0;
    const t = m.start(function* (ctx) {
      const libc = new Libc(ctx);
      libc.staticData(16); // libc's static piece, which GcStats takes its timespec from, stays
      const mm = m.kernel.current!.mm!;
      const before = mm.committedPages;
      const heap = new ManagedHeap(libc, heapOptions({ tunables: { minHeapBytes: 128 << 10 } }));
      for (let round = 0; round < 4; round++) {
        buildTree(heap, 12);
        yield;
        heap.pop();
      }
      heap.collect('full');
      commitInside = mm.committedPages - before;
      heap.destroy();
      if (mm.committedPages !== before) return 2;
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    expect(commitInside).toBeGreaterThan(0);
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  });
});

describe('markcompact: the pacer and the heap limit', () => {
  it('collects when the used bytes reach live * (1 + GOGC/100), not before', () => {
    runHeap(
      (heap) => {
        buildList(heap, 100, 1032); // 100 objects of 16 + 8 + 1032 = 1056 bytes
        heap.collect('full');
        expect(heap.report().liveBytes).toBe(105_600);
        expect(heap.report().nextGcBytes).toBe(211_200);
        const collections = heap.report().majorCollections;
        for (let i = 0; i < 100; i++) {
          heap.alloc(1, 1032);
          heap.pop();
        }
        expect(heap.report().majorCollections).toBe(collections);
        heap.alloc(1, 1032);
        expect(heap.report().majorCollections).toBe(collections + 1);
        expect(heap.report().objectsFreed).toBe(100);
      },
      { tunables: { minHeapBytes: 64 << 10 } },
    );
  });

  it('GOGC 50 sets the goal at 1.5 x live; off (-1) never collects while the heap can grow', () => {
    runHeap(
      (heap) => {
        buildList(heap, 100, 1032);
        heap.collect('full');
        expect(heap.report().nextGcBytes).toBe(158_400);
      },
      { tunables: { gogc: 50, minHeapBytes: 0 } },
    );
    runHeap(
      (heap) => {
        for (let i = 0; i < 2000; i++) {
          heap.alloc(0, 1000);
          heap.pop();
        }
        expect(heap.report().majorCollections).toBe(0);
        expect(heap.report().nextGcBytes).toBe(0);
        expect(heap.report().heapBytes).toBeGreaterThan(2000 * 1008);
      },
      { tunables: { gogc: -1 } },
    );
  });

  it('with GOGC off and a heap limit, a full heap of garbage is collected and the allocation succeeds', () => {
    runHeap(
      (heap) => {
        for (let i = 0; i < 3000; i++) {
          heap.alloc(0, 1000);
          heap.pop();
          expect(heap.report().heapBytes).toBeLessThanOrEqual(512 << 10);
        }
        expect(heap.report().majorCollections).toBeGreaterThanOrEqual(5);
        expect(heap.report().objectsAllocated).toBe(3000);
      },
      { tunables: { gogc: -1, maxHeapBytes: 512 << 10 } },
    );
  });

  it('allocate returns 0 only after a full collection could not make room', () => {
    runHeap(
      (heap) => {
        const collections = heap.report().majorCollections;
        expect(heap.collector.allocate(0, 1 << 20, 0)).toBe(0);
        expect(heap.report().majorCollections).toBe(collections + 1);
        expect(heap.collector.allocate(0, 100_000, 0)).not.toBe(0);
      },
      { tunables: { maxHeapBytes: 512 << 10 } },
    );
  });

  it('running out of memory aborts the process with the out-of-memory message', () => {
    let peak = 0;
    const { t, log } = runAborting(
      (heap) => {
        heap.push(0);
        for (;;) {
          const node = heap.alloc(1, 1024);
          heap.set(node, 0, heap.top(1));
          peak = Math.max(peak, heap.report().heapBytes);
        }
      },
      { tunables: { maxHeapBytes: 512 << 10 } },
    );
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(log).toMatch(
      /out of memory: markcompact cannot allocate an object of 1 fields and 1024 data bytes/,
    );
    expect(peak).toBeLessThanOrEqual(512 << 10);
    expect(peak).toBeGreaterThan(400 << 10);
  });
});

describe('markcompact: a corrupt heap aborts the process', () => {
  it('a field pointing inside an object', () => {
    const { t, log } = runAborting((heap) => {
      const a = heap.alloc(1, 8);
      const b = heap.alloc(0, 64);
      heap.cpu.store64(a + 16, b + 16);
      heap.collect('full');
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(log).toMatch(
      /markcompact: field 0 of the object at 0x[0-9a-f]+ holds 0x[0-9a-f]+, not an object of the heap/,
    );
  });

  it('a root slot pointing outside the heap', () => {
    const { t, log } = runAborting((heap) => {
      heap.alloc(0, 8);
      heap.cpu.store64(heap.roots.stackAddress(0), 0x10000);
      heap.collect('full');
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(log).toMatch(/markcompact: root slot 64 holds 0x10000, not an object of the heap/);
  });

  it('a header whose size runs past the heap', () => {
    const { t, log } = runAborting((heap) => {
      const a = heap.alloc(0, 8);
      heap.alloc(0, 8);
      heap.cpu.store32(a + H_DATA_BYTES, 1 << 20);
      heap.collect('full');
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(log).toMatch(/markcompact compact: the header at 0x[0-9a-f]+ runs past the heap's end/);
  });

  it('a header whose fields run past the heap, before they are read', () => {
    const { t, log } = runAborting((heap) => {
      heap.alloc(0, 8);
      const b = heap.alloc(1, 8);
      heap.cpu.store16(b, 0xffff);
      heap.collect('full');
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(log).toMatch(/markcompact mark: the header at 0x[0-9a-f]+ runs past the heap's end/);
  });

  it('checkInvariants names a stray mark bit, a forwarding bit and a stale aux word', () => {
    runHeap((heap) => {
      const a = heap.alloc(0, 8);
      heap.collector.checkInvariants();
      heap.cpu.store8(a + H_GC, GC_MARK);
      expect(() => heap.collector.checkInvariants()).toThrow(/gc bits 0x1 outside a collection/);
      heap.cpu.store8(a + H_GC, GC_FORWARDED);
      expect(() => heap.collector.checkInvariants()).toThrow(GcAbort);
      heap.cpu.store8(a + H_GC, 0);
      heap.cpu.store64(a + H_AUX, a);
      expect(() => heap.collector.checkInvariants()).toThrow(/stale aux word/);
      heap.cpu.store64(a + H_AUX, 0);
      heap.collector.checkInvariants();
    });
  });
});

describe('markcompact: determinism and paging formats', () => {
  /** Binary trees: a long-lived tree, then short-lived ones; the report and the final addresses. */
  const workload = (format: string) => {
    let out = '';
    runHeap(
      (heap) => {
        buildTree(heap, 8);
        for (let i = 0; i < 6; i++) {
          buildTree(heap, 6);
          expect(treeNodes(heap, heap.top())).toBe(127);
          heap.pop();
        }
        expect(treeNodes(heap, heap.top())).toBe(511);
        heap.collect('full');
        heap.collector.checkInvariants();
        const base = objects(heap)[0]!;
        out = JSON.stringify({ report: heap.report(), offsets: objects(heap).map((o) => o - base) });
      },
      { tunables: { minHeapBytes: 16 << 10 }, machine: { format } },
    );
    return out;
  };

  it('the same program gives the same heap, statistics and pause times, run after run', () => {
    const first = workload('x86-64');
    expect(workload('x86-64')).toBe(first);
    expect(JSON.parse(first).report.majorCollections).toBeGreaterThan(3);
  });

  it('runs on the x86-32 and sv39 formats as on x86-64', () => {
    const offsets = (s: string) => JSON.stringify(JSON.parse(s).offsets);
    const x64 = offsets(workload('x86-64'));
    expect(offsets(workload('x86-32'))).toBe(x64);
    expect(offsets(workload('sv39'))).toBe(x64);
  });
});

describe('markcompact: tunables', () => {
  it('refuses a tunable out of range with a RangeError naming it', () => {
    runHeap((heap) => {
      const env = {
        libc: heap.libc,
        cpu: heap.cpu,
        roots: heap.roots,
        tunables: heap.tunables,
        stats: heap.stats,
      };
      expect(() => new MarkCompactCollector(env, { retainPercent: -1 })).toThrow(/retainPercent/);
      expect(() => new MarkCompactCollector(env, { reserveBytes: 2 ** 32 })).toThrow(/reserveBytes/);
    });
  });
});
