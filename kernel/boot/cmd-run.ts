/**
 * `vmlab run WORKLOAD.yaml`: boot the workload's machine, start its processes (at their start
 * times), run to completion or `--until`, and print a summary per process and for the system.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { loadBuiltin } from '../../userland/programs/builtins.ts';
import { textbookEat } from '../hw/cost.ts';
import { policyNeedsFuture } from '../mm/policy/index.ts';
import { type EventLevel, EventLog } from '../observe/eventlog.ts';
import { gcPauses, pausePercentiles } from '../observe/procgc.ts';
import { PROC_SYSTEM_FILES, renderProcFile } from '../observe/procsys.ts';
import { Timeline } from '../observe/timeline.ts';
import { runTool, ToolUsageError, type ToolView, watchTool } from '../observe/tools.ts';
import type { Kernel } from '../proc/kernel.ts';
import type { Task } from '../proc/task.ts';
import type { GcReport, ProgramImage, UserMain } from '../proc/uapi.ts';
import { InputError } from './configfile.ts';
import { type BootedMachine, bootKernel, buildMachine } from './machine.ts';
import { attachProgress } from './progress.ts';
import { startTraceProcess } from './replay.ts';
import { renderReport } from './report.ts';
import { scriptProgram } from './script.ts';
import { stepThrough } from './stepper.ts';
import { loadAllocatorFile, loadPolicyFile } from './studentcode.ts';
import { loadTrace, type Trace } from './traces.ts';
import { formatSize, parseTime } from './units.ts';
import {
  cyclesOf,
  filesOf,
  isCodeFile,
  isPolicyFile,
  type LoadedWorkload,
  loadWorkload,
  resolveIn,
  type WorkloadProcess,
} from './workload.ts';

export const DEFAULT_WORKLOAD = new URL('../../userland/workloads/default.yaml', import.meta.url).pathname;

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('boot a workload (machine + processes) and run it to completion')
    .argument('[workload]', 'workload YAML file', DEFAULT_WORKLOAD)
    .option('-s, --seed <n>', 'seed (overrides the workload)')
    .option('--until <time>', 'stop at this emulated time (e.g. 50ms or a cycle count)')
    .option(
      '--proc <path@time...>',
      'print a /proc file at an emulated time, e.g. /proc/meminfo@10ms (repeatable)',
    )
    .option('--events <file>', 'write the event log (pino JSON lines, emulated time) to FILE.jsonl')
    .option('--event-level <level>', 'info (lifecycle, OOM, signals) or debug (also every fault)', 'info')
    .option('--report <file>', 'write a self-contained HTML report (charts over time, the frame map, tables)')
    .option('--sample-interval <time>', 'timeline sampling interval for the report', '1ms')
    .option(
      '--frame-map-at <time...>',
      'also draw the physical frame map at these emulated times in the report (besides the peak and the end)',
    )
    .option('--json', 'print the summary as JSON')
    .option(
      '--step',
      'run a step at a time (to the next event or for one quantum); a key after each on a terminal',
    )
    .option(
      '-v, --verbose',
      'print the kernel log as it happens (on stderr) and /proc/meminfo and vmstat at the end',
    )
    .addHelpText(
      'after',
      `
Examples:
  vmlab run                                   # the default workload
  vmlab run userland/workloads/cow.yaml -s 3
  vmlab run userland/workloads/thrashing.yaml --proc /proc/vmstat@20ms --proc /proc/meminfo@20ms
  vmlab run userland/workloads/policies.yaml  # a list of policies: one row each
  vmlab run userland/workloads/oom.yaml --step --until 20ms
  vmlab run userland/workloads/shared-file.yaml --report report.html --frame-map-at 3ms`,
    )
    .action(async (path: string, opts: Record<string, string | string[] | boolean | undefined>) => {
      const w = loadWorkload(path);
      if (opts.seed !== undefined) {
        const seed = Number(opts.seed);
        if (!Number.isInteger(seed) || seed < 0)
          throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
        w.workload.seed = seed;
      }
      const policies = workloadPolicies(w);
      if (policies.length > 1) {
        await runComparison(w, policies, opts);
        return;
      }
      const level = String(opts.eventLevel);
      if (!['info', 'debug', 'trace'].includes(level))
        throw new InputError(`--event-level: '${level}' is not info, debug or trace`);
      const run = await bootWorkload(w, {
        events:
          opts.events === undefined ? undefined : { path: String(opts.events), level: level as EventLevel },
      });
      const hz = run.m.clock.hz;
      const events = run.m.kernel.eventLog;
      let timeline: Timeline | null = null;
      if (opts.report !== undefined) {
        const interval = parseTime(String(opts.sampleInterval), hz);
        if (interval === undefined || interval < 1000)
          throw new InputError(`--sample-interval: '${opts.sampleInterval}' is not a time of at least 1us`);
        timeline = new Timeline(run.m.kernel, interval);
        // --frame-map-at: each word a time or a comma-separated list of times.
        for (const text of ((opts.frameMapAt as string[] | undefined) ?? []).flatMap((x) => x.split(','))) {
          const t = parseTime(text, hz);
          if (t === undefined)
            throw new InputError(
              `--frame-map-at: '${text}' is not a time (e.g. 5ms, 200us or a cycle count)`,
            );
          timeline.frameMapAt(t);
        }
      } else if (opts.frameMapAt !== undefined) {
        throw new InputError('--frame-map-at: frame maps are drawn in the report: add --report FILE.html');
      }
      const until = opts.until === undefined ? undefined : parseTime(String(opts.until), hz);
      if (opts.until !== undefined && until === undefined)
        throw new InputError(`--until: '${opts.until}' is not a time`);
      const probes = ((opts.proc as string[] | undefined) ?? []).map((p) => {
        const at = p.lastIndexOf('@');
        const t = at < 0 ? undefined : parseTime(p.slice(at + 1), hz);
        if (at < 0 || t === undefined)
          throw new InputError(`--proc: '${p}' is not PATH@TIME (e.g. /proc/meminfo@10ms)`);
        return { path: p.slice(0, at), at: t };
      });
      const snapshots: Array<{ path: string; at: number; taken: number; text: string }> = [];
      let probeError: InputError | null = null;
      for (const probe of probes) {
        // Tools that count over time (vmstat's iowait, vmstat DELAY COUNT) watch from boot.
        let watched: ToolView | undefined;
        try {
          watched = watchTool(run.m.kernel, probe.path);
        } catch (err) {
          if (err instanceof ToolUsageError) throw new InputError(`--proc: ${err.message}`);
          throw err;
        }
        run.m.clock.schedule(
          probe.at,
          `proc ${probe.path}`,
          () => {
            try {
              const text = viewText(run.m.kernel, probe.path, watched);
              snapshots.push({ path: probe.path, at: probe.at, taken: run.m.clock.now, text });
            } catch (err) {
              if (!(err instanceof InputError)) throw err;
              probeError ??= new InputError(`--proc: ${err.message}`);
            }
          },
          { observer: true },
        );
      }
      const total = w.workload.processes.reduce((n, p) => n + p.replicas, 0);
      const stopProgress = opts.json
        ? () => {}
        : attachProgress(run.m.kernel, { total, intervalCycles: Math.ceil(hz / 100) });
      if (opts.verbose === true) {
        const printk = run.m.kernel.printk.bind(run.m.kernel);
        run.m.kernel.printk = (text: string): void => {
          printk(text);
          process.stderr.write(`[${((run.m.clock.now / hz) * 1000).toFixed(3).padStart(10)} ms] ${text}\n`);
        };
      }
      if (opts.step === true) {
        await stepThrough(run.m, {
          untilCycles: until,
          write: (line) => process.stdout.write(`${line}\n`),
          interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
        });
      } else {
        run.m.kernel.run({ untilCycles: until });
      }
      stopProgress();
      events?.subsystem('kernel').info({ event: 'halt', state: run.m.kernel.state }, 'run ended');
      events?.close();
      run.m.shutdown();
      if (probeError !== null) throw probeError;
      for (const probe of probes) {
        if (snapshots.some((x) => x.path === probe.path && x.at === probe.at)) continue;
        snapshots.push({
          path: probe.path,
          at: probe.at,
          taken: -1,
          text: `(not shown: the run ended at ${run.m.clock.now} cycles, before ${probe.at})\n`,
        });
      }
      timeline?.sample();
      const summary = summarize(run.m, w);
      if (timeline !== null) {
        const html = renderReport({
          title: `vmlab run ${w.path}`,
          workloadText: readFileSync(w.path, 'utf8'),
          args: run.args,
          summary,
          timeline,
          kernel: run.m.kernel,
        });
        try {
          writeFileSync(String(opts.report), html);
        } catch (err) {
          throw new InputError(
            `--report: cannot write ${opts.report}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ ...summary, proc: snapshots }, null, 2)}\n`);
        return;
      }
      const lines = [...run.args, '', ...renderSummary(summary)];
      for (const s of snapshots) {
        // The kernel fires clock events between scheduling slices: a snapshot comes at the first
        // boundary at or after the time asked for.
        const when =
          s.taken < 0 || s.taken === s.at ? `${s.at} cycles` : `${s.taken} cycles (asked for ${s.at})`;
        lines.push('', `${s.path} at ${when}:`, s.text.replace(/\n$/, ''));
      }
      if (opts.verbose === true)
        for (const f of ['/proc/meminfo', '/proc/vmstat'])
          lines.push('', `${f} at the end (${run.m.clock.now} cycles):`, viewText(run.m.kernel, f).trimEnd());
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

/**
 * A workload whose machine.policy is a list: run it once per policy (the same seed, so the same
 * processes and references) and print one row per policy.
 */
