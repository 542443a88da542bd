/**
 * The familiar tools, as procps prints them, over the kernel's /proc figures: free (and
 * free -h), vmstat (one row: the averages since boot, as vmstat's first line is), pmap and a
 * top-like table.
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

/** `vmstat`: the header and one row of averages since boot (procps 3.3 columns). */
export function renderVmstatTool(kernel: Kernel): string {
  const m = meminfo(kernel);
  const { clock } = kernel.hw;
  const seconds = Math.max(clock.now / clock.hz, 1e-9);
  const kbPerPage = kernel.hw.format.pageBytes / 1024;
  const e = kernel.events;
  const tasks = kernel.liveTasks();
  const running = tasks.filter((t) => t.state === 'running' || t.state === 'ready').length;
  const blocked = tasks.filter((t) => t.state === 'blocked.io').length;
  const busy = clock.now > 0 ? Math.round((100 * (clock.now - kernel.idleCycles)) / clock.now) : 0;
  const cols: Array<[number, number]> = [
    [running, 2],
    [blocked, 2],
    [m.SwapTotal! - m.SwapFree!, 6],
    [m.MemFree!, 6],
    [m.Buffers!, 6],
    [m.Cached! + m.SReclaimable!, 6],
    [Math.round((e.pswpin * kbPerPage) / seconds), 4],
    [Math.round((e.pswpout * kbPerPage) / seconds), 4],
    [Math.round(e.pgpgin / seconds), 5],
    [Math.round(e.pgpgout / seconds), 5],
    [0, 4],
    [Math.round(e.context_switches / seconds), 4],
    [busy, 2],
    [0, 2],
    [100 - busy, 2],
    [0, 2],
    [0, 2],
  ];
  return [
    'procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----',
    ' r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st',
    cols.map(([v, w]) => String(v).padStart(w)).join(' '),
    '',
  ].join('\n');
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

/** A tool by command line (`free`, `free -h`, `vmstat`, `pmap PID`, `top`), or undefined. */
export function runTool(kernel: Kernel, command: string): string | undefined {
  const [name, ...args] = command.trim().split(/\s+/);
  switch (name) {
    case 'free':
      return renderFree(kernel, { human: args.includes('-h') });
    case 'vmstat':
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
