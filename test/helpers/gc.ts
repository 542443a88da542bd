/**
 * Helpers of the managed-heap tests: a JavaScript shadow model of the object graph, random
 * mutator programs over it, and an independent heap checker.
 *
 * The checker walks the roots in emulated memory (through the CPU, as the collectors do, but
 * with none of their code) and proves, after a collection:
 * - every reachable object is intact: its header's field count and data size, its id and data
 *   pattern, and each field pointing at the object the model says (or null);
 * - one object has one address (two paths to the same model object reach the same address);
 * - no object overlaps another, every reachable one is an allocated object of the heap, and
 *   no header still carries the forwarding bit;
 * - with `noGarbage`, nothing unreachable is still allocated (after a full collection).
 *
 * Every object a mutator allocates has at least 8 data bytes: its id (u32) at 0, and data byte
 * k >= 4 holding (id * 31 + k) & 0xff.
 */
import fc from 'fast-check';
import type { UserContext } from '../../kernel/proc/uapi.ts';
import type { CollectionKind, Collector } from '../../userland/gc/collector.ts';
import { GC_FORWARDED, H_GC, sizeOf } from '../../userland/gc/object.ts';
import { ManagedHeap, type ManagedHeapOptions } from '../../userland/gc/runtime.ts';
import { Libc } from '../../userland/libc/libc.ts';

export interface ModelObject {
  id: number;
  nptrs: number;
  dataBytes: number;
  /** Field i: the id of the object it points to, or 0. */
  fields: number[];
}

/** The program's graph as it should be: objects by id, the stack and the globals by id. */
export class ShadowModel {
  readonly objects = new Map<number, ModelObject>();
  readonly stack: number[] = [];
  readonly globals: number[];
  private nextId = 1;

  constructor(globals: number) {
    this.globals = new Array<number>(globals).fill(0);
  }

  /** A new object, pushed on the model's stack; its id. */
  alloc(nptrs: number, dataBytes: number): number {
    const id = this.nextId++;
    this.objects.set(id, { id, nptrs, dataBytes, fields: new Array<number>(nptrs).fill(0) });
    this.stack.push(id);
    return id;
  }

  /** Ids reachable from the stack and the globals. */
  reachable(): Set<number> {
    const seen = new Set<number>();
    const work = [...this.stack, ...this.globals].filter((id) => id !== 0);
    while (work.length > 0) {
      const id = work.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      for (const f of this.objects.get(id)!.fields) if (f !== 0 && !seen.has(f)) work.push(f);
    }
    return seen;
  }

  /** Forget the objects no root reaches (after a full collection freed them). */
  dropUnreachable(): void {
    const live = this.reachable();
    for (const id of [...this.objects.keys()]) if (!live.has(id)) this.objects.delete(id);
  }
}

/** Fill a new object's data: its id, then the pattern. */
export function stampObject(heap: ManagedHeap, obj: number, id: number, dataBytes: number): void {
  const cpu = heap.cpu;
  const data = heap.data(obj);
  cpu.store32(data, id);
  for (let k = 4; k < dataBytes; k++) cpu.store8(data + k, (id * 31 + k) & 0xff);
}

export interface CheckOptions {
  /** Nothing unreachable may still be allocated (right after a full collection). */
  noGarbage: boolean;
}

