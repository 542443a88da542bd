/**
 * /proc/PID files (kernel/observe/procpid.ts): golden files for a deterministic workload
 * (test/fixtures/proc/), and hand-computed bytes for the layout rules that matter: the maps
 * name column at byte 73, the trailing space of anonymous maps lines, the TAB and %8lu of the
 * status memory lines, statm's seven fields, stat's 52, oom_score's integer formula, and the
 * pagemap bits.
 */
import { describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { EINVAL } from '../kernel/lib/errno.ts';
import {
  decodePagemapEntry,
  oomScore,
  PAGEMAP_ENTRY_BYTES,
  readPagemap,
  renderMaps,
  renderOomScore,
  renderOomScoreAdj,
  renderPagemap,
  renderProc,
  renderStat,
  renderStatm,
  renderStatus,
  STAT_FIELDS,
} from '../kernel/observe/procpid.ts';
import type { Kernel } from '../kernel/proc/kernel.ts';
import { Task } from '../kernel/proc/task.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  type ProgramImage,
  type UserMain,
} from '../kernel/proc/uapi.ts';

const PAGE = 4096;
const SLEEP_NS = 1e9;

/** What the probe program saw of itself while running (rendered through /proc/self). */
interface SelfView {
  status?: string;
}

/**
 * probe: grows the heap by 3 pages and writes 2 of them, maps 8 private pages and writes 5,
 * maps 2 shared pages and writes 1, reads its own status, then sleeps (or, with `fork`, forks
 * a child that sleeps too, and sleeps).
 *
 * Layout on x86-64 without randomization (text 2 pages at 0x400000, data 1, bss 1):
 *   text 2 + data 1 + bss 1 + heap 3 + private 8 + shared 2 + stack 32 = 49 pages
 *   resident 2 + 5 + 1 = 8 pages (7 anonymous, 1 shmem)
 */
function probe(kernel: () => Kernel, self: SelfView, options: { fork: boolean }): UserMain {
  return function* ({ cpu, sys }) {
    const heap = sys.brk(0);
    if (sys.brk(heap + 3 * PAGE) !== heap + 3 * PAGE) return 1;
    cpu.store8(heap, 1);
    cpu.store8(heap + PAGE, 2);
    yield;
    const priv = sys.mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (priv < 0) return 2;
    for (let p = 0; p < 5; p++) {
      cpu.store8(priv + p * PAGE, p);
      yield;
    }
    const shared = sys.mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared < 0) return 3;
    cpu.store8(shared, 9);
    self.status = renderProc(kernel(), '/proc/self/status') as string;
    if (options.fork) {
      const child = sys.fork(function* (c) {
        yield* c.sys.nanosleep(SLEEP_NS);
        return 0;
      });
      if (child < 0) return 4;
    }
    yield* sys.nanosleep(SLEEP_NS);
    return 0;
  };
}

/** Boot a 16 MiB x86-64 machine, start probe, run until it sleeps. */
function bootProbe(options: { fork: boolean } = { fork: false }) {
  const self: SelfView = {};
  let k: Kernel | undefined;
  const image: ProgramImage = {
    path: '/bin/probe',
    main: probe(() => k!, self, options),
    textBytes: 2 * PAGE,
    dataBytes: PAGE,
    bssBytes: PAGE,
  };
  const m = bootKernel(buildMachine({ memoryBytes: 16 << 20 }), {
    loader: (path) => (path === '/bin/probe' ? image : undefined),
  });
  k = m.kernel;
  const task = k.spawn('/bin/probe', ['probe']);
  if (typeof task === 'number') throw new Error(`spawn: ${task}`);
  const asleep = (): boolean =>
    task.state === 'blocked.sleep' &&
    (!options.fork || task.children.every((c) => c.state === 'blocked.sleep'));
  for (let i = 0; i < 10_000 && !asleep(); i++) k.run({ untilCycles: m.clock.now + 10_000 });
  expect(task.state).toBe('blocked.sleep');
  k.checkInvariants();
  return { m, k, task, self };
}

