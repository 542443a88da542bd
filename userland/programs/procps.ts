/**
 * procps-style tools that run as programs inside the machine: they open and read /proc through
 * system calls, parse its text and print what procps prints. (`vmlab proc` prints the same
 * views from the host side, kernel/observe/tools.ts.)
 *
 *   free [-h]    /proc/meminfo: total, used, free, shared, buff/cache, available; Swap
 *   pmap PID     /proc/PID/maps: each mapping's address, size, permissions and name, the total
 */
import {
  EINVAL,
  errnoName,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../../kernel/proc/uapi.ts';

const READ_CHUNK = 4096;

/** Read a whole /proc file into a string, or -errno. */
function* readProc(ctx: UserContext, path: string): Generator<void, string | number, void> {
  const { sys, cpu } = ctx;
  const fd = sys.open(path, O_RDONLY);
  if (fd < 0) return fd;
  const buf = sys.mmap(0, READ_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf < 0) return buf;
  const bytes = new Uint8Array(READ_CHUNK);
  let text = '';
  for (;;) {
    const n = sys.read(fd, buf, READ_CHUNK);
    if (n < 0) return n;
    if (n === 0) break;
    cpu.loadBytes(buf, bytes, 0, n);
    text += new TextDecoder().decode(bytes.subarray(0, n));
    yield;
  }
  sys.munmap(buf, READ_CHUNK);
  sys.close(fd);
  return text;
}

/** Write text to stdout (fd 1) through a scratch page. */
function print(ctx: UserContext, text: string): void {
  const { sys, cpu } = ctx;
  const bytes = new TextEncoder().encode(text);
  const len = Math.max(bytes.length, 1);
  const at = sys.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (at < 0) return;
  cpu.storeBytes(at, bytes);
  sys.write(1, at, bytes.length);
  sys.munmap(at, len);
}

function fail(ctx: UserContext, what: string, err: number): number {
  const msg = `${ctx.argv[0] ?? 'tool'}: ${what}: ${errnoName(-err)}\n`;
  const bytes = new TextEncoder().encode(msg);
  const at = ctx.sys.mmap(0, bytes.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (at >= 0) {
    ctx.cpu.storeBytes(at, bytes);
    ctx.sys.write(2, at, bytes.length);
  }
  return 1;
}

/** /proc/meminfo's `Key:   N kB` lines as numbers (kB). */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** free -h's units: B, Ki, Mi, Gi, Ti, one decimal below 10 (procps's scale_size). */
function human(kb: number): string {
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

/** free [-h]: procps 4's layout (used = total - available). */
export const free: UserMain = function* (ctx) {
  const text = yield* readProc(ctx, '/proc/meminfo');
  if (typeof text === 'number') return fail(ctx, '/proc/meminfo', text);
  const m = parseMeminfo(text);
  const kb = (k: string): number => m.get(k) ?? 0;
  const fmt = ctx.argv.includes('-h') ? human : (n: number) => String(n);
  const row = (label: string, values: number[]): string =>
    label.padEnd(9) + values.map((v, i) => (i === 0 ? '' : ' ') + fmt(v).padStart(11)).join('');
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  const buffCache = kb('Buffers') + kb('Cached') + kb('SReclaimable');
  print(
    ctx,
    [
      '               total        used        free      shared  buff/cache   available',
      row('Mem:', [total, total - available, kb('MemFree'), kb('Shmem'), buffCache, available]),
      row('Swap:', [kb('SwapTotal'), kb('SwapTotal') - kb('SwapFree'), kb('SwapFree')]),
      '',
    ].join('\n'),
  );
  return 0;
};

/** pmap PID (or self): the mappings of /proc/PID/maps with their sizes, then the total. */
export const pmap: UserMain = function* (ctx) {
  const pid = ctx.argv[1] ?? 'self';
  if (!/^(\d+|self)$/.test(pid)) return fail(ctx, `'${pid}'`, -EINVAL);
  const status = yield* readProc(ctx, `/proc/${pid}/status`);
  if (typeof status === 'number') return fail(ctx, `/proc/${pid}/status`, status);
  const text = yield* readProc(ctx, `/proc/${pid}/maps`);
  if (typeof text === 'number') return fail(ctx, `/proc/${pid}/maps`, text);
  const field = (key: string): string => new RegExp(`^${key}:\\t(.*)$`, 'm').exec(status)?.[1] ?? '';
  const lines: string[] = [`${field('Pid')}:   ${field('Name')}`];
  let totalKb = 0;
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S)(\S)(\S)(\S) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m === null) continue;
    const kb = (Number.parseInt(m[2]!, 16) - Number.parseInt(m[1]!, 16)) / 1024;
    totalKb += kb;
    const perms = `${m[3]}${m[4]}${m[5]}${m[6] === 's' ? 's' : '-'}-`;
    lines.push(`${m[1]!.padStart(16, '0')} ${`${kb}K`.padStart(7)} ${perms} ${pmapName(m[7]!)}`);
    yield;
  }
  lines.push(` total ${`${totalKb}K`.padStart(16)}`, '');
  print(ctx, lines.join('\n'));
  return 0;
};

/** pmap's name column for a maps name: [ anon ], [ heap ], [ stack ], or the file. */
function pmapName(name: string): string {
  if (name === '') return '  [ anon ]';
  if (name === '[heap]') return '  [ heap ]';
  if (name === '[stack]') return '  [ stack ]';
  return name;
}
