/**
 * The root set of a managed process, in its emulated memory: a block of global slots and a
 * shadow stack (the slots a compiled program would keep in stack frames, kept where a collector
 * can find them, as LLVM's shadow-stack GC strategy does). Both are arrays of 8-byte
 * references (0 is null) in one anonymous mapping:
 *
 *   base                       base + 8 * globals          base + 8 * (globals + stackSlots)
 *   +--------------------------+------------------------------------------+
 *   | global[0 .. globals)     | stack[0 .. depth)  (free above depth)    |
 *   +--------------------------+------------------------------------------+
 *
 * The stack depth is a register of the mutator (a JavaScript number here, as a stack pointer
 * lives in a CPU register). Root slot i, for a collector: i < globals is global[i], the rest is
 * stack[i - globals]; slotCount() = globals + depth.
 *
 * Collectors read and update slots through the CPU (a moving collector writes new addresses
 * back); the runtime keeps the stack's slots above `depth` zero.
 */
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type UserCpu } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import { GcAbort } from './collector.ts';

export const SLOT_BYTES = 8;

export interface RootSetOptions {
  /** Global slots (default 64). */
  globals?: number;
  /** Shadow-stack slots (default 65536: 512 KiB). */
  stackSlots?: number;
}

export class RootSet {
  readonly cpu: UserCpu;
  readonly globals: number;
  readonly stackSlots: number;
  /** Address of global[0]; the stack follows. */
  readonly base: number;
  readonly bytes: number;
  /** Slots in use on the shadow stack. */
  depth = 0;

  /** Maps the slots; throws GcAbort when the kernel refuses the mapping. */
  constructor(libc: Libc, options: RootSetOptions = {}) {
    this.cpu = libc.ctx.cpu;
    this.globals = options.globals ?? 64;
    this.stackSlots = options.stackSlots ?? 65536;
    if (!Number.isInteger(this.globals) || this.globals < 0 || this.globals > 1 << 20)
      throw new RangeError(`roots: globals ${this.globals} is not a whole number from 0 to ${1 << 20}`);
    if (!Number.isInteger(this.stackSlots) || this.stackSlots < 1 || this.stackSlots > 1 << 24)
      throw new RangeError(`roots: stackSlots ${this.stackSlots} is not a whole number from 1 to ${1 << 24}`);
    this.bytes = (this.globals + this.stackSlots) * SLOT_BYTES;
    const base = libc.mmap(0, this.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base === -1)
      throw new GcAbort(`roots: cannot map ${this.bytes} bytes of root slots (errno ${libc.errno})`);
    this.base = base;
  }

  /** Root slots a collector scans: the globals and the live part of the stack. */
  slotCount(): number {
    return this.globals + this.depth;
  }

  /** Address of root slot `i` (0 <= i < slotCount()). */
  slotAddress(i: number): number {
    return this.base + SLOT_BYTES * i;
  }

  /** Address of stack slot `i` (0 is the bottom). */
  stackAddress(i: number): number {
    return this.base + SLOT_BYTES * (this.globals + i);
  }

  /** Push `ref`; its stack index. GcAbort on overflow. */
  push(ref: number): number {
    if (this.depth === this.stackSlots)
      throw new GcAbort(`shadow stack overflow: ${this.stackSlots} slots in use`);
    const i = this.depth++;
    this.cpu.store64(this.stackAddress(i), ref);
    return i;
  }

  /** Pop the top slot; the reference it held. GcAbort when the stack is empty. */
  pop(): number {
    if (this.depth === 0) throw new GcAbort('shadow stack underflow: pop of an empty stack');
    const va = this.stackAddress(--this.depth);
    const ref = this.cpu.load64(va);
    this.cpu.store64(va, 0);
    return ref;
  }

  /** The reference in stack slot `i`. GcAbort when `i` is not a live slot. */
  get(i: number): number {
    this.checkStackIndex(i);
    return this.cpu.load64(this.stackAddress(i));
  }

  /** Store `ref` in stack slot `i`; the reference it replaced. */
  set(i: number, ref: number): number {
    this.checkStackIndex(i);
    const va = this.stackAddress(i);
    const old = this.cpu.load64(va);
    this.cpu.store64(va, ref);
    return old;
  }

  getGlobal(i: number): number {
    this.checkGlobalIndex(i);
    return this.cpu.load64(this.slotAddress(i));
  }

  /** Store `ref` in global `i`; the reference it replaced. */
  setGlobal(i: number, ref: number): number {
    this.checkGlobalIndex(i);
    const va = this.slotAddress(i);
    const old = this.cpu.load64(va);
    this.cpu.store64(va, ref);
    return old;
  }

  private checkStackIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.depth)
      throw new GcAbort(`shadow stack slot ${i} is not in use (depth ${this.depth})`);
  }

  private checkGlobalIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.globals)
      throw new GcAbort(`global slot ${i} does not exist (${this.globals} globals)`);
  }
}