/** A pagemap as text: one `va entry` line per page, the entry as 16 hex digits (big-endian). */
function pagemapText(bytes: Uint8Array, startVa: number): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < bytes.length / PAGEMAP_ENTRY_BYTES; i++) {
    const lo = view.getUint32(i * 8, true);
    const hi = view.getUint32(i * 8 + 4, true);
    out += `${(startVa + i * PAGE).toString(16)} ${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}\n`;
  }
  return out;
}

describe('golden files: probe asleep', () => {
  it('maps, status, statm, stat, oom_score and pagemap match test/fixtures/proc', async () => {
    const { k, task } = bootProbe();
    await expect(renderMaps(task)).toMatchFileSnapshot('./fixtures/proc/probe.maps.txt');
    await expect(renderStatus(task)).toMatchFileSnapshot('./fixtures/proc/probe.status.txt');
    await expect(renderStatm(task)).toMatchFileSnapshot('./fixtures/proc/probe.statm.txt');
    await expect(renderStat(k, task)).toMatchFileSnapshot('./fixtures/proc/probe.stat.txt');
    await expect(renderOomScore(k, task)).toMatchFileSnapshot('./fixtures/proc/probe.oom_score.txt');
    const vmas = task.mm!.vmas.all();
    const heapStart = task.mm!.startBrk;
    const pm: string[] = [];
    // the heap, and the mmap area (private then shared mappings, top-down)
    pm.push(
      pagemapText(
        renderPagemap(k, task, { startVa: heapStart - PAGE, endVa: heapStart + 4 * PAGE }),
        heapStart - PAGE,
      ),
    );
    const low = vmas.at(-3)!.start;
    const high = vmas.at(-2)!.end;
    pm.push(pagemapText(renderPagemap(k, task, { startVa: low, endVa: high }), low));
    await expect(pm.join('--\n')).toMatchFileSnapshot('./fixtures/proc/probe.pagemap.txt');
  });
});

describe('/proc/PID/maps', () => {
  it('prints Linux layout: %08lx addresses, perms, offset, dev, inode, name from byte 73', () => {
    const { task } = bootProbe();
    const lines = renderMaps(task).split('\n');
    expect(lines.pop()).toBe(''); // ends with a newline
    expect(lines).toHaveLength(task.mm!.vmas.count);
    const text = lines[0]!;
    expect(text.slice(0, 42)).toBe('00400000-00402000 r-xp 00000000 00:00 0   ');
    expect(text.slice(42, 73)).toBe(' '.repeat(31));
    expect(text.slice(73)).toBe('/bin/probe');
    expect(text.length).toBe(73 + '/bin/probe'.length);
    for (const line of lines) {
      const name = line.slice(73);
      if (line.length > 73) {
        expect(line[72]).toBe(' ');
        expect(name.startsWith(' ')).toBe(false);
      }
    }
    const stack = lines.at(-1)!;
    expect(stack).toBe(`7ffffffdf000-7ffffffff000 rw-p 00000000 00:00 0${' '.repeat(26)}[stack]`);
    expect(stack.indexOf('[stack]')).toBe(73);
  });

  it('ends an anonymous line with a trailing space after the inode', () => {
    const { task } = bootProbe();
    const lines = renderMaps(task).split('\n');
    const anon = lines.find((l) => l.startsWith('7ffff7ff7000'))!;
    expect(anon).toBe('7ffff7ff7000-7ffff7fff000 rw-p 00000000 00:00 0 ');
  });

  it('labels [heap] by Linux rule vm_start <= brk && vm_end >= start_brk, shared anon as /dev/zero', () => {
    const { task } = bootProbe();
    const mm = task.mm!;
    const lines = renderMaps(task).split('\n');
    // The bss VMA ends at start_brk: brk grows it (as Linux's do_brk_flags extends the VMA
    // below), and Linux's rule names the merged VMA [heap].
    expect(mm.startBrk).toBe(0x404000);
    const heap = lines.find((l) => l.startsWith('00403000-'))!;
    expect(heap).toBe(`00403000-00407000 rw-p 00000000 00:00 0${' '.repeat(34)}[heap]`);
    expect(lines.filter((l) => l.endsWith('[heap]'))).toHaveLength(1);
    const shm = lines.find((l) => l.startsWith('7ffff7ff5000'))!;
    expect(shm.slice(0, 48)).toBe('7ffff7ff5000-7ffff7ff7000 rw-s 00000000 00:01 1 ');
    expect(shm.slice(73)).toBe('/dev/zero (deleted)');
  });
});

