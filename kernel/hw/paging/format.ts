/**
 * A paging format: how a virtual address splits into table indices, how big an entry is, and
 * where each flag and the frame number sit in an entry.
 *
 * Entries are handled as two unsigned 32-bit halves, `lo` (bits 0..31) and `hi` (bits 32..63),
 * so that 8-byte entries need no BigInt on the walk path. Entries of 1, 2 or 4 bytes have hi = 0.
 *
 * A format is described by a FormatSpec (presets in x86_32.ts, sv39.ts, x86_64.ts,
 * x86_64_la57.ts; custom ones from a config file through custom.ts) and compiled once into a
 * PagingFormat whose masks the MMU uses directly.
 */

/** The flags an entry may carry. A flag a format lacks is "unsupported" (see PagingFormat). */
export type EntryFlag =
  | 'present'
  | 'readable'
  | 'writable'
  | 'user'
  | 'accessed'
  | 'dirty'
  | 'global'
  | 'noExecute'
  | 'execute';

export const ENTRY_FLAGS: readonly EntryFlag[] = [
  'present',
  'readable',
  'writable',
  'user',
  'accessed',
  'dirty',
  'global',
  'noExecute',
  'execute',
];

/**
 * How the permission bits of a walk combine.
 * - 'all-levels': x86. W and U must be set at every level (they are ANDed); NX at any level
 *   forbids execution. Accessed is set at every level, dirty only in the leaf.
 * - 'leaf-only': RISC-V. Only the leaf entry carries R/W/X/U; a non-leaf entry has R=W=X=0.
 *   A leaf above the last level would be a superpage, which vmlab does not model: it faults as
 *   a reserved-bit fault. Accessed and dirty are set only in the leaf.
 */
export type PermissionScope = 'all-levels' | 'leaf-only';

export interface FormatSpec {
  name: string;
  /** Bytes per page: a power of two from 16 to 65536. */
  pageBytes: number;
  /** Index bits per level, root level first (1 to 5 levels). */
  levelBits: number[];
  /** Bytes per entry. */
  entryBytes: 1 | 2 | 4 | 8;
  /** Bit position (0 = least significant) of each flag the format has. `present` is required. */
  flags: Partial<Record<EntryFlag, number>>;
  /** The physical frame number field. */
  pfn: { shift: number; width: number };
  /** Bits that must be zero in every entry (reserved-bit fault otherwise), as [first, last] ranges. */
  reservedBits?: Array<[number, number]>;
  /**
   * A bit that, set in a non-leaf entry, maps a huge page (x86 PS). vmlab does not model huge
   * pages: such an entry faults as reserved. In a leaf entry the bit means something else (PAT).
   */
  hugePageBit?: number;
  permissionScope: PermissionScope;
}

/** A flag compiled to masks on the two 32-bit halves: (lo & maskLo) | (hi & maskHi). */
export interface FlagMask {
  lo: number;
  hi: number;
}

export interface PagingFormat {
  readonly spec: FormatSpec;
  readonly name: string;
  readonly pageBytes: number;
  readonly pageShift: number;
  readonly levels: number;
  readonly levelBits: readonly number[];
  /** For level L (0 = root): the virtual-address shift of its index. */
  readonly levelShift: readonly number[];
  /** For level L: 2^levelShift[L] and 2^levelBits[L] - 1 (precomputed for levelIndex). */
  readonly levelDivisor: Float64Array;
  readonly levelMask: Int32Array;
  /** Virtual-address width in bits: pageShift + sum(levelBits). */
  readonly vaBits: number;
  /** Number of virtual pages (2^(vaBits - pageShift)). */
  readonly vpnCount: number;
  readonly entryBytes: number;
  readonly permissionScope: PermissionScope;
  readonly mask: Readonly<Record<EntryFlag, FlagMask>>;
  readonly has: Readonly<Record<EntryFlag, boolean>>;
  readonly reserved: FlagMask;
  /** Huge-page bit of non-leaf entries (zero masks when the format has none). */
  readonly hugePage: FlagMask;
  /** Largest frame number the PFN field can hold. */
  readonly maxPfn: number;
  readonly pfnShift: number;
  readonly pfnWidth: number;
  /** Precomputed for entryPfn: the PFN's bits in lo (after the shift) and in hi, and 2^(bits in lo). */
  readonly pfnLoMask: number;
  readonly pfnHiMask: number;
  readonly pfnHiScale: number;
}

