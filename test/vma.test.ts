/**
 * VmaSet: the sorted VMA map on its own, with a kernel-object pool that can run out. Splits
 * fail cleanly, carve leaves the map as it was on failure, merges keep shared-object user counts,
 * and a property test drives the map against a page-set model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelPanic } from '../kernel/lib/panic.ts';
import {
  type AnonFamily,
  canMerge,
  type SharedAnonObject,
  VM_GROWSDOWN,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  type VmaBacking,
  type VmaObjectPool,
  VmaSet,
} from '../kernel/mm/vma.ts';

const P = 4096;
const RW = VM_READ | VM_WRITE;
const ANON: VmaBacking = { kind: 'anon' };

/** A vm_area_struct pool with a budget: alloc fails (-1) once `budget` objects are out. */
class FakePool implements VmaObjectPool {
  private next = 0x1000;
  readonly live = new Set<number>();
  constructor(public budget = Number.POSITIVE_INFINITY) {}
  alloc(): number {
    if (this.live.size >= this.budget) return -1;
    const a = this.next;
    this.next += 0x100;
    this.live.add(a);
    return a;
  }
  free(address: number): void {
    if (!this.live.delete(address)) throw new Error(`double free of ${address}`);
  }
}

function setup(budget?: number): { set: VmaSet; pool: FakePool } {
  const pool = new FakePool(budget);
  return { set: new VmaSet(P, pool), pool };
}

function add(
  set: VmaSet,
  startPage: number,
  endPage: number,
  fields: Partial<Parameters<VmaSet['create']>[0]> = {},
): Vma {
  const v = set.create({ start: startPage * P, end: endPage * P, flags: RW, backing: ANON, ...fields });
  if (v === undefined) throw new Error('create failed');
  return v;
}

/** The map as [startPage, endPage, flags] triples. */
function shape(set: VmaSet): Array<[number, number, number]> {
  return set.all().map((v) => [v.start / P, v.end / P, v.flags]);
}

function panicMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelPanic) return e.message;
    throw e;
  }
  return '';
}

function shmem(): SharedAnonObject {
  return { id: 1, pages: new Map(), users: 1, sizePages: 16 };
}

describe('VmaSet lookups', () => {
  it('keeps VMAs sorted and finds them by address', () => {
    const { set } = setup();
    add(set, 20, 30);
    add(set, 0x10, 0x12);
    add(set, 40, 41);
    expect(shape(set).map(([s]) => s)).toEqual([0x10, 20, 40]);
    expect(set.find(20 * P)?.start).toBe(20 * P);
    expect(set.find(30 * P - 1)?.start).toBe(20 * P);
    expect(set.find(30 * P)).toBeUndefined(); // end is exclusive
    expect(set.find(0)).toBeUndefined();
    expect(set.findNext(30 * P)?.start).toBe(40 * P); // the first VMA ending above
    expect(set.findNext(25 * P)?.start).toBe(20 * P);
    expect(set.findNext(41 * P)).toBeUndefined();
    const mid = set.find(25 * P)!;
    expect(set.prev(mid)?.start).toBe(0x10 * P);
    expect(set.next(mid)?.start).toBe(40 * P);
    expect(set.prev(set.all()[0]!)).toBeUndefined();
    expect(set.overlaps(30 * P, 40 * P)).toBe(false);
    expect(set.overlaps(30 * P, 40 * P + 1)).toBe(true);
    expect(set.overlapping(0, 100 * P).length).toBe(3);
    expect(set.overlapping(21 * P, 22 * P).map((v) => v.start)).toEqual([20 * P]);
    set.checkInvariants();
  });

  it('refuses overlapping or malformed VMAs with a panic naming the function', () => {
    const { set } = setup();
    add(set, 10, 20);
    expect(panicMessage(() => add(set, 19, 21))).toMatch(/^vmaInsert: .* overlaps/);
    expect(
      panicMessage(() => set.create({ start: 30 * P + 1, end: 31 * P, flags: RW, backing: ANON })),
    ).toMatch(/^vmaInsert: malformed/);
    expect(panicMessage(() => set.create({ start: 31 * P, end: 31 * P, flags: RW, backing: ANON }))).toMatch(
      /^vmaInsert: malformed/,
    );
    expect(set.count).toBe(1);
  });

  it('create fails without an object and changes nothing; destroy frees the object', () => {
    const { set, pool } = setup(1);
    const v = add(set, 1, 2);
    expect(set.create({ start: 5 * P, end: 6 * P, flags: RW, backing: ANON })).toBeUndefined();
    expect(set.count).toBe(1);
    set.destroy(v);
    expect(pool.live.size).toBe(0);
    expect(v.kobj).toBe(-1);
    expect(panicMessage(() => set.destroy(v))).toMatch(/^vmaDestroy: /);
  });

  it('checkInvariants catches an overlap made behind its back', () => {
    const { set } = setup();
    add(set, 1, 3);
    const b = add(set, 4, 6);
    b.start = 2 * P;
    expect(panicMessage(() => set.checkInvariants())).toMatch(/^vmaCheck: .* overlaps/);
  });
});

