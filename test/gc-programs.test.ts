/**
 * The managed-heap programs (userland/programs/gcprograms.ts): their output against what the
 * benchmark's formulas say, their exit statuses on bad input, no frame or commit charge left
 * behind, and the same program under every registered collector (VMLAB_GC), with refcount's
 * cycle detector on and off. A bump collector of this file's own (it never frees) runs them
 * where the figures must be exact.
 */
import { describe, expect, it } from 'vitest';
import type { Task } from '../kernel/proc/task.ts';
import type { UserMain } from '../kernel/proc/uapi.ts';
import type { CollectorFactory } from '../userland/gc/collector.ts';
import { COLLECTOR_NAMES } from '../userland/gc/collectors.ts';
import { objectBytes } from '../userland/gc/object.ts';
import { STATIC_DATA_BYTES } from '../userland/libc/libc.ts';
import { loadBuiltin } from '../userland/programs/builtins.ts';
import {
  binarytrees,
  cycleleak,
  GC_PROGRAMS,
  gccache,
  listchurn,
  treeCheck,
} from '../userland/programs/gcprograms.ts';
import { BumpCollector } from './helpers/gc-bump.ts';
import { bootTestMachine, settleFreePages, type TestMachine } from './helpers/kernel.ts';

const bump: CollectorFactory = (env) => new BumpCollector(env);

interface ProgramRun {
  m: TestMachine;
  task: Task;
  lines: string[];
}

/** Run `main` with `argv` and `env` as the only process of a fresh machine, to its end. */
function runProgram(
  main: UserMain,
  argv: string[],
  options: { env?: Record<string, string>; memoryMiB?: number } = {},
): ProgramRun {
  const m = bootTestMachine({ memoryMiB: options.memoryMiB ?? 32 });
  const path = m.register(main);
  const task = m.kernel.spawn(path, argv, { env: options.env ?? {} });
  if (typeof task === 'number') throw new Error(`spawn: ${task}`);
  m.runToEnd();
  return { m, task, lines: task.stdout.trimEnd().split('\n') };
}

describe('binarytrees', () => {
  it('prints the benchmark lines with its check values for depth 6', () => {
    const { task, lines } = runProgram(binarytrees({ collector: bump }), ['binarytrees', '6']);
    expect(task.waitStatus).toBe(0);
    // max 6: stretch 7; d = 4: 2^(6-4+4) = 64 trees; d = 6: 16 trees; a tree of depth d checks 2^(d+1) - 1.
    expect(lines).toEqual([
      `stretch tree of depth 7\t check: ${2 ** 8 - 1}`,
      `64\t trees of depth 4\t check: ${64 * (2 ** 5 - 1)}`,
      `16\t trees of depth 6\t check: ${16 * (2 ** 7 - 1)}`,
      `long lived tree of depth 6\t check: ${2 ** 7 - 1}`,
    ]);
    expect(lines.join('\n')).toContain('check: 255');
    expect(lines.join('\n')).toContain('check: 1984');
    expect(lines.join('\n')).toContain('check: 2032');
    expect(task.stderr).toBe('');
    // Every node it built, once: 255 + 127 + 64 * 31 + 16 * 127.
    expect(task.gc!.objectsAllocated).toBe(255 + 127 + 64 * 31 + 16 * 127);
    expect(task.gc!.bytesAllocated).toBe(task.gc!.objectsAllocated * objectBytes(2, 0));
  });

  it('takes depths below 6 as 6 and goes to depth 8 with three groups of trees', () => {
    expect(runProgram(binarytrees({ collector: bump }), ['binarytrees', '2']).lines[0]).toBe(
      'stretch tree of depth 7\t check: 255',
    );
    const { lines } = runProgram(binarytrees({ collector: bump }), ['binarytrees', '8']);
    expect(lines).toEqual([
      `stretch tree of depth 9\t check: ${treeCheck(9)}`,
      `256\t trees of depth 4\t check: ${256 * treeCheck(4)}`,
      `64\t trees of depth 6\t check: ${64 * treeCheck(6)}`,
      `16\t trees of depth 8\t check: ${16 * treeCheck(8)}`,
      `long lived tree of depth 8\t check: ${treeCheck(8)}`,
    ]);
    expect(treeCheck(8)).toBe(511);
  });
});

describe('listchurn', () => {
  it('dequeues every node in order, one message made and dropped per step', () => {
    const { task, lines } = runProgram(listchurn({ collector: bump }), ['listchurn', '50', '4']);
    expect(task.waitStatus).toBe(0);
    const total = 50 + 4 * 50;
    expect(lines).toEqual([
      `listchurn: 50 nodes, 4 rounds: ${total} dequeued in order, sum ${(total * (total - 1)) / 2}`,
    ]);
    // The queue header, every node, a message per churn step.
    expect(task.gc!.objectsAllocated).toBe(1 + total + 4 * 50);
  });
});

