/**
 * A linear (one-level) page-table exercise, as OSTEP's `paging-linear-translate.py` makes one:
 * an address space of `addressSpace` bytes in pages of `pageSize` bytes, a physical memory of
 * `physMem` bytes, a page table of one 32-bit entry per virtual page, and virtual addresses to
 * translate. The text is OSTEP's, line for line and column for column (the ARG echo, the
 * headings, `%08x` and `%8d` fields); the randomness is vmlab's Prng, so a seed gives another
 * table than OSTEP's under the same seed.
 *
 * The table is real: its entries are written into emulated physical memory, the printed table
 * is read back from there, and each answer (`compute`) is vmlab's MMU walking it in LINEAR
 * format. Nothing here computes a physical address.
 *
 *   PTE (32 bits): | V (31) | PFN (30..0) |      V = 1: the page is in frame PFN; V = 0: invalid
 *   VA:            | VPN (log2(vpages) bits) | offset (log2(pageBytes) bits) |
 *
 * Memory: frames 0 .. physFrames-1 are the exercise's physical memory, every one of which may
 * hold a page (as in OSTEP, whose table lives nowhere); the table fills the frames just above,
 * from frame physFrames, the page-table base register:
 *
 *   machine frames == physFrames + tableFrames,  tableFrames == ceil(vpages * 4 / pageBytes)
 */
import { ACCESS_READ, type Mmu, MODE_USER } from '../hw/mmu.ts';
import { compileFormat, encodeEntry, type PagingFormat } from '../hw/paging/format.ts';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { Prng } from '../lib/prng.ts';
import { InputError } from './configfile.ts';
import { explainTranslation, makeTranslateMachine } from './translate.ts';
import { parseAddress, parseSize } from './units.ts';

/** Bit 31 of an entry is the valid bit; bits 0..30 the frame number. */
const LINEAR_VALID_BIT = 31;
const LINEAR_ENTRY_BYTES = 4;

/** Limits: OSTEP's (sizes below 1g), and what vmlab's paging formats and memory take. */
export const LINEAR_LIMITS = {
  /** Sizes must be below this (OSTEP: "must use smaller sizes (less than 1 GB)"). */
  sizeBytesBelow: 2 ** 30,
  /** PagingFormat's page sizes. */
  minPageBytes: 16,
  maxPageBytes: 65536,
  /** One level has at most 20 index bits, and a table spans at most 1024 pages. */
  maxTableEntries: 2 ** 20,
  maxTablePages: 1024,
  /** Frames of the exercise's physical memory (the machine's arrays grow with it). */
  maxPhysFrames: 2 ** 22,
  /** Random addresses per exercise (OSTEP's -n). */
  maxAddresses: 100_000,
} as const;

export interface LinearExerciseOptions {
  seed: number;
  /** Sizes as the user wrote them (`16k`), echoed in the ARG lines: OSTEP's -a, -p and -P. */
  addressSpace: string;
  physMem: string;
  pageSize: string;
  /** Percent of the virtual pages that are valid, a whole number from 0 to 100 (OSTEP's -u). */
  usedPercent: number;
  /** How many random addresses to ask about (OSTEP's -n); unused when `addresses` is given. */
  count: number;
  /** OSTEP's -A: comma-separated addresses; undefined or `-1` for `count` random ones. */
  addresses?: string;
  /** OSTEP's -v: print each entry's VPN beside it. */
  verbose: boolean;
  /** OSTEP's -c: print the answers. */
  compute: boolean;
}

/** The sizes of an exercise, checked. vpages * pageBytes == addressBytes, physFrames * pageBytes == physBytes. */
interface LinearGeometry {
  addressBytes: number;
  physBytes: number;
  pageBytes: number;
  vpages: number;
  physFrames: number;
  tableFrames: number;
}

/**
 * The exercise's text; with `compute`, the answers the MMU gives. Throws InputError naming the
 * option (as the CLI spells it) for a size that is not a power of two, a page size vmlab's MMU
 * lacks or above the address space, an address space above physical memory, sizes of 1g or more,
 * a table too large for one level, `usedPercent` outside 0..100, a bad `count`, and an address
 * in `addresses` that is unreadable or outside the address space.
 */
