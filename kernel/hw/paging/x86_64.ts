/**
 * x86-64 four-level paging (PML4, PDPT, PD, PT): 9/9/9/9/12, 8-byte entries, 48-bit virtual
 * addresses. vmlab models MAXPHYADDR = 46, so bits 46..51 of an entry are reserved, as is PS
 * (bit 7) in a PML4 entry. Huge pages (PS in a PDPT or PD entry) are not modelled: those
 * entries fault as reserved.
 *
 *   63  62    52 51    46 45                      12 11  9 8 7 6 5 4   3   2   1   0
 *  +--+--------+--------+--------------------------+-----+-+-+-+-+---+---+---+---+---+
 *  |NX| avail  | resvd  | page frame number (34)   | avl |G|S|D|A|PCD|PWT|U/S|R/W| P |
 *  +--+--------+--------+--------------------------+-----+-+-+-+-+---+---+---+---+---+
 *
 * Virtual addresses are numbers below 2^48; the canonical upper half (kernel addresses) is not
 * used by vmlab's processes.
 */
import {
  compileFormat,
  decodeEntry,
  type EntryFields,
  type EntryValue,
  encodeEntry,
  type FormatSpec,
} from './format.ts';

export const X86_64_P = 0;
export const X86_64_RW = 1;
export const X86_64_US = 2;
export const X86_64_PWT = 3;
export const X86_64_PCD = 4;
export const X86_64_A = 5;
export const X86_64_D = 6;
export const X86_64_PS = 7;
export const X86_64_G = 8;
export const X86_64_NX = 63;
export const X86_64_PFN_SHIFT = 12;
/** MAXPHYADDR (46) - 12. */
export const X86_64_PFN_WIDTH = 34;
export const X86_64_RESERVED: Array<[number, number]> = [[46, 51]];

function x86_64FamilySpec(name: string, levels: number): FormatSpec {
  return {
    name,
    pageBytes: 4096,
    levelBits: new Array<number>(levels).fill(9),
    entryBytes: 8,
    flags: {
      present: X86_64_P,
      writable: X86_64_RW,
      user: X86_64_US,
      accessed: X86_64_A,
      dirty: X86_64_D,
      global: X86_64_G,
      noExecute: X86_64_NX,
    },
    pfn: { shift: X86_64_PFN_SHIFT, width: X86_64_PFN_WIDTH },
    reservedBits: X86_64_RESERVED,
    hugePageBit: X86_64_PS,
    permissionScope: 'all-levels',
  };
}

export const x86_64Spec: FormatSpec = x86_64FamilySpec('x86-64', 4);
export const x86_64 = compileFormat(x86_64Spec);

/** Encode an x86-64 entry as its two 32-bit halves. */
export function x86_64Encode(fields: EntryFields): EntryValue {
  return encodeEntry(x86_64, fields);
}

/** Decode an x86-64 entry from its halves. */
export function x86_64Decode(lo: number, hi: number) {
  return decodeEntry(x86_64, lo, hi);
}

/** The spec shared with five-level paging (same entry layout, one more level). */
export { x86_64FamilySpec };
