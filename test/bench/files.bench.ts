/**
 * File benchmarks: file-backed page faults (pages read from the file, and pages found in the
 * page cache), and a sequential pass over a file through mmap with and without readahead,
 * and through read(). Host rates, and the emulated time the disk (ssd) took.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import type { KernelTunables } from '../../kernel/proc/kernel.ts';
import {
  MADV_RANDOM,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
  type UserMain,
} from '../../kernel/proc/uapi.ts';
import type { BenchFigure } from './run.ts';

const PAGE = 4096;
const FILE_PAGES = 16384; // 64 MiB

interface Phase {
  seconds: number;
  emulatedMs: number;
  majflt: number;
  minflt: number;
}

/**
 * Run `mains` one after another in one process (the page cache persists between them) on a
 * machine whose sandbox holds /data.bin; the host time, emulated time and faults of each.
 */
function runOnFile(dir: string, mains: UserMain[], tunables: Partial<KernelTunables> = {}): Phase[] {
  const out: Phase[] = [];
  const m = bootKernel(buildMachine({ memoryBytes: 256 * 1024 * 1024 }), {
    loader: (path) =>
      path === '/bin/bench'
        ? { path, main: all, textBytes: PAGE, dataBytes: PAGE, bssBytes: PAGE }
        : undefined,
    tunables: { fetchStrideBytes: 0, ...tunables },
    files: { from: dir, writeThrough: true },
  });
  function* all(ctx: Parameters<UserMain>[0]): Generator<void, number, void> {
    for (const main of mains) {
      const e = m.kernel.events;
      const [t0, c0, maj0, all0] = [performance.now(), m.clock.now, e.pgmajfault, e.pgfault];
      const status = yield* main(ctx);
      if (status !== 0) return status ?? 1;
      out.push({
        seconds: (performance.now() - t0) / 1000,
        emulatedMs: (m.clock.now - c0) / 1e6,
        majflt: e.pgmajfault - maj0,
        minflt: e.pgfault - all0 - (e.pgmajfault - maj0),
      });
    }
    return 0;
  }
  const task = m.kernel.spawn('/bin/bench', ['bench']);
  if (typeof task === 'number') throw new Error(`spawn failed: ${task}`);
  m.kernel.run();
  m.shutdown();
  if (task.waitStatus !== 0) throw new Error(`bench program ended with status ${task.waitStatus}`);
  return out;
}

/** Touch every page of /data.bin through a private read-only mapping (`random`: MADV_RANDOM). */
function mapToucher(pattern: 'sequential' | 'random'): UserMain {
  return function* ({ cpu, sys }) {
    const fd = sys.open('/data.bin', O_RDONLY);
    const base = sys.mmap(0, FILE_PAGES * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base < 0) return 1;
    if (pattern === 'random' && sys.madvise(base, FILE_PAGES * PAGE, MADV_RANDOM) < 0) return 2;
    let sum = 0;
    for (let p = 0; p < FILE_PAGES; p++) {
      sum += cpu.load8(base + p * PAGE);
      if ((p & 15) === 0) yield;
    }
    return sum === FILE_PAGES * 7 ? 0 : 3;
  };
}

/** read() the whole file in 64 KiB pieces. */
const reader: UserMain = function* ({ sys }) {
  const fd = sys.open('/data.bin', O_RDONLY);
  const chunk = 64 * 1024;
  const buf = sys.mmap(0, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  let total = 0;
  for (;;) {
    const n = sys.read(fd, buf, chunk);
    if (n < 0) return 1;
    if (n === 0) break;
    total += n;
    yield;
  }
  return total === FILE_PAGES * PAGE ? 0 : 2;
};

export function run(): BenchFigure[] {
  const dir = mkdtempSync(join(tmpdir(), 'vmlab-bench-files-'));
  try {
    writeFileSync(join(dir, 'data.bin'), new Uint8Array(FILE_PAGES * PAGE).fill(7));
    const figures: BenchFigure[] = [];
    const mib = (FILE_PAGES * PAGE) / (1024 * 1024);
    // Uncached then cached: the second process finds every page in the page cache.
    const [cold, warm] = runOnFile(dir, [mapToucher('random'), mapToucher('random')]);
    figures.push(
      {
        name: 'file faults, uncached (read from the file, no readahead)',
        value: cold!.majflt / cold!.seconds,
        unit: 'faults/s',
      },
      {
        name: 'file faults, cached (page-cache hits)',
        value: warm!.minflt / warm!.seconds,
        unit: 'faults/s',
      },
      { name: 'emulated time, 64 MiB of uncached faults (ssd)', value: cold!.emulatedMs, unit: 'ms' },
    );
    const [seq] = runOnFile(dir, [mapToucher('sequential')]);
    figures.push(
      { name: 'sequential mmap pass, readahead: major faults', value: seq!.majflt, unit: 'faults' },
      {
        name: 'sequential mmap pass, readahead: emulated',
        value: mib / (seq!.emulatedMs / 1000),
        unit: 'MiB/s',
      },
      {
        name: 'sequential mmap pass, MADV_RANDOM: emulated',
        value: mib / (cold!.emulatedMs / 1000),
        unit: 'MiB/s',
      },
      { name: 'sequential mmap pass, readahead: host', value: mib / seq!.seconds, unit: 'MiB/s' },
    );
    const [withRa] = runOnFile(dir, [reader]);
    const [withoutRa] = runOnFile(dir, [reader], { readaheadMaxPages: 0 });
    figures.push(
      {
        name: 'read() 64 KiB at a time, readahead: emulated',
        value: mib / (withRa!.emulatedMs / 1000),
        unit: 'MiB/s',
      },
      {
        name: 'read() 64 KiB at a time, no readahead: emulated',
        value: mib / (withoutRa!.emulatedMs / 1000),
        unit: 'MiB/s',
      },
      { name: 'read() 64 KiB at a time, readahead: host', value: mib / withRa!.seconds, unit: 'MiB/s' },
    );
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
