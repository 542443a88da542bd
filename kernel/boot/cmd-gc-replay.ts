/**
 * `vmlab gc-replay PROGRAM [ARGS...] -c marksweep,generational,...`: run one managed-heap
 * program (userland/programs/gcprograms.ts) once per collector, each on a fresh machine of the
 * same size and seed with VMLAB_GC naming the collector, and compare: emulated and host time,
 * collections, pauses, the process's peak RSS and faults, swap-ins, objects freed.
 */
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import type { Collector, CollectorEnv, CollectorFactory } from '../../userland/gc/collector.ts';
import { COLLECTOR_NAMES } from '../../userland/gc/collectors.ts';
import { loadBuiltin } from '../../userland/programs/builtins.ts';
import { GC_PROGRAMS } from '../../userland/programs/gcprograms.ts';
import { gcPauses, pausePercentiles } from '../observe/procgc.ts';
import type { ProgramImage } from '../proc/uapi.ts';
import { formatNs } from './cmd-run.ts';
import { InputError } from './configfile.ts';
import { bootKernel, buildMachine } from './machine.ts';
import { loadModuleFile } from './studentcode.ts';
import { formatSize, parseSize } from './units.ts';

/** A collector to compare: a registered one by name, or (tests) a factory of its own. */
export interface GcContender {
  name: string;
  factory?: CollectorFactory;
}

export interface GcReplayOptions {
  /** A managed-heap program's name (GC_PROGRAMS) and its arguments. */
  program: string;
  args: readonly string[];
  memoryBytes: number;
  /** Swap area (0: none). */
  swapBytes: number;
  seed: number;
  /** More environment for the process (GOGC, VMLAB_GC_CYCLES, ...); VMLAB_GC is set per collector. */
  env?: Readonly<Record<string, string>>;
}

/** One collector's run. Emulated figures are deterministic; hostSeconds is not. */
export interface GcReplayRow {
  collector: string;
  /** How the process ended: `exited 0`, `killed by SIGABRT`, … */
  status: string;
  cycles: number;
  emulatedSeconds: number;
  hostSeconds: number;
  minorCollections: number;
  majorCollections: number;
  pauseTotalNs: number;
  pauseMaxNs: number;
  pauseP99Ns: number;
  maxRssBytes: number;
  minorFaults: number;
  majorFaults: number;
  swapIns: number;
  objectsAllocated: number;
  objectsFreed: number;
  /** The heap and live bytes of the runtime's last report (at exit). */
  heapBytes: number;
  liveBytes: number;
  stdout: string;
  stderr: string;
  /** The kernel log's last line ('' when empty): why a process was killed. */
  lastLog: string;
}

/** The names of the programs gc-replay runs. */
export const GC_PROGRAM_NAMES: readonly string[] = Object.keys(GC_PROGRAMS);

/**
 * Run `options.program` under `contender` on a fresh machine; the row. InputError for an
 * unknown program or a machine that cannot be built.
 */
export function gcReplayRun(options: GcReplayOptions, contender: GcContender): GcReplayRow {
  const make = Object.hasOwn(GC_PROGRAMS, options.program) ? GC_PROGRAMS[options.program] : undefined;
  if (make === undefined)
    throw new InputError(`unknown program '${options.program}' (one of ${GC_PROGRAM_NAMES.join(', ')})`);
  const path = `/bin/${options.program}`;
  const image: ProgramImage =
    contender.factory === undefined
      ? loadBuiltin(path)!
      : { ...loadBuiltin(path)!, main: make({ collector: contender.factory }) };
  const m = bootKernel(buildMachine({ memoryBytes: options.memoryBytes, seed: options.seed }), {
    loader: (p) => (p === path ? image : loadBuiltin(p)),
    swap: options.swapBytes > 0 ? { bytes: options.swapBytes } : undefined,
  });
  const k = m.kernel;
  const task = k.spawn(path, [options.program, ...options.args], {
    env: { ...options.env, VMLAB_GC: contender.name },
  });
  if (typeof task === 'number') {
    m.shutdown();
    throw new InputError(
      `${options.program}: cannot start it on a ${formatSize(options.memoryBytes)} machine (errno ${-task})`,
    );
  }
  const t0 = performance.now();
  k.run();
  const hostSeconds = (performance.now() - t0) / 1000;
  m.shutdown();
  const g = task.gc;
  return {
    collector: contender.name,
    status: k.describeEnd(task),
    cycles: m.clock.now,
    emulatedSeconds: m.clock.now / m.clock.hz,
    hostSeconds,
    minorCollections: g?.minorCollections ?? 0,
    majorCollections: g?.majorCollections ?? 0,
    pauseTotalNs: g?.pauseTotalNs ?? 0,
    pauseMaxNs: g?.pauseMaxNs ?? 0,
    pauseP99Ns: pausePercentiles(gcPauses(task).lengthsNs).p99Ns,
    maxRssBytes: Math.max(task.peakRssPages, task.mm?.hiwaterRss ?? 0) * m.format.pageBytes,
    minorFaults: task.minFlt,
    majorFaults: task.majFlt,
    swapIns: k.events.pswpin,
    objectsAllocated: g?.objectsAllocated ?? 0,
    objectsFreed: g?.objectsFreed ?? 0,
    heapBytes: g?.heapBytes ?? 0,
    liveBytes: g?.liveBytes ?? 0,
    stdout: task.stdout,
    stderr: task.stderr,
    lastLog: k.log.at(-1)?.text ?? '',
  };
}

