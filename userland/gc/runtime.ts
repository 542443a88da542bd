/**
 * The managed heap as a program uses it: allocate objects, read and write their fields and
 * data, keep references in root slots (globals and a shadow stack), collect. One collector
 * does the work behind it (collector.ts); the heap, its objects and all their metadata are in
 * the process's emulated memory.
 *
 * The rule for references (as in any runtime with a moving collector): a reference is valid
 * until the next allocation or collection. A program keeps what it needs across one in a root
 * slot or in a field of a rooted object, and reads it back from there. alloc() returns the new
 * object already pushed on the shadow stack (a new reference the caller owns, as CPython's
 * constructors return one); the caller pops it when done.
 *
 * What a ManagedHeap is not told comes from the environment: VMLAB_GC names the collector
 * (default marksweep), GOGC sets the pacer (a number, or off), VMLAB_GC_INCREMENTAL=1 marks in
 * slices, VMLAB_GC_CHECK=full checks every reference a program passes against the heap.
 *
 * Misuse is the process's own error: a field index out of range, a reference that is not an
 * object (with checking on), a stack underflow, or running out of memory abort the process with
 * a message (SIGABRT); a null reference faults (SIGSEGV), as it would in C.
 */
import type { GcReport, UserCpu } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import {
  type CollectionKind,
  type Collector,
  type CollectorFactory,
  DEFAULT_TUNABLES,
  GcAbort,
  GcStats,
  type GcTunables,
} from './collector.ts';
import { collectorFactory } from './collectors.ts';
import { dataAddress, FIELD_BYTES, HEADER_BYTES, MAX_DATA_BYTES, MAX_FIELDS, MAX_TYPE } from './object.ts';
import { RootSet, type RootSetOptions } from './roots.ts';

export type GcCheck = 'cheap' | 'full';

export interface ManagedHeapOptions extends RootSetOptions {
  /** A collector's name (collectors.ts) or a factory of the program's own; default $VMLAB_GC, else marksweep. */
  collector?: string | CollectorFactory;
  /** Overrides of the tunables (after those from the environment). */
  tunables?: Partial<GcTunables>;
  /** 'full': every reference passed in is checked to be an object (default $VMLAB_GC_CHECK, else cheap). */
  check?: GcCheck;
}

export class ManagedHeap {
  readonly libc: Libc;
  readonly cpu: UserCpu;
  readonly roots: RootSet;
  readonly collector: Collector;
  readonly stats: GcStats;
  readonly tunables: Readonly<GcTunables>;
  readonly check: GcCheck;
  private destroyed = false;

  /** Throws RangeError for an unknown collector or a bad tunable (naming the variable). */
  constructor(libc: Libc, options: ManagedHeapOptions = {}) {
    const env = libc.ctx.env;
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    const choice = options.collector ?? env.VMLAB_GC ?? 'marksweep';
    const factory = typeof choice === 'string' ? collectorFactory(choice) : choice;
    this.tunables = { ...tunablesFromEnv(env), ...options.tunables };
    checkTunables(this.tunables);
    this.check = options.check ?? checkFromEnv(env.VMLAB_GC_CHECK);
    this.roots = new RootSet(libc, options);
    this.stats = new GcStats(libc, typeof choice === 'string' ? choice : 'custom');
    this.collector = factory({
      libc,
      cpu: this.cpu,
      roots: this.roots,
      tunables: this.tunables,
      stats: this.stats,
    });
    this.stats.report.collector = this.collector.name;
    this.stats.publish();
  }