describe('split, carve and merge', () => {
  it('splits at a page boundary: the upper part is new and file offsets follow', () => {
    const { set, pool } = setup();
    const f = { ino: 7, path: '/f', device: 1, sizeBytes: 0, mapUsers: 1, pages: new Map() };
    const v = add(set, 10, 20, { backing: { kind: 'file', file: f }, pgoff: 3 });
    const upper = set.split(v, 14 * P)!;
    expect(f.mapUsers).toBe(2); // each VMA holds the file
    expect([v.start / P, v.end / P, upper.start / P, upper.end / P]).toEqual([10, 14, 14, 20]);
    expect(upper.pgoff).toBe(3 + 4);
    expect(pool.live.size).toBe(2);
    expect(panicMessage(() => set.split(v, 10 * P))).toMatch(/^vmaSplit: /);
    expect(panicMessage(() => set.split(v, 12 * P + 1))).toMatch(/^vmaSplit: /);
    expect(panicMessage(() => set.split(v, 14 * P))).toMatch(/^vmaSplit: /);
    set.checkInvariants();
  });

  it('a split without a kernel object fails and leaves the VMA whole', () => {
    const { set } = setup(1);
    const v = add(set, 10, 20);
    expect(set.split(v, 15 * P)).toBeUndefined();
    expect(shape(set)).toEqual([[10, 20, RW]]);
  });

  it('carve splits both ends, and on failure of the second split undoes the first', () => {
    const ok = setup();
    add(ok.set, 0, 10);
    expect(ok.set.carve(3 * P, 7 * P)).toBe(true);
    expect(shape(ok.set).map(([s, e]) => [s, e])).toEqual([
      [0, 3],
      [3, 7],
      [7, 10],
    ]);

    const { set, pool } = setup(2); // one VMA + one split
    add(set, 0, 10);
    const before = shape(set);
    expect(set.carve(3 * P, 7 * P)).toBe(false);
    expect(shape(set)).toEqual(before);
    expect(pool.live.size).toBe(1);
    set.checkInvariants();
  });

  it('carve across several VMAs and holes splits only the outer ones', () => {
    const { set } = setup();
    add(set, 0, 4);
    add(set, 6, 8, { flags: VM_READ });
    add(set, 10, 14);
    expect(set.carve(2 * P, 12 * P)).toBe(true);
    expect(shape(set).map(([s, e]) => [s, e])).toEqual([
      [0, 2],
      [2, 4],
      [6, 8],
      [10, 12],
      [12, 14],
    ]);
    expect(set.carve(20 * P, 30 * P)).toBe(true); // a hole: nothing to do
    expect(set.count).toBe(5);
  });

  it('merges neighbours with the same flags and lineage, not others', () => {
    const { set, pool } = setup();
    const famA: AnonFamily = { id: 1 };
    const famB: AnonFamily = { id: 2 };
    const a = add(set, 0, 2, { anon: famA });
    const b = add(set, 2, 4); // no lineage yet: merges into a's
    expect(canMerge(a, b, P)).toBe(true);
    const m = set.mergeAround(b);
    expect(m).toBe(a);
    expect([m.start / P, m.end / P, m.anon]).toEqual([0, 4, famA]);
    const c = add(set, 4, 6, { anon: famB });
    expect(set.mergeAround(c)).toBe(c); // different lineages stay apart
    const d = add(set, 6, 8, { flags: VM_READ });
    expect(set.mergeAround(d)).toBe(d); // different flags
    const e = add(set, 9, 10);
    expect(set.mergeAround(e)).toBe(e); // not adjacent
    const named = add(set, 8, 9, { flags: VM_READ, name: '/bin/x' });
    expect(set.mergeAround(named)).toBe(named); // different names
    expect(set.count).toBe(5);
    expect(pool.live.size).toBe(5);
    set.checkInvariants();
  });

  it('file and shared VMAs merge only when their offsets are contiguous', () => {
    const { set } = setup();
    const f = { ino: 9, path: '/f', device: 1, sizeBytes: 0, mapUsers: 2, pages: new Map() };
    const file: VmaBacking = { kind: 'file', file: f };
    const a = add(set, 0, 2, { backing: file, pgoff: 0 });
    const b = add(set, 2, 4, { backing: { ...file }, pgoff: 5 });
    expect(canMerge(a, b, P)).toBe(false);
    b.pgoff = 2;
    expect(canMerge(a, b, P)).toBe(true);
    const obj = shmem();
    const s1 = add(set, 10, 12, { flags: RW | VM_SHARED, backing: { kind: 'shmem', object: obj } });
    const s2 = add(set, 12, 13, { flags: RW | VM_SHARED, backing: { kind: 'shmem', object: shmem() } });
    expect(canMerge(s1, s2, P)).toBe(false); // different objects
  });

  it('a shared anonymous object counts every VMA that refers to it through splits and merges', () => {
    // Regression: partial munmap of a MAP_SHARED|MAP_ANONYMOUS mapping split the VMA without a
    // new user, and the object's pages were freed while another VMA still used it.
    const { set } = setup();
    const obj = shmem();
    const v = add(set, 0, 8, { flags: RW | VM_SHARED, backing: { kind: 'shmem', object: obj } });
    expect(set.carve(2 * P, 4 * P)).toBe(true);
    expect(set.count).toBe(3);
    expect(obj.users).toBe(3);
    set.mergeRange(0, 8 * P);
    expect(set.count).toBe(1);
    expect(set.all()[0]).toBe(v);
    expect(obj.users).toBe(1);
    // A failed carve gives the user back along with the split.
    const tight = setup(2);
    const obj2 = shmem();
    add(tight.set, 0, 8, { flags: RW | VM_SHARED, backing: { kind: 'shmem', object: obj2 } });
    expect(tight.set.carve(2 * P, 4 * P)).toBe(false);
    expect(obj2.users).toBe(1);
  });

  it('mergeRange merges every compatible pair inside and at the edges of a range', () => {
    const { set } = setup();
    for (let i = 0; i < 6; i++) add(set, i, i + 1);
    add(set, 7, 8);
    set.mergeRange(2 * P, 4 * P);
    // Every pair inside [2, 4] and at its edges merged; [5, 6) lies beyond the range.
    expect(shape(set).map(([s, e]) => [s, e])).toEqual([
      [0, 5],
      [5, 6],
      [7, 8],
    ]);
    set.mergeRange(0, 8 * P);
    expect(shape(set).map(([s, e]) => [s, e])).toEqual([
      [0, 6],
      [7, 8],
    ]);
  });
});

