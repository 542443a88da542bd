/**
 * The built-in programs (userland/programs/builtins.ts): each one's story, as the machine's
 * counters tell it — exit status, faults, TLB misses, copy-on-write, the OOM killer, files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Task } from '../kernel/proc/task.ts';
import { SIGKILL } from '../kernel/proc/uapi.ts';
import { BUILTIN_PROGRAMS, loadBuiltin } from '../userland/programs/builtins.ts';
import { bootTestMachine, PAGE, type TestMachine, type TestMachineOptions } from './helpers/kernel.ts';

const machines: TestMachine[] = [];
afterEach(() => {
  for (let m = machines.pop(); m !== undefined; m = machines.pop()) m.shutdown();
});

const sandbox = mkdtempSync(join(tmpdir(), 'vmlab-builtins-'));
afterAll(() => rmSync(sandbox, { recursive: true, force: true }));

interface BuiltinRun {
  m: TestMachine;
  t: Task;
  /** Data TLB misses during the run. */
  tlbMisses: number;
}

/** Boot a machine, run the built-in `argv[0]` with `argv` to the end (invariants checked). */
function runBuiltin(
  argv: string[],
  options: TestMachineOptions & { env?: Record<string, string> } = {},
): BuiltinRun {
  const m = bootTestMachine(options);
  machines.push(m);
  const image = BUILTIN_PROGRAMS[`/bin/${argv[0]}`];
  if (image === undefined) throw new Error(`no built-in ${argv[0]}`);
  const t = m.kernel.spawnImage(image, argv, { env: options.env });
  if (typeof t === 'number') throw new Error(`spawn ${argv[0]}: ${t}`);
  const before = m.mmu.dtlb.misses;
  m.runToEnd();
  return { m, t, tlbMisses: m.mmu.dtlb.misses - before };
}

/** Shut the run's machine down now (its files reach the host), before the test ends. */
function shutdown(r: BuiltinRun): void {
  machines.splice(machines.indexOf(r.m), 1);
  r.m.shutdown();
}

const exitCode = (t: Task): number => t.waitStatus >> 8;
const termSignal = (t: Task): number => t.waitStatus & 0x7f;
/** The sandbox's files, written through: what a run leaves is on the host. */
const files = { from: sandbox, writeThrough: true };

describe('the built-in registry', () => {
  const names = [
    'free',
    'pmap',
    'touch',
    'cowdemo',
    'segv',
    'sleep',
    'matrix',
    'randaccess',
    'forktree',
    'leaky',
    'mapwriter',
    'mapreader',
    'filecat',
    'thrashmix',
    'binarytrees',
    'listchurn',
    'gccache',
    'cycleleak',
  ];

  it('finds every program as /bin/NAME and as NAME, with whole pages of text', () => {
    for (const name of names) {
      const image = loadBuiltin(name);
      expect(image, name).toBeDefined();
      expect(loadBuiltin(`/bin/${name}`)).toBe(image);
      expect(image!.path).toBe(`/bin/${name}`);
      expect(image!.textBytes % PAGE, name).toBe(0);
      expect(image!.textBytes).toBeGreaterThan(0);
    }
    expect(Object.keys(BUILTIN_PROGRAMS).sort()).toEqual(names.map((n) => `/bin/${n}`).sort());
    expect(loadBuiltin('nosuch')).toBeUndefined();
  });

  it.each([
    [['matrix']],
    [['matrix', '0']],
    [['matrix', '16', 'diagonal']],
    [['randaccess', '16']],
    [['randaccess', '-1', '10']],
    [['forktree']],
    [['forktree', '13']],
    [['forktree', '2', '1']],
    [['leaky', 'lots']],
    [['mapwriter', '/f']],
    [['mapwriter', '/f', '1.5']],
    [['mapreader']],
    [['filecat']],
    [['thrashmix', '1']],
  ])('refuses %j with a usage line on stderr and exit status 2', (argv) => {
    const { t } = runBuiltin(argv);
    expect(exitCode(t)).toBe(2);
    expect(t.stderr).toMatch(new RegExp(`^usage: ${argv[0]} `));
  });
});

