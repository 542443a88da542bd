/** `vmlab replay`: replay a memory trace through the full machine. */
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { DiskProfileName } from '../hw/disk.ts';
import { POLICY_NAMES } from '../mm/policy/index.ts';
import { OPT_TIES, type OptTie, type PolicyFactory } from '../mm/policy/types.ts';
import { InputError } from './configfile.ts';
import { replacementExercise } from './exercises.ts';
import { resolveFormat, withPageSize } from './formatfile.ts';
import { type ReplayResult, replayTrace } from './replay.ts';
import { loadPolicyFile } from './studentcode.ts';
import { loadTrace, TRACE_FORMATS, type TraceFormat } from './traces.ts';
import { parseSize } from './units.ts';

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description(
      'replay a memory trace (valgrind lackey, R/W lines, or page numbers) through the MMU, TLB, faults, policy and swap',
    )
    .argument('[trace]', `trace file (${TRACE_FORMATS.join(', ')}; .gz accepted)`)
    .option(
      '-g, --generate <n>',
      'make an exercise instead: a random reference string of N pages (OSTEP style)',
    )
    .option('--max-page <n>', 'with --generate: the highest page number', '9')
    .option('-c, --compute', 'with --generate: work the answers out')
    .option('-n, --frames <n>', 'resident limit of the replaying process, in frames (0: none)', '0')
    .option('-p, --policy <name>', `replacement policy: ${POLICY_NAMES.join(', ')}`, 'lru-2list')
    .option(
      '--opt-tie <rule>',
      'with --policy opt: which page never used again goes first: earliest (loaded; the default), latest (loaded: OSTEP), lru, mru',
    )
    .option(
      '--policy-file <file>',
      'a policy class from a TypeScript or JavaScript file (its default export), instead of --policy',
    )
    .option('-f, --format <name|file>', 'paging format', 'x86-64')
    .option(
      '-P, --page-size <size>',
      "page size (the format's own by default; another one changes the format's levels)",
    )
    .option('--memory <size>', 'emulated RAM', '256M')
    .option('--tlb-entries <n>', 'TLB entries', '64')
    .option('--tlb-ways <n>', 'TLB ways', '4')
    .option('--tlb-policy <name>', 'TLB replacement: lru, fifo, random', 'lru')
    .option('--stlb-entries <n>', 'second-level TLB entries (0: none)', '1536')
    .option(
      '--trace-format <fmt>',
      'auto; lackey (valgrind); rw (R/W and a hex byte address); pagenum (hex page numbers, R/W optional either side); pagenum-dec (decimal page numbers, likewise); pages (1,2,3w)',
      'auto',
    )
    .option('--include-instructions', 'replay lackey instruction fetches (I lines) as execute references')
    .option('--disk <profile>', 'swap disk profile: ram, nvme, ssd, hdd', 'ssd')
    .option('-s, --seed <n>', 'seed', '0')
    .option(
      '-v, --verbose',
      'print every reference: hit or miss, the victim, the resident set in policy order',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  echo 7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1 > ref.txt
  vmlab replay ref.txt --frames 3 --policy fifo --verbose
  vmlab replay trace.lackey.gz --frames 1024 --policy clock --json
  vmlab replay pages.txt --trace-format pagenum --frames 16 --policy opt --opt-tie lru
  vmlab replay --generate 10 --max-page 5 --frames 3 --policy fifo -s 2      # an exercise
  vmlab replay --generate 10 --max-page 5 --frames 3 --policy fifo -s 2 -c   # with answers
  vmlab replay ref.txt --frames 3 --policy-file my-policy.ts --verbose       # a policy of your own`,
    )
    .action(
      async (
        tracePath: string | undefined,
        opts: Record<string, string | boolean | undefined>,
        cmd: Command,
      ) => {
        if (opts.policyFile !== undefined && cmd.getOptionValueSource('policy') === 'cli')
          throw new InputError('give --policy or --policy-file, not both');
        if (opts.generate !== undefined) {
          if (opts.policyFile !== undefined)
            throw new InputError('--policy-file: exercises (--generate) use the built-in policies only');
          const count = Number(opts.generate);
          const maxPage = Number(opts.maxPage);
          const frames = Number(opts.frames);
          const seed = Number(opts.seed);
          if (!Number.isInteger(count) || count < 1 || count > 10000) {
            throw new InputError(`--generate: '${opts.generate}' is not a count from 1 to 10000`);
          }
          if (!Number.isInteger(maxPage) || maxPage < 0)
            throw new InputError(`--max-page: '${opts.maxPage}' is not a page number`);
          if (!Number.isInteger(frames) || frames < 1)
            throw new InputError(`--frames: '${opts.frames}' must be at least 1 for an exercise`);
          if (!Number.isInteger(seed) || seed < 0)
            throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
          const policy = String(opts.policy ?? 'lru-2list');
          if (!POLICY_NAMES.includes(policy))
            throw new InputError(`--policy: '${policy}' is not one of ${POLICY_NAMES.join(', ')}`);
          const optTie = optTieOption(opts, policy);
          process.stdout.write(
            replacementExercise({
              seed,
              count,
              maxPage,
              frames,
              policy,
              optTie,
              compute: opts.compute === true,
            }),
          );
          return;
        }
        if (tracePath === undefined)
          throw new InputError('give a trace file (or use --generate for an exercise)');
        const policyFactory =
          opts.policyFile === undefined ? undefined : await loadPolicyFile(String(opts.policyFile));
        const result = runReplay(tracePath, opts, policyFactory);
        if (opts.json) {
          const { lines: _lines, hostSeconds: _h, ...rest } = result;
          process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
          return;
        }
        process.stdout.write(`${renderReplay(tracePath, result, opts).join('\n')}\n`);
      },
    );
}