/** A mask of `width` low bits (width 0..32), as an unsigned number. */
function lowMask(width: number): number {
  return width >= 32 ? 0xffffffff : 2 ** width - 1;
}

function bitMask(bit: number): FlagMask {
  return bit < 32 ? { lo: (1 << bit) >>> 0, hi: 0 } : { lo: 0, hi: (1 << (bit - 32)) >>> 0 };
}

/**
 * Check a spec and compile it. Throws a FormatError naming the field for an impossible spec
 * (bad sizes, overlapping fields, a field outside the entry).
 */
export function compileFormat(spec: FormatSpec): PagingFormat {
  validateSpec(spec);
  const pageShift = Math.log2(spec.pageBytes);
  const levels = spec.levelBits.length;
  const levelShift: number[] = [];
  let shift = pageShift;
  for (let l = levels - 1; l >= 0; l--) {
    levelShift[l] = shift;
    shift += spec.levelBits[l]!;
  }
  const mask = {} as Record<EntryFlag, FlagMask>;
  const has = {} as Record<EntryFlag, boolean>;
  for (const f of ENTRY_FLAGS) {
    const bit = spec.flags[f];
    has[f] = bit !== undefined;
    mask[f] = bit === undefined ? { lo: 0, hi: 0 } : bitMask(bit);
  }
  const reserved = { lo: 0, hi: 0 };
  for (const [first, last] of spec.reservedBits ?? []) {
    for (let b = first; b <= last; b++) {
      const m = bitMask(b);
      reserved.lo = (reserved.lo | m.lo) >>> 0;
      reserved.hi = (reserved.hi | m.hi) >>> 0;
    }
  }
  return {
    spec,
    name: spec.name,
    pageBytes: spec.pageBytes,
    pageShift,
    levels,
    levelBits: [...spec.levelBits],
    levelShift,
    levelDivisor: Float64Array.from(levelShift, (sh) => 2 ** sh),
    levelMask: Int32Array.from(spec.levelBits, (b) => 2 ** b - 1),
    vaBits: shift,
    vpnCount: 2 ** (shift - pageShift),
    entryBytes: spec.entryBytes,
    permissionScope: spec.permissionScope,
    mask,
    has,
    reserved,
    hugePage: spec.hugePageBit === undefined ? { lo: 0, hi: 0 } : bitMask(spec.hugePageBit),
    maxPfn: 2 ** spec.pfn.width - 1,
    pfnShift: spec.pfn.shift,
    pfnWidth: spec.pfn.width,
    ...pfnMasks(spec.pfn.shift, spec.pfn.width),
  };
}

function pfnMasks(
  shift: number,
  width: number,
): { pfnLoMask: number; pfnHiMask: number; pfnHiScale: number } {
  if (shift >= 32) return { pfnLoMask: 0, pfnHiMask: lowMask(width), pfnHiScale: 1 };
  const loWidth = Math.min(width, 32 - shift);
  return { pfnLoMask: lowMask(loWidth), pfnHiMask: lowMask(width - loWidth), pfnHiScale: 2 ** loWidth };
}

export class FormatError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'FormatError';
  }
}