describe('/proc/PID/status', () => {
  it('has Name, State, ids and the task_mem lines as `Key:\\t%8lu kB`', () => {
    const { task } = bootProbe();
    const status = renderStatus(task);
    const lines = status.split('\n');
    expect(lines.slice(0, 5)).toEqual([
      'Name:\tprobe',
      'State:\tS (sleeping)',
      `Tgid:\t${task.pid}`,
      `Pid:\t${task.pid}`,
      'PPid:\t1',
    ]);
    const mem = lines.slice(5, 21);
    expect(mem.map((l) => l.split(':')[0])).toEqual([
      'VmPeak',
      'VmSize',
      'VmLck',
      'VmPin',
      'VmHWM',
      'VmRSS',
      'RssAnon',
      'RssFile',
      'RssShmem',
      'VmData',
      'VmStk',
      'VmExe',
      'VmLib',
      'VmPTE',
      'VmSwap',
      'HugetlbPages',
    ]);
    for (const l of mem) expect(l).toMatch(/^[A-Za-z]+:\t[ 0-9]{8} kB$/);
    const kb = (key: string): number =>
      Number(/\t *(\d+) kB/.exec(lines.find((l) => l.startsWith(`${key}:`))!)![1]);
    // by hand, from the layout in probe()'s comment (pages x 4 kB)
    expect(kb('VmSize')).toBe(49 * 4);
    expect(kb('VmRSS')).toBe(8 * 4);
    expect(kb('RssAnon')).toBe(7 * 4);
    expect(kb('RssFile')).toBe(0);
    expect(kb('RssShmem')).toBe(4);
    expect(kb('VmData')).toBe((1 + 1 + 3 + 8) * 4); // data, bss, heap, private mmap
    expect(kb('VmStk')).toBe(32 * 4);
    expect(kb('VmExe')).toBe(8);
    expect(kb('VmLib')).toBe(0);
    expect(kb('VmPTE')).toBe(task.mm!.tables.tablePages * 4);
    // root + PDPT, PD, PT for the text and heap, and for the mmap area (the stack is untouched)
    expect(task.mm!.tables.tablePages).toBe(7);
    expect(kb('VmSwap')).toBe(0);
    expect(lines.at(-2)).toBe('Threads:\t1');
    expect(status.endsWith('\n')).toBe(true);
  });

  it('reads R (running) through /proc/self while the task runs', () => {
    const { self } = bootProbe();
    expect(self.status).toContain('\nState:\tR (running)\n');
    expect(self.status).toContain('\nVmRSS:\t      32 kB\n');
  });

  it('maps every machine state to its letter; no memory lines without an address space', () => {
    const { k } = bootProbe();
    const t = Task.create(k.caches, 999, 1, 'lonely')!;
    const state = (): string => /State:\t(.*)\n/.exec(renderStatus(t))![1]!;
    expect(state()).toBe('R (running)'); // new
    const steps: Array<[Parameters<Task['send']>[0], string]> = [
      [{ type: 'ADMIT' }, 'R (running)'],
      [{ type: 'DISPATCH' }, 'R (running)'],
      [{ type: 'BLOCK_IO' }, 'D (disk sleep)'],
      [{ type: 'WAKE' }, 'R (running)'],
      [{ type: 'DISPATCH' }, 'R (running)'],
      [{ type: 'BLOCK_WAIT' }, 'S (sleeping)'],
      [{ type: 'KILL', signal: 9 }, 'Z (zombie)'],
    ];
    for (const [event, letter] of steps) {
      expect(t.send(event)).toBe(true);
      expect(state()).toBe(letter);
    }
    expect(renderStatus(t)).toBe(
      'Name:\tlonely\nState:\tZ (zombie)\nTgid:\t999\nPid:\t999\nPPid:\t1\nThreads:\t1\n',
    );
    expect(renderMaps(t)).toBe('');
    expect(renderStatm(t)).toBe('0 0 0 0 0 0 0\n');
    expect(oomScore(k, t)).toBe(0);
    t.destroy();
  });
});