function intOption(opts: Record<string, unknown>, name: string, min: number): number {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min)
    throw new InputError(
      `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: '${opts[name]}' is not a whole number >= ${min}`,
    );
  return v;
}

/**
 * The --opt-tie rule, undefined when not given. InputError when it is not a rule, or is given
 * with a policy other than the built-in opt.
 */
function optTieOption(opts: Record<string, unknown>, policy: string | undefined): OptTie | undefined {
  if (opts.optTie === undefined) return undefined;
  const tie = String(opts.optTie);
  if (!(OPT_TIES as readonly string[]).includes(tie))
    throw new InputError(`--opt-tie: '${tie}' is not ${OPT_TIES.join(', ')}`);
  if (policy !== 'opt')
    throw new InputError(
      `--opt-tie: only for --policy opt (the policy is ${policy ?? 'from --policy-file'})`,
    );
  return tie as OptTie;
}

/**
 * Replay `tracePath` with the command's options; a policy loaded from a file (`policyFactory`,
 * from --policy-file) replaces --policy and is named after the file. InputError on a bad option.
 */
export function runReplay(
  tracePath: string,
  opts: Record<string, string | boolean | undefined>,
  policyFactory?: PolicyFactory,
): ReplayResult {
  let format = resolveFormat(String(opts.format ?? 'x86-64'));
  if (opts.pageSize !== undefined) {
    const pageBytes = parseSize(String(opts.pageSize));
    if (pageBytes === undefined) throw new InputError(`--page-size: '${opts.pageSize}' is not a size`);
    format = withPageSize(format, pageBytes);
  }
  const memoryBytes = parseSize(String(opts.memory ?? '256M'));
  if (memoryBytes === undefined) throw new InputError(`--memory: '${opts.memory}' is not a size`);
  const traceFormat = String(opts.traceFormat ?? 'auto');
  if (traceFormat !== 'auto' && !(TRACE_FORMATS as readonly string[]).includes(traceFormat)) {
    throw new InputError(`--trace-format: '${traceFormat}' is not auto, ${TRACE_FORMATS.join(', ')}`);
  }
  const disk = String(opts.disk ?? 'ssd');
  if (!['ram', 'nvme', 'ssd', 'hdd'].includes(disk))
    throw new InputError(`--disk: '${disk}' is not ram, nvme, ssd or hdd`);
  const tlbPolicy = String(opts.tlbPolicy ?? 'lru');
  if (!['lru', 'fifo', 'random'].includes(tlbPolicy))
    throw new InputError(`--tlb-policy: '${tlbPolicy}' is not lru, fifo or random`);
  const fileName = opts.policyFile === undefined ? undefined : basename(String(opts.policyFile));
  const policy = fileName ?? String(opts.policy ?? 'lru-2list');
  const optTie = optTieOption(opts, fileName === undefined ? policy : undefined);
  const trace = loadTrace(tracePath, {
    format: traceFormat as TraceFormat | 'auto',
    pageBytes: format.pageBytes,
    vaLimit: Math.min(2 ** format.vaBits, Number.MAX_SAFE_INTEGER),
    includeInstructions: opts.includeInstructions === true,
  });
  const result = replayTrace({
    trace,
    frames: intOption(opts, 'frames', 0),
    policy,
    policyFactory,
    optTie,
    machine: {
      format,
      memoryBytes,
      tlbEntries: intOption(opts, 'tlbEntries', 1),
      tlbWays: intOption(opts, 'tlbWays', 1),
      tlbReplacement: tlbPolicy as 'lru' | 'fifo' | 'random',
      stlbEntries: opts.stlbEntries === undefined ? undefined : intOption(opts, 'stlbEntries', 0),
      seed: intOption(opts, 'seed', 0),
    },
    swapProfile: disk as DiskProfileName,
    verbose: opts.verbose === true,
  });
  if (fileName !== undefined) result.config.policy = fileName;
  return result;
}