describe('matrix', () => {
  const N = 256; // a row is 2 KiB: a column-major walk reaches a new page every other access

  it('walks row-major with one TLB miss per page and column-major with one per two accesses', () => {
    const row = runBuiltin(['matrix', String(N), 'row']);
    const col = runBuiltin(['matrix', String(N), 'col']);
    for (const r of [row, col]) expect(exitCode(r.t)).toBe(0);
    const pages = (N * N * 8) / PAGE;
    expect(row.tlbMisses).toBeLessThan(3 * pages); // two walks, a miss per page each
    expect(col.tlbMisses).toBeGreaterThan(N * N); // two walks, a miss every other access
    expect(col.tlbMisses).toBeGreaterThan(100 * row.tlbMisses);
    // The order changes the misses, not the memory: the same pages are faulted in.
    expect(col.t.minFlt).toBe(row.t.minFlt);
    expect(row.t.stdout).toBe(
      `matrix: ${N}x${N} row-major walk, written\nmatrix: ${N}x${N} row-major walk, sum ${(N * N * (N * N - 1)) / 2}\n`,
    );
  });

  it('by default writes row-major and reads column-major', () => {
    const { t } = runBuiltin(['matrix', '64']);
    expect(exitCode(t)).toBe(0);
    expect(t.stdout).toBe(
      'matrix: 64x64 row-major walk, written\nmatrix: 64x64 column-major walk, sum 8386560\n',
    );
  });
});

describe('randaccess', () => {
  it('fits in memory: one minor fault per page, no major fault, and the same run for the same seed', () => {
    const a = runBuiltin(['randaccess', '256', '5000', '42']);
    const b = runBuiltin(['randaccess', '256', '5000', '42']);
    expect(exitCode(a.t)).toBe(0);
    expect(a.t.majFlt).toBe(0);
    expect(a.t.minFlt).toBeLessThanOrEqual(256 + 1); // its pages (most of them touched) and its stack
    expect(a.t.minFlt).toBeGreaterThan(250);
    expect([b.t.minFlt, b.tlbMisses, b.m.clock.now]).toEqual([a.t.minFlt, a.tlbMisses, a.m.clock.now]);
    expect(a.t.stdout).toBe('randaccess: 5000 accesses over 256 pages\n');
  });

  it('thrashes when the working set is larger than memory: major faults and swap traffic, data intact', () => {
    const { m, t } = runBuiltin(['randaccess', '1536', '3000'], { memoryMiB: 4, swapMiB: 16 });
    expect(exitCode(t)).toBe(0); // every load saw its page's stamp: swap kept the data
    expect(t.majFlt).toBeGreaterThan(200);
    expect(m.kernel.events.pswpout).toBeGreaterThan(200);
    expect(m.kernel.events.pswpin).toBe(t.majFlt);
  });
});

describe('forktree', () => {
  it('forks a tree of 15 processes; each write to an inherited page copies it, and every parent reaps', () => {
    const { m, t } = runBuiltin(['forktree', '3', '8']);
    expect(exitCode(t)).toBe(0);
    expect(t.stdout).toBe('forktree: 15 processes checked their pages\n');
    // 14 children, each writing the first half (4 pages) of what it inherited.
    expect(m.kernel.events.cow_fault).toBe(14 * 4);
    expect(t.cminFlt).toBeGreaterThanOrEqual(14 * 4); // the children's faults, reaped into the root
    const leftovers = [...m.kernel.tasks.values()].filter((x) => x.comm === 'forktree' && x.pid !== t.pid);
    expect(leftovers.filter((x) => x.isAlive() || x.state === 'zombie')).toEqual([]);
  });

  it('DEPTH 0 is one process and no copy', () => {
    const { m, t } = runBuiltin(['forktree', '0']);
    expect(exitCode(t)).toBe(0);
    expect(m.kernel.events.cow_fault).toBe(0);
  });
});