/** Throws an Error naming the first broken rule (see the header). */
export function checkHeap(heap: ManagedHeap, model: ShadowModel, options: CheckOptions): void {
  const cpu = heap.cpu;
  const collector: Collector = heap.collector;
  const allocated: number[] = [];
  collector.forEachObject((obj) => allocated.push(obj));
  for (let i = 1; i < allocated.length; i++) {
    const prev = allocated[i - 1]!;
    if (allocated[i]! < prev + sizeOf(cpu, prev))
      throw new Error(
        `checkHeap: the object at 0x${prev.toString(16)} overlaps 0x${allocated[i]!.toString(16)}`,
      );
  }
  const isAllocated = new Set(allocated);
  const addressOf = new Map<number, number>();
  const visit = (ref: number, id: number, where: string): void => {
    if (id === 0) {
      if (ref !== 0) throw new Error(`checkHeap: ${where} should be null, holds 0x${ref.toString(16)}`);
      return;
    }
    if (ref === 0) throw new Error(`checkHeap: ${where} should hold object ${id}, is null`);
    const known = addressOf.get(id);
    if (known !== undefined) {
      if (known !== ref)
        throw new Error(
          `checkHeap: object ${id} is at 0x${known.toString(16)} and at 0x${ref.toString(16)} (${where})`,
        );
      return;
    }
    if (!isAllocated.has(ref))
      throw new Error(
        `checkHeap: ${where} points at 0x${ref.toString(16)}, not an allocated object (object ${id})`,
      );
    addressOf.set(id, ref);
    const o = model.objects.get(id)!;
    if (heap.fields(ref) !== o.nptrs || heap.dataBytes(ref) !== o.dataBytes)
      throw new Error(
        `checkHeap: object ${id} at 0x${ref.toString(16)} has ${heap.fields(ref)} fields and ${heap.dataBytes(ref)} data bytes, not ${o.nptrs} and ${o.dataBytes}`,
      );
    if ((cpu.load8(ref + H_GC) & GC_FORWARDED) !== 0)
      throw new Error(`checkHeap: object ${id} at 0x${ref.toString(16)} still carries a forwarding bit`);
    const data = heap.data(ref);
    const seenId = cpu.load32(data);
    if (seenId !== id) throw new Error(`checkHeap: object ${id} at 0x${ref.toString(16)} holds id ${seenId}`);
    for (let k = 4; k < o.dataBytes; k++) {
      const b = cpu.load8(data + k);
      if (b !== ((id * 31 + k) & 0xff))
        throw new Error(`checkHeap: object ${id} data byte ${k} is ${b}, not ${(id * 31 + k) & 0xff}`);
    }
    for (let f = 0; f < o.nptrs; f++) visit(heap.get(ref, f), o.fields[f]!, `object ${id} field ${f}`);
  };
  for (let i = 0; i < model.stack.length; i++) visit(heap.slot(i), model.stack[i]!, `stack slot ${i}`);
  for (let g = 0; g < model.globals.length; g++) visit(heap.getGlobal(g), model.globals[g]!, `global ${g}`);
  if (heap.depth() !== model.stack.length)
    throw new Error(
      `checkHeap: the shadow stack holds ${heap.depth()} slots, the model ${model.stack.length}`,
    );
  if (options.noGarbage && allocated.length !== addressOf.size) {
    const garbage = allocated.filter((a) => ![...addressOf.values()].includes(a)).slice(0, 4);
    throw new Error(
      `checkHeap: ${allocated.length - addressOf.size} unreachable objects survived a full collection (first at ${garbage.map((a) => `0x${a.toString(16)}`).join(', ')})`,
    );
  }
  collector.checkInvariants();
}

/** One step of a random mutator. Indices are taken modulo what exists when the step runs. */
export type MutatorOp =
  | { op: 'alloc'; nptrs: number; dataBytes: number }
  | { op: 'link'; from: number; field: number; to: number }
  | { op: 'unlink'; from: number; field: number }
  | { op: 'load'; from: number; field: number }
  | { op: 'pop' }
  | { op: 'dup'; from: number }
  | { op: 'global'; index: number; from: number }
  | { op: 'clearGlobal'; index: number }
  | { op: 'collect'; kind: CollectionKind };

export const GLOBALS = 4;

/** fast-check arbitrary of mutator programs (allocation-heavy, with links, pops and collections). */
export function mutatorOps(maxLength = 300): fc.Arbitrary<MutatorOp[]> {
  const op: fc.Arbitrary<MutatorOp> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('alloc' as const),
        nptrs: fc.integer({ min: 0, max: 4 }),
        dataBytes: fc.integer({ min: 8, max: 80 }),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('link' as const),
        from: fc.nat(),
        field: fc.nat(),
        to: fc.nat(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant('unlink' as const), from: fc.nat(), field: fc.nat() }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant('load' as const), from: fc.nat(), field: fc.nat() }),
    },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('pop' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('dup' as const), from: fc.nat() }) },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant('global' as const), index: fc.nat(), from: fc.nat() }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('clearGlobal' as const), index: fc.nat() }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('collect' as const),
        kind: fc.constantFrom<CollectionKind>('minor', 'full'),
      }),
    },
  );
  return fc.array(op, { maxLength, size: 'max' });
}

