/**
 * Lab 1's interface: what a page-table walker is given and what it returns.
 *
 * The walker sees physical memory only through `readEntry`, as a hardware walker sees it
 * through the memory bus; it never writes (the accessed and dirty bits are left to the MMU).
 */
import type { FormatSpec } from '../../../kernel/hw/paging/format.ts';

export type Access = 'read' | 'write' | 'execute';
export type Mode = 'user' | 'kernel';
export type WalkFault = 'not-present' | 'reserved' | 'protection' | 'bus';

/** A physical address, or a fault and the level (0 = root) of the entry that caused it. */
export type WalkResult = { pa: number } | { fault: WalkFault; level: number };

export interface WalkMachine {
  /**
   * The paging format: pageBytes, levelBits (root first), entryBytes, flags (bit positions of
   * present, writable, user, readable, execute, noExecute … ; a flag the format lacks is
   * absent), pfn ({ shift, width }), reservedBits ([first, last] ranges), hugePageBit and
   * permissionScope ('all-levels' as x86, 'leaf-only' as RISC-V).
   */
  format: FormatSpec;
  /** Frames of physical memory; frame numbers from `frames` up are not installed. */
  frames: number;
  /** Frame of the root table (CR3, satp, the PDBR). */
  root: number;
  /** The entry of `format.entryBytes` bytes at physical address `pa` (little-endian). */
  readEntry(pa: number): bigint;
}

/** The function a student writes: `export default function walk(...)`. */
export type Walker = (machine: WalkMachine, va: number, access: Access, mode: Mode) => WalkResult;

/** Part A's answers: one string per address, `PA VALUE` in hex (`0x1a3c 0x1d`) or `fault`. */
export interface PartAAnswers {
  seed: number;
  answers: string[];
}
