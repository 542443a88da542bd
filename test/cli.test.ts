import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'vmlab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function vmlab(...args: string[]) {
  const r = spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user mistake: exit status 2, one message naming what is wrong, no stack trace. */
function expectRefused(r: ReturnType<typeof vmlab>, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const TINY = ['-f', 'docs/examples/tiny-format.yaml', '-i', 'docs/examples/tiny-image.txt', '-r', '108'];

describe('vmlab translate', () => {
  it('prints the walk as a student writes it: indices, entry addresses, raw values, fields, result', () => {
    const r = vmlab('translate', ...TINY, '0x611c', '0x3da8', '0x6124');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ARG format tiny');
    expect(r.stdout).toContain('VA 0x611c (decimal 24860) = 0b110000100011100 (15 bits)');
    expect(r.stdout).toContain('split: L0 index 0x18 (24) | L1 index 0x8 (8) | offset 0x1c (28)');
    expect(r.stdout).toContain('L0: table frame 0x6c (108), entry 24 at PA 0xd98: 0xa1  present=1 pfn=0x21');
    expect(r.stdout).toContain('L1: table frame 0x21 (33), entry 8 at PA 0x428: 0xb5  present=1 pfn=0x35');
    expect(r.stdout).toContain('--> PA 0x6bc (decimal 1724) = frame 0x35 + offset 0x1c, byte there 0x42');
    expect(r.stdout).toContain('--> FAULT not-present at level 0');
    expect(r.stdout).toContain('--> FAULT not-present at level 1');
  });

  it('prints JSON with --json', () => {
    const r = vmlab('translate', ...TINY, '0x611c', '--json');
    const j = JSON.parse(r.stdout);
    expect(j.translations[0]).toMatchObject({
      va: '0x611c',
      indices: [24, 8],
      offset: 28,
      result: { pa: '0x6bc', byte: 0x42 },
    });
    expect(j.translations[0].steps[1]).toMatchObject({
      level: 1,
      index: 8,
      tableFrame: 33,
      entryAddress: 0x428,
      raw: '0xb5',
    });
  });

  it('walks a raw x86-32 image and reports a protection fault for a write to a read-only page', () => {
    const image = new Uint8Array(4 * 4096);
    const dv = new DataView(image.buffer);
    dv.setUint32(1 * 4096 + 1 * 4, (2 << 12) | 0x5, true); // PDE 1 -> frame 2, present, user
    dv.setUint32(2 * 4096 + 2 * 4, (3 << 12) | 0x5, true); // PTE 2 -> frame 3, read-only
    image[3 * 4096 + 0x10] = 0x99;
    const path = join(dir, 'x86.bin');
    writeFileSync(path, image);
    const ok = vmlab('translate', '-f', 'x86-32', '-i', path, '-r', '1', '--frames', '4', '0x402010');
    expect(ok.stdout).toContain('--> PA 0x3010');
    expect(ok.stdout).toContain('byte there 0x99');
    const w = vmlab(
      'translate',
      '-f',
      'x86-32',
      '-i',
      path,
      '-r',
      '1',
      '--frames',
      '4',
      '0x402010',
      '--access',
      'write',
    );
    expect(w.stdout).toContain('--> FAULT protection (write-to-read-only) at level 1');
  });

  it('refuses bad input with the file and field, and exit status 2', () => {
    expectRefused(
      vmlab('translate', '-f', 'x86-32', '-i', join(dir, 'missing.bin'), '-r', '1', '0x0'),
      /missing\.bin: cannot read the memory image/,
    );
    expectRefused(
      vmlab(
        'translate',
        '-f',
        'test/fixtures/bad/overlap-format.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0x0',
      ),
      /overlap-format\.yaml: pfn: bit 3 overlaps flags\.present/,
    );
    expectRefused(
      vmlab(
        'translate',
        '-f',
        'test/fixtures/bad/pagesize-format.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0x0',
      ),
      /pagesize-format\.yaml: pageSize: 48 is not a power of two/,
    );
    expectRefused(
      vmlab(
        'translate',
        '-f',
        'test/fixtures/bad/typo-format.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0x0',
      ),
      /typo-format\.yaml:2:1: levles: unknown key \(did you mean 'levels'\?\)/,
    );
    expectRefused(
      vmlab('translate', ...TINY, '0x8000'),
      /address 0x8000: wider than the 15-bit virtual addresses of tiny/,
    );
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, 'page 1: 00 zz\n');
    expectRefused(
      vmlab('translate', '-f', 'docs/examples/tiny-format.yaml', '-i', bad, '-r', '1', '0x0'),
      /bad\.txt:1: byte 1: 'zz' is not a hex byte/,
    );
  });
});

