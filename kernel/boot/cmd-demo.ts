/**
 * `vmlab demo`: boots a machine, prints its configuration, maps pages on demand from a fault
 * handler while a loop touches memory, explains one walk, and prints the MMU's counters with
 * the effective access time against the textbook formula.
 */
import type { Command } from 'commander';
import { ACCESS_READ, type MmuFault, MODE_USER } from '../hw/mmu.ts';
import { encodeEntry, entryPfn, levelIndex } from '../hw/paging/format.ts';
import { InputError } from './configfile.ts';
import { buildMachine, describeMachine, type Machine } from './machine.ts';
import { explainTranslation, makeTranslateMachine, renderTranslation } from './translate.ts';
import { parseSize } from './units.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('boot a machine, touch memory through demand-mapped pages, and show the MMU at work')
    .option('-f, --format <name|file>', 'paging format', 'x86-64')
    .option('--memory <size>', 'emulated RAM', '64M')
    .option('--pages <n>', 'pages the demo loop touches', '256')
    .option('-s, --seed <n>', 'seed', '0')
    .action((opts: Record<string, string>) => {
      const memoryBytes = parseSize(opts.memory!);
      if (memoryBytes === undefined) throw new InputError(`--memory: '${opts.memory}' is not a size`);
      const pages = Number(opts.pages);
      if (!Number.isInteger(pages) || pages < 1)
        throw new InputError(`--pages: '${opts.pages}' is not a page count`);
      const m = buildMachine({ format: opts.format!, memoryBytes, seed: Number(opts.seed) });
      process.stdout.write(`${runDemo(m, pages).join('\n')}\n`);
    });
}

/** Run the demo on machine `m`; returns the lines to print. */
export function runDemo(m: Machine, pages: number): string[] {
  const out = describeMachine(m);
  const { mem, mmu, format } = m;
  let nextFrame = 1;
  const allocFrame = (): number => {
    if (nextFrame >= mem.frameCount) throw new InputError(`demo: out of frames (${mem.frameCount})`);
    mem.zeroFrameContents(nextFrame);
    return nextFrame++;
  };
  const root = allocFrame();
  // A minimal demand pager for the demo (the kernel's real fault path comes with processes):
  // walk the tables, creating missing levels, and map a zeroed frame read-write for the user.
  const mapOnDemand = (fault: Readonly<MmuFault>): void => {
    if (fault.kind !== 'not-present')
      throw new Error(`demo: unexpected ${fault.kind} fault at 0x${fault.va.toString(16)}`);
    let table = root;
    for (let level = 0; level < format.levels; level++) {
      const pa = table * format.pageBytes + levelIndex(format, fault.va, level) * format.entryBytes;
      const lo = readLo(m, pa);
      const hi = format.entryBytes === 8 ? mem.read32(pa + 4) : 0;
      const presentMask = format.mask.present;
      if (((lo & presentMask.lo) | (hi & presentMask.hi)) !== 0) {
        table = entryPfn(format, lo, hi);
        continue;
      }
      const frame = allocFrame();
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
  mmu.setFaultHandler(mapOnDemand);
  mmu.switchAddressSpace(root, 1);
  mmu.setMode(MODE_USER);
  const base = 0x400000;
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
  const eat =
    h * (cost.tlbLookupCycles + cost.memoryAccessCycles) +
    (1 - h) * (cost.tlbLookupCycles + (format.levels + 1) * cost.memoryAccessCycles);
  out.push('');
  out.push(
    `demo: touched ${pages} pages (${pages * format.pageBytes} bytes) once writing, three times reading, every 64 bytes`,
  );
  out.push(`accesses            ${mmu.accesses}`);
  out.push(`tlb hits / misses   ${t.hits} / ${t.misses}  (hit rate ${(100 * h).toFixed(2)}%)`);
  out.push(
    `page walks          ${mmu.walks} (${mmu.walkMemoryRefs} entry reads, ${mmu.dirtyAssists} dirty assists)`,
  );
  out.push(`page faults         ${mmu.faults}`);
  out.push(`frames used         ${nextFrame - 1} (${mem.materializedFrames} materialized on the host)`);
  out.push(`cycles              ${cycles}`);
  out.push(
    `EAT textbook        ${eat.toFixed(2)} cycles/access = h(t_tlb + t_mem) + (1-h)(t_tlb + ${format.levels + 1} t_mem)`,
  );
  out.push(
    `EAT measured        ${((cycles - mmu.faults * cost.faultEntryCycles) / mmu.accesses).toFixed(2)} cycles/access (fault entry excluded; the walks of faulted first attempts included)`,
  );
  // Explain one walk on a copy of the same memory, watched by a recording bus.
  const { mem: rec, mmu: probe } = makeTranslateMachine(format, mem.frameCount);
  for (let f = 1; f < nextFrame; f++) rec.writeBytes(f * format.pageBytes, mem.frameView(f));
  const va = base + format.pageBytes + 0x40;
  out.push('');
  out.push(`the walk of 0x${va.toString(16)} (a page written in round 0, so accessed and dirty are set):`);
  const report = explainTranslation(rec, probe, BigInt(va), {
    rootFrame: root,
    access: ACCESS_READ,
    mode: MODE_USER,
  });
  out.push(renderTranslation(format, report));
  return out;
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
