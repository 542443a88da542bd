/**
 * `vmlab gc-replay` (kernel/boot/cmd-gc-replay.ts): one row per collector from a fresh machine
 * each, the table and the JSON, the same emulated figures on every run, a run that fails, and
 * the exit statuses of bad input. A bump collector of this file's own (it never frees) stands
 * in where the figures must be exact; the registered collectors run through the command line.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type GcContender,
  type GcReplayOptions,
  type GcReplayRow,
  gcReplayOptions,
  gcReplayRun,
  parseCollectors,
  renderGcReplay,
} from '../kernel/boot/cmd-gc-replay.ts';
import { InputError } from '../kernel/boot/configfile.ts';
import type { CollectorFactory } from '../userland/gc/collector.ts';
import { COLLECTOR_NAMES } from '../userland/gc/collectors.ts';
import { objectBytes } from '../userland/gc/object.ts';
import { BumpCollector } from './helpers/gc-bump.ts';

const bump: CollectorFactory = (env) => new BumpCollector(env);

/** A collector that never has memory: every allocation fails (the runtime aborts the process). */
const empty: CollectorFactory = (env) => {
  const c = new BumpCollector(env);
  c.allocate = () => 0;
  return c;
};

const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
const vmlab = (...args: string[]) => spawnSync('node', [CLI, 'gc-replay', ...args], { encoding: 'utf8' });

const TREES: GcReplayOptions = {
  program: 'binarytrees',
  args: ['6'],
  memoryBytes: 32 << 20,
  swapBytes: 0,
  seed: 1,
};

/** A row without its host time (the one figure that changes from run to run). */
const emulated = ({ hostSeconds: _, ...rest }: GcReplayRow) => rest;

describe('a gc-replay run', () => {
  it('boots a fresh machine, runs the program under the collector and reports its figures', () => {
    const row = gcReplayRun(TREES, { name: 'bump', factory: bump });
    expect(row).toMatchObject({
      collector: 'bump',
      status: 'exited 0',
      minorCollections: 0,
      majorCollections: 0,
      pauseTotalNs: 0,
      swapIns: 0,
      majorFaults: 1, // its text page, read from its program file
      objectsAllocated: 255 + 127 + 64 * 31 + 16 * 127,
      objectsFreed: 0,
      heapBytes: 1 << 20,
      stderr: '',
    });
    expect(row.liveBytes).toBe(row.objectsAllocated * objectBytes(2, 0));
    expect(row.cycles).toBeGreaterThan(0);
    expect(row.emulatedSeconds).toBe(row.cycles / 1e9);
    expect(row.hostSeconds).toBeGreaterThan(0);
    // The 1 MiB chunk is touched as it fills (about 138 KiB of nodes), the roots and the stack besides.
    expect(row.maxRssBytes).toBeGreaterThan(140 * 1024);
    expect(row.minorFaults).toBeGreaterThanOrEqual(Math.ceil(row.liveBytes / 4096));
    expect(row.stdout.trimEnd().split('\n').at(-1)).toBe('long lived tree of depth 6\t check: 127');
  });

  it('gives the same emulated figures on every run, and others for other arguments', () => {
    const a = gcReplayRun(TREES, { name: 'bump', factory: bump });
    const b = gcReplayRun(TREES, { name: 'bump', factory: bump });
    expect(emulated(b)).toEqual(emulated(a));
    const deeper = gcReplayRun({ ...TREES, args: ['8'] }, { name: 'bump', factory: bump });
    expect(deeper.cycles).toBeGreaterThan(a.cycles);
    expect(deeper.objectsAllocated).toBeGreaterThan(a.objectsAllocated);
  });

  it('passes the environment on (and VMLAB_GC names the collector)', () => {
    const off = gcReplayRun(
      { ...TREES, program: 'cycleleak', args: ['10'], env: { VMLAB_GC_CYCLES: 'maybe' } },
      { name: 'bump', factory: bump },
    );
    expect(off.status).toBe('exited 2');
    expect(off.stderr).toContain("VMLAB_GC_CYCLES: 'maybe' is not 0 or 1");
    const named = gcReplayRun({ ...TREES }, { name: 'no-such-collector' });
    expect(named.status).toBe('exited 2');
    expect(named.stderr).toContain("unknown collector 'no-such-collector'");
  });

  it('says how a run failed: out of memory aborts the process', () => {
    const row = gcReplayRun(TREES, { name: 'empty', factory: empty });
    expect(row.status).toBe('killed by SIGABRT');
    expect(row.lastLog).toMatch(/out of memory: bump cannot allocate an object of 2 fields and 0 data bytes/);
    const lines = renderGcReplay([row]);
    expect(lines.at(-1)).toMatch(/^empty: killed by SIGABRT: .*out of memory/);
  });

  it('refuses a program that is not a managed-heap program', () => {
    expect(() => gcReplayRun({ ...TREES, program: 'touch' }, { name: 'bump', factory: bump })).toThrow(
      InputError,
    );
  });
});