describe('vmlab run', () => {
  it('refuses a misspelt workload key with the line, column and a suggestion', () => {
    expectRefused(
      vmlab('run', 'test/fixtures/bad/typo-workload.yaml'),
      /typo-workload\.yaml:4:3: machine\.polciy: unknown key \(did you mean 'policy'\?\)/,
    );
    expectRefused(
      vmlab('run', 'test/fixtures/bad/badsize-workload.yaml'),
      /badsize-workload\.yaml:2:11: machine\.memory: expected a size/,
    );
  });

  it('runs a workload and is deterministic', () => {
    const a = vmlab('run', 'userland/workloads/cow.yaml', '--json');
    const b = vmlab('run', 'userland/workloads/cow.yaml', '--json');
    expect(a.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(JSON.parse(a.stdout).system.cowFaults).toBe(256);
  });

  it('prints /proc files at an emulated time', () => {
    const r = vmlab(
      'run',
      'userland/workloads/demand-paging.yaml',
      '--proc',
      '/proc/meminfo@1ms',
      '--proc',
      '/proc/vmstat@1ms',
    );
    expect(r.status).toBe(0);
    // Taken at the first scheduling boundary at or after the time asked for, and labelled so.
    expect(r.stdout).toMatch(/\/proc\/meminfo at \d+ cycles \(asked for 1000000\):\nMemTotal: {7}\s*\d+ kB/);
    expect(r.stdout).toMatch(/\npgfault \d+\n/);
  });
});

describe('vmlab run, step by step and verbose', () => {
  it('--step prints a line per step (to the next event or for one quantum) and then the summary', () => {
    const r = vmlab('run', 'userland/workloads/oom.yaml', '--step', '--until', '3ms');
    expect(r.status).toBe(0);
    const steps = r.stdout.split('\n').filter((l) => l.startsWith('step '));
    expect(steps.length).toBeGreaterThanOrEqual(3);
    expect(steps[0]).toMatch(
      /^step +1 \[ +[\d.]+ ms\] \w+ .*\| free \d+ pages \| faults \+\d+ \(major \+\d+\)/,
    );
    expect(r.stdout).toContain('PID NAME');
  });

  it('-v streams the kernel log on stderr and ends with /proc/meminfo and /proc/vmstat', () => {
    const r = vmlab('run', 'userland/workloads/oom.yaml', '-v');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/\[ +[\d.]+ ms\] Out of memory: Killed process \d+ \(leaky\)/);
    expect(r.stdout).toMatch(/\/proc\/meminfo at the end[^\n]*\nMemTotal:/);
    expect(r.stdout).toContain('nr_free_pages');
  });
});

describe('help with examples', () => {
  /** The lines under `Examples:` at the end of a help text. */
  const examplesOf = (help: string): string[] =>
    help
      .split('\nExamples:\n')[1]!
      .split('\n')
      .filter((l) => l.trim() !== '');

  it('vmlab --help ends with examples of every command', () => {
    const r = vmlab('--help');
    expect(r.status).toBe(0);
    const examples = examplesOf(r.stdout);
    for (const command of ['run', 'proc', 'demo', 'translate', 'replay', 'malloc-replay', 'diagram'])
      expect(
        examples.some((l) => l.startsWith(`  vmlab ${command} `) || l === `  vmlab ${command}`),
        command,
      ).toBe(true);
  });

  it('vmlab demo --help has examples, and --json among the options', () => {
    const r = vmlab('demo', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--json/);
    const examples = examplesOf(r.stdout);
    expect(examples.length).toBeGreaterThanOrEqual(3);
    for (const l of examples) expect(l).toMatch(/^ {2}vmlab demo/);
  });
});

