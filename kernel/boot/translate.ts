/**
 * `vmlab translate`: a page walk shown as a student does it by hand.
 *
 * The walk is the MMU's own: the MMU's walk observer reports each entry the hardware walk
 * reads, so what is printed is exactly what the MMU did (each level's index, the entry's
 * physical address and raw value, its decoded fields), followed by the physical address and
 * the byte there, or the fault and its level.
 */
import { Clock } from '../hw/clock.ts';
import { resolveCostModel } from '../hw/cost.ts';
import { ACCESS_NAMES, type AccessKind, type CpuMode, Mmu, type MmuFault, MODE_NAMES } from '../hw/mmu.ts';
import { decodeEntry, ENTRY_FLAGS, entryHex, levelIndex, type PagingFormat } from '../hw/paging/format.ts';
import { PhysicalMemory } from '../hw/physmem.ts';
import { InputError } from './configfile.ts';

export interface WalkStep {
  level: number;
  index: number;
  tableFrame: number;
  entryAddress: number;
  raw: string;
  fields: Record<string, number | boolean>;
}

export interface TranslationReport {
  va: string;
  vaDecimal: string;
  vaBits: number;
  indices: number[];
  offset: number;
  steps: WalkStep[];
  result:
    | { pa: string; paDecimal: number; byte: number }
    | { fault: { kind: string; reason?: string; level: number } };
}

/** The machine a translation runs on: memory of `frameCount` frames and an MMU of `format`. */
export function makeTranslateMachine(
  format: PagingFormat,
  frameCount: number,
): { mem: PhysicalMemory; mmu: Mmu } {
  const mem = new PhysicalMemory({ frameCount, pageBytes: format.pageBytes });
  const mmu = new Mmu(mem, format, {
    tlb: { entries: 1, ways: 1, replacement: 'lru' },
    cost: resolveCostModel(),
    clock: new Clock({ hz: 1e9 }),
  });
  return { mem, mmu };
}

/**
 * Translate one address on `mmu` with root `rootFrame`, recording the walk. The TLB is flushed
 * first so that every address is walked, and the accessed/dirty bits the walk sets are undone
 * afterwards, so that each address is explained against the image as given, whatever was
 * translated before it. Throws InputError for an address the format cannot hold.
 */
export function explainTranslation(
  mem: PhysicalMemory,
  mmu: Mmu,
  va: bigint,
  options: { rootFrame: number; access: AccessKind; mode: CpuMode; label?: string },
): TranslationReport {
  const fmt = mmu.format;
  const label = options.label ?? `0x${va.toString(16)}`;
  if (va < 0n || va >= 1n << BigInt(fmt.vaBits)) {
    throw new InputError(
      `address ${label}: wider than the ${fmt.vaBits}-bit virtual addresses of ${fmt.name}`,
    );
  }
  if (va > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InputError(`address ${label}: vmlab's MMU translates addresses below 2^53`);
  }
  const vaNum = Number(va);
  mmu.switchAddressSpace(options.rootFrame, 0);
  mmu.flushTlb();
  const entries: Array<{ level: number; pa: number; lo: number; hi: number }> = [];
  mmu.walkObserver = (level, pa, lo, hi) => entries.push({ level, pa, lo, hi });
  let pa: number;
  try {
    pa = mmu.translate(vaNum, options.access, options.mode);
  } finally {
    mmu.walkObserver = null;
    restoreEntries(mem, fmt, entries);
  }
  const indices = fmt.levelBits.map((_, level) => levelIndex(fmt, vaNum, level));
  const steps = walkSteps(fmt, entries, indices, options.rootFrame);
  const report: TranslationReport = {
    va: `0x${va.toString(16)}`,
    vaDecimal: va.toString(10),
    vaBits: fmt.vaBits,
    indices,
    offset: vaNum % fmt.pageBytes,
    steps,
    result: { fault: { kind: 'none', level: 0 } },
  };
  if (pa < 0) {
    const f: MmuFault = mmu.fault;
    report.result = { fault: { kind: f.kind, level: f.level, ...(f.reason ? { reason: f.reason } : {}) } };
  } else {
    report.result = { pa: `0x${pa.toString(16)}`, paDecimal: pa, byte: mem.read8(pa) };
  }
  return report;
}