export function renderReplay(tracePath: string, r: ReplayResult, opts: Record<string, unknown>): string[] {
  const out = [
    `ARG trace ${tracePath}`,
    `ARG policy ${r.config.policy}${r.config.optTie === undefined ? '' : ` (ties: ${r.config.optTie})`}`,
    `ARG frames ${r.config.frames === 0 ? 'unlimited' : r.config.frames}`,
    `ARG format ${r.config.format} (${r.config.pageBytes}-byte pages)`,
    `ARG tlb ${r.config.tlbEntries} entries, ${r.config.tlbWays}-way, ${r.config.tlbReplacement}`,
    `ARG stlb ${r.config.stlbEntries > 0 ? `${r.config.stlbEntries} entries, ${r.config.stlbWays}-way` : 'none'}`,
    `ARG seed ${opts.seed ?? 0}`,
    '',
  ];
  if (r.lines !== undefined) out.push(...r.lines, '');
  const hitRate = r.tlbHits + r.tlbMisses > 0 ? (100 * r.tlbHits) / (r.tlbHits + r.tlbMisses) : 0;
  out.push(
    `references   ${r.references}`,
    `faults       ${r.faults} (${r.majorFaults} major)  hit ratio ${(100 * (1 - r.faults / Math.max(1, r.references))).toFixed(2)}%`,
    `writebacks   ${r.writebacks}`,
    `tlb          ${r.tlbHits} hits, ${r.tlbMisses} misses (${hitRate.toFixed(2)}% hits)`,
    ...(r.config.stlbEntries > 0 ? [`stlb         ${r.stlbHits} hits, ${r.stlbMisses} misses`] : []),
    `page walks   ${r.walks}`,
    `cycles       ${r.cycles}`,
    `host time    ${r.hostSeconds.toFixed(3)} s (${Math.round(r.references / Math.max(r.hostSeconds, 1e-9)).toLocaleString('en-US')} references/s)`,
  );
  return out;
}