describe('/proc/PID/statm', () => {
  it('prints size resident shared text lib data dt, computed by hand', () => {
    const { task } = bootProbe();
    // size 49, resident 8, shared 1 (the shmem page), text 2, lib 0, data 13 + stack 32, dt 0
    expect(renderStatm(task)).toBe('49 8 1 2 0 45 0\n');
    expect(renderStatm(task).trim().split(' ')).toHaveLength(7);
  });
});

describe('/proc/PID/stat', () => {
  it('has 52 fields with the counters vmlab keeps', () => {
    const { k, m, task } = bootProbe();
    const stat = renderStat(k, task);
    expect(stat.endsWith('\n')).toBe(true);
    const close = stat.lastIndexOf(')');
    expect(stat.slice(0, close + 1)).toBe(`${task.pid} (probe)`);
    const rest = stat.slice(close + 2, -1).split(' ');
    const f = (n: number): string => rest[n - 3]!; // field n (1-based) after pid and comm
    expect(2 + rest.length).toBe(STAT_FIELDS);
    expect(f(3)).toBe('S');
    expect(f(4)).toBe('1');
    expect(f(8)).toBe('-1');
    expect(f(10)).toBe('8'); // minflt: 2 heap + 5 private + 1 shared page, first touches
    expect(Number(f(10))).toBe(task.minFlt);
    expect(f(12)).toBe('0');
    expect(f(14)).toBe(String(Math.floor((task.cpuCycles * 100) / m.clock.hz)));
    expect(f(18)).toBe('20');
    expect(f(20)).toBe('1');
    expect(f(23)).toBe(String(49 * PAGE));
    expect(f(24)).toBe('8');
    expect(f(25)).toBe('18446744073709551615');
    expect(f(26)).toBe(String(0x400000));
    expect(f(27)).toBe(String(0x402000));
    expect(f(28)).toBe(String(task.mm!.startStack));
    expect(f(38)).toBe('17');
    expect(f(45)).toBe(String(0x402000));
    expect(f(46)).toBe(String(0x403000));
    expect(f(47)).toBe(String(0x404000));
    expect(f(52)).toBe('0');
  });
});

describe('/proc/PID/oom_score and oom_score_adj', () => {
  it('is (1000 + badness * 1000 / totalpages) * 2 / 3 in integer arithmetic', () => {
    const { k, m, task } = bootProbe();
    const total = m.buddy.managedPages();
    const badness = 8 + 0 + 7; // rss + swap entries + page-table pages
    expect(k.oomBadness(task)).toBe(badness);
    expect(renderOomScore(k, task)).toBe(
      `${Math.trunc(((1000 + Math.trunc((badness * 1000) / total)) * 2) / 3)}\n`,
    );
    task.oomScoreAdj = 500;
    const adjusted = Math.trunc(k.oomBadness(task));
    expect(oomScore(k, task)).toBe(Math.trunc(((1000 + Math.trunc((adjusted * 1000) / total)) * 2) / 3));
    // adj x (totalpages / 1000, an integer division) is about half of all memory: ~(1000 + 500) x 2/3
    expect(adjusted).toBe(badness + 500 * Math.floor(total / 1000));
    expect(oomScore(k, task)).toBeGreaterThan(900);
    expect(renderOomScoreAdj(task)).toBe('500\n');
    task.oomScoreAdj = -1000;
    expect(renderOomScore(k, task)).toBe('0\n');
    expect(renderOomScoreAdj(task)).toBe('-1000\n');
  });
});