describe('gccache', () => {
  it('finds every key, and a seed gives the same run', () => {
    const run = (seed: string) => {
      const m = bootTestMachine({ memoryMiB: 32, seed: Number(seed) });
      const path = m.register(gccache({ collector: bump }));
      const task = m.kernel.spawn(path, ['gccache', '300', '2000'], { env: {} }) as Task;
      m.runToEnd();
      return task;
    };
    const a = run('1');
    const b = run('1');
    expect(a.waitStatus).toBe(0);
    expect(a.stdout).toMatch(
      /^gccache: 300 entries, 2000 ops: (\d+) values and (\d+) entries replaced, version sum (\d+)\n$/,
    );
    expect(b.stdout).toBe(a.stdout);
    const [, values, entries] = /: (\d+) values and (\d+) entries/.exec(a.stdout)!.map(Number);
    // One in 8 replaces a value, one in 32 the entry: about 250 and 62 of 2000.
    expect(values).toBeGreaterThan(150);
    expect(values).toBeLessThan(350);
    expect(entries).toBeGreaterThan(25);
    expect(entries).toBeLessThan(110);
    // The table; an entry and its value per key and per entry replaced; a value per value replaced; a request per op.
    expect(a.gc!.objectsAllocated).toBe(1 + 2 * (300 + entries!) + values! + 2000);
  });
});

describe('cycleleak', () => {
  it('drops pairs and rings of 3 to 8; a heap that never frees keeps every byte of them', () => {
    const { task, lines } = runProgram(cycleleak({ collector: bump }), ['cycleleak', '24']);
    expect(task.waitStatus).toBe(0);
    // i even: a pair; i odd: a ring of 3 + ((i >> 1) % 6).
    let objects = 0;
    for (let i = 0; i < 24; i++) objects += i % 2 === 0 ? 2 : 3 + ((i >> 1) % 6);
    expect(objects).toBe(24 + 12 * 3 + (0 + 1 + 2 + 3 + 4 + 5) * 2);
    const bytes = objects * objectBytes(1, 32);
    expect(lines).toEqual([
      `cycleleak: 24 cycles (${objects} objects) dropped under bump: live ${bytes} bytes, heap ${1 << 20} bytes`,
    ]);
    expect(task.gc!.majorCollections).toBe(1);
  });
});

describe('every program', () => {
  it('is a /bin built-in', () => {
    for (const name of Object.keys(GC_PROGRAMS)) expect(loadBuiltin(name)?.path).toBe(`/bin/${name}`);
  });

  it('refuses bad arguments and environment with a line on stderr and exit status 2', () => {
    const cases: Array<[UserMain, string[], Record<string, string>, RegExp]> = [
      [binarytrees({ collector: bump }), ['binarytrees', 'deep'], {}, /usage: binarytrees/],
      [binarytrees({ collector: bump }), ['binarytrees', '23'], {}, /usage: binarytrees/],
      [listchurn({ collector: bump }), ['listchurn', '0'], {}, /usage: listchurn/],
      [gccache({ collector: bump }), ['gccache', '10', '-1'], {}, /usage: gccache/],
      [cycleleak({ collector: bump }), ['cycleleak', '1.5'], {}, /usage: cycleleak/],
      [
        cycleleak({ collector: bump }),
        ['cycleleak', '3'],
        { VMLAB_GC_CYCLES: 'yes' },
        /VMLAB_GC_CYCLES: 'yes' is not 0 or 1/,
      ],
      [binarytrees(), ['binarytrees', '6'], { VMLAB_GC: 'nope' }, /binarytrees: unknown collector 'nope'/],
      [
        listchurn(),
        ['listchurn'],
        { VMLAB_GC: 'marksweep', GOGC: 'lots' },
        /listchurn: (GOGC: 'lots' is not a whole number or off|unknown collector)/,
      ],
    ];
    for (const [main, argv, env, message] of cases) {
      const { task } = runProgram(main, argv, { env });
      expect(task.waitStatus, argv.join(' ')).toBe(2 << 8);
      expect(task.stderr, argv.join(' ')).toMatch(message);
      expect(task.stdout).toBe('');
    }
  });

  it('unmaps its heap before it exits (only the C library static storage stays), and leaves no frame or charge behind', () => {
    const m = bootTestMachine({ memoryMiB: 32 });
    const free = settleFreePages(m);
    const committed = m.kernel.committedAs;
    const added: number[] = [];
    const measured = (main: UserMain): UserMain =>
      function* (ctx) {
        const mappedBytes = () => ctx.sys.vmlab_maps().reduce((n, e) => n + e.end - e.start, 0);
        const before = mappedBytes();
        const code = yield* main(ctx);
        added.push(mappedBytes() - before);
        return code;
      };
    const mains: Array<[UserMain, string[]]> = [
      [binarytrees({ collector: bump }), ['binarytrees', '6']],
      [listchurn({ collector: bump }), ['listchurn', '100', '2']],
      [gccache({ collector: bump }), ['gccache', '100', '500']],
      [cycleleak({ collector: bump }), ['cycleleak', '50']],
    ];
    const tasks = mains.map(
      ([main, argv]) => m.kernel.spawn(m.register(measured(main)), argv, { env: {} }) as Task,
    );
    m.runToEnd();
    for (const t of tasks) expect(t.waitStatus, t.comm).toBe(0);
    // The heap's chunks and its root slots are gone; the clock's timespec lives in libc's static storage.
    expect(added).toEqual([STATIC_DATA_BYTES, STATIC_DATA_BYTES, STATIC_DATA_BYTES, STATIC_DATA_BYTES]);
    expect(settleFreePages(m)).toBe(free);
    expect(m.kernel.committedAs).toBe(committed);
  });
});

