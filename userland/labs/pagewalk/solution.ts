/**
 * Lab 1, a reference solution: part A's answers for seed 0, and a walker for any vmlab
 * paging format that agrees with the MMU (kernel/hw/mmu.ts).
 */
import type { Access, Mode, PartAAnswers, WalkMachine, WalkResult } from './walker.ts';

export const partA: PartAAnswers = {
  seed: 0,
  answers: ['fault', 'fault', '0x519 0x4f', 'fault', 'fault', '0xbf3 0x32', 'fault', 'fault'],
};

/** Is bit `position` (undefined: the format has no such flag) set in `entry`? */
function bit(entry: bigint, position: number | undefined): boolean {
  return position !== undefined && ((entry >> BigInt(position)) & 1n) === 1n;
}

function pfnOf(m: WalkMachine, entry: bigint): number {
  const { shift, width } = m.format.pfn;
  return Number((entry >> BigInt(shift)) & ((1n << BigInt(width)) - 1n));
}

function hasReservedBit(m: WalkMachine, entry: bigint): boolean {
  return (m.format.reservedBits ?? []).some(([first, last]) => {
    for (let b = first; b <= last; b++) if (bit(entry, b)) return true;
    return false;
  });
}

/** The index of `va` at `level`: the levels' index fields sit above the page offset, root highest. */
function indexAt(m: WalkMachine, va: number, level: number): number {
  const { pageBytes, levelBits } = m.format;
  let shift = Math.log2(pageBytes);
  for (let l = levelBits.length - 1; l > level; l--) shift += levelBits[l]!;
  return Math.floor(va / 2 ** shift) % 2 ** levelBits[level]!;
}

export default function walk(m: WalkMachine, va: number, access: Access, mode: Mode): WalkResult {
  const f = m.format;
  const flags = f.flags;
  const last = f.levelBits.length - 1;
  const allLevels = f.permissionScope === 'all-levels';
  let table = m.root;
  let writable = true;
  let user = true;
  let noExecute = false;
  let entry = 0n;
  for (let level = 0; level <= last; level++) {
    if (table >= m.frames) return { fault: 'bus', level };
    entry = m.readEntry(table * f.pageBytes + indexAt(m, va, level) * f.entryBytes);
    if (!bit(entry, flags.present)) return { fault: 'not-present', level };
    if (hasReservedBit(m, entry)) return { fault: 'reserved', level };
    if (allLevels) {
      if (level < last && bit(entry, f.hugePageBit)) return { fault: 'reserved', level };
      if (flags.writable !== undefined && !bit(entry, flags.writable)) writable = false;
      if (flags.user !== undefined && !bit(entry, flags.user)) user = false;
      if (bit(entry, flags.noExecute)) noExecute = true;
    } else {
      const leaf = bit(entry, flags.readable) || bit(entry, flags.writable) || bit(entry, flags.execute);
      if (leaf !== (level === last)) return { fault: 'reserved', level };
    }
    if (level < last) table = pfnOf(m, entry);
  }
  let readable = true;
  let executable = !noExecute;
  if (!allLevels) {
    readable = flags.readable === undefined || bit(entry, flags.readable);
    writable = flags.writable === undefined || bit(entry, flags.writable);
    user = flags.user === undefined || bit(entry, flags.user);
    executable = flags.execute === undefined || bit(entry, flags.execute);
    if (writable && !readable) return { fault: 'reserved', level: last };
  }
  const refused =
    (mode === 'user' && !user) ||
    (access === 'write' && !writable) ||
    (access === 'execute' && !executable) ||
    (access === 'read' && !readable);
  if (refused) return { fault: 'protection', level: last };
  const frame = pfnOf(m, entry);
  if (frame >= m.frames) return { fault: 'bus', level: last };
  return { pa: frame * f.pageBytes + (va % f.pageBytes) };
}