/** The comparison table, then each run's last stdout line (or why it failed). */
export function renderGcReplay(rows: readonly GcReplayRow[]): string[] {
  const out = [
    'COLLECTOR     STATUS              EMULATED-MS   HOST-S  MINOR  MAJOR  PAUSE-TOTAL    PAUSE-MAX   MAX-RSS   MINFLT   MAJFLT  SWAP-IN       FREED',
  ];
  for (const r of rows) {
    out.push(
      `${r.collector.padEnd(13)} ${r.status.padEnd(18)} ${(r.emulatedSeconds * 1000).toFixed(3).padStart(12)} ${r.hostSeconds.toFixed(2).padStart(8)} ` +
        `${String(r.minorCollections).padStart(6)} ${String(r.majorCollections).padStart(6)} ${formatNs(r.pauseTotalNs).padStart(12)} ${formatNs(r.pauseMaxNs).padStart(12)} ` +
        `${formatSize(r.maxRssBytes).padStart(9)} ${String(r.minorFaults).padStart(8)} ${String(r.majorFaults).padStart(8)} ${String(r.swapIns).padStart(8)} ${String(r.objectsFreed).padStart(11)}`,
    );
  }
  out.push('');
  for (const r of rows) {
    const last = r.stdout.trimEnd().split('\n').at(-1) ?? '';
    const why = r.status === 'exited 0' ? last : `${r.status}: ${r.stderr.trim() || r.lastLog}`;
    out.push(`${r.collector}: ${why}`);
  }
  return out;
}

/** The collectors `-c` names (every registered one by default). InputError for an unknown name. */
export function parseCollectors(text: string | undefined): GcContender[] {
  const names = (text ?? COLLECTOR_NAMES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0)
    throw new InputError(
      text === undefined
        ? '--collectors: no collector is registered'
        : `--collectors: '${text}' names no collector`,
    );
  for (const n of names)
    if (!COLLECTOR_NAMES.includes(n))
      throw new InputError(`--collectors: unknown collector '${n}' (one of ${COLLECTOR_NAMES.join(', ')})`);
  return names.map((name) => ({ name }));
}

/** NAME=VALUE words as an environment. InputError for a word without a valid name. */
function parseEnv(words: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const w of words) {
    const m = /^([A-Za-z_]\w*)=(.*)$/s.exec(w);
    if (m === null) throw new InputError(`--env: '${w}' is not NAME=VALUE`);
    if (m[1] === 'VMLAB_GC') throw new InputError('--env: VMLAB_GC is set per collector (use -c)');
    env[m[1]!] = m[2]!;
  }
  return env;
}

/**
 * What the command line asks for: the collectors and the run's options, from the program's
 * name, its arguments and the options as commander parsed them. InputError for any mistake.
 */
export function gcReplayOptions(
  name: string,
  args: readonly string[],
  opts: Readonly<Record<string, string | string[] | boolean | undefined>>,
): { contenders: GcContender[]; options: GcReplayOptions & { env: Record<string, string> } } {
  if (!GC_PROGRAM_NAMES.includes(name))
    throw new InputError(`unknown program '${name}' (one of ${GC_PROGRAM_NAMES.join(', ')})`);
  const contenders = parseCollectors(opts.collectors as string | undefined);
  const memoryBytes = parseSize(String(opts.memory ?? '64M'));
  if (memoryBytes === undefined || memoryBytes === 0)
    throw new InputError(`--memory: '${opts.memory}' is not a size such as 64M`);
  const swapBytes = parseSize(String(opts.swap ?? '0'));
  if (swapBytes === undefined) throw new InputError(`--swap: '${opts.swap}' is not a size such as 128M or 0`);
  const seed = Number(opts.seed ?? '1');
  if (!Number.isInteger(seed) || seed < 0)
    throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
  const env = parseEnv((opts.env as string[] | undefined) ?? []);
  return { contenders, options: { program: name, args: [...args], memoryBytes, swapBytes, seed, env } };
}

