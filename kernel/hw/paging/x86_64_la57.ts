/**
 * x86-64 five-level paging (LA57: PML5, PML4, PDPT, PD, PT), 57-bit virtual addresses, the same
 * 8-byte entry layout as four-level paging (see x86_64.ts).
 *
 * vmlab's virtual addresses are JavaScript numbers, exact below 2^53: the MMU translates those,
 * which covers PML5 indices 0..31. `vmlab translate` explains a walk for any 57-bit address.
 */
import {
  compileFormat,
  decodeEntry,
  type EntryFields,
  type EntryValue,
  encodeEntry,
  type FormatSpec,
} from './format.ts';
import { x86_64FamilySpec } from './x86_64.ts';

export const x86_64La57Spec: FormatSpec = x86_64FamilySpec('x86-64-la57', 5);
export const x86_64La57 = compileFormat(x86_64La57Spec);

/** Encode an LA57 entry (same layout as x86-64). */
export function x86_64La57Encode(fields: EntryFields): EntryValue {
  return encodeEntry(x86_64La57, fields);
}

/** Decode an LA57 entry. */
export function x86_64La57Decode(lo: number, hi: number) {
  return decodeEntry(x86_64La57, lo, hi);
}