describe('vmlab demo --json', () => {
  it('prints the machine, the counters and the walk, the same numbers as the text', () => {
    const j = JSON.parse(vmlab('demo', '--pages', '16', '--json').stdout);
    const text = vmlab('demo', '--pages', '16').stdout;
    expect(j.machine).toMatchObject({ format: 'x86-64', frames: 16384, pageBytes: 4096, seed: 0 });
    expect(j.machine.tlb).toMatchObject({ entries: 64, ways: 4, replacement: 'lru' });
    expect(j).toMatchObject({ pages: 16, bytes: 65536, accesses: 4096, tlbMisses: 16, pageFaults: 16 });
    expect(j.tlbHits + j.tlbMisses).toBe(j.accesses);
    expect(j.hitRate).toBeCloseTo(j.tlbHits / j.accesses, 12);
    expect(text).toContain(`tlb hits / misses   ${j.tlbHits} / ${j.tlbMisses}`);
    expect(text).toContain(`cycles              ${j.cycles}\n`);
    expect(text).toContain(`EAT measured        ${j.eatMeasuredCycles.toFixed(2)} cycles/access`);
    expect(j.walk).toMatchObject({ va: '0x401040', offset: 0x40, result: { byte: 0x41 } });
  });

  it('runs on a format whose address space is smaller than 4 MiB (was an address-size fault and a stack trace)', () => {
    const r = vmlab(
      'demo',
      '-f',
      'docs/examples/tiny-format.yaml',
      '--memory',
      '4K',
      '--pages',
      '4',
      '--json',
    );
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ pages: 4, pageFaults: 4, machine: { format: 'tiny', vaBits: 15 } });
    expect(j.walk.result.pa).toBeDefined(); // the explained page is mapped: a translation, not a fault
    expectRefused(
      vmlab('demo', '-f', 'docs/examples/tiny-format.yaml', '--memory', '4K', '--pages', '2000'),
      /^vmlab: --pages: 2000 pages do not fit in the 15-bit address space of tiny$/m,
    );
  });
});

describe('vmlab proc, ARG lines and --json', () => {
  const args = ['proc', 'userland/workloads/cow.yaml', '/proc/meminfo', 'free', '--at', '1ms'];

  it('prints the workload ARG lines first, as vmlab run does, then each view', () => {
    const r = vmlab(...args);
    expect(r.status).toBe(0);
    const runArgs = vmlab('run', 'userland/workloads/cow.yaml', '--until', '1ms')
      .stdout.split('\n')
      .filter((l) => l.startsWith('ARG '));
    expect(runArgs.length).toBeGreaterThan(5);
    expect(runArgs).toContain('ARG stlb 1536 entries, 12-way, unified'); // the hardware default
    expect(r.stdout.startsWith(`${runArgs.join('\n')}\n\n== /proc/meminfo at `)).toBe(true);
    expect(r.stdout).toMatch(/\n\n== free at \d+ cycles \(running\)\n {15}total/);
  });

  it('--json prints an array of {what, at, state, text}, each text as the plain output has it', () => {
    const plain = vmlab(...args).stdout;
    const r = vmlab(...args, '--json');
    expect(r.status).toBe(0);
    const views = JSON.parse(r.stdout) as Array<{ what: string; at: number; state: string; text: string }>;
    expect(views.map((v) => v.what)).toEqual(['/proc/meminfo', 'free']);
    for (const v of views) {
      expect(Object.keys(v).sort()).toEqual(['at', 'state', 'text', 'what']);
      expect(v.state).toBe('running');
      expect(v.at).toBeGreaterThanOrEqual(1_000_000);
      expect(plain).toContain(`== ${v.what} at ${v.at} cycles (${v.state})\n${v.text}`);
    }
    expect(views[0]!.text).toMatch(/^MemTotal: +\d+ kB\n/);
  });

  it('--json still refuses an unknown file (exit status 2) after printing the others', () => {
    const r = vmlab('proc', 'userland/workloads/cow.yaml', 'free', '/proc/bogus', '--json');
    expect(r.status).toBe(2);
    expect((JSON.parse(r.stdout) as Array<{ what: string }>).map((v) => v.what)).toEqual(['free']);
    expect(r.stderr).toMatch(/^vmlab: \/proc\/bogus: no such \/proc file or tool/);
  });
});
