/**
 * Lab 4 grader: the student's garbage collector.
 *
 *   VMLAB_STUDENT=path/to/collector.ts npx vitest run --config test/vitest.config.ts userland/labs/gc
 *
 * Without VMLAB_STUDENT it grades the reference solution. Each test runs programs in a fresh
 * machine, with the student's collector behind vmlab's managed heap, and checks the heap with
 * an independent checker (test/helpers/gc.ts) that walks the roots in emulated memory against
 * a JavaScript model of the object graph:
 * - no live object is ever freed or damaged (contents, fields, identity) by a collection;
 * - no garbage survives two full collections;
 * - memory is reused: a program that allocates far more than the machine's RAM in total,
 *   with little live at a time, runs to its end;
 * - deep structures (a 100 000-node list) are collected without exhausting the host's stack;
 * - the heap goes back to the kernel at exit (no frame and no commit charge left behind);
 * - collections are counted and timed in the statistics.
 */
import { resolve } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../kernel/boot/configfile.ts';
import { loadModuleFile } from '../../../kernel/boot/studentcode.ts';
import type { UserContext } from '../../../kernel/proc/uapi.ts';
import { applyOp, checkHeap, GLOBALS, mutatorOps, ShadowModel } from '../../../test/helpers/gc.ts';
import { bootTestMachine, settleFreePages } from '../../../test/helpers/kernel.ts';
import type { Collector, CollectorEnv, CollectorFactory } from '../../gc/collector.ts';
import { ManagedHeap } from '../../gc/runtime.ts';
import { Libc } from '../../libc/libc.ts';

const STUDENT = process.env.VMLAB_STUDENT ?? resolve(import.meta.dirname, 'solution.ts');
let factory: CollectorFactory;

beforeAll(async () => {
  const mod = await loadModuleFile(STUDENT, 'a collector class');
  const cls = mod.default as (new (env: CollectorEnv) => Collector) | undefined;
  if (typeof cls !== 'function')
    throw new InputError(`${STUDENT}: the default export is not a collector class`);
  factory = (env) => new cls(env);
});

/**
 * Run `body` as a process of a fresh machine of `memoryMiB` with a managed heap on the
 * student's collector; rethrow what it threw; the process must exit 0 and leave no page or
 * commit charge behind.
 */
function inProcess(body: (heap: ManagedHeap) => Generator<void, void, void>, memoryMiB = 64): void {
  const m = bootTestMachine({ memoryMiB, tunables: { overcommitMemory: 1 } });
  const free0 = settleFreePages(m);
  const committed0 = m.kernel.committedAs;
  let failure: unknown;
  const t = m.start(function* (ctx: UserContext) {
    try {
      const heap = new ManagedHeap(new Libc(ctx), { collector: factory, globals: GLOBALS });
      yield* body(heap);
      heap.destroy();
    } catch (err) {
      failure = err;
    }
    return 0;
  });
  m.runToEnd();
  if (failure !== undefined) throw failure;
  expect(m.kernel.describeEnd(t)).toBe('exited 0');
  expect(m.kernel.committedAs, 'commit charge left behind at exit').toBe(committed0);
  expect(settleFreePages(m), 'pages left behind at exit').toBe(free0);
}

/** Random programs: the checker runs after every collection; `twoFull` adds the garbage rule. */
function randomPrograms(rule: 'live-intact' | 'no-garbage'): void {
  fc.assert(
    fc.property(mutatorOps(250), (ops) => {
      inProcess(function* (heap) {
        const model = new ShadowModel(GLOBALS);
        for (const step of ops) {
          if (applyOp(heap, model, step)) checkHeap(heap, model, { noGarbage: false });
          yield;
        }
        heap.collect('full');
        heap.collect('full');
        model.dropUnreachable();
        checkHeap(heap, model, { noGarbage: rule === 'no-garbage' });
      });
    }),
    { numRuns: 25, seed: 4, endOnFailure: true },
  );
}

describe('lab 4: a garbage collector', () => {
  it('never frees or damages a live object (random programs, checked after every collection)', () => {
    randomPrograms('live-intact');
  });

  it('frees all garbage within two full collections (random programs)', () => {
    randomPrograms('no-garbage');
  });

  it('reuses memory: 48 MiB allocated in total, under 1 MiB live, in a 32 MiB machine', () => {
    inProcess(function* (heap) {
      const keep = heap.push(0);
      for (let i = 0; i < 48 * 1024; i++) {
        const node = heap.alloc(1, 1000); // ~1 KiB each
        heap.store32(node, 0, i);
        if (i % 64 === 0) {
          heap.set(node, 0, heap.slot(keep)); // a list of every 64th node: ~750 KiB live
          heap.setSlot(keep, node);
        }
        heap.pop();
        yield;
      }
      let n = 0;
      for (let p = heap.slot(keep); p !== 0; p = heap.get(p, 0)) {
        expect(heap.load32(p, 0)).toBe(48 * 1024 - 64 - n * 64);
        n++;
      }
      expect(n).toBe(768);
    }, 32);
  });

  it('collects a 100 000-node list without running out of host stack', () => {
    inProcess(function* (heap) {
      const head = heap.push(0);
      for (let i = 0; i < 100_000; i++) {
        const node = heap.alloc(1, 8);
        heap.store32(node, 0, i);
        heap.set(node, 0, heap.slot(head));
        heap.setSlot(head, node);
        heap.pop();
        if (i % 1000 === 0) yield;
      }
      heap.collect('full');
      let n = 0;
      for (let p = heap.slot(head); p !== 0; p = heap.get(p, 0)) {
        expect(heap.load32(p, 0)).toBe(99_999 - n);
        n++;
      }
      expect(n).toBe(100_000);
    });
  });

  it('counts and times its collections, and what they freed', () => {
    inProcess(function* (heap) {
      for (let i = 0; i < 1000; i++) {
        heap.alloc(2, 48);
        heap.pop();
      }
      const before = heap.report().majorCollections;
      heap.collect('full');
      const r = heap.report();
      expect(r.majorCollections).toBe(before + 1);
      expect(r.bytesFreed).toBeGreaterThan(1000 * 64 * 0.9);
      expect(r.objectsAllocated).toBe(1000);
      expect(r.heapBytes).toBeGreaterThan(0);
      yield;
    });
  });
});
