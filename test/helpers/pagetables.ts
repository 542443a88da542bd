/**
 * Page tables built by hand for the hardware tests.
 *
 * Everything here is written out with explicit shifts and masks per format, from the
 * architecture manuals, and never calls the code under test (no encodeEntry, levelIndex or
 * entryPfn): translation is then checked against walks built independently of the MMU.
 *
 * Every preset table is exactly one page (x86-32: 1024 x 4 bytes; sv39, x86-64, LA57: 512 x 8
 * bytes; tiny: 32 x 1 byte), so a table is one frame and an entry's physical address is
 *   tablePfn * pageBytes + index * entryBytes.
 */
import type { PhysicalMemory } from '../../kernel/hw/physmem.ts';

export type HandFormatName = 'x86-32' | 'sv39' | 'x86-64' | 'x86-64-la57' | 'tiny';

/** Raw bits to OR into the two 32-bit halves of an entry. */
export interface EntryBits {
  lo: number;
  hi?: number;
}

export interface HandFormat {
  name: HandFormatName;
  pageBytes: number;
  levels: number;
  entryBytes: number;
  /** Largest virtual address + 1 the MMU translates (2^vaBits, capped at 2^53). */
  vaLimit: number;
  /** Table index of `va` at `level` (0 = root). */
  index(va: number, level: number): number;
  /** An entry holding frame `pfn` and the raw flag bits. */
  entry(pfn: number, bits: EntryBits): [number, number];
  /** Whether the valid/present bit is set. */
  present(lo: number, hi: number): boolean;
  /** The frame number held in an entry. */
  pfnOf(lo: number, hi: number): number;
  /** Default bits of a pointer (non-leaf) entry and of a leaf: present, writable, user. */
  pointerBits: EntryBits;
  leafBits: EntryBits;
}

// ---- x86 (both widths): P=bit 0, RW=1, US=2, PWT=3, PCD=4, A=5, D=6, PS=7, G=8; NX = bit 63 ----
export const X86 = {
  P: 0x1,
  RW: 0x2,
  US: 0x4,
  A: 0x20,
  D: 0x40,
  PS: 0x80,
  G: 0x100,
  /** NX is bit 63: bit 31 of the high half. */
  NX_HI: 0x80000000,
} as const;

// ---- Sv39: V=0, R=1, W=2, X=3, U=4, G=5, A=6, D=7; PPN at bits 10..53; bits 54..63 reserved ----
export const SV = {
  V: 0x1,
  R: 0x2,
  W: 0x4,
  X: 0x8,
  U: 0x10,
  G: 0x20,
  A: 0x40,
  D: 0x80,
} as const;

// ---- tiny: 1-byte entries, bit 7 valid, bits 0..6 the frame number ----
export const TINY = { VALID: 0x80, PFN_MASK: 0x7f } as const;

/** x86-32: va = dir(31..22) | table(21..12) | offset(11..0); entry = pfn << 12 | flags. */
export const handX86_32: HandFormat = {
  name: 'x86-32',
  pageBytes: 4096,
  levels: 2,
  entryBytes: 4,
  vaLimit: 2 ** 32,
  index: (va, level) => (level === 0 ? (va >>> 22) & 0x3ff : (va >>> 12) & 0x3ff),
  entry: (pfn, bits) => [((pfn << 12) | bits.lo) >>> 0, 0],
  present: (lo) => (lo & X86.P) !== 0,
  pfnOf: (lo) => lo >>> 12,
  pointerBits: { lo: X86.P | X86.RW | X86.US },
  leafBits: { lo: X86.P | X86.RW | X86.US },
};

/**
 * x86-64 entry: frame number in bits 12..45 (34 bits; MAXPHYADDR 46). Its low 20 bits sit in
 * lo bits 12..31, its high 14 bits in hi bits 0..13.
 */
function x86_64Entry(pfn: number, bits: EntryBits): [number, number] {
  const pfnLow20 = pfn % 2 ** 20;
  const pfnHigh14 = Math.floor(pfn / 2 ** 20);
  return [((pfnLow20 << 12) | bits.lo) >>> 0, (pfnHigh14 | (bits.hi ?? 0)) >>> 0];
}

function x86_64PfnOf(lo: number, hi: number): number {
  return (lo >>> 12) + (hi & 0x3fff) * 2 ** 20;
}

/** Index of `va` for a 9-bit level whose field starts at bit `shift`. */
function nineBits(va: number, shift: number): number {
  return Math.floor(va / 2 ** shift) % 512;
}

/** x86-64: PML4(47..39) PDPT(38..30) PD(29..21) PT(20..12) offset(11..0). */
export const handX86_64: HandFormat = {
  name: 'x86-64',
  pageBytes: 4096,
  levels: 4,
  entryBytes: 8,
  vaLimit: 2 ** 48,
  index: (va, level) => nineBits(va, [39, 30, 21, 12][level]!),
  entry: x86_64Entry,
  present: (lo) => (lo & X86.P) !== 0,
  pfnOf: x86_64PfnOf,
  pointerBits: { lo: X86.P | X86.RW | X86.US },
  leafBits: { lo: X86.P | X86.RW | X86.US },
};

/** LA57: PML5(56..48) then as x86-64. JavaScript numbers cap the MMU at 2^53. */
export const handX86_64La57: HandFormat = {
  ...handX86_64,
  name: 'x86-64-la57',
  levels: 5,
  vaLimit: 2 ** 53,
  index: (va, level) => nineBits(va, [48, 39, 30, 21, 12][level]!),
};

/**
 * Sv39: VPN[2](38..30) VPN[1](29..21) VPN[0](20..12) offset(11..0). Entry: PPN in bits 10..53
 * (44 bits): its low 22 bits in lo bits 10..31, its high 22 bits in hi bits 0..21.
 */