/** Add `gc-replay` to the command line: exit status 1 when a run does not exit 0, InputError (2) for bad input. */
export function registerGcReplay(program: Command): void {
  program
    .command('gc-replay')
    .description(
      'run a managed-heap program once per garbage collector, each on a fresh machine, and compare',
    )
    .argument('<program>', `a managed-heap program: ${GC_PROGRAM_NAMES.join(', ')}`)
    .argument('[args...]', "the program's arguments")
    .option('-c, --collectors <names>', 'comma-separated collectors (default: every registered one)')
    .option(
      '--collector-file <file>',
      'a collector class of your own (lab 4), compared with the collectors -c names (none without -c)',
    )
    .option('--memory <size>', 'emulated RAM', '64M')
    .option('--swap <size>', 'swap area (0: none)', '0')
    .option('--env <NAME=VALUE...>', 'more environment for the program (GOGC=50, VMLAB_GC_CYCLES=0, …)')
    .option('-s, --seed <n>', 'seed (the same for every collector)', '1')
    .option('--json', 'print the rows as JSON')
    .addHelpText(
      'after',
      `
Programs: ${GC_PROGRAM_NAMES.join(', ')} (docs/workloads.md lists their arguments)

Every run boots a machine of --memory (and --swap) with the same seed and starts the program
with VMLAB_GC set to the collector. Times are emulated (EMULATED-MS, the pauses) except
HOST-S; MAX-RSS, MINFLT and MAJFLT are the process's; SWAP-IN counts pages read back from
swap; FREED is the objects the collector freed. Under the table, each run's last line of
output (or how it failed).

Exit status: 0 when every run exits 0, 1 when one does not, 2 for bad input.

Examples:
  vmlab gc-replay binarytrees 10
  vmlab gc-replay gccache 100000 100000 2000 -c marksweep,generational --memory 8M --swap 64M
  vmlab gc-replay cycleleak 5000 -c refcount --env VMLAB_GC_CYCLES=0 --json
  vmlab gc-replay binarytrees 10 --collector-file userland/labs/gc/solution.ts -c marksweep`,
    )
    .action(
      async (name: string, args: string[], opts: Record<string, string | string[] | boolean | undefined>) => {
        const file = opts.collectorFile as string | undefined;
        const parsed = gcReplayOptions(name, args, opts);
        const options = parsed.options;
        const contenders =
          file === undefined
            ? parsed.contenders
            : [await loadCollectorFile(file), ...(opts.collectors === undefined ? [] : parsed.contenders)];
        const { memoryBytes, swapBytes, seed, env } = options;
        const rows = contenders.map((c) => gcReplayRun(options, c));
        if (opts.json === true) {
          process.stdout.write(
            `${JSON.stringify({ program: name, args, memoryBytes, swapBytes, seed, env, rows }, null, 2)}\n`,
          );
        } else {
          const head = [
            `ARG program ${[name, ...args].join(' ')}`,
            `ARG collectors ${contenders.map((c) => c.name).join(', ')}`,
            `ARG memory ${formatSize(memoryBytes)}`,
            `ARG swap ${swapBytes === 0 ? 'none' : formatSize(swapBytes)}`,
            `ARG seed ${seed}`,
            ...Object.entries(env).map(([k, v]) => `ARG env ${k}=${v}`),
            '',
          ];
          process.stdout.write(`${[...head, ...renderGcReplay(rows)].join('\n')}\n`);
        }
        if (rows.some((r) => r.status !== 'exited 0')) process.exitCode = 1;
      },
    );
}

/** A collector class from a file (`export default class MyCollector implements Collector`), named after the file. */
async function loadCollectorFile(path: string): Promise<GcContender> {
  const mod = await loadModuleFile(path, 'a collector class');
  const cls = mod.default as (new (env: CollectorEnv) => Collector) | undefined;
  if (typeof cls !== 'function') throw new InputError(`${path}: the default export is not a collector class`);
  return { name: basename(path), factory: (env) => new cls(env) };
}