describe('findFreeTopDown', () => {
  it('takes the highest gap that fits, below `below` and not under `above`', () => {
    const { set } = setup();
    add(set, 100, 110);
    add(set, 50, 60);
    const opts = { below: 200 * P, above: 10 * P, stackGap: 0 };
    expect(set.findFreeTopDown(10 * P, opts)).toBe(190 * P);
    expect(set.findFreeTopDown(90 * P, opts)).toBe(110 * P); // [110, 200) fits exactly
    expect(set.findFreeTopDown(91 * P, opts)).toBe(-1); // [60, 100) and [10, 50) are too small
    expect(set.findFreeTopDown(40 * P, opts)).toBe(110 * P + 50 * P);
    expect(set.findFreeTopDown(40 * P, { ...opts, below: 100 * P })).toBe(60 * P);
    expect(set.findFreeTopDown(41 * P, { ...opts, below: 100 * P })).toBe(-1);
    expect(set.findFreeTopDown(40 * P, { ...opts, below: 50 * P })).toBe(10 * P);
  });

  it('keeps the stack guard gap free below a VM_GROWSDOWN VMA', () => {
    const { set } = setup();
    const stack = add(set, 1000, 1032, { flags: RW | VM_GROWSDOWN });
    expect(set.gapStart(stack, 256 * P)).toBe((1000 - 256) * P);
    const at = set.findFreeTopDown(P, { below: 2000 * P, above: P, stackGap: 256 * P });
    expect(at).toBe(1032 * P + (2000 - 1033) * P); // above the stack is free
    const below = set.findFreeTopDown(P, { below: 1010 * P, above: P, stackGap: 256 * P });
    expect(below).toBe((1000 - 256 - 1) * P);
  });
});