  /**
   * A new object with `nptrs` null fields and `dataBytes` zeroed data bytes, pushed on the
   * shadow stack; its reference. Aborts the process when the heap is exhausted.
   */
  alloc(nptrs: number, dataBytes: number, type = 0): number {
    if (!Number.isInteger(nptrs) || nptrs < 0 || nptrs > MAX_FIELDS)
      throw new GcAbort(`alloc: ${nptrs} pointer fields (0 to ${MAX_FIELDS})`);
    if (!Number.isInteger(dataBytes) || dataBytes < 0 || dataBytes > MAX_DATA_BYTES)
      throw new GcAbort(`alloc: ${dataBytes} data bytes (0 to ${MAX_DATA_BYTES})`);
    if (!Number.isInteger(type) || type < 0 || type > MAX_TYPE)
      throw new GcAbort(`alloc: type ${type} (0 to ${MAX_TYPE})`);
    const obj = this.collector.allocate(nptrs, dataBytes, type);
    if (obj === 0)
      throw new GcAbort(
        `out of memory: ${this.collector.name} cannot allocate an object of ${nptrs} fields and ${dataBytes} data bytes`,
      );
    this.push(obj);
    return obj;
  }

  /** Field `i` of `obj`. */
  get(obj: number, i: number): number {
    this.checkField(obj, i, 'get');
    return this.cpu.load64(obj + HEADER_BYTES + FIELD_BYTES * i);
  }

  /** Store `ref` (an object or 0) into field `i` of `obj`, through the collector's write barrier. */
  set(obj: number, i: number, ref: number): void {
    this.checkField(obj, i, 'set');
    if (ref !== 0) this.checkRef(ref, 'set');
    this.collector.writeField(obj, i, ref);
  }

  /** Address of the data part of `obj` (valid until the next allocation). */
  data(obj: number): number {
    if (this.check === 'full') this.checkRef(obj, 'data');
    return dataAddress(obj, this.cpu.load16(obj));
  }

  /** Data bytes of `obj`. */
  dataBytes(obj: number): number {
    return this.cpu.load32(obj + 4);
  }

  /** Pointer fields of `obj`. */
  fields(obj: number): number {
    return this.cpu.load16(obj);
  }

  /** The u32 at byte `offset` of `obj`'s data. */
  load32(obj: number, offset: number): number {
    this.checkData(obj, offset, 4, 'load32');
    return this.cpu.load32(dataAddress(obj, this.cpu.load16(obj)) + offset);
  }

  /** Store a u32 at byte `offset` of `obj`'s data. */
  store32(obj: number, offset: number, value: number): void {
    this.checkData(obj, offset, 4, 'store32');
    this.cpu.store32(dataAddress(obj, this.cpu.load16(obj)) + offset, value);
  }

  // ---- roots ----

  /** Push `ref` on the shadow stack; its slot index. */
  push(ref: number): number {
    if (ref !== 0 && this.check === 'full') this.checkRef(ref, 'push');
    const slot = this.roots.push(ref);
    this.collector.rootStored?.(0, ref);
    return slot;
  }

  /** Pop `count` slots off the shadow stack; the reference in the last one popped. */
  pop(count = 1): number {
    let ref = 0;
    for (let n = 0; n < count; n++) {
      ref = this.roots.pop();
      this.collector.rootStored?.(ref, 0);
    }
    return ref;
  }

  /** The reference in shadow-stack slot `slot`. */
  slot(slot: number): number {
    return this.roots.get(slot);
  }

  /** The reference `k` slots below the top of the shadow stack (0: the top). */
  top(k = 0): number {
    return this.roots.get(this.roots.depth - 1 - k);
  }

  /** Store `ref` in shadow-stack slot `slot`. */
  setSlot(slot: number, ref: number): void {
    if (ref !== 0) this.checkRef(ref, 'setSlot');
    const old = this.roots.set(slot, ref);
    this.collector.rootStored?.(old, ref);
  }

  /** Slots in use on the shadow stack. */
  depth(): number {
    return this.roots.depth;
  }

  getGlobal(i: number): number {
    return this.roots.getGlobal(i);
  }

  setGlobal(i: number, ref: number): void {
    if (ref !== 0) this.checkRef(ref, 'setGlobal');
    const old = this.roots.setGlobal(i, ref);
    this.collector.rootStored?.(old, ref);
  }

  // ---- the collector ----

