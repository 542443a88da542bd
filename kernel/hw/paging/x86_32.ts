/**
 * x86-32 paging without PAE: two levels (page directory, page table), 10/10/12 split,
 * 4-byte entries, 4 KiB pages. No no-execute bit in this mode.
 *
 *   31                              12 11  9 8 7 6 5 4   3   2   1   0
 *  +----------------------------------+-----+-+-+-+-+---+---+---+---+---+
 *  | page frame number (20 bits)      | avl |G|S|D|A|PCD|PWT|U/S|R/W| P |
 *  +----------------------------------+-----+-+-+-+-+---+---+---+---+---+
 *
 * PS (bit 7) in a directory entry selects 4 MiB pages when CR4.PSE is set; vmlab runs with
 * PSE clear, where the bit is ignored.
 */
import { compileFormat, decodeEntry, type EntryFields, encodeEntry, type FormatSpec } from './format.ts';

export const X86_32_P = 0;
export const X86_32_RW = 1;
export const X86_32_US = 2;
export const X86_32_PWT = 3;
export const X86_32_PCD = 4;
export const X86_32_A = 5;
export const X86_32_D = 6;
export const X86_32_PS = 7;
export const X86_32_G = 8;
export const X86_32_PFN_SHIFT = 12;
export const X86_32_PFN_WIDTH = 20;

export const x86_32Spec: FormatSpec = {
  name: 'x86-32',
  pageBytes: 4096,
  levelBits: [10, 10],
  entryBytes: 4,
  flags: {
    present: X86_32_P,
    writable: X86_32_RW,
    user: X86_32_US,
    accessed: X86_32_A,
    dirty: X86_32_D,
    global: X86_32_G,
  },
  pfn: { shift: X86_32_PFN_SHIFT, width: X86_32_PFN_WIDTH },
  permissionScope: 'all-levels',
};

export const x86_32 = compileFormat(x86_32Spec);

/** Encode an x86-32 entry (a 32-bit number). */
export function x86_32Encode(fields: EntryFields): number {
  return encodeEntry(x86_32, fields).lo;
}

/** Decode an x86-32 entry. */
export function x86_32Decode(entry: number) {
  return decodeEntry(x86_32, entry >>> 0, 0);
}
