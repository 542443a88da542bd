/**
 * The familiar tools, as procps prints them, over the kernel's /proc figures: free (and
 * free -h), vmstat (the averages since boot, as vmstat's first row is, or with DELAY and COUNT
 * a row per interval sampled during the run: watchTool), pmap and a top-like table.
 */
import type { Kernel } from '../proc/kernel.ts';
import type { Task } from '../proc/task.ts';
import { countFrames, meminfoFields } from './procsys.ts';

const MAP_NAMES = new Set(['[heap]', '[stack]']);

function meminfo(kernel: Kernel): Record<string, number> {
  return Object.fromEntries(meminfoFields(kernel));
}

/** `free` (procps-ng 4): used = total - available; `human` scales like free -h. */
export function renderFree(kernel: Kernel, options: { human?: boolean } = {}): string {
  const m = meminfo(kernel);
  const fmt = (kb: number): string => (options.human ? humanKb(kb) : String(kb));
  const row = (label: string, values: number[]): string =>
    label.padEnd(9) + values.map((v, i) => (i === 0 ? '' : ' ') + fmt(v).padStart(11)).join('');
  const total = m.MemTotal!;
  const available = m.MemAvailable!;
  const buffCache = m.Buffers! + m.Cached! + m.SReclaimable!;
  return [
    '               total        used        free      shared  buff/cache   available',
    row('Mem:', [total, total - available, m.MemFree!, m.Shmem!, buffCache, available]),
    row('Swap:', [m.SwapTotal!, m.SwapTotal! - m.SwapFree!, m.SwapFree!]),
    '',
  ].join('\n');
}