function validateSpec(spec: FormatSpec): void {
  const { pageBytes, levelBits, entryBytes } = spec;
  if (!Number.isInteger(pageBytes) || pageBytes < 16 || pageBytes > 65536 || pageBytes & (pageBytes - 1)) {
    throw new FormatError('pageBytes', `${pageBytes} is not a power of two from 16 to 65536`);
  }
  if (levelBits.length < 1 || levelBits.length > 5) {
    throw new FormatError('levelBits', `${levelBits.length} levels; a format has 1 to 5`);
  }
  levelBits.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 1 || b > 20) {
      throw new FormatError(`levelBits[${i}]`, `${b} index bits; each level has 1 to 20`);
    }
  });
  const vaBits = Math.log2(pageBytes) + levelBits.reduce((a, b) => a + b, 0);
  if (vaBits > 57) throw new FormatError('levelBits', `virtual addresses of ${vaBits} bits exceed 57`);
  if (![1, 2, 4, 8].includes(entryBytes)) {
    throw new FormatError('entryBytes', `${entryBytes}; an entry is 1, 2, 4 or 8 bytes`);
  }
  const entryBits = entryBytes * 8;
  const used = new Map<number, string>();
  const claim = (bit: number, field: string): void => {
    if (!Number.isInteger(bit) || bit < 0 || bit >= entryBits) {
      throw new FormatError(field, `bit ${bit} is outside a ${entryBits}-bit entry`);
    }
    const other = used.get(bit);
    if (other !== undefined) throw new FormatError(field, `bit ${bit} overlaps ${other}`);
    used.set(bit, field);
  };
  if (spec.flags.present === undefined)
    throw new FormatError('flags.present', 'a format needs a present/valid bit');
  for (const f of ENTRY_FLAGS) {
    const bit = spec.flags[f];
    if (bit !== undefined) claim(bit, `flags.${f}`);
  }
  if (spec.flags.noExecute !== undefined && spec.flags.execute !== undefined) {
    throw new FormatError('flags.execute', 'a format has a no-execute bit or an execute bit, not both');
  }
  const { shift, width } = spec.pfn;
  if (!Number.isInteger(width) || width < 1 || width > 52) {
    throw new FormatError('pfn.width', `${width} bits; the frame number field has 1 to 52`);
  }
  for (let b = shift; b < shift + width; b++) claim(b, 'pfn');
  if (spec.hugePageBit !== undefined) claim(spec.hugePageBit, 'hugePageBit');
  (spec.reservedBits ?? []).forEach(([first, last], i) => {
    if (last < first) throw new FormatError(`reservedBits[${i}]`, `range ${first}..${last} is empty`);
    for (let b = first; b <= last; b++) claim(b, `reservedBits[${i}]`);
  });
  if (spec.permissionScope !== 'all-levels' && spec.permissionScope !== 'leaf-only') {
    throw new FormatError(
      'permissionScope',
      `${String(spec.permissionScope)} is not all-levels or leaf-only`,
    );
  }
  if (
    spec.permissionScope === 'leaf-only' &&
    spec.flags.readable === undefined &&
    spec.flags.writable === undefined &&
    spec.flags.execute === undefined
  ) {
    // A leaf is told from a pointer by R|W|X: without any of them every walk would fault.
    throw new FormatError('permissionScope', 'leaf-only needs a readable, writable or execute bit');
  }
  const tableBytes = 2 ** Math.max(...levelBits) * entryBytes;
  if (tableBytes > pageBytes * 1024) {
    throw new FormatError('levelBits', `a table of ${tableBytes} bytes spans more than 1024 pages`);
  }
}

// ---- entry access (the walk path: plain 32-bit arithmetic, no allocation) ----

/** True when any bit of `m` is set in the entry (flag masks have one bit; zero masks never test true). */
export function testFlag(m: FlagMask, lo: number, hi: number): boolean {
  return ((lo & m.lo) | (hi & m.hi)) !== 0;
}

/** The frame number held in an entry. */
export function entryPfn(fmt: PagingFormat, lo: number, hi: number): number {
  const s = fmt.pfnShift;
  if (s >= 32) return ((hi >>> (s - 32)) & fmt.pfnHiMask) >>> 0;
  const loPart = ((lo >>> s) & fmt.pfnLoMask) >>> 0;
  if (fmt.pfnHiMask === 0) return loPart;
  return loPart + ((hi & fmt.pfnHiMask) >>> 0) * fmt.pfnHiScale;
}