export function linearExercise(options: LinearExerciseOptions): string {
  const geo = linearGeometry(options);
  checkCounts(options);
  const fmt = linearFormat(geo);
  const { mem, mmu } = makeTranslateMachine(fmt, geo.physFrames + geo.tableFrames);
  const prng = new Prng(options.seed);
  const tableBase = geo.physFrames * geo.pageBytes;
  writeLinearTable(mem, fmt, { prng, geo, tableBase, usedPercent: options.usedPercent });
  const vas =
    options.addresses === undefined || options.addresses.trim() === '-1'
      ? Array.from({ length: options.count }, () => prng.below(geo.addressBytes))
      : parseAddressList(options.addresses, geo);
  const out: string[] = [
    `ARG seed ${options.seed}`,
    `ARG address space size ${options.addressSpace}`,
    `ARG phys mem size ${options.physMem}`,
    `ARG page size ${options.pageSize}`,
    `ARG verbose ${options.verbose ? 'True' : 'False'}`,
    `ARG addresses ${options.addresses ?? '-1'}`,
    '',
    '',
    'The format of the page table is simple:',
    'The high-order (left-most) bit is the VALID bit.',
    '  If the bit is 1, the rest of the entry is the PFN.',
    '  If the bit is 0, the page is not valid.',
    'Use verbose mode (-v) if you want to print the VPN # by',
    'each entry of the page table.',
    '',
    'Page Table (from entry 0 down to the max size)',
  ];
  for (let vpn = 0; vpn < geo.vpages; vpn++) {
    const entry = `0x${hex8(mem.read32(tableBase + vpn * LINEAR_ENTRY_BYTES))}`;
    out.push(options.verbose ? `  [${pad8(vpn)}]  ${entry}` : `  ${entry}`);
  }
  out.push('', 'Virtual Address Trace');
  for (const va of vas) {
    const question = `  VA 0x${hex8(va)} (decimal: ${pad8(va)}) -->`;
    out.push(
      `${question} ${options.compute ? answer(mem, mmu, { va, tableBase }) : 'PA or invalid address?'}`,
    );
  }
  out.push('');
  if (!options.compute) {
    out.push(
      'For each virtual address, write down the physical address it translates to',
      'OR write down that it is an out-of-bounds address (e.g., segfault).',
      '',
    );
  }
  return `${out.join('\n')}\n`;
}

/**
 * The one-level paging format of an exercise: 32-bit entries, valid bit 31, the PFN in bits
 * 0..30, and log2(vpages) index bits. An address space of one page still gets one index bit
 * (a format has at least one): every address below it has index 0, and the rest of that
 * two-entry table is never printed or reached, since addresses are checked against the
 * address space first.
 */
export function linearFormat(geo: { vpages: number; pageBytes: number }): PagingFormat {
  return compileFormat({
    name: 'linear',
    pageBytes: geo.pageBytes,
    levelBits: [Math.max(1, Math.log2(geo.vpages))],
    entryBytes: LINEAR_ENTRY_BYTES,
    flags: { present: LINEAR_VALID_BIT },
    pfn: { shift: 0, width: LINEAR_VALID_BIT },
    permissionScope: 'all-levels',
  });
}

/**
 * Write the table at `tableBase`: each virtual page in order is valid with probability
 * usedPercent / 100 (exactly none at 0, all at 100) and then gets a frame no other page has,
 * drawn uniformly from the physical memory (a partial Fisher-Yates shuffle). Invalid entries
 * are zero, as OSTEP prints them.
 */
function writeLinearTable(
  mem: PhysicalMemory,
  fmt: PagingFormat,
  job: { prng: Prng; geo: LinearGeometry; tableBase: number; usedPercent: number },
): void {
  const { prng, geo } = job;
  const frames = Int32Array.from({ length: geo.physFrames }, (_, i) => i);
  let taken = 0; // frames[0 .. taken-1] hold the frames handed out
  for (let vpn = 0; vpn < geo.vpages; vpn++) {
    let entry = 0;
    if (prng.below(100) < job.usedPercent) {
      const j = taken + prng.below(geo.physFrames - taken);
      const pfn = frames[j]!;
      frames[j] = frames[taken]!;
      frames[taken++] = pfn;
      entry = encodeEntry(fmt, { pfn, present: true }).lo;
    }
    mem.write32(job.tableBase + vpn * LINEAR_ENTRY_BYTES, entry);
  }
}

/** The answer to one question, from the MMU's walk of the table: OSTEP's two forms. */
function answer(mem: PhysicalMemory, mmu: Mmu, q: { va: number; tableBase: number }): string {
  const rep = explainTranslation(mem, mmu, BigInt(q.va), {
    rootFrame: Math.floor(q.tableBase / mem.pageBytes),
    access: ACCESS_READ,
    mode: MODE_USER,
  });
  const step = rep.steps[0];
  if (rep.steps.length !== 1 || step === undefined) {
    throw new Error(
      `linearExercise: the walk of 0x${q.va.toString(16)} read ${rep.steps.length} entries, not 1`,
    );
  }
  const vpn = (step.entryAddress - q.tableBase) / LINEAR_ENTRY_BYTES; // the entry the MMU read
  if ('pa' in rep.result) {
    const pa = rep.result.paDecimal;
    return `${hex8(pa)} (decimal ${pad8(pa)}) [VPN ${vpn}]`;
  }
  if (rep.result.fault.kind !== 'not-present') {
    throw new Error(
      `linearExercise: the walk of 0x${q.va.toString(16)} ended in a ${rep.result.fault.kind} fault`,
    );
  }
  return ` Invalid (VPN ${vpn} not valid)`;
}

