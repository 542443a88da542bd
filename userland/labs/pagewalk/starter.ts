/**
 * Lab 1: page walks. Your answers and your walker go here (see docs/labs/pagewalk.md).
 */
import type { Access, Mode, PartAAnswers, WalkMachine, WalkResult } from './walker.ts';

/**
 * Part A. Set `seed` to the number your instructor gave you, run
 *   npx vmlab translate --generate 8 -s SEED
 * and work out each address by hand: `PA VALUE` in hex (e.g. '0xbf3 0x32') or 'fault'.
 */
export const partA: PartAAnswers = {
  seed: 0,
  answers: ['?', '?', '?', '?', '?', '?', '?', '?'],
};

/**
 * Part B. Translate `va` by walking the page tables of `m`, as the MMU does: return the
 * physical address, or the fault and the level of the entry that caused it.
 *
 * TODO: for each level from the root: find the entry (table frame, index, entry size), read
 * it with m.readEntry, check present and reserved bits, gather the permissions; then check
 * the access against them and build the physical address. The handout lists every rule.
 */
export default function walk(m: WalkMachine, va: number, access: Access, mode: Mode): WalkResult {
  void m;
  void va;
  void access;
  void mode;
  return { fault: 'not-present', level: 0 };
}