/** free -h's units: B, Ki, Mi, Gi, Ti with one decimal below 10. */
function humanKb(kb: number): string {
  if (kb === 0) return '0B';
  const units = ['Ki', 'Mi', 'Gi', 'Ti'];
  let v = kb;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 && !Number.isInteger(v) ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

/** A tool's command line that cannot be run: bad arguments, or a view that needs watching. */
export class ToolUsageError extends Error {}

const VMSTAT_HEADER =
  'procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----\n' +
  ' r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st\n';

/** procps 3.3's row format: `%2u %2u %6lu %6lu %6lu %6lu %4u %4u %5u %5u %4u %4u %2u %2u %2u %2u %2u`. */
const VMSTAT_WIDTHS = [2, 2, 6, 6, 6, 6, 4, 4, 5, 5, 4, 4, 2, 2, 2, 2, 2];

/** The event counters behind vmstat's rates, read at one instant. */
interface VmstatCounters {
  cycles: number;
  idleCycles: number;
  iowaitCycles: number;
  pswpin: number;
  pswpout: number;
  /** KiB, as /proc/vmstat counts them. */
  pgpgin: number;
  pgpgout: number;
  contextSwitches: number;
}

const BOOT_COUNTERS: VmstatCounters = {
  cycles: 0,
  idleCycles: 0,
  iowaitCycles: 0,
  pswpin: 0,
  pswpout: 0,
  pgpgin: 0,
  pgpgout: 0,
  contextSwitches: 0,
};

/** The counters now; idle time from `idle` when one watches, else kernel.idleCycles and no iowait. */
function readCounters(kernel: Kernel, idle: IdleClock | null): VmstatCounters {
  const e = kernel.events;
  return {
    cycles: kernel.hw.clock.now,
    idleCycles: idle?.idleCycles() ?? kernel.idleCycles,
    iowaitCycles: idle?.iowaitCycles() ?? 0,
    pswpin: e.pswpin,
    pswpout: e.pswpout,
    pgpgin: e.pgpgin,
    pgpgout: e.pgpgout,
    contextSwitches: e.context_switches,
  };
}

/** Live processes blocked on disk I/O (vmstat's b, Linux's procs_blocked). */
function blockedOnIo(kernel: Kernel): number {
  return kernel.liveTasks().filter((t) => t.state === 'blocked.io').length;
}

/**
 * One vmstat row: the gauges (r b swpd free buff cache) as they are now, the rates (si so bi bo
 * in cs, per emulated second) and the CPU shares (us sy id wa st, in percent) over the interval
 * from `from` to `to`. Rates and shares round as procps does, `(100 * x + Div / 2) / Div` with
 * Div the interval; an empty interval reads as all idle (procps's Div = didl = 1).
 */
function vmstatRow(kernel: Kernel, from: VmstatCounters, to: VmstatCounters): string {
  const m = meminfo(kernel);
  const hz = kernel.hw.clock.hz;
  const kbPerPage = kernel.hw.format.pageBytes / 1024;
  const tasks = kernel.liveTasks();
  const running = tasks.filter((t) => t.state === 'running' || t.state === 'ready').length;
  const span = to.cycles - from.cycles;
  const div = span > 0 ? span : 1;
  const idle = span > 0 ? to.idleCycles - from.idleCycles : 1;
  const iowait = span > 0 ? to.iowaitCycles - from.iowaitCycles : 0;
  const perSecond = (delta: number): number => Math.floor((delta * hz) / div + 0.5);
  const percent = (cycles: number): number => Math.floor((100 * cycles + Math.floor(div / 2)) / div);
  const cols = [
    running,
    blockedOnIo(kernel),
    m.SwapTotal! - m.SwapFree!,
    m.MemFree!,
    m.Buffers!,
    m.Cached! + m.SReclaimable!,
    perSecond((to.pswpin - from.pswpin) * kbPerPage),
    perSecond((to.pswpout - from.pswpout) * kbPerPage),
    perSecond(to.pgpgin - from.pgpgin),
    perSecond(to.pgpgout - from.pgpgout),
    0, // interrupts: vmlab counts none
    perSecond(to.contextSwitches - from.contextSwitches),
    percent(span > 0 ? span - idle : 0), // us: all CPU time is user time (no system time is kept)
    0, // sy
    percent(idle - iowait),
    percent(iowait),
    0, // st
  ];
  return `${cols.map((v, i) => String(v).padStart(VMSTAT_WIDTHS[i]!)).join(' ')}\n`;
}

/**
 * `vmstat` with no delay: the two header lines (procps 3.3 columns) and one row, the averages
 * since boot (vmstat's first row), at the current time. `wa` needs an IdleClock watching since
 * boot; without one it is 0, that idle time counts in `id`, and the CPU shares are right only
 * where kernel.idleCycles is (outside an idle period: not in a clock event while the CPU idles).
 */
export function renderVmstatTool(kernel: Kernel, options: { idle?: IdleClock } = {}): string {
  return VMSTAT_HEADER + vmstatRow(kernel, BOOT_COUNTERS, readCounters(kernel, options.idle ?? null));
}

/**
 * The CPU's idle time, split into iowait (vmstat's wa: idle while a process waits for the disk)
 * and plain idle, by watching the kernel machine's states. An idle period is iowait when, as it
 * begins, a live process is blocked on I/O: while the CPU idles no process can start waiting
 * (only a running one can), and one that stops waiting becomes ready, which ends the period, so
 * a whole period is one or the other, as on a one-CPU Linux (nr_iowait > 0 while idle). Unlike
 * kernel.idleCycles, which counts an idle period once it has ended, the figures are exact at any
 * instant, inside an idle period too (an observer event fires there). Iowait before the clock
 * started is not known: start it at boot.
 *   iowaitCycles() <= idleCycles() - (kernel.idleCycles when the clock started)
 */
export class IdleClock {
  private readonly kernel: Kernel;
  /** Idle and iowait cycles of the periods ended since the clock started (idle from boot). */
  private idle: number;
  private iowait = 0;
  /** The cycle the current idle period began, or -1 outside one. */
  private idleSince = -1;
  private idleIsIowait = false;
  private readonly subscription: { unsubscribe(): void };

  constructor(kernel: Kernel) {
    this.kernel = kernel;
    this.idle = kernel.idleCycles;
    if (kernel.state === 'idle') this.begin(kernel.hw.clock.now);
    this.subscription = kernel.actor.subscribe((s) => this.onState(String(s.value)));
  }

  /** Idle cycles since boot, the current idle period included. */
  idleCycles(): number {
    return this.idle + this.open();
  }

  /** Iowait cycles since the clock started, the current idle period included. */
  iowaitCycles(): number {
    return this.iowait + (this.idleIsIowait ? this.open() : 0);
  }

  /** Stop watching (the counts stay readable, frozen). */
  stop(): void {
    this.subscription.unsubscribe();
    this.end(this.kernel.hw.clock.now);
  }

  private open(): number {
    return this.idleSince < 0 ? 0 : this.kernel.hw.clock.now - this.idleSince;
  }

  private onState(state: string): void {
    const now = this.kernel.hw.clock.now;
    if (state === 'idle') {
      if (this.idleSince < 0) this.begin(now); // else: still the same idle period
    } else this.end(now);
  }

  private begin(now: number): void {
    this.idleSince = now;
    this.idleIsIowait = blockedOnIo(this.kernel) > 0;
  }

  private end(now: number): void {
    if (this.idleSince < 0) return;
    this.idle += now - this.idleSince;
    if (this.idleIsIowait) this.iowait += now - this.idleSince;
    this.idleSince = -1;
    this.idleIsIowait = false;
  }
}

/**
 * `vmstat DELAY [COUNT]` over a run, as if vmstat had been started at boot: a row every DELAY
 * of emulated time, at most COUNT (every DELAY until the machine stops, without COUNT). The
 * first row averages since boot, as procps's first row does (started at boot, that is the first
 * interval); each later one covers its interval. Samples are observer clock events: they read
 * the machine, change nothing and keep nothing alive. The header is printed once (vmstat -n).
 */
class VmstatWatch {
  private readonly kernel: Kernel;
  private readonly delayCycles: number;
  private readonly count: number;
  private readonly idle: IdleClock;
  private readonly rows: string[] = [];
  private last: VmstatCounters = BOOT_COUNTERS;

  constructor(kernel: Kernel, options: { delayCycles: number; count: number }) {
    this.kernel = kernel;
    this.delayCycles = options.delayCycles;
    this.count = options.count;
    this.idle = new IdleClock(kernel);
    this.schedule();
  }

  /** The header and the rows so far; before the first sample, the since-boot row now. */
  render(): string {
    if (this.rows.length === 0) return renderVmstatTool(this.kernel, { idle: this.idle });
    return VMSTAT_HEADER + this.rows.join('');
  }

  private schedule(): void {
    this.kernel.hw.clock.after(this.delayCycles, 'vmstat sample', () => this.sample(), { observer: true });
  }

  private sample(): void {
    const now = readCounters(this.kernel, this.idle);
    this.rows.push(vmstatRow(this.kernel, this.last, now));
    this.last = now;
    const k = this.kernel;
    if (this.rows.length < this.count && (k.liveTasks().length > 0 || k.hw.clock.pending() > 0))
      this.schedule();
    else this.idle.stop();
  }
}

/** vmstat's arguments: DELAY in seconds (as procps takes it) or with a unit (s, ms, us, ns), COUNT rows. */
function parseVmstatArgs(kernel: Kernel, args: string[]): { delayCycles: number; count: number } | null {
  if (args.length === 0) return null;
  const usage = "usage: vmstat [DELAY [COUNT]], DELAY in seconds or with a unit (e.g. 'vmstat 1ms 5')";
  if (args.length > 2) throw new ToolUsageError(`vmstat: ${usage}`);
  const m = /^(\d+(?:\.\d+)?)(s|ms|us|ns)?$/.exec(args[0]!);
  const scale: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  const delayCycles = m === null ? 0 : Math.round(Number(m[1]) * scale[m[2] ?? 's']! * kernel.hw.clock.hz);
  if (!(delayCycles >= 1 && Number.isSafeInteger(delayCycles)))
    throw new ToolUsageError(`vmstat: '${args[0]}' is not a delay of at least one cycle; ${usage}`);
  const count = args[1] === undefined ? Number.POSITIVE_INFINITY : Number(args[1]);
  if (!(count === Number.POSITIVE_INFINITY || (Number.isSafeInteger(count) && count >= 1)))
    throw new ToolUsageError(`vmstat: '${args[1]}' is not a count of rows (1 or more); ${usage}`);
  return { delayCycles, count };
}

/** A tool's view of a run it watches from the start (see watchTool). */
export type ToolView = () => string;

/**
 * Start watching the run for a tool that reports over time, before the run: `vmstat DELAY
 * [COUNT]` samples rows as the run goes, plain `vmstat` counts iowait since boot. Returns the
 * tool's view, to call once the run has stopped; undefined for tools that need no watching
 * (runTool prints them at the end). Throws ToolUsageError on bad arguments.
 */
export function watchTool(kernel: Kernel, command: string): ToolView | undefined {
  const [name, ...args] = command.trim().split(/\s+/);
  if (name !== 'vmstat') return undefined;
  const options = parseVmstatArgs(kernel, args);
  if (options === null) {
    const idle = new IdleClock(kernel);
    return () => renderVmstatTool(kernel, { idle });
  }
  const watch = new VmstatWatch(kernel, options);
  return () => watch.render();
}

/** `pmap PID`: each mapping's address, size, permissions and name, then the total. */
export function renderPmap(task: Task): string {
  const mm = task.mm;
  const out = [`${task.pid}:   ${task.comm}`];
  if (mm === null) return `${out[0]}\n`;
  let total = 0;
  for (const v of mm.vmas.all()) {
    const kb = v.length / 1024;
    total += kb;
    const perms = `${v.flags & 1 ? 'r' : '-'}${v.flags & 2 ? 'w' : '-'}${v.flags & 4 ? 'x' : '-'}${v.isShared() ? 's' : '-'}-`;
    let name = '  [ anon ]';
    if (v.backing.kind === 'file') name = `${v.backing.file.path}`;
    else if (v.start <= mm.brk && v.end >= mm.startBrk) name = '  [ heap ]';
    else if (v.start <= mm.startStack && v.end >= mm.startStack) name = '  [ stack ]';
    else if (v.name !== undefined && !MAP_NAMES.has(v.name)) name = v.name;
    out.push(`${v.start.toString(16).padStart(16, '0')} ${`${kb}K`.padStart(7)} ${perms} ${name}`);
  }
  out.push(` total ${`${total}K`.padStart(16)}`);
  return `${out.join('\n')}\n`;
}

/** A top-like table: a summary, then one row per process by resident memory. */
export function renderTop(kernel: Kernel): string {
  const m = meminfo(kernel);
  const { clock } = kernel.hw;
  const frames = countFrames(kernel);
  const kbPerPage = kernel.hw.format.pageBytes / 1024;
  const tasks = [...kernel.tasks.values()].filter((t) => t.isAlive());
  const states = (s: string) => tasks.filter((t) => t.state.startsWith(s)).length;
  const busy = clock.now > 0 ? (100 * (clock.now - kernel.idleCycles)) / clock.now : 0;
  const lines = [
    `top - ${(clock.now / clock.hz).toFixed(3)} s emulated, ${tasks.length} tasks: ${states('running') + states('ready')} running, ${states('blocked')} sleeping`,
    `%Cpu(s): ${busy.toFixed(1)} us,  0.0 sy, ${(100 - busy).toFixed(1)} id`,
    `KiB Mem : ${m.MemTotal} total, ${m.MemFree} free, ${frames.anon * kbPerPage} anon, ${m.Shmem} shared`,
    `KiB Swap: ${m.SwapTotal} total, ${m.SwapFree} free`,
    '',
    '  PID COMMAND          S     VIRT      RES      SHR     SWAP  %MEM   MINFLT   MAJFLT',
  ];
  const rows = tasks
    .filter((t) => t.mm !== null)
    .sort((a, b) => b.mm!.rss() - a.mm!.rss() || a.pid - b.pid)
    .map((t) => {
      const mm = t.mm!;
      const stateLetter =
        t.state === 'running' || t.state === 'ready' ? 'R' : t.state === 'blocked.io' ? 'D' : 'S';
      return (
        `${String(t.pid).padStart(5)} ${t.comm.padEnd(16)} ${stateLetter} ${String(mm.totalVm() / 1024).padStart(8)} ` +
        `${String(mm.rss() * kbPerPage).padStart(8)} ${String((mm.rssFile + mm.rssShmem) * kbPerPage).padStart(8)} ` +
        `${String(mm.swapEntries * kbPerPage).padStart(8)} ${((100 * mm.rss() * kbPerPage) / m.MemTotal!).toFixed(1).padStart(5)} ` +
        `${String(t.minFlt).padStart(8)} ${String(t.majFlt).padStart(8)}`
      );
    });
  return `${[...lines, ...rows].join('\n')}\n`;
}

/**
 * A tool by command line (`free`, `free -h`, `vmstat`, `pmap PID`, `top`) as it prints now, or
 * undefined for no such tool. `vmstat DELAY [COUNT]` reports over time, so it throws
 * ToolUsageError here: it needs watchTool before the run.
 */
export function runTool(kernel: Kernel, command: string): string | undefined {
  const [name, ...args] = command.trim().split(/\s+/);
  switch (name) {
    case 'free':
      return renderFree(kernel, { human: args.includes('-h') });
    case 'vmstat':
      if (parseVmstatArgs(kernel, args) !== null)
        throw new ToolUsageError(
          `${command.trim()}: rows over time are sampled during the run: use vmlab proc WORKLOAD '${command.trim()}'`,
        );
      return renderVmstatTool(kernel);
    case 'top':
      return renderTop(kernel);
    case 'pmap': {
      const t = kernel.tasks.get(Number(args[0]));
      return t === undefined || !t.isAlive() ? `pmap: no process ${args[0] ?? ''}\n` : renderPmap(t);
    }
    default:
      return undefined;
  }
}
