/**
 * `vmlab demo`: boots a machine, prints its configuration, maps pages on demand from a fault
 * handler while a loop touches memory, explains one walk, and prints the MMU's counters with
 * the effective access time against the textbook formula (or all of it as JSON with --json).
 */
import type { Command } from 'commander';
import { textbookEat } from '../hw/cost.ts';
import { ACCESS_READ, type MmuFault, MODE_USER } from '../hw/mmu.ts';
import { encodeEntry, entryPfn, levelIndex } from '../hw/paging/format.ts';
import { InputError } from './configfile.ts';
import { buildMachine, describeMachine, type Machine } from './machine.ts';
import {
  explainTranslation,
  makeTranslateMachine,
  renderTranslation,
  type TranslationReport,
} from './translate.ts';
import { parseSize } from './units.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('boot a machine, touch memory through demand-mapped pages, and show the MMU at work')
    .option('-f, --format <name|file>', 'paging format', 'x86-64')
    .option('--memory <size>', 'emulated RAM', '64M')
    .option('--pages <n>', 'pages the demo loop touches', '256')
    .option('-s, --seed <n>', 'seed', '0')
    .option('--json', 'print the machine, the counters and the explained walk as JSON')
    .addHelpText(
      'after',
      `
Examples:
  vmlab demo                                  # 256 pages on x86-64
  vmlab demo --pages 16 -f sv39
  vmlab demo -f x86-32 --memory 16M --pages 128
  vmlab demo -f docs/examples/tiny-format.yaml --memory 4K --pages 4   # a textbook format
  vmlab demo --pages 100 --json`,
    )
    .action((opts: Record<string, string | boolean | undefined>) => {
      const memoryBytes = parseSize(String(opts.memory));
      if (memoryBytes === undefined) throw new InputError(`--memory: '${opts.memory}' is not a size`);
      const pages = Number(opts.pages);
      if (!Number.isInteger(pages) || pages < 1)
        throw new InputError(`--pages: '${opts.pages}' is not a page count`);
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed) || seed < 0)
        throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
      const m = buildMachine({ format: String(opts.format), memoryBytes, seed });
      const result = runDemo(m, pages);
      if (opts.json === true) {
        process.stdout.write(`${JSON.stringify({ machine: demoMachine(m), ...result }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${renderDemo(m, result).join('\n')}\n`);
    });
}

/** What the demo measured: the MMU's counters, the effective access time, and one walk explained. */
export interface DemoResult {
  pages: number;
  /** Bytes touched: pages × page size. */
  bytes: number;
  accesses: number;
  tlbHits: number;
  tlbMisses: number;
  /** tlbHits / (tlbHits + tlbMisses), 0 with no reference. */
  hitRate: number;
  walks: number;
  walkEntryReads: number;
  dirtyAssists: number;
  pageFaults: number;
  /** Frames the demo's pager handed out (page tables and data), and those with host memory. */
  framesUsed: number;
  framesMaterialized: number;
  cycles: number;
  /** h(t_tlb + t_mem) + (1-h)(t_tlb + (L+1) t_mem), in cycles per access. */
  eatTextbookCycles: number;
  /** (cycles - faults × fault entry) / accesses. */
  eatMeasuredCycles: number;
  /** The walk of one address the demo wrote (see explainTranslation). */
  walk: TranslationReport;
}

/** The machine the demo ran on, for --json (what the ARG lines say). */
function demoMachine(m: Machine): Record<string, unknown> {
  const c = m.config;
  return {
    seed: c.seed,
    memoryBytes: c.memoryBytes,
    frames: m.mem.frameCount,
    pageBytes: m.format.pageBytes,
    format: m.format.name,
    levelBits: m.format.levelBits,
    entryBytes: m.format.entryBytes,
    vaBits: m.format.vaBits,
    cpuHz: c.cpuHz,
    tlb: {
      entries: c.tlbEntries,
      ways: c.tlbWays,
      replacement: c.tlbReplacement,
      management: c.tlbManagement,
    },
    splitTlb: c.splitTlb,
    asidBits: c.asidBits,
  };
}

/**
 * Run the demo on machine `m` (a fresh one: the demo takes its frames from frame 1 up): map
 * pages on demand while a loop writes `pages` pages and reads them three times. InputError when
 * memory runs out.
 */
export function runDemo(m: Machine, pages: number): DemoResult {
  const { mem, mmu, format } = m;
  let nextFrame = 1;
  const allocFrame = (): number => {
    if (nextFrame >= mem.frameCount) throw new InputError(`demo: out of frames (${mem.frameCount})`);
    mem.zeroFrameContents(nextFrame);
    return nextFrame++;
  };
  const base = demoBase(m, pages);
  const root = allocFrame();
  mmu.setFaultHandler(demandPager(m, { root, allocFrame }));
  mmu.switchAddressSpace(root, 1);
  mmu.setMode(MODE_USER);
  const start = m.clock.now;
  for (let round = 0; round < 4; round++) {
    for (let p = 0; p < pages; p++) {
      const va = base + p * format.pageBytes;
      for (let off = 0; off < format.pageBytes; off += 64) {
        if (round === 0) mmu.store8(va + off, (p + off) & 0xff);
        else mmu.load8(va + off);
      }
    }
  }
  const cycles = m.clock.now - start;
  const t = mmu.dtlb;
  const refs = t.hits + t.misses;
  const h = refs > 0 ? t.hits / refs : 0;
  const cost = mmu.cost;
  const stlb = mmu.stlb;
  const h2 = stlb === null ? null : stlb.hits / Math.max(1, stlb.hits + stlb.misses);
  const eat = textbookEat(cost, format.levels, h, h2);
  // Explain one walk on a copy of the same memory, watched by a recording bus.
  const { mem: rec, mmu: probe } = makeTranslateMachine(format, mem.frameCount);
  for (let f = 1; f < nextFrame; f++) rec.writeBytes(f * format.pageBytes, mem.frameView(f));
  // Page 1 (page 0 with one page), at the offset 0x40 that the loop wrote (0 in pages of 64 bytes or less).
  const explained = base + Math.min(1, pages - 1) * format.pageBytes + (format.pageBytes > 0x40 ? 0x40 : 0);
  const walk = explainTranslation(rec, probe, BigInt(explained), {
    rootFrame: root,
    access: ACCESS_READ,
    mode: MODE_USER,
  });
  return {
    pages,
    bytes: pages * format.pageBytes,
    accesses: mmu.accesses,
    tlbHits: t.hits,
    tlbMisses: t.misses,
    hitRate: h,
    walks: mmu.walks,
    walkEntryReads: mmu.walkMemoryRefs,
    dirtyAssists: mmu.dirtyAssists,
    pageFaults: mmu.faults,
    framesUsed: nextFrame - 1,
    framesMaterialized: mem.materializedFrames,
    cycles,
    eatTextbookCycles: eat,
    eatMeasuredCycles: (cycles - mmu.faults * cost.faultEntryCycles) / mmu.accesses,
    walk,
  };
}