/** Check and convert the three sizes. Throws InputError naming the option. */
function linearGeometry(options: LinearExerciseOptions): LinearGeometry {
  const addressBytes = sizeOption('--address-space', options.addressSpace);
  const physBytes = sizeOption('--phys-mem', options.physMem);
  const pageBytes = sizeOption('--page-size', options.pageSize);
  const L = LINEAR_LIMITS;
  if (pageBytes < L.minPageBytes || pageBytes > L.maxPageBytes) {
    throw new InputError(
      `--page-size: ${options.pageSize} is not a page size vmlab's MMU has (16 bytes to 64k)`,
    );
  }
  if (pageBytes > addressBytes) {
    throw new InputError(
      `--page-size: ${options.pageSize} is larger than the address space (${options.addressSpace})`,
    );
  }
  if (addressBytes > physBytes) {
    throw new InputError(
      `--address-space: ${options.addressSpace} is larger than the physical memory (${options.physMem})`,
    );
  }
  const vpages = addressBytes / pageBytes;
  const maxEntries = Math.min(L.maxTableEntries, (L.maxTablePages * pageBytes) / LINEAR_ENTRY_BYTES);
  if (vpages > maxEntries) {
    throw new InputError(
      `--address-space: ${options.addressSpace} is ${vpages} pages of ${pageBytes} bytes; a one-level ` +
        `table in pages of that size holds at most ${maxEntries} entries (use a larger --page-size)`,
    );
  }
  const physFrames = physBytes / pageBytes;
  if (physFrames > L.maxPhysFrames) {
    throw new InputError(
      `--phys-mem: ${options.physMem} is ${physFrames} frames of ${pageBytes} bytes; ` +
        `vmlab takes at most ${L.maxPhysFrames} (use a larger --page-size)`,
    );
  }
  const tableFrames = Math.ceil((vpages * LINEAR_ENTRY_BYTES) / pageBytes);
  return { addressBytes, physBytes, pageBytes, vpages, physFrames, tableFrames };
}

/** A size option's bytes: readable, a power of two, and below 1g. Throws InputError naming it. */
function sizeOption(name: string, text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new InputError(`${name}: '${text}' is not a size (such as 16k, 1m or 4096)`);
  if (bytes >= LINEAR_LIMITS.sizeBytesBelow)
    throw new InputError(`${name}: ${text} is too large (sizes are below 1g, as in OSTEP)`);
  // Below 2^30, so `&` works on the exact value.
  if (bytes < 1 || (bytes & (bytes - 1)) !== 0)
    throw new InputError(`${name}: ${text} is not a power of two`);
  return bytes;
}

/** Check the percentage and the count. Throws InputError naming the option. */
function checkCounts(options: LinearExerciseOptions): void {
  const u = options.usedPercent;
  if (!Number.isInteger(u) || u < 0 || u > 100) {
    throw new InputError(`--used: '${u}' is not a whole percentage from 0 to 100`);
  }
  const n = options.count;
  if (!Number.isInteger(n) || n < 0 || n > LINEAR_LIMITS.maxAddresses) {
    throw new InputError(`--generate: '${n}' is not a count from 0 to ${LINEAR_LIMITS.maxAddresses}`);
  }
}

/** OSTEP's -A list as addresses inside the address space. Throws InputError naming the bad one. */
function parseAddressList(text: string, geo: LinearGeometry): number[] {
  return text.split(',').map((item) => {
    const va = parseAddress(item);
    if (va === undefined) {
      throw new InputError(`--addresses: '${item}' is not an address (0x… hex, decimal or 0b… binary)`);
    }
    if (va >= BigInt(geo.addressBytes)) {
      throw new InputError(
        `--addresses: ${item.trim()} (decimal ${va}) is outside the address space ` +
          `(0 to 0x${(geo.addressBytes - 1).toString(16)}, ${geo.addressBytes} bytes)`,
      );
    }
    return Number(va);
  });
}

/** `%08x`: hex, zero-padded to 8 digits. */
function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** `%8d`: decimal, right-aligned in 8 columns. */
function pad8(n: number): string {
  return String(n).padStart(8);
}