/** Table index of virtual address `va` at level `level` (0 = root). */
export function levelIndex(fmt: PagingFormat, va: number, level: number): number {
  // `&` takes the low 32 bits exactly for any integer below 2^53, and masks are below 2^20.
  return Math.floor(va / fmt.levelDivisor[level]!) & fmt.levelMask[level]!;
}

// ---- entry construction (kernel side and tests; off the hot path) ----

export interface EntryFields {
  pfn: number;
  present?: boolean;
  readable?: boolean;
  writable?: boolean;
  user?: boolean;
  accessed?: boolean;
  dirty?: boolean;
  global?: boolean;
  noExecute?: boolean;
  execute?: boolean;
}

/** An entry as its two halves. */
export interface EntryValue {
  lo: number;
  hi: number;
}

/**
 * Build an entry. Flags the format lacks are ignored when false and refused when true
 * (except that `execute: true` on a format with a no-execute bit just leaves NX clear, and
 * `noExecute: true` on a format with an execute bit leaves X clear).
 */
export function encodeEntry(fmt: PagingFormat, fields: EntryFields): EntryValue {
  if (!Number.isInteger(fields.pfn) || fields.pfn < 0 || fields.pfn > fmt.maxPfn) {
    throw new FormatError(
      'pfn',
      `frame ${fields.pfn} does not fit the ${fmt.pfnWidth}-bit field of ${fmt.name}`,
    );
  }
  let lo = 0;
  let hi = 0;
  const s = fmt.pfnShift;
  if (s >= 32) {
    hi = (fields.pfn * 2 ** (s - 32)) >>> 0;
  } else {
    const loWidth = Math.min(fmt.pfnWidth, 32 - s);
    const loPart = fields.pfn % 2 ** loWidth;
    lo = (loPart * 2 ** s) >>> 0;
    hi = Math.floor(fields.pfn / 2 ** loWidth) >>> 0;
  }
  for (const f of ENTRY_FLAGS) {
    if (f === 'execute' || f === 'noExecute') continue;
    const want = fields[f] ?? false;
    if (!want) continue;
    if (!fmt.has[f]) throw new FormatError(`flags.${f}`, `${fmt.name} has no ${f} bit`);
    lo = (lo | fmt.mask[f].lo) >>> 0;
    hi = (hi | fmt.mask[f].hi) >>> 0;
  }
  if (fmt.has.noExecute && fields.noExecute) {
    lo = (lo | fmt.mask.noExecute.lo) >>> 0;
    hi = (hi | fmt.mask.noExecute.hi) >>> 0;
  }
  if (fmt.has.execute && fields.execute) {
    lo = (lo | fmt.mask.execute.lo) >>> 0;
    hi = (hi | fmt.mask.execute.hi) >>> 0;
  }
  return { lo, hi };
}

/** Decode an entry into its fields (absent flags read false). */
export function decodeEntry(
  fmt: PagingFormat,
  lo: number,
  hi: number,
): Required<EntryFields> & { reserved: boolean } {
  const out = {
    pfn: entryPfn(fmt, lo, hi),
    reserved: testFlag(fmt.reserved, lo, hi),
  } as Required<EntryFields> & {
    reserved: boolean;
  };
  for (const f of ENTRY_FLAGS) out[f] = fmt.has[f] && testFlag(fmt.mask[f], lo, hi);
  return out;
}

/** An entry's raw value as a number (exact up to 2^53) or, for wide values, a BigInt. */
export function entryRaw(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Hex text of an entry, zero-padded to its width. */
export function entryHex(fmt: PagingFormat, lo: number, hi: number): string {
  return `0x${entryRaw(lo, hi)
    .toString(16)
    .padStart(fmt.entryBytes * 2, '0')}`;
}