/**
 * Where the demo's loop starts: 4 MiB, or page 1 in an address space too small for that (a
 * textbook format of a few KiB). InputError when `pages` pages do not fit at all.
 */
function demoBase(m: Machine, pages: number): number {
  const vaBytes = 2 ** m.format.vaBits;
  const bytes = pages * m.format.pageBytes;
  if (0x400000 + bytes <= vaBytes) return 0x400000;
  if (m.format.pageBytes + bytes <= vaBytes) return m.format.pageBytes;
  throw new InputError(
    `--pages: ${pages} pages do not fit in the ${m.format.vaBits}-bit address space of ${m.format.name}`,
  );
}

/**
 * A minimal demand pager for the demo (the kernel's real fault path comes with processes): walk
 * the tables from `root`, creating missing levels, and map a zeroed frame read-write for the user.
 */
function demandPager(
  m: Machine,
  tables: { root: number; allocFrame: () => number },
): (fault: Readonly<MmuFault>) => void {
  const { mem, format } = m;
  return (fault) => {
    if (fault.kind !== 'not-present')
      throw new Error(`demo: unexpected ${fault.kind} fault at 0x${fault.va.toString(16)}`);
    let table = tables.root;
    for (let level = 0; level < format.levels; level++) {
      const pa = table * format.pageBytes + levelIndex(format, fault.va, level) * format.entryBytes;
      const lo = readLo(m, pa);
      const hi = format.entryBytes === 8 ? mem.read32(pa + 4) : 0;
      const presentMask = format.mask.present;
      if (((lo & presentMask.lo) | (hi & presentMask.hi)) !== 0) {
        table = entryPfn(format, lo, hi);
        continue;
      }
      const frame = tables.allocFrame();
      const leaf = level === format.levels - 1;
      const e =
        !leaf && format.permissionScope === 'leaf-only'
          ? encodeEntry(format, { pfn: frame, present: true })
          : encodeEntry(format, {
              pfn: frame,
              present: true,
              writable: format.has.writable,
              user: format.has.user,
              readable: format.has.readable,
            });
      writeLo(m, pa, e.lo);
      if (format.entryBytes === 8) mem.write32(pa + 4, e.hi);
      table = frame;
    }
  };
}

/** The demo's text: the ARG lines, the counters, the effective access time and the walk. */
export function renderDemo(m: Machine, r: DemoResult): string[] {
  const { format } = m;
  return [
    ...describeMachine(m),
    '',
    `demo: touched ${r.pages} pages (${r.bytes} bytes) once writing, three times reading, every 64 bytes`,
    `accesses            ${r.accesses}`,
    `tlb hits / misses   ${r.tlbHits} / ${r.tlbMisses}  (hit rate ${(100 * r.hitRate).toFixed(2)}%)`,
    `page walks          ${r.walks} (${r.walkEntryReads} entry reads, ${r.dirtyAssists} dirty assists)`,
    `page faults         ${r.pageFaults}`,
    `frames used         ${r.framesUsed} (${r.framesMaterialized} materialized on the host)`,
    `cycles              ${r.cycles}`,
    m.mmu.stlb === null
      ? `EAT textbook        ${r.eatTextbookCycles.toFixed(2)} cycles/access = h(t_tlb + t_mem) + (1-h)(t_tlb + ${format.levels + 1} t_mem)`
      : `EAT textbook        ${r.eatTextbookCycles.toFixed(2)} cycles/access = h(t_tlb + t_mem) + (1-h)(t_tlb + t_stlb + t_mem + (1-h2) ${format.levels} t_mem)`,
    `EAT measured        ${r.eatMeasuredCycles.toFixed(2)} cycles/access (fault entry excluded; the walks of faulted first attempts included)`,
    '',
    `the walk of ${r.walk.va} (a page written in round 0, so accessed and dirty are set):`,
    renderTranslation(format, r.walk),
  ];
}

function readLo(m: Machine, pa: number): number {
  const n = m.format.entryBytes;
  return n === 1 ? m.mem.read8(pa) : n === 2 ? m.mem.read16(pa) : m.mem.read32(pa);
}

function writeLo(m: Machine, pa: number, lo: number): void {
  const n = m.format.entryBytes;
  if (n === 1) m.mem.write8(pa, lo);
  else if (n === 2) m.mem.write16(pa, lo);
  else m.mem.write32(pa, lo);
}
