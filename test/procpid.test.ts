/**
 * /proc/PID files (kernel/observe/procpid.ts): golden files for a deterministic workload
 * (test/fixtures/proc/), and hand-computed bytes for the layout rules that matter: the maps
 * name column at byte 73, the trailing space of anonymous maps lines, the TAB and %8lu of the
 * status memory lines, statm's seven fields, stat's 52, oom_score's integer formula, the
 * pagemap bits, and smaps' accounting (Pss shares in Linux's fixed point, Swap and SwapPss,
 * LazyFree, shared file pages).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withPageSize } from '../kernel/boot/formatfile.ts';
import { type BootedMachine, bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';
import { EINVAL, ESRCH } from '../kernel/lib/errno.ts';
import { VM_LOCKED, VM_NORESERVE, VM_READ } from '../kernel/mm/vma.ts';
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
  renderSmaps,
  renderSmapsRollup,
  renderStat,
  renderStatm,
  renderStatus,
  STAT_FIELDS,
  vmFlagsLine,
} from '../kernel/observe/procpid.ts';
import type { Kernel } from '../kernel/proc/kernel.ts';
import { Task } from '../kernel/proc/task.ts';
import {
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type ProgramImage,
  type UserMain,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine } from './helpers/kernel.ts';

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

/**
 * The hand-computed figures below count the data pages a probe touches: no instruction
 * fetches, so its text stays untouched (test/exec.test.ts covers text pages).
 */
const NO_FETCH = { fetchStrideBytes: 0 };

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
    tunables: NO_FETCH,
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

  it('smaps and smaps_rollup match test/fixtures/proc', async () => {
    const { k, task } = bootProbe();
    await expect(renderSmaps(k, task)).toMatchFileSnapshot('./fixtures/proc/probe.smaps.txt');
    await expect(renderSmapsRollup(k, task)).toMatchFileSnapshot('./fixtures/proc/probe.smaps_rollup.txt');
  });
});