export const handSv39: HandFormat = {
  name: 'sv39',
  pageBytes: 4096,
  levels: 3,
  entryBytes: 8,
  vaLimit: 2 ** 39,
  index: (va, level) => nineBits(va, [30, 21, 12][level]!),
  entry: (pfn, bits) => {
    const ppnLow22 = pfn % 2 ** 22;
    const ppnHigh22 = Math.floor(pfn / 2 ** 22);
    return [((ppnLow22 << 10) | bits.lo) >>> 0, (ppnHigh22 | (bits.hi ?? 0)) >>> 0];
  },
  present: (lo) => (lo & SV.V) !== 0,
  pfnOf: (lo, hi) => (lo >>> 10) + (hi & 0x3fffff) * 2 ** 22,
  pointerBits: { lo: SV.V },
  leafBits: { lo: SV.V | SV.R | SV.W | SV.U },
};

/** tiny: 15-bit va = dir(14..10) | table(9..5) | offset(4..0); 32-byte pages; 1-byte entries. */
export const handTiny: HandFormat = {
  name: 'tiny',
  pageBytes: 32,
  levels: 2,
  entryBytes: 1,
  vaLimit: 2 ** 15,
  index: (va, level) => (level === 0 ? (va >>> 10) & 31 : (va >>> 5) & 31),
  entry: (pfn, bits) => [(pfn & TINY.PFN_MASK) | bits.lo, 0],
  present: (lo) => (lo & TINY.VALID) !== 0,
  pfnOf: (lo) => lo & TINY.PFN_MASK,
  pointerBits: { lo: TINY.VALID },
  leafBits: { lo: TINY.VALID },
};

export const HAND_PRESETS: readonly HandFormat[] = [handX86_32, handSv39, handX86_64, handX86_64La57];

export interface MapOptions {
  /** Leaf entry bits (default: the format's leafBits). */
  leaf?: EntryBits;
  /** Pointer bits per level 0..levels-2 (default: the format's pointerBits at each). */
  upper?: Array<EntryBits | undefined>;
}

/**
 * A page-table tree in physical memory, written entry by entry. Tables are taken from frames
 * `firstTablePfn`, `firstTablePfn + 1`, ... ; the root is `rootPfn`.
 */
export class HandPageTables {
  private nextTablePfn: number;

  constructor(
    readonly mem: PhysicalMemory,
    readonly fmt: HandFormat,
    readonly rootPfn: number,
    firstTablePfn: number,
  ) {
    this.nextTablePfn = firstTablePfn;
  }

  /**
   * Map the page of `va` to frame `dataPfn`. Existing pointer entries keep their child table but
   * get the given bits (so a test can clear RW or U at one level).
   */
  map(va: number, dataPfn: number, options: MapOptions = {}): void {
    const { fmt } = this;
    let table = this.rootPfn;
    for (let level = 0; level < fmt.levels - 1; level++) {
      const pa = this.entryAddress(table, va, level);
      const [lo, hi] = this.read(pa);
      const child = fmt.present(lo, hi) ? fmt.pfnOf(lo, hi) : this.nextTablePfn++;
      this.write(pa, fmt.entry(child, options.upper?.[level] ?? fmt.pointerBits));
      table = child;
    }
    const leafPa = this.entryAddress(table, va, fmt.levels - 1);
    this.write(leafPa, fmt.entry(dataPfn, options.leaf ?? fmt.leafBits));
  }

  /** Physical address of the entry for `va` at `level`, following the present pointers above it. */
  entryPa(va: number, level: number): number {
    const { fmt } = this;
    let table = this.rootPfn;
    for (let l = 0; l < level; l++) {
      const [lo, hi] = this.read(this.entryAddress(table, va, l));
      if (!fmt.present(lo, hi)) throw new Error(`entryPa: level ${l} of 0x${va.toString(16)} not present`);
      table = fmt.pfnOf(lo, hi);
    }
    return this.entryAddress(table, va, level);
  }

  /** The entry for `va` at `level`, as [lo, hi]. */
  entryAt(va: number, level: number): [number, number] {
    return this.read(this.entryPa(va, level));
  }

  /** Overwrite the entry for `va` at `level`. */
  setEntry(va: number, level: number, value: [number, number]): void {
    this.write(this.entryPa(va, level), value);
  }

  /** The physical address `va` should translate to, per the hand walk (-1 when a level is absent). */
  expectedPa(va: number): number {
    const { fmt } = this;
    let table = this.rootPfn;
    for (let l = 0; l < fmt.levels; l++) {
      const [lo, hi] = this.read(this.entryAddress(table, va, l));
      if (!fmt.present(lo, hi)) return -1;
      table = fmt.pfnOf(lo, hi);
    }
    return table * fmt.pageBytes + (va % fmt.pageBytes);
  }

  read(pa: number): [number, number] {
    switch (this.fmt.entryBytes) {
      case 1:
        return [this.mem.read8(pa), 0];
      case 4:
        return [this.mem.read32(pa), 0];
      default:
        return [this.mem.read32(pa), this.mem.read32(pa + 4)];
    }
  }

  write(pa: number, [lo, hi]: [number, number]): void {
    switch (this.fmt.entryBytes) {
      case 1:
        this.mem.write8(pa, lo);
        return;
      case 4:
        this.mem.write32(pa, lo);
        return;
      default:
        this.mem.write32(pa, lo);
        this.mem.write32(pa + 4, hi);
    }
  }

  private entryAddress(tablePfn: number, va: number, level: number): number {
    return tablePfn * this.fmt.pageBytes + this.fmt.index(va, level) * this.fmt.entryBytes;
  }
}
