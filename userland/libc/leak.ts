/**
 * A leak report in the manner of valgrind's summary. Blocks still allocated are sorted into
 * "still reachable" (a pointer to the block's start is found in the process's memory outside
 * the allocator's own regions, that is in its stack, data, bss or other mappings, or in a block
 * reachable from there) and "definitely lost" (no such pointer: unreachable blocks, including
 * those only pointed to from other lost blocks).
 *
 * The scan is conservative, as a C leak checker's is: every aligned 8-byte word is a candidate
 * pointer. It goes a page at a time (the machine's page size, from libc's getpagesize): pages
 * never touched (not present, not in swap) are skipped, so the scan faults nothing in; pages in
 * swap are read (and so come back from it).
 *
 * Blocks count at the bytes they were asked for, as valgrind counts them, when the caller
 * knows them (Malloc's table of requested sizes); else at the allocator's usable size. Only
 * those bytes of a block are scanned for pointers (the rest is not the program's).
 */
import { PROT_READ } from '../../kernel/proc/uapi.ts';
import type { Allocator } from '../malloc/allocator.ts';
import type { Libc } from './libc.ts';

export interface LeakReport {
  definitelyLost: { blocks: number; bytes: number };
  stillReachable: { blocks: number; bytes: number };
  /** The lost blocks' addresses, lowest first. */
  lostAddresses: number[];
  /** The lost blocks (payload address and bytes: requested when known, else usable), lowest first. */
  lostBlocks: Array<{ ptr: number; size: number }>;
}

export interface LeakReportOptions {
  /** The bytes each live block was asked for, by address (blocks not in it count at their usable size). */
  requestedBytes?: ReadonlyMap<number, number>;
}

/** How much a leak check at exit prints: nothing, valgrind's summary, or every lost block too. */
export type LeakCheck = 'off' | 'summary' | 'full';

/** Sort the allocator's live blocks into lost and reachable by a scan of the process's memory. */
export function leakReport(libc: Libc, allocator: Allocator, options: LeakReportOptions = {}): LeakReport {
  const { cpu, sys } = libc.ctx;
  const page = libc.getpagesize();
  const requested = options.requestedBytes;
  const blocks = allocator
    .liveBlocks()
    .map((b) => ({ ptr: b.ptr, size: Math.min(b.size, requested?.get(b.ptr) ?? b.size) }));
  const index = new Map<number, number>();
  for (const [i, b] of blocks.entries()) index.set(b.ptr, i);
  const reachable = new Uint8Array(blocks.length);
  const work: number[] = [];
  const buf = new Uint8Array(page);
  const view = new DataView(buf.buffer);
  const scan = (start: number, end: number): void => {
    for (let pg = Math.floor(start / page) * page; pg < end; pg += page) {
      const info = sys.vmlab_pageinfo(pg);
      if (!info.present && !info.swapped) continue;
      const lo = Math.max(pg, start);
      const hi = Math.min(pg + page, end);
      cpu.loadBytes(lo, buf, 0, hi - lo);
      for (let off = (8 - (lo % 8)) % 8; off + 8 <= hi - lo; off += 8) {
        const value = view.getUint32(off, true) + view.getUint32(off + 4, true) * 4294967296;
        const i = index.get(value);
        if (i !== undefined && reachable[i] === 0) {
          reachable[i] = 1;
          work.push(i);
        }
      }
    }
  };
  const owned = allocator.ownedRegions();
  for (const m of sys.vmlab_maps()) {
    if ((m.prot & PROT_READ) === 0) continue;
    for (const [s, e] of subtract([m.start, m.end], owned)) scan(s, e);
  }
  while (work.length > 0) {
    const b = blocks[work.pop()!]!;
    scan(b.ptr, b.ptr + b.size);
  }
  const report: LeakReport = {
    definitelyLost: { blocks: 0, bytes: 0 },
    stillReachable: { blocks: 0, bytes: 0 },
    lostAddresses: [],
    lostBlocks: [],
  };
  blocks.forEach((b, i) => {
    const bucket = reachable[i] ? report.stillReachable : report.definitelyLost;
    bucket.blocks++;
    bucket.bytes += b.size;
    if (!reachable[i]) {
      report.lostAddresses.push(b.ptr);
      report.lostBlocks.push({ ptr: b.ptr, size: b.size });
    }
  });
  return report;
}

/** The report as valgrind prints its summary. */
export function renderLeakReport(r: LeakReport): string {
  return [
    'LEAK SUMMARY:',
    `   definitely lost: ${r.definitelyLost.bytes} bytes in ${r.definitelyLost.blocks} blocks`,
    `   still reachable: ${r.stillReachable.bytes} bytes in ${r.stillReachable.blocks} blocks`,
    '',
  ].join('\n');
}

/**
 * The report printed at exit, as valgrind prints it: the heap summary, with `full` one line per
 * lost block, then the leak summary.
 */
export function renderExitLeakReport(r: LeakReport, mode: Exclude<LeakCheck, 'off'>): string {
  const bytes = r.definitelyLost.bytes + r.stillReachable.bytes;
  const blocks = r.definitelyLost.blocks + r.stillReachable.blocks;
  const lines = ['HEAP SUMMARY:', `    in use at exit: ${bytes} bytes in ${blocks} blocks`, ''];
  if (mode === 'full') {
    for (const b of r.lostBlocks)
      lines.push(`${b.size} bytes in 1 blocks are definitely lost at 0x${b.ptr.toString(16)}`);
    if (r.lostBlocks.length > 0) lines.push('');
  }
  return lines.join('\n') + renderLeakReport(r);
}

/** [start, end) minus the given ranges. */
function subtract(range: [number, number], holes: Array<[number, number]>): Array<[number, number]> {
  let parts: Array<[number, number]> = [range];
  for (const [hs, he] of holes) {
    const next: Array<[number, number]> = [];
    for (const [s, e] of parts) {
      if (he <= s || hs >= e) {
        next.push([s, e]);
        continue;
      }
      if (hs > s) next.push([s, hs]);
      if (he < e) next.push([he, e]);
    }
    parts = next;
  }
  return parts;
}
