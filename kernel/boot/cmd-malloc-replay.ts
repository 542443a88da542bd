/** `vmlab malloc-replay`: score allocators on CS:APP malloc-lab traces. */
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { Libc } from '../../userland/libc/libc.ts';
import type { Allocator } from '../../userland/malloc/allocator.ts';
import { ALLOCATOR_NAMES } from '../../userland/malloc/index.ts';
import { InputError } from './configfile.ts';
import { loadMallocTrace, type MallocReplayResult, mallocReplay } from './mallocreplay.ts';
import { loadAllocatorFile } from './studentcode.ts';

/** An allocator to replay with: a built-in by name, or a class loaded from a file. */
interface Contender {
  name: string;
  factory?: (libc: Libc) => Allocator;
}

export function registerMallocReplay(program: Command): void {
  program
    .command('malloc-replay')
    .description('replay CS:APP malloc-lab traces with a user-space allocator inside an emulated process')
    .argument('<trace...>', 'trace files (.rep)')
    .option(
      '-a, --allocator <names>',
      `comma-separated allocators (${ALLOCATOR_NAMES.slice(0, 4).join(', ')}, …)`,
      'explicit-best-fit',
    )
    .option(
      '--allocator-file <file>',
      'an allocator class from a TypeScript or JavaScript file (its default export); repeatable, and with --allocator compared side by side',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .option('-s, --seed <n>', 'seed for the payload bytes', '1')
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
Allocators: ${ALLOCATOR_NAMES.join(', ')}

util is peak live payload / the heap's high-water mark, as the kernel sees the process (brk
extent + the bytes of the mappings the allocator made; its own stats() are not used); ops/s is
the fastest speed run (the trace's calls alone, each run in a fresh forked process), by the lab
driver's K-best scheme: until the three fastest agree within 1%, at most 20 runs. The average
throughput under the table is the lab's: total operations over total seconds, so the slow
traces weigh most.

Exit status: 0 when every trace replays correctly, 1 when one fails its checks (with --json
too), 2 for a malformed trace or a bad option.

Examples:
  vmlab malloc-replay ../shared/traces/malloclab/amptjp-bal.rep
  vmlab malloc-replay traces/*.rep -a implicit-first-fit,explicit-best-fit --json
  vmlab malloc-replay userland/labs/malloc/traces/*.rep --allocator-file my-malloc.ts -a ptmalloc`,
    )
    .action(
      async (
        traces: string[],
        opts: Record<string, string | boolean | string[] | undefined>,
        cmd: Command,
      ) => {
        const files = (opts.allocatorFile as string[] | undefined) ?? [];
        // With files only, the default built-in is left out; named ones join the comparison.
        const builtins =
          files.length > 0 && cmd.getOptionValueSource('allocator') !== 'cli' ? '' : opts.allocator;
        const names = String(builtins)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        for (const n of names) {
          if (!ALLOCATOR_NAMES.includes(n))
            throw new InputError(
              `--allocator: unknown allocator '${n}' (one of ${ALLOCATOR_NAMES.join(', ')})`,
            );
        }
        const seed = Number(opts.seed);
        if (!Number.isInteger(seed) || seed < 0)
          throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
        const loaded = traces.map((t) => loadMallocTrace(t));
        const contenders: Contender[] = names.map((name) => ({ name }));
        for (const f of files) contenders.push({ name: basename(f), factory: await loadAllocatorFile(f) });
        const results: MallocReplayResult[] = [];
        for (const t of loaded)
          for (const c of contenders)
            results.push(mallocReplay(t, c.name, { seed, factory: c.factory, speed: 'k-best' }));
        if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
        else process.stdout.write(`${renderMallocTable(results).join('\n')}\n`);
        if (results.some((r) => r.outcome !== 'ok')) process.exitCode = 1;
      },
    );
}

export function renderMallocTable(results: MallocReplayResult[]): string[] {
  const out = [
    `${'trace'.padEnd(22)} ${'allocator'.padEnd(30)} ${'ops'.padStart(7)} ${'util'.padStart(7)} ${'ops/s'.padStart(11)} ${'faults'.padStart(7)}  outcome`,
  ];
  for (const r of results) {
    const name = r.trace.split('/').pop()!;
    out.push(
      `${name.padEnd(22)} ${r.allocator.padEnd(30)} ${String(r.operations).padStart(7)} ${`${(100 * r.utilization).toFixed(1)}%`.padStart(7)} ` +
        `${Math.round(r.opsPerSecond).toLocaleString('en-US').padStart(11)} ${String(r.minorFaults + r.majorFaults).padStart(7)}  ${r.outcome}`,
    );
  }
  const byAlloc = new Map<string, MallocReplayResult[]>();
  for (const r of results)
    if (r.outcome === 'ok') byAlloc.set(r.allocator, [...(byAlloc.get(r.allocator) ?? []), r]);
  if (results.length > 1) {
    out.push('');
    for (const [a, rs] of byAlloc) {
      const u = rs.reduce((x, r) => x + r.utilization, 0) / rs.length;
      const t = averageThroughput(rs);
      out.push(
        `average utilization ${a}: ${(100 * u).toFixed(1)}% over ${rs.length} traces; ` +
          `throughput ${Math.round(t).toLocaleString('en-US')} ops/s (total operations / total seconds)`,
      );
    }
  }
  return out;
}

/**
 * The lab driver's average throughput: the traces' operations over the seconds of their
 * fastest speed runs, all added up (not a mean of the rates: the slow traces weigh most).
 */
export function averageThroughput(results: readonly MallocReplayResult[]): number {
  let ops = 0;
  let seconds = 0;
  for (const r of results) {
    if (r.opsPerSecond <= 0) continue;
    ops += r.operations;
    seconds += r.operations / r.opsPerSecond;
  }
  return seconds > 0 ? ops / seconds : 0;
}