describe('/proc/PID/maps', () => {
  it('prints Linux layout: %08lx addresses, perms, offset, dev, inode, name from byte 73', () => {
    const { task } = bootProbe();
    const lines = renderMaps(task).split('\n');
    expect(lines.pop()).toBe(''); // ends with a newline
    expect(lines).toHaveLength(task.mm!.vmas.count);
    const text = lines[0]!;
    // Text is a private mapping of the program's image file (the sandbox's device fd:01).
    const ino = task.mm!.vmas.all()[0]!.backing.kind === 'file' ? 2 : -1;
    expect(text.slice(0, 41)).toBe(`00400000-00402000 r-xp 00000000 fd:01 ${ino}  `);
    expect(text.slice(41, 73)).toBe(' '.repeat(32));
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
      tunables: NO_FETCH,
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

// ---- /proc/PID/smaps and smaps_rollup ----

/** One smaps entry: its header line, `Key: value` figures (kB, or the bare THPeligible), VmFlags. */
interface SmapsEntry {
  header: string;
  start: number;
  fields: Record<string, number>;
  vmFlags: string;
}

function parseSmaps(text: string): SmapsEntry[] {
  const entries: SmapsEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const field = /^([A-Za-z_]+): +(\d+)( kB)?$/.exec(line);
    if (field !== null) {
      entries.at(-1)!.fields[field[1]!] = Number(field[2]);
    } else if (line.startsWith('VmFlags: ')) {
      entries.at(-1)!.vmFlags = line.slice('VmFlags: '.length);
    } else {
      entries.push({ header: line, start: Number.parseInt(line, 16), fields: {}, vmFlags: '' });
    }
  }
  return entries;
}

/** The smaps entry of the VMA containing `va`. */
function smapsAt(k: Kernel, task: Task, va: number): Record<string, number> {
  const v = task.mm!.vmas.find(va)!;
  return parseSmaps(renderSmaps(k, task)).find((e) => e.start === v.start)!.fields;
}

function rollupOf(k: Kernel, task: Task): Record<string, number> {
  return parseSmaps(renderSmapsRollup(k, task) as string)[0]!.fields;
}

/** Run `m` until every task in `tasks` (and their children) sleeps, and `ready()` holds. */
function runUntilAsleep(m: BootedMachine, tasks: Task[], ready: () => boolean = () => true): void {
  const asleep = (t: Task): boolean => t.state === 'blocked.sleep' && t.children.every(asleep);
  const done = (): boolean => tasks.every(asleep) && ready();
  for (let i = 0; i < 100_000 && !done(); i++) m.kernel.run({ untilCycles: m.clock.now + 100_000 });
  expect(done()).toBe(true);
  m.kernel.checkInvariants();
}

const SMAPS_KEYS = [
  'Size',
  'KernelPageSize',
  'MMUPageSize',
  'Rss',
  'Pss',
  'Pss_Dirty',
  'Shared_Clean',
  'Shared_Dirty',
  'Private_Clean',
  'Private_Dirty',
  'Referenced',
  'Anonymous',
  'KSM',
  'LazyFree',
  'AnonHugePages',
  'ShmemPmdMapped',
  'FilePmdMapped',
  'Shared_Hugetlb',
  'Private_Hugetlb',
  'Swap',
  'SwapPss',
  'Locked',
  'THPeligible',
  'VmFlags',
];

const ROLLUP_KEYS = [
  'Rss',
  'Pss',
  'Pss_Dirty',
  'Pss_Anon',
  'Pss_File',
  'Pss_Shmem',
  ...SMAPS_KEYS.slice(6, SMAPS_KEYS.indexOf('THPeligible')),
];

describe('/proc/PID/smaps: layout', () => {
  it("prints each VMA's maps line, then Linux's fields in order with values ending at column 24", () => {
    const { k, task } = bootProbe();
    const text = renderSmaps(k, task);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    const maps = renderMaps(task).split('\n').slice(0, -1);
    expect(lines).toHaveLength(maps.length * (1 + SMAPS_KEYS.length));
    for (let i = 0; i < maps.length; i++) {
      const block = lines.slice(i * 25, (i + 1) * 25);
      expect(block[0]).toBe(maps[i]); // the maps line, trailing space and name column included
      expect(block.slice(1).map((l) => l.split(':')[0])).toEqual(SMAPS_KEYS);
      for (const l of block.slice(1, 23)) {
        expect(l).toMatch(/^[A-Za-z_]+: +\d+ kB$/);
        expect(l.length).toBe(24 + ' kB'.length);
      }
      expect(block[23]).toBe('THPeligible:           0');
      expect(block[24]).toMatch(/^VmFlags:( [a-z?]{2})+ $/); // "%s " per flag: a trailing space
    }
    expect(lines[1]).toBe('Size:                  8 kB');
    expect(lines[2]).toBe('KernelPageSize:        4 kB');
    expect(lines.find((l) => l.startsWith('Private_Hugetlb:'))).toBe('Private_Hugetlb:       0 kB');
  });

  it('names the VM_* flags with their two-letter mnemonics in bit order', () => {
    const { k, task } = bootProbe();
    const flags = parseSmaps(renderSmaps(k, task)).map((e) => e.vmFlags);
    expect(flags[0]).toBe('rd ex mr mw me '); // text
    expect(flags[2]).toBe('rd wr mr mw me ac '); // heap: private writable, accounted
    expect(flags[3]).toBe('rd wr sh mr mw me ms '); // shared anonymous
    expect(flags.at(-1)).toBe('rd wr mr mw me gd ac '); // stack: grows down
    expect(vmFlagsLine(VM_READ | VM_LOCKED | VM_NORESERVE)).toBe('VmFlags: rd lo nr \n');
    expect(vmFlagsLine(0x800 | 0x80000000)).toBe('VmFlags: ?? mg \n'); // unnamed bit 11, VM_MERGEABLE
    expect(vmFlagsLine(0)).toBe('VmFlags: \n');
  });

  it('smaps_rollup: [rollup] from the first VMA start to the last end, and the summed fields', () => {
    const { k, task } = bootProbe();
    const rollup = renderSmapsRollup(k, task) as string;
    const lines = rollup.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines[0]).toBe(`00400000-7ffffffff000 ---p 00000000 00:00 0${' '.repeat(30)}[rollup]`);
    expect(lines[0]!.indexOf('[rollup]')).toBe(73);
    expect(lines.slice(1).map((l) => l.split(':')[0])).toEqual(ROLLUP_KEYS);
    for (const l of lines.slice(1)) expect(l.length).toBe(27);
    // by hand from probe's layout: 2 heap + 5 private (anonymous) + 1 shared page, all written once
    expect(rollupOf(k, task)).toMatchObject({
      Rss: 32,
      Pss: 32,
      Pss_Dirty: 32,
      Pss_Anon: 28,
      Pss_File: 0,
      Pss_Shmem: 4,
      Private_Dirty: 32,
      Shared_Clean: 0,
      Shared_Dirty: 0,
      Anonymous: 28,
      Referenced: 32,
      Swap: 0,
    });
  });

  it('an address space-less task: empty smaps, smaps_rollup read fails with ESRCH', () => {
    const { k } = bootProbe();
    const t = Task.create(k.caches, 999, 1, 'lonely')!;
    expect(renderSmaps(k, t)).toBe('');
    expect(renderSmapsRollup(k, t)).toBe(-ESRCH);
    t.destroy();
  });

  it('renderProc serves smaps and smaps_rollup', () => {
    const { k, task } = bootProbe();
    expect(renderProc(k, `/proc/${task.pid}/smaps`)).toBe(renderSmaps(k, task));
    expect(renderProc(k, `/proc/${task.pid}/smaps_rollup`)).toBe(renderSmapsRollup(k, task));
  });

  it("prints the machine's page size: 16 KiB pages", () => {
    const format = withPageSize(PRESET_FORMATS['x86-64']!, 16384);
    const page = format.pageBytes;
    let base = 0;
    const main: UserMain = function* ({ cpu, sys }) {
      base = sys.mmap(0, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) return 1;
      cpu.store8(base, 1);
      cpu.store8(base + 2 * page, 2);
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    };
    const m = bootKernel(buildMachine({ memoryBytes: 16 << 20, format }), {
      tunables: NO_FETCH,
      loader: (path) =>
        path === '/bin/big' ? { path, main, textBytes: page, dataBytes: page, bssBytes: page } : undefined,
    });
    const task = m.kernel.spawn('/bin/big', ['big']);
    if (typeof task === 'number') throw new Error(`spawn: ${task}`);
    runUntilAsleep(m, [task]);
    expect(smapsAt(m.kernel, task, base)).toMatchObject({
      Size: 48,
      KernelPageSize: 16,
      MMUPageSize: 16,
      Rss: 32,
      Pss: 32,
      Private_Dirty: 32,
      Anonymous: 32,
    });
  });
});

describe('/proc/PID/smaps: accounting', () => {
  it('a page shared by parent and child after fork has Pss = half, and counts as shared', () => {
    const { k, task } = bootProbe({ fork: true });
    const child = task.children[0]!;
    const heap = task.mm!.startBrk;
    for (const t of [task, child]) {
      // 2 written heap pages, mapped by both: Pss 2 x 4 kB / 2
      expect(smapsAt(k, t, heap)).toMatchObject({
        Rss: 8,
        Pss: 4,
        Pss_Dirty: 4,
        Shared_Clean: 0,
        Shared_Dirty: 8,
        Private_Clean: 0,
        Private_Dirty: 0,
        Anonymous: 8,
      });
    }
    // everything resident is shared with the child: 8 pages, Pss half of Rss
    expect(rollupOf(k, task)).toMatchObject({
      Rss: 32,
      Pss: 16,
      Pss_Anon: 14,
      Pss_Shmem: 2,
      Shared_Dirty: 32,
    });
  });

  it("sums a page's shares in fixed point (PSS_SHIFT 12) before printing, as Linux does", () => {
    // 6 pages mapped by 3 processes: each page adds (4096 << 12) / 3 = 5592405 to Pss, so the
    // VMA's Pss is 6 x 5592405 >> 12 = 8191 bytes, printed as 7 kB (not 8, and not 6 x 1 kB).
    const m = bootTestMachine({ memoryMiB: 16 });
    let base = 0;
    const sleeper: UserMain = function* ({ sys }) {
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    };
    const parent = m.start(function* ({ cpu, sys }) {
      base = sys.mmap(0, 6 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < 6; p++) cpu.store8(base + p * PAGE, p);
      if (sys.fork(sleeper) < 0 || sys.fork(sleeper) < 0) return 1;
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    });
    runUntilAsleep(m, [parent]);
    expect(parent.children).toHaveLength(3 - 1);
    expect(Math.floor((6 * Math.floor((PAGE * 4096) / 3)) / 4096)).toBe(8191);
    for (const t of [parent, ...parent.children]) {
      expect(smapsAt(m.kernel, t, base)).toMatchObject({ Rss: 24, Pss: 7, Pss_Dirty: 7, Shared_Dirty: 24 });
    }
    m.shutdown();
  });

  it('a MADV_FREE page is LazyFree while clean; written again it is not', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    let base = 0;
    const t = m.start(function* ({ cpu, sys }) {
      base = sys.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < 4; p++) cpu.store8(base + p * PAGE, p + 1);
      if (sys.madvise(base, 3 * PAGE, MADV_FREE) !== 0) return 1;
      cpu.store8(base + PAGE, 9); // page 1 is dirty again: its data must be kept
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    });
    runUntilAsleep(m, [t]);
    // pages 0 and 2: freed and clean (LazyFree, Private_Clean); page 1: rewritten; page 3: kept
    expect(smapsAt(m.kernel, t, base)).toMatchObject({
      Rss: 16,
      Pss: 16,
      Pss_Dirty: 8,
      Private_Clean: 8,
      Private_Dirty: 8,
      Anonymous: 16,
      LazyFree: 8,
    });
    expect(rollupOf(m.kernel, t).LazyFree).toBe(8);
    m.shutdown();
  });

  it('a page kept under PROT_NONE is still resident (Linux: pte_present), its dirt in PG_DIRTY', () => {
    const m = bootTestMachine({ memoryMiB: 16 });
    let base = 0;
    const t = m.start(function* ({ cpu, sys }) {
      base = sys.mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      cpu.store8(base, 1);
      cpu.store8(base + PAGE, 2);
      if (sys.mprotect(base, 2 * PAGE, PROT_NONE) !== 0) return 1;
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    });
    runUntilAsleep(m, [t]);
    expect(smapsAt(m.kernel, t, base)).toMatchObject({ Rss: 8, Pss: 8, Private_Dirty: 8, Anonymous: 8 });
    expect(parseSmaps(renderSmaps(m.kernel, t)).find((e) => e.start === base)!.header).toContain(' ---p ');
    m.shutdown();
  });

  it('a swapped page shows in Swap, and SwapPss splits it among the page tables naming its slot', () => {
    const pages = 2048; // 8 MiB of data in 4 MiB of RAM
    let base = 0;
    const main: UserMain = function* ({ cpu, sys }) {
      base = sys.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base < 0) return 1;
      for (let p = 0; p < pages; p++) {
        cpu.store32(base + p * PAGE, p);
        yield;
      }
      yield* sys.nanosleep(1_000_000); // 1 ms: looked at here, then it forks
      if (
        sys.fork(function* ({ sys: s }) {
          yield* s.nanosleep(SLEEP_NS);
          return 0;
        }) < 0
      )
        return 2;
      yield* sys.nanosleep(SLEEP_NS);
      return 0;
    };
    const m = bootKernel(buildMachine({ memoryBytes: 4 << 20 }), {
      tunables: NO_FETCH,
      loader: (path) =>
        path === '/bin/hog' ? { path, main, textBytes: PAGE, dataBytes: PAGE, bssBytes: PAGE } : undefined,
      swap: { bytes: 16 << 20 },
    });
    try {
      const k = m.kernel;
      const task = k.spawn('/bin/hog', ['hog']);
      if (typeof task === 'number') throw new Error(`spawn: ${task}`);
      runUntilAsleep(m, [task]);
      expect(task.children).toHaveLength(0);
      const swapped = task.mm!.swapEntries;
      expect(swapped).toBeGreaterThan(0);
      // one page table names each slot: SwapPss = Swap
      const alone = smapsAt(k, task, base);
      expect(alone.Swap).toBe(swapped * 4);
      expect(alone.SwapPss).toBe(swapped * 4);
      expect(alone.Rss + alone.Swap).toBe(pages * 4);
      expect(renderStatus(task)).toContain(`\nVmSwap:\t${String(swapped * 4).padStart(8)} kB\n`);
      expect(rollupOf(k, task)).toMatchObject({ Swap: swapped * 4, SwapPss: swapped * 4 });
      // after fork parent and child name every slot: (4096 << 12) / 2 per entry, half of Swap
      runUntilAsleep(m, [task], () => task.children.length === 1); // wake, fork, sleep again
      const child = task.children[0]!;
      const n = task.mm!.swapEntries;
      expect(child.mm!.swapEntries).toBe(n);
      for (const t of [task, child]) {
        const f = smapsAt(k, t, base);
        expect(f.Swap).toBe(n * 4);
        expect(f.SwapPss).toBe(n * 2);
      }
    } finally {
      m.shutdown();
    }
  });

  it('a MAP_SHARED file page mapped by two processes is Shared_Clean or Shared_Dirty, Pss halved', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmlab-test-smaps-'));
    try {
      writeFileSync(join(dir, 'f.bin'), new Uint8Array(3 * PAGE).fill(0x41));
      const m = bootTestMachine({ files: { from: dir, writeThrough: true } });
      let a = 0;
      let b = 0;
      const writer = m.start(function* ({ cpu, sys }) {
        a = sys.mmap(0, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sys.open('/f.bin', O_RDWR), 0);
        if (a < 0) return 1;
        cpu.load8(a); // page 0: read
        cpu.store8(a + PAGE, 0x42); // page 1: written (the page cache page is dirty)
        cpu.load8(a + 2 * PAGE); // page 2: read, this process alone
        yield* sys.nanosleep(SLEEP_NS);
        return 0;
      });
      const reader = m.start(function* ({ cpu, sys }) {
        yield* sys.nanosleep(1_000_000);
        const fd = sys.open('/f.bin', O_RDWR);
        const mapped = sys.mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
        const buf = sys.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped < 0 || buf < 0) return 1;
        cpu.load8(mapped);
        cpu.load8(mapped + PAGE);
        cpu.store8(buf, 0x43);
        if (sys.pwrite64(fd, buf, 1, PAGE + 1) !== 1) return 2; // page 1 is dirty in the page cache
        b = mapped;
        yield* sys.nanosleep(SLEEP_NS);
        return 0;
      });
      runUntilAsleep(m, [writer, reader], () => b !== 0);
      const k = m.kernel;
      // writer: page 0 shared clean, page 1 shared dirty (its PTE, and the page), page 2 private
      expect(smapsAt(k, writer, a)).toMatchObject({
        Rss: 12,
        Pss: 2 + 2 + 4,
        Pss_Dirty: 2,
        Shared_Clean: 4,
        Shared_Dirty: 4,
        Private_Clean: 4,
        Private_Dirty: 0,
        Anonymous: 0,
      });
      // reader: the same two pages; page 1 is dirty (PG_DIRTY) though the reader's PTE is clean
      expect(smapsAt(k, reader, b)).toMatchObject({
        Rss: 8,
        Pss: 4,
        Pss_Dirty: 2,
        Shared_Clean: 4,
        Shared_Dirty: 4,
        Private_Clean: 0,
        Private_Dirty: 0,
      });
      expect(rollupOf(k, reader).Pss_File).toBe(4);
      m.shutdown();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the Rss of all smaps entries adds up to VmRSS in status, and to the rollup', () => {
    for (const fork of [false, true]) {
      const { k, task } = bootProbe({ fork });
      for (const t of [task, ...task.children]) {
        const entries = parseSmaps(renderSmaps(k, t));
        const rss = entries.reduce((sum, e) => sum + e.fields.Rss!, 0);
        const vmRss = Number(/\nVmRSS:\t *(\d+) kB\n/.exec(renderStatus(t))![1]);
        expect(rss).toBe(vmRss);
        expect(rollupOf(k, t).Rss).toBe(vmRss);
        const swap = entries.reduce((sum, e) => sum + e.fields.Swap!, 0);
        expect(rollupOf(k, t).Swap).toBe(swap);
      }
    }
  });
});