/** Write back the entries a walk read, as they were before it set accessed or dirty bits. */
function restoreEntries(
  mem: PhysicalMemory,
  fmt: PagingFormat,
  entries: ReadonlyArray<{ pa: number; lo: number; hi: number }>,
): void {
  for (const { pa, lo, hi } of entries) {
    if (fmt.entryBytes === 1) {
      if (mem.read8(pa) !== lo) mem.write8(pa, lo);
    } else if (fmt.entryBytes === 2) {
      if (mem.read16(pa) !== lo) mem.write16(pa, lo);
    } else if (mem.read32(pa) !== lo >>> 0) {
      mem.write32(pa, lo);
    }
    if (fmt.entryBytes === 8 && mem.read32(pa + 4) !== hi >>> 0) mem.write32(pa + 4, hi);
  }
}

/** One step per entry the walk read. */
function walkSteps(
  fmt: PagingFormat,
  entries: ReadonlyArray<{ level: number; pa: number; lo: number; hi: number }>,
  indices: number[],
  rootFrame: number,
): WalkStep[] {
  let table = rootFrame;
  return entries.map(({ level, pa, lo, hi }) => {
    const decoded = decodeEntry(fmt, lo >>> 0, hi >>> 0);
    const fields: Record<string, number | boolean> = {};
    for (const f of ENTRY_FLAGS) if (fmt.has[f]) fields[f] = decoded[f];
    fields.pfn = decoded.pfn;
    if (decoded.reserved) fields.reserved = true;
    const step = {
      level,
      index: indices[level]!,
      tableFrame: table,
      entryAddress: pa,
      raw: entryHex(fmt, lo >>> 0, hi >>> 0),
      fields,
    };
    table = decoded.pfn;
    return step;
  });
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** A report as text lines, the way a student writes the walk out. */
export function renderTranslation(fmt: PagingFormat, rep: TranslationReport): string {
  const out: string[] = [];
  const bin = BigInt(rep.va).toString(2).padStart(rep.vaBits, '0');
  out.push(`VA ${rep.va} (decimal ${rep.vaDecimal}) = 0b${bin} (${rep.vaBits} bits)`);
  const split = rep.indices.map((ix, l) => `L${l} index ${hex(ix)} (${ix})`).join(' | ');
  out.push(`  split: ${split} | offset ${hex(rep.offset)} (${rep.offset})`);
  for (const s of rep.steps) {
    const flags = Object.entries(s.fields)
      .filter(([k]) => k !== 'pfn')
      .map(([k, v]) => `${k}=${v === true ? 1 : v === false ? 0 : v}`)
      .join(' ');
    out.push(
      `  L${s.level}: table frame ${hex(s.tableFrame)} (${s.tableFrame}), entry ${s.index} at PA ${hex(s.entryAddress)}: ` +
        `${s.raw}  ${flags} pfn=${hex(s.fields.pfn as number)}`,
    );
  }
  if ('pa' in rep.result) {
    const frame = Math.floor(rep.result.paDecimal / fmt.pageBytes);
    out.push(
      `  --> PA ${rep.result.pa} (decimal ${rep.result.paDecimal}) = frame ${hex(frame)} + offset ${hex(rep.offset)}, ` +
        `byte there 0x${rep.result.byte.toString(16).padStart(2, '0')}`,
    );
  } else {
    const f = rep.result.fault;
    out.push(`  --> FAULT ${f.kind}${f.reason ? ` (${f.reason})` : ''} at level ${f.level}`);
  }
  return out.join('\n');
}

/** The `ARG name value` lines that open the output (OSTEP's convention). */
export function renderTranslateArgs(
  fmt: PagingFormat,
  args: { image: string; frames: number; rootFrame: number; access: AccessKind; mode: CpuMode },
): string {
  return [
    `ARG format ${fmt.name}`,
    `ARG page size ${fmt.pageBytes}`,
    `ARG levels ${fmt.levelBits.join('/')} (index bits, root first)`,
    `ARG entry bytes ${fmt.entryBytes}`,
    `ARG va bits ${fmt.vaBits}`,
    `ARG image ${args.image}`,
    `ARG phys frames ${args.frames}`,
    `ARG root frame ${hex(args.rootFrame)} (${args.rootFrame})`,
    `ARG access ${ACCESS_NAMES[args.access]}`,
    `ARG mode ${MODE_NAMES[args.mode]}`,
  ].join('\n');
}