describe('/proc/PID/pagemap', () => {
  it('sets present, the PFN and exclusive for a written private page; zero for holes', () => {
    const { k, task } = bootProbe();
    const heap = task.mm!.startBrk;
    const pm = renderPagemap(k, task, { startVa: heap, endVa: heap + 3 * PAGE });
    expect(pm.length).toBe(3 * 8);
    const e = decodePagemapEntry(pm, 0);
    expect(e).toMatchObject({
      present: true,
      swapped: false,
      file: false,
      exclusive: true,
      softDirty: false,
    });
    expect(e.pfn * PAGE).toBe(k.pageInfo(task, heap).physAddr);
    expect(pm[7]! & 0x80).toBe(0x80); // bit 63: the top bit of the last (little-endian) byte
    expect(pm[7]! & 0x01).toBe(0x01); // bit 56: exclusive
    expect([...pm.subarray(16, 24)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]); // heap page 3: never touched
    const below = renderPagemap(k, task, { startVa: 0, endVa: PAGE });
    expect([...below]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('marks shared anonymous pages as file (bit 61) and shows no PFN to an unprivileged reader', () => {
    const { k, task } = bootProbe();
    const shm = task.mm!.vmas.all().find((v) => v.backing.kind === 'shmem')!;
    const pm = renderPagemap(k, task, { startVa: shm.start, endVa: shm.end });
    expect(decodePagemapEntry(pm, 0)).toMatchObject({ present: true, file: true, exclusive: true });
    expect(pm[7]).toBe(0x80 | 0x20 | 0x01);
    const hidden = renderPagemap(k, task, { startVa: shm.start, endVa: shm.end, pfn: 'hidden' });
    expect(decodePagemapEntry(hidden, 0).pfn).toBe(0);
    expect(decodePagemapEntry(hidden, 0).present).toBe(true);
  });

  it('clears exclusive for pages shared after fork', () => {
    const { k, task } = bootProbe({ fork: true });
    const child = task.children[0]!;
    const heap = task.mm!.startBrk;
    for (const t of [task, child]) {
      const e = decodePagemapEntry(renderPagemap(k, t, { startVa: heap, endVa: heap + PAGE }), 0);
      expect(e).toMatchObject({ present: true, exclusive: false });
    }
    const a = decodePagemapEntry(renderPagemap(k, task, { startVa: heap, endVa: heap + PAGE }), 0);
    const b = decodePagemapEntry(renderPagemap(k, child, { startVa: heap, endVa: heap + PAGE }), 0);
    expect(a.pfn).toBe(b.pfn);
  });

  it('encodes a swapped-out page as bit 62 with swap type 0 and the slot as offset (bits 5-54)', () => {
    const pages = 2048; // 8 MiB of data in 4 MiB of RAM
    let base = 0;
    const main: UserMain = function* ({ cpu, sys }) {
      base = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) return 1;
      for (let p = 0; p < pages; p++) {
        cpu.store32(base + p * PAGE, p);
        yield;
      }
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    };
    const m = bootKernel(buildMachine({ memoryBytes: 4 << 20 }), {
      loader: (path) =>
        path === '/bin/hog' ? { path, main, textBytes: PAGE, dataBytes: PAGE, bssBytes: PAGE } : undefined,
      swap: { bytes: 16 << 20 },
    });
    try {
      const k = m.kernel;
      const task = k.spawn('/bin/hog', ['hog']);
      if (typeof task === 'number') throw new Error(`spawn: ${task}`);
      for (let i = 0; i < 100_000 && task.state !== 'blocked.sleep'; i++)
        k.run({ untilCycles: m.clock.now + 100_000 });
      expect(task.state).toBe('blocked.sleep');
      const mm = task.mm!;
      const pm = renderPagemap(k, task, { startVa: base, endVa: base + pages * PAGE });
      let swapped = 0;
      let present = 0;
      for (let i = 0; i < pages; i++) {
        const e = decodePagemapEntry(pm, i);
        const va = base + i * PAGE;
        expect(e.swapped).toBe(k.pageInfo(task, va).swapped);
        if (e.present) {
          present++;
          expect(e.pfn * PAGE).toBe(k.pageInfo(task, va).physAddr);
          continue;
        }
        if (!e.swapped) continue;
        swapped++;
        const pa = mm.tables.entryAddress(va, 'lookup');
        const lo = mm.tables.read(pa);
        expect(e.swapType).toBe(0);
        expect(e.swapOffset).toBe(k.pte.nonPresentPayload(lo, mm.tables.hi));
        expect(e.present || e.exclusive || e.file).toBe(false);
      }
      expect(swapped).toBe(mm.swapEntries);
      expect(swapped).toBeGreaterThan(0);
      expect(present + swapped).toBe(pages);
      const status = renderStatus(task);
      expect(status).toContain(`\nVmSwap:\t${String(swapped * 4).padStart(8)} kB\n`);
    } finally {
      m.shutdown();
    }
  });

  it('reads byte windows with Linux rules: 8-byte aligned offset and length, else EINVAL', () => {
    const { k, task } = bootProbe();
    const heap = task.mm!.startBrk;
    const byWindow = readPagemap(k, task, { offsetBytes: (heap / PAGE) * 8, lengthBytes: 16 });
    expect(byWindow).toEqual(renderPagemap(k, task, { startVa: heap, endVa: heap + 2 * PAGE }));
    expect(readPagemap(k, task, { offsetBytes: 4, lengthBytes: 8 })).toBe(-EINVAL);
    expect(readPagemap(k, task, { offsetBytes: 8, lengthBytes: 12 })).toBe(-EINVAL);
    expect(readPagemap(k, task, { offsetBytes: -8, lengthBytes: 8 })).toBe(-EINVAL);
    expect(readPagemap(k, task, { offsetBytes: 0, lengthBytes: 0 })).toEqual(new Uint8Array(0));
    // past the top of the address space: zeros, no error
    const top = 2 ** 48 / PAGE;
    expect(readPagemap(k, task, { offsetBytes: top * 8, lengthBytes: 8 })).toEqual(new Uint8Array(8));
  });
});

describe('renderProc', () => {
  it('finds each file by path, and undefined for anything else', () => {
    const { k, task } = bootProbe();
    const p = `/proc/${task.pid}`;
    expect(renderProc(k, `${p}/maps`)).toBe(renderMaps(task));
    expect(renderProc(k, `${p}/status`)).toBe(renderStatus(task));
    expect(renderProc(k, `${p}/statm`)).toBe(renderStatm(task));
    expect(renderProc(k, `${p}/stat`)).toBe(renderStat(k, task));
    expect(renderProc(k, `${p}/oom_score`)).toBe(renderOomScore(k, task));
    expect(renderProc(k, `${p}/oom_score_adj`)).toBe('0\n');
    expect(renderProc(k, `${p}/pagemap`)).toEqual(new Uint8Array(0));
    const heap = task.mm!.startBrk;
    expect(renderProc(k, `${p}/pagemap`, { pagemap: { startVa: heap, endVa: heap + PAGE } })).toEqual(
      renderPagemap(k, task, { startVa: heap, endVa: heap + PAGE }),
    );
    for (const bad of [
      `${p}/smells`,
      `${p}/maps/x`,
      '/proc/99999/maps',
      '/proc/self/maps',
      '/proc/maps',
      `${p}`,
    ]) {
      expect(renderProc(k, bad), bad).toBeUndefined();
    }
  });

  it('has no directory for a reaped task', () => {
    const { k, task } = bootProbe();
    expect(k.run()).toBe('halted');
    expect(task.state).toBe('reaped');
    expect(renderProc(k, `/proc/${task.pid}/status`)).toBeUndefined();
  });
});