/** Apply one op to the heap and the model alike. Returns true when it was a collection. */
export function applyOp(heap: ManagedHeap, model: ShadowModel, step: MutatorOp): boolean {
  const depth = model.stack.length;
  switch (step.op) {
    case 'alloc': {
      const obj = heap.alloc(step.nptrs, step.dataBytes);
      const id = model.alloc(step.nptrs, step.dataBytes);
      stampObject(heap, obj, id, step.dataBytes);
      return false;
    }
    case 'link':
    case 'unlink': {
      if (depth === 0) return false;
      const fromSlot = step.from % depth;
      const fromId = model.stack[fromSlot]!;
      if (fromId === 0) return false;
      const o = model.objects.get(fromId)!;
      if (o.nptrs === 0) return false;
      const field = step.field % o.nptrs;
      const toSlot = step.op === 'link' ? step.to % depth : -1;
      const toId = toSlot < 0 ? 0 : model.stack[toSlot]!;
      heap.set(heap.slot(fromSlot), field, toSlot < 0 ? 0 : heap.slot(toSlot));
      o.fields[field] = toId;
      return false;
    }
    case 'load': {
      // Read a pointer out of the heap onto the stack: how a mutator gets hold of an object
      // that only the heap references (the case a write barrier exists for).
      if (depth === 0) return false;
      const slot = step.from % depth;
      const id = model.stack[slot]!;
      if (id === 0) return false;
      const o = model.objects.get(id)!;
      if (o.nptrs === 0) return false;
      const field = step.field % o.nptrs;
      heap.push(heap.get(heap.slot(slot), field));
      model.stack.push(o.fields[field]!);
      return false;
    }
    case 'pop':
      if (depth === 0) return false;
      heap.pop();
      model.stack.pop();
      return false;
    case 'dup': {
      if (depth === 0) return false;
      const slot = step.from % depth;
      heap.push(heap.slot(slot));
      model.stack.push(model.stack[slot]!);
      return false;
    }
    case 'global': {
      if (depth === 0) return false;
      const slot = step.from % depth;
      const g = step.index % GLOBALS;
      heap.setGlobal(g, heap.slot(slot));
      model.globals[g] = model.stack[slot]!;
      return false;
    }
    case 'clearGlobal': {
      const g = step.index % GLOBALS;
      heap.setGlobal(g, 0);
      model.globals[g] = 0;
      return false;
    }
    case 'collect':
      heap.collect(step.kind);
      return true;
  }
}

export interface MutatorRunOptions {
  heap: ManagedHeapOptions;
  /** After each collection: check with noGarbage when the collection was full (default true). */
  fullCollectsEverything?: boolean;
  /** Check the heap after every op, not only after collections. */
  checkEveryStep?: boolean;
}

/**
 * A program that runs `ops` on a ManagedHeap and its model, checking the heap after every
 * collection, then collects twice and checks that only the reachable objects remain; then
 * drops every root, collects twice more, checks the heap is empty, and destroys it. Exit 0.
 * An Error thrown by a check goes to `failures` (the kernel would only log it).
 */
export function mutatorProgram(ops: readonly MutatorOp[], options: MutatorRunOptions, failures: unknown[]) {
  return function* (ctx: UserContext): Generator<void, number, void> {
    try {
      const libc = new Libc(ctx);
      const heap = new ManagedHeap(libc, { globals: GLOBALS, ...options.heap });
      const model = new ShadowModel(GLOBALS);
      const strict = options.fullCollectsEverything ?? true;
      for (const step of ops) {
        const collected = applyOp(heap, model, step);
        if (collected || options.checkEveryStep) {
          const full = collected && step.op === 'collect' && step.kind === 'full';
          if (full) model.dropUnreachable();
          checkHeap(heap, model, { noGarbage: full && strict });
        }
        yield;
      }
      heap.collect('full');
      heap.collect('full');
      model.dropUnreachable();
      checkHeap(heap, model, { noGarbage: strict });
      heap.pop(heap.depth());
      model.stack.length = 0;
      for (let g = 0; g < GLOBALS; g++) {
        heap.setGlobal(g, 0);
        model.globals[g] = 0;
      }
      heap.collect('full');
      heap.collect('full');
      model.dropUnreachable();
      checkHeap(heap, model, { noGarbage: strict });
      heap.destroy();
      return 0;
    } catch (err) {
      failures.push(err);
      return 1;
    }
  };
}
