/**
 * Hardware benchmarks: TLB-hit translated loads and stores per second, first-level misses
 * served by the second-level TLB, page walks per second per preset, and host memory per
 * emulated GiB touched.
 */
import { Clock } from '../../kernel/hw/clock.ts';
import { resolveCostModel } from '../../kernel/hw/cost.ts';
import { Mmu, MODE_USER } from '../../kernel/hw/mmu.ts';
import { encodeEntry, levelIndex, type PagingFormat } from '../../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../../kernel/hw/paging/presets.ts';
import { PhysicalMemory } from '../../kernel/hw/physmem.ts';
import type { BenchFigure } from './run.ts';
import { opsPerSecond } from './timing.ts';

/** Map `pages` consecutive pages from `baseVa` in a fresh machine; tables and data frames bump-allocated. */
function mappedMachine(
  fmt: PagingFormat,
  pages: number,
  baseVa: number,
  tlbEntries: number,
  frameCount = 65536,
  stlbEntries = 0,
) {
  const mem = new PhysicalMemory({ frameCount, pageBytes: fmt.pageBytes });
  let next = 1;
  const root = next++;
  const writeEntry = (pa: number, pfn: number, leaf: boolean): void => {
    const pointerOnly = !leaf && fmt.permissionScope === 'leaf-only';
    const e = pointerOnly
      ? encodeEntry(fmt, { pfn, present: true })
      : encodeEntry(fmt, {
          pfn,
          present: true,
          writable: fmt.has.writable,
          user: fmt.has.user,
          readable: fmt.has.readable,
        });
    if (fmt.entryBytes === 8) {
      mem.write32(pa, e.lo);
      mem.write32(pa + 4, e.hi);
    } else {
      mem.write32(pa, e.lo);
    }
  };
  const tables = new Map<string, number>();
  for (let p = 0; p < pages; p++) {
    const va = baseVa + p * fmt.pageBytes;
    let table = root;
    for (let level = 0; level < fmt.levels - 1; level++) {
      const key = `${level}:${Math.floor(va / 2 ** fmt.levelShift[level]!)}`;
      let child = tables.get(key);
      if (child === undefined) {
        child = next++;
        tables.set(key, child);
        writeEntry(table * fmt.pageBytes + levelIndex(fmt, va, level) * fmt.entryBytes, child, false);
      }
      table = child;
    }
    writeEntry(table * fmt.pageBytes + levelIndex(fmt, va, fmt.levels - 1) * fmt.entryBytes, next++, true);
  }
  const clock = new Clock({ hz: 1e9 });
  const mmu = new Mmu(mem, fmt, {
    tlb: { entries: tlbEntries, ways: Math.min(4, tlbEntries), replacement: 'lru' },
    stlb: stlbEntries > 0 ? { entries: stlbEntries, ways: 12 } : undefined,
    cost: resolveCostModel(),
    clock,
  });
  mmu.switchAddressSpace(root, 0);
  mmu.setMode(MODE_USER);
  return { mem, mmu };
}

export function run(): BenchFigure[] {
  const figures: BenchFigure[] = [];
  const base = 0x400000;
  {
    const { mmu } = mappedMachine(PRESET_FORMATS['x86-64']!, 16, base, 64);
    let sink = 0;
    const n = 1_000_000;
    const rate = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink += mmu.load8(base + ((i * 64) & 0xffff));
    }, n);
    if (sink < 0) console.log(sink);
    figures.push({ name: 'TLB-hit load8, x86-64, 64-entry 4-way TLB', value: rate, unit: 'loads/s' });
    const rate32 = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink += mmu.load32(base + ((i * 64) & 0xffff));
    }, n);
    figures.push({ name: 'TLB-hit load32, x86-64', value: rate32, unit: 'loads/s' });
    const rateSt = opsPerSecond(() => {
      for (let i = 0; i < n; i++) mmu.store32(base + ((i * 64) & 0xffff), i);
    }, n);
    figures.push({ name: 'TLB-hit store32, x86-64', value: rateSt, unit: 'stores/s' });
    const rate64 = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink += mmu.load64(base + ((i * 64) & 0xffff));
    }, n);
    figures.push({ name: 'TLB-hit load64, x86-64', value: rate64, unit: 'loads/s' });
    const rateSt64 = opsPerSecond(() => {
      for (let i = 0; i < n; i++) mmu.store64(base + ((i * 64) & 0xffff), i);
    }, n);
    figures.push({ name: 'TLB-hit store64, x86-64', value: rateSt64, unit: 'stores/s' });
  }
  {
    // 512 pages in a stride that visits every one before any repeats: each access misses the
    // 64-entry first level and hits the 1536-entry second level (after the first pass).
    const pages = 512;
    const { mmu } = mappedMachine(PRESET_FORMATS['x86-64']!, pages, base, 64, 65536, 1536);
    const n = 1_000_000;
    let sink = 0;
    for (let p = 0; p < pages; p++) sink += mmu.load8(base + p * 4096);
    const walks0 = mmu.walks;
    const rate = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink += mmu.load64(base + ((i * 37) % pages) * 4096 + 8);
    }, n);
    if (sink < 0 || mmu.walks !== walks0) throw new Error('the STLB benchmark walked: its pages do not fit');
    figures.push({ name: 'first-level miss, STLB hit load64 (512 pages)', value: rate, unit: 'loads/s' });
  }
  for (const [name, fmt] of Object.entries(PRESET_FORMATS)) {
    // A one-entry TLB and two pages used alternately: every access misses and walks.
    const { mmu } = mappedMachine(fmt, 2, base, 1);
    const n = 200_000;
    let sink = 0;
    const rate = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink += mmu.load8(base + (i & 1) * fmt.pageBytes);
    }, n);
    if (sink < 0) console.log(sink);
    figures.push({ name: `page walks, ${name} (${fmt.levels} levels)`, value: rate, unit: 'walks/s' });
  }
  {
    const fmt = PRESET_FORMATS['x86-64']!;
    const gib = 1024 ** 3;
    const mem = new PhysicalMemory({ frameCount: (16 * gib) / 4096, pageBytes: 4096 });
    global.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    const touchedBytes = 256 * 1024 * 1024;
    for (let pfn = 0; pfn < touchedBytes / fmt.pageBytes; pfn++) mem.frameWrite8(pfn, 0, 1);
    const after = process.memoryUsage().arrayBuffers;
    figures.push({
      name: 'host bytes per emulated GiB touched (16 GiB machine)',
      value: ((after - before) / touchedBytes) * gib,
      unit: 'bytes',
    });
    figures.push({
      name: 'host bytes per emulated GiB, frame backing only',
      value: (mem.hostBytes() / touchedBytes) * gib,
      unit: 'bytes',
    });
  }
  return figures;
}