describe('leaky', () => {
  it('grows until the OOM killer takes it in a small machine without swap', () => {
    const { m, t } = runBuiltin(['leaky', '64', '10000'], { memoryMiB: 16 });
    expect(termSignal(t)).toBe(SIGKILL);
    expect(m.kernel.events.oom_kill).toBe(1);
    expect(m.kernel.log.map((l) => l.text).join('\n')).toMatch(/Out of memory: Killed process \d+ \(leaky\)/);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    for (const [i, line] of lines.entries())
      expect(line).toMatch(new RegExp(`^leaky: ${(i + 1) * 100} requests, \\d+ KiB leaked$`));
  });

  it('finishes when memory lasts, under the allocator and leak check its environment names', () => {
    const { t } = runBuiltin(['leaky', '4', '300'], {
      env: { VMLAB_MALLOC: 'sizeclass', VMLAB_LEAK_CHECK: 'summary' },
    });
    expect(exitCode(t)).toBe(0);
    const progress = t.stdout.split('\n').filter((l) => l.startsWith('leaky: '));
    expect(progress).toHaveLength(3);
    const leakedKiB = Number(/(\d+) KiB leaked/.exec(progress[2]!)![1]);
    expect(leakedKiB).toBeGreaterThan(0);
    // Every forgotten buffer is definitely lost, one block each.
    expect(t.stdout).toContain(`definitely lost:`);
    expect(t.stdout).toMatch(new RegExp(`definitely lost: [\\d,]+ bytes in ${leakedKiB / 4} blocks`));
  });

  it('refuses an unknown allocator or leak check (exit status 2)', () => {
    const a = runBuiltin(['leaky'], { env: { VMLAB_MALLOC: 'nosuch' } });
    expect(exitCode(a.t)).toBe(2);
    expect(a.t.stderr).toMatch(/^leaky: VMLAB_MALLOC: unknown allocator 'nosuch'/);
    const b = runBuiltin(['leaky'], { env: { VMLAB_LEAK_CHECK: 'loud' } });
    expect(exitCode(b.t)).toBe(2);
    expect(b.t.stderr).toMatch(/VMLAB_LEAK_CHECK: 'loud'/);
  });
});

describe('mapwriter and mapreader', () => {
  it('mapreader verifies what mapwriter wrote, from the host file in a new machine', () => {
    const w = runBuiltin(['mapwriter', '/pattern.bin', '16', '7'], { files });
    expect(exitCode(w.t)).toBe(0);
    expect(w.t.stdout).toBe('mapwriter: /pattern.bin: 16 pages written\n');
    expect(w.m.kernel.events.nr_written).toBeGreaterThanOrEqual(16); // msync wrote the pages
    shutdown(w);
    const bytes = readFileSync(join(sandbox, 'pattern.bin'));
    expect(bytes.length).toBe(16 * PAGE);
    expect([bytes.readUInt32LE(0), bytes.readUInt32LE(4), bytes.readUInt32LE(8)]).toEqual([
      0x626c6d76, 7, 16,
    ]);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('vmlb');
    // A seeded pattern, not zeros, and the same seed writes the same bytes.
    expect(new Set(bytes.subarray(PAGE * 15)).size).toBeGreaterThan(200);
    const again = runBuiltin(['mapwriter', '/again.bin', '16', '7'], { files });
    shutdown(again);
    expect(readFileSync(join(sandbox, 'again.bin')).equals(bytes)).toBe(true);

    const r = runBuiltin(['mapreader', '/pattern.bin'], { files });
    expect(exitCode(r.t)).toBe(0);
    expect(r.t.stdout).toBe('mapreader: /pattern.bin: 16 pages verified\n');
    expect(r.t.majFlt).toBeGreaterThan(0); // read from the file: a new machine has a cold page cache
  });

  it('mapreader exits 1 on a changed byte or a file that is not mapwriter’s', () => {
    const w = runBuiltin(['mapwriter', '/bad.bin', '4'], { files });
    expect(exitCode(w.t)).toBe(0);
    shutdown(w);
    const path = join(sandbox, 'bad.bin');
    const bytes = readFileSync(path);
    bytes[3 * PAGE + 100]! ^= 0xff;
    writeFileSync(path, bytes);
    const r = runBuiltin(['mapreader', '/bad.bin'], { files });
    expect(exitCode(r.t)).toBe(1);
    expect(r.t.stderr).toBe(`mapreader: /bad.bin: mismatch at byte ${3 * PAGE + 100}\n`);
    writeFileSync(join(sandbox, 'short.txt'), 'not a pattern');
    const s = runBuiltin(['mapreader', '/short.txt'], { files });
    expect(exitCode(s.t)).toBe(1);
    expect(s.t.stderr).toMatch(/not a mapwriter file/);
    const missing = runBuiltin(['mapreader', '/missing.bin'], { files });
    expect(exitCode(missing.t)).toBe(2);
    expect(missing.t.stderr).toBe('mapreader: /missing.bin: ENOENT\n');
  });
});