describe('the table', () => {
  it('has a row per collector under the header, then each run’s last line', () => {
    const contenders: GcContender[] = [
      { name: 'bump', factory: bump },
      { name: 'empty', factory: empty },
    ];
    const rows = contenders.map((c) => gcReplayRun(TREES, c));
    const lines = renderGcReplay(rows);
    expect(lines[0]!.split(/\s+/)).toEqual([
      'COLLECTOR',
      'STATUS',
      'EMULATED-MS',
      'HOST-S',
      'MINOR',
      'MAJOR',
      'PAUSE-TOTAL',
      'PAUSE-MAX',
      'MAX-RSS',
      'MINFLT',
      'MAJFLT',
      'SWAP-IN',
      'FREED',
    ]);
    expect(lines).toHaveLength(1 + rows.length + 1 + rows.length);
    const bumpRow = lines[1]!.split(/\s+/);
    expect(bumpRow.slice(0, 3)).toEqual(['bump', 'exited', '0']);
    expect(bumpRow[3]).toBe((rows[0]!.emulatedSeconds * 1000).toFixed(3));
    expect(bumpRow.slice(5, 7)).toEqual(['0', '0']);
    expect(bumpRow.at(-4)).toBe(String(rows[0]!.minorFaults));
    expect(bumpRow.at(-1)).toBe('0');
    expect(lines[2]!.startsWith('empty         killed by SIGABRT')).toBe(true);
    expect(lines[3]).toBe('');
    expect(lines[4]).toBe('bump: long lived tree of depth 6\t check: 127');
  });
});

describe('the options', () => {
  it('-c takes registered collectors only, every one by default', () => {
    expect(() => parseCollectors('nope')).toThrow(/--collectors: unknown collector 'nope'/);
    expect(() => parseCollectors(' , ')).toThrow(/names no collector/);
    if (COLLECTOR_NAMES.length === 0)
      expect(() => parseCollectors(undefined)).toThrow(/no collector is registered/);
    else expect(parseCollectors(undefined).map((c) => c.name)).toEqual(COLLECTOR_NAMES);
  });

  it('read sizes, the seed and NAME=VALUE words, and refuse anything else', () => {
    const c = COLLECTOR_NAMES[0];
    if (c !== undefined) {
      const { contenders, options } = gcReplayOptions('gccache', ['100', '200'], {
        collectors: c,
        memory: '16M',
        swap: '64M',
        seed: '7',
        env: ['GOGC=50', 'VMLAB_GC_CYCLES=0'],
      });
      expect(contenders).toEqual([{ name: c }]);
      expect(options).toEqual({
        program: 'gccache',
        args: ['100', '200'],
        memoryBytes: 16 << 20,
        swapBytes: 64 << 20,
        seed: 7,
        env: { GOGC: '50', VMLAB_GC_CYCLES: '0' },
      });
    }
    const refused = (name: string, opts: Record<string, string | string[]>) => () =>
      gcReplayOptions(name, [], { collectors: c ?? 'none', ...opts });
    expect(refused('touch', {})).toThrow(
      /unknown program 'touch' \(one of binarytrees, listchurn, gccache, cycleleak\)/,
    );
    if (c === undefined) return;
    expect(refused('binarytrees', { memory: 'lots' })).toThrow(/--memory: 'lots' is not a size/);
    expect(refused('binarytrees', { memory: '0' })).toThrow(/--memory: '0'/);
    expect(refused('binarytrees', { swap: '-1' })).toThrow(/--swap: '-1'/);
    expect(refused('binarytrees', { seed: '1.5' })).toThrow(/--seed: '1.5' is not a whole number/);
    expect(refused('binarytrees', { env: ['NOEQUALS'] })).toThrow(/--env: 'NOEQUALS' is not NAME=VALUE/);
    expect(refused('binarytrees', { env: ['VMLAB_GC=x'] })).toThrow(/--env: VMLAB_GC is set per collector/);
  });
});