/** Run built-in `argv[0]` under the collector VMLAB_GC names, on a fresh machine. */
function runBuiltin(argv: string[], env: Record<string, string>, memoryMiB = 64): Task {
  const m = bootTestMachine({ memoryMiB });
  const image = loadBuiltin(argv[0]!)!;
  const task = m.kernel.spawn(m.register(image.main), argv, { env });
  if (typeof task === 'number') throw new Error(`spawn: ${task}`);
  m.runToEnd();
  return task;
}

describe.runIf(COLLECTOR_NAMES.length > 0)('under every registered collector', () => {
  it.each(COLLECTOR_NAMES)('%s runs every program to its result, and frees what it collects', (name) => {
    const env = { VMLAB_GC: name };
    const trees = runBuiltin(['binarytrees', '6'], env);
    expect(trees.waitStatus, trees.stderr).toBe(0);
    expect(trees.stdout.trimEnd().split('\n')).toEqual([
      'stretch tree of depth 7\t check: 255',
      '64\t trees of depth 4\t check: 1984',
      '16\t trees of depth 6\t check: 2032',
      'long lived tree of depth 6\t check: 127',
    ]);
    expect(trees.gc!.collector).toBe(name);
    expect(trees.gc!.objectsAllocated).toBe(255 + 127 + 64 * 31 + 16 * 127);
    const churn = runBuiltin(['listchurn', '200', '10'], env);
    expect(churn.waitStatus, churn.stderr).toBe(0);
    expect(churn.stdout).toBe(
      `listchurn: 200 nodes, 10 rounds: 2200 dequeued in order, sum ${(2200 * 2199) / 2}\n`,
    );
    const cache = runBuiltin(['gccache', '500', '3000'], env);
    expect(cache.waitStatus, cache.stderr).toBe(0);
    // The same seed and keys under every collector: the bump collector's run gives the line to expect.
    const m = bootTestMachine({ memoryMiB: 64 });
    const same = m.kernel.spawn(m.register(gccache({ collector: bump })), ['gccache', '500', '3000'], {
      env: {},
    }) as Task;
    m.runToEnd();
    expect(cache.stdout).toBe(same.stdout);
    const cycles = runBuiltin(['cycleleak', '300'], env);
    expect(cycles.waitStatus, cycles.stderr).toBe(0);
    expect(cycles.stdout).toMatch(
      new RegExp(`^cycleleak: 300 cycles \\(\\d+ objects\\) dropped under ${name}: live \\d+ bytes`),
    );
  });
});

describe.runIf(COLLECTOR_NAMES.includes('refcount'))('cycleleak under refcount', () => {
  it('leaks every cycle without the cycle detector, and frees them with it', () => {
    const live = (cycles: string, n: number): number => {
      const t = runBuiltin(['cycleleak', String(n)], { VMLAB_GC: 'refcount', VMLAB_GC_CYCLES: cycles });
      expect(t.waitStatus, t.stderr).toBe(0);
      return Number(/live (\d+) bytes/.exec(t.stdout)![1]);
    };
    let objects = 0;
    for (let i = 0; i < 400; i++) objects += i % 2 === 0 ? 2 : 3 + ((i >> 1) % 6);
    // Every object of every cycle stays (at least its header and data).
    expect(live('0', 400)).toBeGreaterThanOrEqual(objects * objectBytes(1, 32));
    expect(live('0', 800)).toBeGreaterThan(live('0', 400));
    expect(live('1', 400)).toBeLessThan(objectBytes(1, 32) * 8);
    expect(live('1', 800)).toBe(live('1', 400));
  });
});