describe('VmaSet against a page-set model', () => {
  type Op =
    | { kind: 'map'; start: number; pages: number; flags: number }
    | { kind: 'unmap'; start: number; pages: number }
    | { kind: 'protect'; start: number; pages: number; flags: number }
    | { kind: 'budget'; extra: number };
  const PAGES = 64;
  const flagsArb = fc.constantFrom(VM_READ, RW, VM_READ | 0x4);
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('map' as const),
      start: fc.nat(PAGES - 1),
      pages: fc.integer({ min: 1, max: 12 }),
      flags: flagsArb,
    }),
    fc.record({
      kind: fc.constant('unmap' as const),
      start: fc.nat(PAGES - 1),
      pages: fc.integer({ min: 1, max: 16 }),
    }),
    fc.record({
      kind: fc.constant('protect' as const),
      start: fc.nat(PAGES - 1),
      pages: fc.integer({ min: 1, max: 16 }),
      flags: flagsArb,
    }),
    fc.record({ kind: fc.constant('budget' as const), extra: fc.nat(3) }),
  );

  it('matches the model after every operation, and fails whole when objects run out', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const pool = new FakePool(Number.POSITIVE_INFINITY);
        const set = new VmaSet(P, pool);
        const model = new Map<number, number>(); // page -> flags
        for (const op of ops) {
          if (op.kind === 'budget') {
            pool.budget = set.count + op.extra; // tighten or loosen the object supply
            continue;
          }
          const start = op.start * P;
          const end = Math.min(PAGES, op.start + op.pages) * P;
          const before = shape(set);
          if (op.kind === 'map') {
            if (set.overlaps(start, end)) continue;
            const v = set.create({ start, end, flags: op.flags, backing: ANON });
            if (v === undefined) {
              expect(shape(set)).toEqual(before);
              continue;
            }
            set.mergeAround(v);
            for (let p = op.start; p < end / P; p++) model.set(p, op.flags);
          } else if (op.kind === 'unmap') {
            if (!set.carve(start, end)) {
              expect(shape(set)).toEqual(before);
              continue;
            }
            for (const v of set.overlapping(start, end)) set.destroy(v);
            for (let p = op.start; p < end / P; p++) model.delete(p);
          } else {
            let mapped = true;
            for (let p = op.start; p < end / P; p++) if (!model.has(p)) mapped = false;
            if (!mapped) continue;
            if (!set.carve(start, end)) {
              expect(shape(set)).toEqual(before);
              continue;
            }
            for (const v of set.overlapping(start, end)) v.flags = op.flags;
            set.mergeRange(start, end);
            for (let p = op.start; p < end / P; p++) model.set(p, op.flags);
          }
          set.checkInvariants();
          // Same pages with the same flags, one kernel object per VMA.
          const seen = new Map<number, number>();
          for (const v of set.all()) for (let a = v.start; a < v.end; a += P) seen.set(a / P, v.flags);
          expect([...seen.entries()].sort((x, y) => x[0] - y[0])).toEqual(
            [...model.entries()].sort((x, y) => x[0] - y[0]),
          );
          expect(pool.live.size).toBe(set.count);
          for (let p = 0; p < PAGES; p++) {
            expect(set.find(p * P + 5)?.flags).toBe(model.get(p));
          }
        }
      }),
      { seed: 4242, numRuns: 150 },
    );
  });
});