async function runComparison(
  w: LoadedWorkload,
  policies: string[],
  opts: Record<string, string | string[] | boolean | undefined>,
): Promise<void> {
  for (const o of ['report', 'events', 'proc', 'frameMapAt'] as const)
    if (opts[o] !== undefined)
      throw new InputError(
        `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: machine.policy lists ${policies.length} policies; give one to use it`,
      );
  const rows: Array<{ policy: string; summary: RunSummary }> = [];
  let args: string[] = [];
  for (const policy of policies) {
    const run = await bootWorkload(w, { policy });
    const until = opts.until === undefined ? undefined : parseTime(String(opts.until), run.m.clock.hz);
    if (opts.until !== undefined && until === undefined)
      throw new InputError(`--until: '${opts.until}' is not a time`);
    run.m.kernel.run({ untilCycles: until });
    run.m.shutdown();
    if (args.length === 0)
      args = run.args.map((a) => (a.startsWith('ARG policy ') ? `ARG policies ${policies.join(', ')}` : a));
    rows.push({ policy, summary: summarize(run.m, w) });
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ comparison: rows }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${[...args, '', ...renderComparison(rows)].join('\n')}\n`);
}

/** The comparison table: one row per policy. */
export function renderComparison(rows: Array<{ policy: string; summary: RunSummary }>): string[] {
  const out = ['POLICY         FAULTS   MAJFLT  SWAP-IN SWAP-OUT  RECLAIM  EMULATED-MS    CPU  STATUS'];
  for (const { policy, summary: s } of rows) {
    const y = s.system;
    const failed = s.processes.filter((p) => p.status !== 'exited 0').length;
    out.push(
      `${policy.padEnd(12)} ${String(y.pageFaults).padStart(8)} ${String(y.majorFaults).padStart(8)} ` +
        `${String(y.swapIns).padStart(8)} ${String(y.swapOuts).padStart(8)} ${String(y.reclaimScansKswapd + y.reclaimScansDirect).padStart(8)} ` +
        `${(y.seconds * 1000).toFixed(3).padStart(12)} ${`${(100 * y.cpuUtilization).toFixed(1)}%`.padStart(6)}  ` +
        `${failed === 0 ? 'all exited 0' : `${failed} of ${s.processes.length} did not exit 0`}`,
    );
  }
  return out;
}

/**
 * A /proc file, byte for byte, or a tool's output (free, vmstat, pmap PID, top), as text;
 * `watched` is the view watchTool started for it before the run, if any. Binary files
 * (pagemap) print as hex bytes. InputError for an unknown file or tool, or a tool's bad
 * arguments (exit status 2).
 */
export function viewText(kernel: Kernel, what: string, watched?: ToolView): string {
  if (watched !== undefined) return watched();
  let tool: string | undefined;
  try {
    tool = runTool(kernel, what);
  } catch (err) {
    if (err instanceof ToolUsageError) throw new InputError(err.message);
    throw err;
  }
  if (tool !== undefined) return tool;
  const content = renderProcFile(kernel, what);
  if (content === undefined)
    throw new InputError(
      `${what}: no such /proc file or tool at ${kernel.hw.clock.now} cycles (files: ${PROC_SYSTEM_FILES.join(', ')}, ` +
        '/proc/PID/{maps,smaps,smaps_rollup,status,statm,stat,oom_score,oom_score_adj,pagemap,gc} of a live process; ' +
        'tools: free, free -h, vmstat [DELAY [COUNT]], pmap PID, top)',
    );
  if (typeof content === 'string') return content;
  return `${Array.from(content, (b) => b.toString(16).padStart(2, '0')).join(' ')}\n`;
}

/**
 * `vmlab proc`: run a workload to an emulated time (or its end), then print the workload's ARG
 * lines and /proc views and tools, each after a `== WHAT at N cycles (STATE)` line and byte for
 * byte, a blank line between two (with --json: an array of {what, at, state, text}). Tools that
 * report over time (vmstat DELAY COUNT) watch the run from boot. Unknown files are an
 * InputError once the others are printed.
 */
export function registerProc(program: Command): void {
  program
    .command('proc')
    .description(
      'run a workload to a point and print /proc files and tools (free, vmstat, pmap PID, top) there',
    )
    .argument('<workload>', 'workload YAML file')
    .argument(
      '<what...>',
      "/proc paths or tool commands, e.g. /proc/meminfo /proc/3/maps 'free -h' 'pmap 3' 'vmstat 1ms 5'",
    )
    .option('--at <time>', 'stop at this emulated time (default: the end of the run)')
    .option('--json', 'print the views as JSON: an array of {what, at, state, text}')
    .addHelpText(
      'after',
      `
/proc files print byte for byte; an unknown file or tool is an error (exit status 2).
vmstat prints the averages since boot at the stop point (procps's first row). vmstat DELAY
[COUNT] prints what vmstat DELAY COUNT started at boot would: a row every DELAY of emulated
time (DELAY in seconds as procps takes it, or with a unit: 1ms, 500us), at most COUNT rows,
until --at or the end of the run; the first row averages since boot (that is, the first
interval), each later one covers its own interval. wa is the idle time while a process waited
for the disk.

Examples:
  vmlab proc userland/workloads/thrashing.yaml /proc/vmstat vmstat --at 20ms
  vmlab proc userland/workloads/thrashing.yaml 'vmstat 2ms 10'
  vmlab proc userland/workloads/cow.yaml /proc/3/maps 'pmap 3' 'free -h' --at 1ms
  vmlab proc userland/workloads/oom.yaml /proc/meminfo --at 10ms --json`,
    )
    .action(async (path: string, what: string[], opts: Record<string, string | boolean | undefined>) => {
      const run = await bootWorkload(loadWorkload(path));
      try {
        const at = opts.at === undefined ? undefined : parseTime(String(opts.at), run.m.clock.hz);
        if (opts.at !== undefined && at === undefined)
          throw new InputError(`--at: '${opts.at}' is not a time`);
        const watched = what.map((w) => {
          try {
            return watchTool(run.m.kernel, w);
          } catch (err) {
            if (err instanceof ToolUsageError) throw new InputError(err.message);
            throw err;
          }
        });
        run.m.kernel.run({ untilCycles: at });
        const views: Array<{ what: string; at: number; state: string; text: string }> = [];
        const missing: string[] = [];
        for (const [i, w] of what.entries()) {
          try {
            const text = viewText(run.m.kernel, w, watched[i]);
            views.push({ what: w, at: run.m.clock.now, state: run.m.kernel.state, text });
          } catch (err) {
            if (!(err instanceof InputError)) throw err;
            missing.push(err.message);
          }
        }
        if (opts.json === true) process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
        else
          process.stdout.write(
            [
              `${run.args.join('\n')}\n`,
              ...views.map((v) => `== ${v.what} at ${v.at} cycles (${v.state})\n${v.text}`),
            ].join('\n'),
          );
        if (missing.length > 0) throw new InputError(missing.join('; '));
      } finally {
        run.m.shutdown();
      }
    });
}

export interface WorkloadRun {
  m: BootedMachine;
  args: string[];
}

/** The policies a workload names: one, or the list a comparison runs through. */
export function workloadPolicies(w: LoadedWorkload): string[] {
  const p = w.workload.machine.policy;
  return typeof p === 'string' ? [p] : p;
}

/**
 * Build the machine, boot the kernel, and schedule every process's start. `policy` picks one of
 * the workload's policies (default: its first).
 */
export async function bootWorkload(
  w: LoadedWorkload,
  options: { events?: { path: string; level: EventLevel }; policy?: string } = {},
): Promise<WorkloadRun> {
  const wl = w.workload;
  const mc = wl.machine;
  const policy = options.policy ?? workloadPolicies(w)[0]!;
  const format = existsSync(resolveIn(w, mc.format)) ? resolveIn(w, mc.format) : mc.format;
  const machine = buildMachine({
    memoryBytes: mc.memory,
    format,
    cpuHz: mc.cpu,
    tlbEntries: mc.tlb.entries,
    tlbWays: mc.tlb.ways,
    tlbReplacement: mc.tlb.policy,
    asidBits: mc.tlb.asidBits,
    splitTlb: mc.tlb.split,
    tlbManagement: mc.tlb.management,
    stlbEntries: mc.tlb.stlb === false ? 0 : mc.tlb.stlb?.entries,
    stlbWays: mc.tlb.stlb === false ? undefined : mc.tlb.stlb?.ways,
    seed: wl.seed,
  });
  const programs = new Map<string, ProgramImage>();
  const traces = new Map<number, Trace>();
  for (const [i, p] of wl.processes.entries()) {
    const name = p.name ?? p.program ?? `proc${i}`;
    if (p.replay !== undefined) {
      traces.set(
        i,
        loadTrace(resolveIn(w, p.replay.trace), {
          format: p.replay.format,
          pageBytes: machine.format.pageBytes,
          vaLimit: 2 ** machine.format.vaBits,
          includeInstructions: p.replay.instructions,
        }),
      );
    } else if (p.script !== undefined) {
      const path = `/workload/${name}`;
      programs.set(path, {
        path,
        main: scriptProgram(p.script, mc.cpu, {
          allocator:
            p.malloc?.allocator !== undefined && isCodeFile(p.malloc.allocator)
              ? await loadAllocatorFile(resolveIn(w, p.malloc.allocator))
              : undefined,
        }),
        textBytes: 4096,
        dataBytes: 4096,
        bssBytes: 4096,
      });
    } else if (p.file !== undefined) {
      const file = resolveIn(w, p.file);
      programs.set(`/workload/${name}`, await loadProgramFile(file, `/usr/bin/${name}`));
    } // a built-in program: the schema checked its name
  }
  const onlyOneReplay = wl.processes.length === 1 && traces.size === 1 && wl.processes[0]!.replicas === 1;
  if (policyNeedsFuture(policy) && !onlyOneReplay)
    throw new InputError(
      `${w.path}: machine.policy: ${policy} needs the future, which only a workload of one replay process (replicas 1) knows`,
    );
  const loader = (path: string): ProgramImage | undefined => programs.get(path) ?? loadBuiltin(path);
  const files = filesOf(w);
  if (files !== undefined && !(existsSync(files.from) && statSync(files.from).isDirectory()))
    throw new InputError(`${w.path}: files: ${files.from} is not a folder`);
  const m = bootKernel(machine, {
    loader,
    policy,
    policyFactory: isPolicyFile(policy) ? await loadPolicyFile(resolveIn(w, policy)) : undefined,
    scope: mc.scope,
    swap:
      mc.swap === undefined ? undefined : { bytes: mc.swap.size, profile: mc.swap.disk, path: mc.swap.file },
    tunables: {
      quantumCycles: cyclesOf(mc.quantum, mc.cpu),
      overcommitMemory: mc.overcommit,
      overcommitRatio: mc.overcommitRatio,
      kswapd: mc.kswapd,
      fetchStrideBytes: mc.fetchStride,
      dirtyWritebackCycles: cyclesOf(mc.writeback.interval, mc.cpu),
      dirtyExpireCycles: cyclesOf(mc.writeback.expire, mc.cpu),
      dirtyBackgroundRatio: mc.writeback.backgroundRatio,
      dirtyRatio: mc.writeback.ratio,
    },
    files:
      files === undefined
        ? undefined
        : { from: files.from, writeThrough: files.writeThrough, profile: files.disk },
  });
  if (mc.watermarks !== undefined) {
    m.buddy.tuneWatermarks({
      ...(mc.watermarks.minFreeKbytes !== undefined ? { minFreeKbytes: mc.watermarks.minFreeKbytes } : {}),
      ...(mc.watermarks.scaleFactor !== undefined ? { watermarkScaleFactor: mc.watermarks.scaleFactor } : {}),
    });
  }
  const kernel = m.kernel;
  if (options.events !== undefined) {
    kernel.eventLog = new EventLog({ ...options.events, now: () => m.clock.now, hz: m.clock.hz });
    kernel.eventLog
      .subsystem('kernel')
      .info({ event: 'boot', seed: wl.seed, frames: m.mem.frameCount }, 'machine booted');
  }
  for (const [name, g] of Object.entries(wl.groups)) {
    kernel.groups.set(name, {
      name,
      limitPages: Math.floor(g.limit / m.format.pageBytes),
      members: new Set(),
    });
  }
  for (const [i, p] of wl.processes.entries()) {
    const name = p.name ?? p.program ?? `proc${i}`;
    const path = p.program !== undefined ? p.program : `/workload/${name}`;
    const group = p.group === undefined ? null : kernel.groups.get(p.group);
    if (group === undefined)
      throw new InputError(`${w.path}: processes.${i}.group: no group '${p.group}' in groups`);
    const trace = traces.get(i);
    const start = (): void => {
      for (let r = 0; r < p.replicas; r++) {
        const task =
          trace !== undefined
            ? startReplay(m, trace, name)
            : kernel.spawn(path, [name, ...p.args.map(String)], {
                oomScoreAdj: p.oomScoreAdj,
                env: processEnv(p),
              });
        if (typeof task === 'number' || typeof task === 'string') {
          kernel.printk(
            `workload: cannot start ${name}: ${typeof task === 'string' ? task : `errno ${-task}`}`,
          );
          continue;
        }
        task.oomScoreAdj = p.oomScoreAdj;
        if (p.name !== undefined) task.comm = p.name.slice(0, 15);
        if (p.residentLimit !== undefined)
          task.residentLimitPages = Math.max(1, Math.floor(p.residentLimit / m.format.pageBytes));
        if (group !== null && task.mm !== null) {
          task.group = group;
          group.members.add(task.mm);
        }
      }
    };
    const at = cyclesOf(p.start, mc.cpu);
    if (at === 0) start();
    else m.clock.schedule(at, `start ${name}`, start);
  }
  const args = [
    `ARG workload ${w.path}`,
    `ARG seed ${wl.seed}`,
    `ARG memory ${formatSize(mc.memory)} (${m.mem.frameCount} frames of ${m.format.pageBytes} bytes)`,
    `ARG format ${m.format.name}`,
    `ARG cpu ${mc.cpu} Hz`,
    `ARG tlb ${mc.tlb.entries} entries, ${mc.tlb.ways}-way, ${mc.tlb.policy}, asid bits ${mc.tlb.asidBits}`,
    `ARG stlb ${m.mmu.stlb === null ? 'none' : `${m.mmu.stlb.entries} entries, ${m.mmu.stlb.ways}-way, unified`}`,
    `ARG swap ${mc.swap === undefined ? 'none' : `${formatSize(mc.swap.size)} on ${mc.swap.disk}`}`,
    `ARG policy ${policy} (${mc.scope})`,
    `ARG overcommit ${mc.overcommit}`,
    `ARG quantum ${mc.quantum}`,
    `ARG files ${files === undefined ? 'none (an empty scratch folder)' : `${files.from}${files.writeThrough ? ' (written through)' : ' (a scratch copy)'} on ${files.disk}`}`,
    `ARG writeback every ${mc.writeback.interval}, expire ${mc.writeback.expire}, background ${mc.writeback.backgroundRatio}%, throttle ${mc.writeback.ratio}%`,
  ];
  return { m, args };
}

/** A replay process, or why it could not start (memory for its task or regions is short). */
function startReplay(m: BootedMachine, trace: Trace, name: string): Task | string {
  try {
    return startTraceProcess(m, trace, { name, frames: 0 });
  } catch (err) {
    return (err as Error).message;
  }
}

/** A process's environment: its `env`, and its `malloc` choices as VMLAB_MALLOC / VMLAB_LEAK_CHECK. */
function processEnv(p: WorkloadProcess): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.env)) env[k] = String(v);
  if (p.malloc?.allocator !== undefined && !isCodeFile(p.malloc.allocator))
    env.VMLAB_MALLOC = p.malloc.allocator;
  if (p.malloc?.leakCheck !== undefined) env.VMLAB_LEAK_CHECK = p.malloc.leakCheck;
  return env;
}

/** Load a user TypeScript program file: its default export is a UserMain or a ProgramImage. */
async function loadProgramFile(file: string, path: string): Promise<ProgramImage> {
  if (!existsSync(file)) throw new InputError(`${file}: no such program file`);
  let mod: { default?: unknown; main?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown; main?: unknown };
  } catch (err) {
    throw new InputError(`${file}: cannot load the program: ${(err as Error).message.split('\n')[0]}`);
  }
  const exp = mod.default ?? mod.main;
  if (typeof exp === 'function')
    return { path, main: exp as UserMain, textBytes: 8192, dataBytes: 4096, bssBytes: 4096 };
  if (exp !== null && typeof exp === 'object' && typeof (exp as ProgramImage).main === 'function') {
    const img = exp as Partial<ProgramImage>;
    return {
      path,
      main: img.main!,
      textBytes: img.textBytes ?? 8192,
      dataBytes: img.dataBytes ?? 4096,
      bssBytes: img.bssBytes ?? 4096,
    };
  }
  throw new InputError(
    `${file}: the default export must be a program (a generator function) or { main, textBytes?, … }`,
  );
}

export interface RunSummary {
  processes: Array<{
    pid: number;
    name: string;
    status: string;
    cpuCycles: number;
    minorFaults: number;
    majorFaults: number;
    peakRssBytes: number;
    swapBytes: number;
    stdout: string;
    stderr: string;
    /** The process's managed heap (its runtime's last report), when it had one. */
    gc?: GcSummary;
  }>;
  system: {
    cycles: number;
    seconds: number;
    cpuUtilization: number;
    tlbHits: number;
    tlbMisses: number;
    tlbHitRate: number;
    /** The second-level TLB's hits and misses (first-level misses it served, or sent to a walk); 0 without one. */
    stlbHits: number;
    stlbMisses: number;
    /** Page walks, retries after faults and dirty-bit assists included. */
    walks: number;
    pageFaults: number;
    majorFaults: number;
    cowFaults: number;
    swapIns: number;
    swapOuts: number;
    /** Pages read from files (faults and read(); readahead's share apart) and written back to them. */
    fileReadPages: number;
    readaheadPages: number;
    fileWrittenPages: number;
    /** Page-cache pages at the end of the run. */
    pageCachePages: number;
    oomKills: number;
    reclaimScansKswapd: number;
    reclaimScansDirect: number;
    contextSwitches: number;
    eatMeasured: number;
    eatTextbook: number;
    kernelState: string;
  };
  log: string[];
}

/**
 * A managed heap as the summary shows it: the runtime's last report (every GcReport field),
 * and the percentiles of the pauses the kernel kept (procgc.ts).
 */
export type GcSummary = GcReport & { pausesKept: number; pauseP50Ns: number; pauseP99Ns: number };

/** The GC summary of `task`, or undefined when it never had a managed heap. */
export function gcSummary(task: Task): GcSummary | undefined {
  if (task.gc === null) return undefined;
  const p = pausePercentiles(gcPauses(task).lengthsNs);
  return { ...task.gc, pausesKept: p.count, pauseP50Ns: p.p50Ns, pauseP99Ns: p.p99Ns };
}

/** The summary of a finished (or stopped) run. */
export function summarize(m: BootedMachine, _w: LoadedWorkload): RunSummary {
  const k: Kernel = m.kernel;
  const page = m.format.pageBytes;
  const tlbs = m.mmu.itlb === m.mmu.dtlb ? [m.mmu.dtlb] : [m.mmu.dtlb, m.mmu.itlb];
  const hits = tlbs.reduce((a, t) => a + t.hits, 0);
  const misses = tlbs.reduce((a, t) => a + t.misses, 0);
  const h = hits + misses > 0 ? hits / (hits + misses) : 0;
  const stlb = m.mmu.stlb;
  const stlbHits = stlb?.hits ?? 0;
  const stlbMisses = stlb?.misses ?? 0;
  const cost = m.mmu.cost;
  const L = m.format.levels;
  const eatTextbook = textbookEat(
    cost,
    L,
    h,
    stlb === null ? null : stlbHits / Math.max(1, stlbHits + stlbMisses),
  );
  const accessCycles =
    m.mmu.accesses * (cost.tlbLookupCycles + cost.memoryAccessCycles) +
    m.mmu.stlbLookups * cost.stlbLookupCycles +
    m.mmu.walkMemoryRefs * cost.memoryAccessCycles;
  const tasks = [...k.tasks.values()].filter((t) => !t.kernelThread).sort((a, b) => a.pid - b.pid);
  return {
    processes: tasks.map((t) => ({
      pid: t.pid,
      name: t.comm,
      status: k.describeEnd(t),
      cpuCycles: t.cpuCycles,
      minorFaults: t.minFlt,
      majorFaults: t.majFlt,
      peakRssBytes: Math.max(t.peakRssPages, t.mm?.hiwaterRss ?? 0) * page,
      swapBytes: (t.mm?.swapEntries ?? t.swapPagesAtEnd) * page,
      stdout: t.stdout,
      stderr: t.stderr,
      ...(t.gc === null ? {} : { gc: gcSummary(t) }),
    })),
    system: {
      cycles: m.clock.now,
      seconds: m.clock.now / m.clock.hz,
      cpuUtilization: m.clock.now > 0 ? 1 - k.idleCycles / m.clock.now : 0,
      tlbHits: hits,
      tlbMisses: misses,
      tlbHitRate: h,
      stlbHits,
      stlbMisses,
      walks: m.mmu.walks,
      pageFaults: k.events.pgfault,
      majorFaults: k.events.pgmajfault,
      cowFaults: k.events.cow_fault,
      swapIns: k.events.pswpin,
      swapOuts: k.events.pswpout,
      fileReadPages: k.pageCache.misses + k.pageCache.readaheadPages,
      readaheadPages: k.pageCache.readaheadPages,
      fileWrittenPages: k.events.nr_written,
      pageCachePages: k.pageCache.nrPages,
      oomKills: k.events.oom_kill,
      reclaimScansKswapd: k.events.pgscan_kswapd,
      reclaimScansDirect: k.events.pgscan_direct,
      contextSwitches: k.events.context_switches,
      eatMeasured: m.mmu.accesses > 0 ? accessCycles / m.mmu.accesses : 0,
      eatTextbook,
      kernelState: k.state,
    },
    log: k.log.map((l) => `[${(l.time / m.clock.hz).toFixed(6).padStart(12)}] ${l.text}`),
  };
}

/**
 * The managed heaps of a run, one row per process that had one (none: no lines): collector,
 * collections, pauses, heap and live bytes at the end, objects freed, moved and promoted, and
 * write-barrier hits.
 */
export function renderGcSummary(s: RunSummary): string[] {
  const heaps = s.processes.filter((p) => p.gc !== undefined);
  if (heaps.length === 0) return [];
  const out = [
    '',
    'managed heaps:',
    '  PID NAME             COLLECTOR     MINOR MAJOR  PAUSE-TOTAL    PAUSE-MAX      HEAP      LIVE      FREED      MOVED   PROMOTED  BARRIER-HITS',
  ];
  for (const p of heaps) {
    const g = p.gc!;
    out.push(
      `${String(p.pid).padStart(5)} ${p.name.padEnd(16)} ${g.collector.padEnd(12)} ${String(g.minorCollections).padStart(6)} ${String(g.majorCollections).padStart(5)} ` +
        `${formatNs(g.pauseTotalNs).padStart(12)} ${formatNs(g.pauseMaxNs).padStart(12)} ${formatSize(g.heapBytes).padStart(9)} ${formatSize(g.liveBytes).padStart(9)} ` +
        `${String(g.objectsFreed).padStart(10)} ${String(g.objectsMoved).padStart(10)} ${String(g.objectsPromoted).padStart(10)} ${String(g.barrierHits).padStart(13)}`,
    );
  }
  return out;
}

/** Emulated nanoseconds as the GC lines print them: ns below 10 µs, then µs, then ms. */
export function formatNs(ns: number): string {
  if (ns < 10_000) return `${Math.round(ns)} ns`;
  if (ns < 10_000_000) return `${(ns / 1000).toFixed(1)} us`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

export function renderSummary(s: RunSummary): string[] {
  const out = [
    '  PID NAME             STATUS               CPU-CYCLES   MINFLT   MAJFLT  PEAK-RSS      SWAP',
  ];
  for (const p of s.processes) {
    out.push(
      `${String(p.pid).padStart(5)} ${p.name.padEnd(16)} ${p.status.padEnd(18)} ${String(p.cpuCycles).padStart(12)} ` +
        `${String(p.minorFaults).padStart(8)} ${String(p.majorFaults).padStart(8)} ${formatSize(p.peakRssBytes).padStart(9)} ${formatSize(p.swapBytes).padStart(9)}`,
    );
  }
  out.push(...renderGcSummary(s));
  const y = s.system;
  out.push(
    '',
    'system:',
    `  emulated time      ${y.cycles} cycles (${(y.seconds * 1000).toFixed(3)} ms), CPU utilization ${(100 * y.cpuUtilization).toFixed(1)}%`,
    `  TLB                ${y.tlbHits} hits, ${y.tlbMisses} misses (hit rate ${(100 * y.tlbHitRate).toFixed(2)}%)`,
    ...(y.stlbHits + y.stlbMisses > 0
      ? [
          `  STLB               ${y.stlbHits} hits, ${y.stlbMisses} misses (hit rate ${((100 * y.stlbHits) / (y.stlbHits + y.stlbMisses)).toFixed(2)}% of first-level misses)`,
        ]
      : []),
    `  page walks         ${y.walks}`,
    `  page faults        ${y.pageFaults} (${y.majorFaults} major, ${y.cowFaults} copy-on-write)`,
    `  swap               ${y.swapIns} pages in, ${y.swapOuts} pages out`,
    `  files              ${y.fileReadPages} pages read (${y.readaheadPages} by readahead), ${y.fileWrittenPages} written back, ${y.pageCachePages} cached at the end`,
    `  reclaim scans      ${y.reclaimScansKswapd} by kswapd, ${y.reclaimScansDirect} direct`,
    `  OOM kills          ${y.oomKills}`,
    `  context switches   ${y.contextSwitches}`,
    y.stlbHits + y.stlbMisses > 0
      ? `  effective access   ${y.eatMeasured.toFixed(2)} cycles measured; textbook h(t_tlb+t_mem)+(1-h)(t_tlb+t_stlb+t_mem+(1-h2)L t_mem) = ${y.eatTextbook.toFixed(2)}`
      : `  effective access   ${y.eatMeasured.toFixed(2)} cycles measured; textbook h(t_tlb+t_mem)+(1-h)(t_tlb+(L+1)t_mem) = ${y.eatTextbook.toFixed(2)}`,
    `  kernel             ${y.kernelState}`,
  );
  if (s.log.length > 0) out.push('', 'kernel log:', ...s.log.map((l) => `  ${l}`));
  for (const p of s.processes) {
    for (const [stream, text] of [
      ['stdout', p.stdout],
      ['stderr', p.stderr],
    ] as const) {
      if (text === '') continue;
      out.push(
        '',
        `${stream} of ${p.name}[${p.pid}]:`,
        ...text
          .trimEnd()
          .split('\n')
          .map((l) => `  ${l}`),
      );
    }
  }
  return out;
}
