/**
 * RISC-V Sv39: three levels of 9 index bits, 4 KiB pages, 8-byte entries, 39-bit virtual
 * addresses. Permissions live only in the leaf: an entry with R = W = X = 0 points to the next
 * level; one with any of them set is a leaf. Bits 54..63 (N, PBMT, reserved) must be zero here.
 *
 *   63   54 53                                   10 9 8 7 6 5 4 3 2 1 0
 *  +-------+---------------------------------------+---+-+-+-+-+-+-+-+-+
 *  | resvd | physical page number (44 bits)        |RSW|D|A|G|U|X|W|R|V|
 *  +-------+---------------------------------------+---+-+-+-+-+-+-+-+-+
 */
import {
  compileFormat,
  decodeEntry,
  type EntryFields,
  type EntryValue,
  encodeEntry,
  type FormatSpec,
} from './format.ts';

export const SV39_V = 0;
export const SV39_R = 1;
export const SV39_W = 2;
export const SV39_X = 3;
export const SV39_U = 4;
export const SV39_G = 5;
export const SV39_A = 6;
export const SV39_D = 7;
export const SV39_PPN_SHIFT = 10;
export const SV39_PPN_WIDTH = 44;

export const sv39Spec: FormatSpec = {
  name: 'sv39',
  pageBytes: 4096,
  levelBits: [9, 9, 9],
  entryBytes: 8,
  flags: {
    present: SV39_V,
    readable: SV39_R,
    writable: SV39_W,
    execute: SV39_X,
    user: SV39_U,
    global: SV39_G,
    accessed: SV39_A,
    dirty: SV39_D,
  },
  pfn: { shift: SV39_PPN_SHIFT, width: SV39_PPN_WIDTH },
  reservedBits: [[54, 63]],
  permissionScope: 'leaf-only',
};

export const sv39 = compileFormat(sv39Spec);

/** Encode an Sv39 entry as its two 32-bit halves. */
export function sv39Encode(fields: EntryFields): EntryValue {
  return encodeEntry(sv39, fields);
}

/** Decode an Sv39 entry from its halves. */
export function sv39Decode(lo: number, hi: number) {
  return decodeEntry(sv39, lo, hi);
}