describe('vmlab gc-replay', () => {
  it('exits 2 with one line for an unknown program or collector', () => {
    for (const [args, message] of [
      [['nope'], /^vmlab: unknown program 'nope' \(one of binarytrees, listchurn, gccache, cycleleak\)\n$/],
      [['binarytrees', '6', '-c', 'nope'], /^vmlab: --collectors: unknown collector 'nope'/],
    ] as Array<[string[], RegExp]>) {
      const r = vmlab(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
    }
  });

  it.runIf(COLLECTOR_NAMES.length > 0)(
    'prints the table for the registered collectors, and the same as JSON',
    () => {
      const names = COLLECTOR_NAMES.join(',');
      const text = vmlab('binarytrees', '6', '-c', names, '--memory', '32M');
      expect(text.stderr).toBe('');
      expect(text.status).toBe(0);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines.slice(0, 5)).toEqual([
        'ARG program binarytrees 6',
        `ARG collectors ${COLLECTOR_NAMES.join(', ')}`,
        'ARG memory 32M',
        'ARG swap none',
        'ARG seed 1',
      ]);
      expect(lines[6]!.startsWith('COLLECTOR')).toBe(true);
      for (const [i, n] of COLLECTOR_NAMES.entries())
        expect(lines[7 + i]!.startsWith(`${n.padEnd(13)} exited 0`)).toBe(true);
      const json = vmlab('binarytrees', '6', '-c', names, '--memory', '32M', '--json');
      expect(json.status).toBe(0);
      const out = JSON.parse(json.stdout);
      expect(out).toMatchObject({
        program: 'binarytrees',
        args: ['6'],
        memoryBytes: 32 << 20,
        swapBytes: 0,
        seed: 1,
      });
      expect(out.rows.map((r: GcReplayRow) => r.collector)).toEqual(COLLECTOR_NAMES);
      for (const r of out.rows as GcReplayRow[]) {
        expect(r.status).toBe('exited 0');
        expect(r.objectsAllocated).toBe(255 + 127 + 64 * 31 + 16 * 127);
        expect(r.stdout).toContain('long lived tree of depth 6\t check: 127');
      }
    },
  );

  it('--collector-file runs a collector class from a file beside the ones -c names; a bad file exits 2', () => {
    const r = vmlab(
      'binarytrees',
      '10',
      '--collector-file',
      'userland/labs/gc/solution.ts',
      '-c',
      'marksweep',
      '--json',
    );
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout).rows as GcReplayRow[];
    expect(rows.map((row) => row.collector)).toEqual(['solution.ts', 'marksweep']);
    for (const row of rows) expect(row.stdout).toContain('long lived tree of depth 10\t check: 2047');
    expect(rows[0]!.majorCollections).toBeGreaterThan(0);
    const bad = vmlab('binarytrees', '6', '--collector-file', 'no/such/collector.ts');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('no/such/collector.ts: no such file (expected a collector class)');
  });
});