describe('filecat', () => {
  it('copies a file of several buffers to stdout, byte for byte', () => {
    const text = Array.from({ length: 1200 }, (_, i) => `line ${i} of the file\n`).join('');
    expect(text.length).toBeGreaterThan(16384 * 1.5); // more than one 16 KiB read
    writeFileSync(join(sandbox, 'lines.txt'), text);
    const { t } = runBuiltin(['filecat', '/lines.txt'], { files });
    expect(exitCode(t)).toBe(0);
    expect(t.stdout).toBe(text);
    expect(t.majFlt).toBe(0); // read() copies through the page cache: no fault on the file
  });

  it('reports a missing file on stderr (exit status 2)', () => {
    const { t } = runBuiltin(['filecat', '/nothing.txt'], { files });
    expect(exitCode(t)).toBe(2);
    expect(t.stderr).toBe('filecat: /nothing.txt: ENOENT\n');
    expect(t.stdout).toBe('');
  });
});

describe('thrashmix', () => {
  // 1200 pages (300 hot, 900 streamed) on a 4 MiB machine: the hot set fits, everything does not.
  const argv = ['thrashmix', '1200', '2'];

  it('lru keeps the hot set: only the stream faults back in; fifo loses hot pages too', () => {
    const lru = runBuiltin(argv, { memoryMiB: 4, swapMiB: 16, policy: 'lru' });
    const fifo = runBuiltin(argv, { memoryMiB: 4, swapMiB: 16, policy: 'fifo' });
    for (const r of [lru, fifo]) {
      expect(exitCode(r.t)).toBe(0);
      expect(r.t.stdout).toBe('thrashmix: 300 hot pages, 900 streamed, 2 rounds\n');
    }
    expect(lru.t.majFlt).toBe(900); // the second round's stream pages, each once
    expect(fifo.t.majFlt).toBeGreaterThan(lru.t.majFlt + 300);
  });

  it('has no major fault when everything fits', () => {
    const { t } = runBuiltin(argv, { memoryMiB: 32, swapMiB: 16, policy: 'fifo' });
    expect(exitCode(t)).toBe(0);
    expect(t.majFlt).toBe(0);
    expect(t.minFlt).toBeLessThanOrEqual(1201);
  });
});

describe('procps tools inside the machine (free, pmap read /proc)', () => {
  it('free prints what the host-side free prints, from /proc/meminfo; pmap matches pmap PID', async () => {
    const { renderFree, renderPmap } = await import('../kernel/observe/tools.ts');
    const m = bootTestMachine({ memoryMiB: 32, swapMiB: 8 });
    const sleeper = m.start(function* ({ sys, cpu }) {
      const a = sys.mmap(0, 64 * 4096, 3, 0x22, -1, 0); // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
      for (let p = 0; p < 64; p++) cpu.store8(a + p * 4096, 1);
      yield* sys.nanosleep(5_000_000);
      return 0;
    });
    let hostFree = '';
    let hostPmap = '';
    const tool = (name: 'free' | 'pmap', argv: string[]) =>
      m.register(function* (ctx) {
        yield* ctx.sys.nanosleep(1_000_000);
        if (name === 'free') hostFree = renderFree(m.kernel);
        else hostPmap = renderPmap(sleeper);
        return yield* BUILTIN_PROGRAMS[`/bin/${name}`]!.main({ ...ctx, argv });
      });
    const free = m.kernel.spawn(tool('free', []), ['free']);
    const pmap = m.kernel.spawn(tool('pmap', ['pmap', String(sleeper.pid)]), ['pmap']);
    m.runToEnd();
    if (typeof free === 'number' || typeof pmap === 'number') throw new Error('spawn');
    expect(free.waitStatus).toBe(0);
    expect(pmap.waitStatus).toBe(0);
    const [head, mem, swap] = free.stdout.split('\n');
    const [hHead, hMem, hSwap] = hostFree.split('\n');
    expect(head).toBe(hHead);
    expect(swap).toBe(hSwap);
    const cols = (l: string) => l.trim().split(/\s+/).slice(1).map(Number);
    expect(cols(mem!)[0]).toBe(cols(hMem!)[0]); // total
    expect(Math.abs(cols(mem!)[2]! - cols(hMem!)[2]!)).toBeLessThanOrEqual(64); // free: a few pages apart
    expect(pmap.stdout).toBe(hostPmap);
  });
});