  /** Collect now: 'full' (every generation) or 'minor' (the young one, where there is one). */
  collect(kind: CollectionKind = 'full'): void {
    this.collector.collect(kind);
  }

  /** The statistics so far (the object the kernel was last sent, kept up to date). */
  report(): Readonly<GcReport> {
    return this.stats.report;
  }

  /** Unmap the heap and the roots; the last report goes to the kernel. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.stats.publish();
    this.collector.destroy();
    this.libc.munmap(this.roots.base, this.roots.bytes);
  }

  private checkField(obj: number, i: number, what: string): void {
    if (this.check === 'full') this.checkRef(obj, what);
    const nptrs = this.cpu.load16(obj); // a null obj faults here: SIGSEGV
    if (!Number.isInteger(i) || i < 0 || i >= nptrs)
      throw new GcAbort(
        `${what}: field ${i} out of range (the object at 0x${obj.toString(16)} has ${nptrs})`,
      );
  }

  private checkData(obj: number, offset: number, bytes: number, what: string): void {
    if (this.check === 'full') this.checkRef(obj, what);
    const size = this.cpu.load32(obj + 4);
    if (!Number.isInteger(offset) || offset < 0 || offset + bytes > size)
      throw new GcAbort(
        `${what}: data bytes ${offset}..${offset + bytes} out of range (the object at 0x${obj.toString(16)} has ${size})`,
      );
  }

  private checkRef(ref: number, what: string): void {
    if (ref % 16 !== 0 || (this.check === 'full' && !this.collector.isObject(ref)))
      throw new GcAbort(`${what}: 0x${ref.toString(16)} is not an object of the ${this.collector.name} heap`);
  }
}

/** The tunables with what the environment sets (GOGC, VMLAB_GC_INCREMENTAL). RangeError on a bad value. */
export function tunablesFromEnv(env: Readonly<Record<string, string>>): GcTunables {
  const t: GcTunables = { ...DEFAULT_TUNABLES };
  const gogc = env.GOGC;
  if (gogc !== undefined) {
    if (gogc === 'off') t.gogc = -1;
    else if (/^\d+$/.test(gogc)) t.gogc = Number(gogc);
    else throw new RangeError(`GOGC: '${gogc}' is not a whole number or off`);
  }
  const inc = env.VMLAB_GC_INCREMENTAL;
  if (inc !== undefined) {
    if (inc !== '0' && inc !== '1') throw new RangeError(`VMLAB_GC_INCREMENTAL: '${inc}' is not 0 or 1`);
    t.incremental = inc === '1';
  }
  return t;
}

/** RangeError naming the first tunable out of its range. */
export function checkTunables(t: Readonly<GcTunables>): void {
  const wholeAtLeast = (name: keyof GcTunables, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new RangeError(`gc tunable ${name}: ${v} is not a whole number >= ${min}`);
  };
  if (t.gogc !== -1) wholeAtLeast('gogc', t.gogc, 0);
  wholeAtLeast('minHeapBytes', t.minHeapBytes, 0);
  wholeAtLeast('markSliceBytes', t.markSliceBytes, 1);
  wholeAtLeast('nurseryBytes', t.nurseryBytes, 4096);
  wholeAtLeast('promotionAge', t.promotionAge, 1);
  if (t.promotionAge > 7)
    throw new RangeError(`gc tunable promotionAge: ${t.promotionAge} is more than 7 (3 age bits)`);
  wholeAtLeast('maxHeapBytes', t.maxHeapBytes, 0);
  if (t.thresholds.length !== 3) throw new RangeError('gc tunable thresholds: three numbers');
  for (const v of t.thresholds) wholeAtLeast('thresholds', v, 1);
}

function checkFromEnv(value: string | undefined): GcCheck {
  if (value === undefined || value === 'cheap' || value === '0') return 'cheap';
  if (value === 'full' || value === '1') return 'full';
  throw new RangeError(`VMLAB_GC_CHECK: '${value}' is not cheap or full`);
}
