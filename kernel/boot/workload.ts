/**
 * Workload files: a YAML file that describes a machine and the processes to run on it.
 *
 *   seed: 1
 *   machine:
 *     memory: 64M            # sizes: 4K, 64MiB, 2G …
 *     format: x86-64         # a preset or a format file (relative to the workload)
 *     cpu: 1GHz
 *     tlb: { entries: 64, ways: 4, policy: lru, asidBits: 12, split: false, management: hardware }
 *                            # stlb: { entries: 1536, ways: 12 } is the second level's default
 *                            # (hardware-managed); stlb: false for none
 *     swap: { size: 128M, disk: ssd }       # omit for no swap
 *     policy: clock          # fifo, clock, lru, nru, aging, lru-2list, wsclock, opt, unopt, mru, random,
 *                            # or a policy file (my-policy.ts, relative to the workload); a list
 *                            # ([fifo, clock, opt]) runs the workload once per policy and compares
 *     scope: global          # or local
 *     overcommit: 0          # 0, 1, 2
 *     quantum: 1ms
 *     watermarks: { minFreeKbytes: 1024, scaleFactor: 10 }
 *     fetchStride: 64        # bytes the program counter moves per instruction boundary (0: off)
 *     writeback: { interval: 5s, expire: 30s, backgroundRatio: 10, ratio: 20 }
 *   files: files             # the folder processes see (default: ./files beside the workload,
 *                            # if there is one); or { from: files, writeThrough: false, disk: ssd }
 *   groups:
 *     batch: { limit: 16M }
 *   processes:
 *     - name: writer
 *       program: touch       # a built-in (see userland/programs), with its arguments
 *       args: [256, 3]
 *       start: 0ms
 *       replicas: 2
 *       oomScoreAdj: 0
 *       residentLimit: 1M
 *       group: batch
 *       env: { NAME: value }
 *       malloc: { allocator: sizeclass, leakCheck: summary }
 *     - name: tracer
 *       replay: { trace: loop.txt, format: auto }   # a memory trace as the process's references
 *     - name: scripted
 *       script:              # operations (see scriptOps in script.ts)
 *         - mmap: { length: 16M, as: buf }
 *         - touch: { addr: buf, length: 16M, write: true }
 *
 * Validation errors name the file, line, column and field (configfile.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ALLOCATOR_NAMES } from '../../userland/malloc/index.ts';
import { BUILTIN_PROGRAMS, loadBuiltin } from '../../userland/programs/builtins.ts';
import { POLICY_NAMES } from '../mm/policy/index.ts';
import { loadConfigFile } from './configfile.ts';
import { checkScriptVariables, type ScriptOp, scriptOpSchema } from './script.ts';
import { TRACE_FORMATS } from './traces.ts';
import { parseFrequency, parseSize, parseTime } from './units.ts';

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 4K, 64M or 2G, got '${v}'` });
    return z.NEVER;
  }
  return n;
});

/** A time, kept as text or cycles until the CPU frequency is known. */
const time = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(
      /^\d+(\.\d+)?\s*(s|ms|us|µs|ns|cycles?)?$/,
      'expected a time such as 5ms, 200us or 100000 (cycles)',
    ),
]);

const frequency = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseFrequency(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a frequency such as 1GHz or 800MHz, got '${v}'` });
    return z.NEVER;
  }
  return n;
});

/** Is a value a code file (a student's policy or allocator class) rather than a built-in name? */
export function isCodeFile(value: string): boolean {
  return /\.(ts|mts|js|mjs)$/.test(value);
}

/** Is a machine.policy value a file (a student's policy class) rather than a built-in name? */
export const isPolicyFile = isCodeFile;

const policyName = z.string().refine((v) => POLICY_NAMES.includes(v) || isPolicyFile(v), {
  message: `expected one of ${POLICY_NAMES.join(', ')}, or a policy file (.ts or .js, relative to the workload)`,
});

const machineSchema = z.strictObject({
  memory: size.default(64 * 1024 * 1024),
  format: z.string().default('x86-64'),
  cpu: frequency.default(1e9),
  tlb: z
    .strictObject({
      entries: z.number().int().min(1).max(65536).default(64),
      ways: z.number().int().min(1).default(4),
      policy: z.enum(['lru', 'fifo', 'random']).default('lru'),
      asidBits: z.number().int().min(0).max(16).default(12),
      split: z.boolean().default(false),
      management: z.enum(['hardware', 'software']).default('hardware'),
      /** The second-level TLB: the machine's default (1536 entries, 12-way) unless given; false for none. */
      stlb: z
        .union([
          z.literal(false),
          z.strictObject({
            entries: z.number().int().min(1).max(65536),
            ways: z.number().int().min(1).optional(),
          }),
        ])
        .optional(),
    })
    .prefault({}),
  swap: z
    .strictObject({
      size,
      disk: z.enum(['ram', 'nvme', 'ssd', 'hdd']).default('ssd'),
      file: z.string().optional(),
    })
    .optional(),
  /** A policy, or a list of them: the workload then runs once per policy and prints a comparison. */
  policy: z.union([policyName, z.array(policyName).min(1)]).default('lru-2list'),
  scope: z.enum(['global', 'local']).default('global'),
  overcommit: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  overcommitRatio: z.number().int().min(0).max(1000).default(50),
  quantum: time.default('1ms'),
  kswapd: z.boolean().default(true),
  /** Bytes the program counter moves at each instruction boundary (0: no instruction fetches). */
  fetchStride: size.default(64),
  /** The flusher (Linux's vm.dirty_* settings). */
  writeback: z
    .strictObject({
      interval: time.default('5s'),
      expire: time.default('30s'),
      backgroundRatio: z.number().int().min(0).max(100).default(10),
      ratio: z.number().int().min(0).max(100).default(20),
    })
    .prefault({}),
  watermarks: z
    .strictObject({
      minFreeKbytes: z.number().int().min(1).optional(),
      scaleFactor: z.number().int().min(1).max(3000).optional(),
    })
    .optional(),
});

const processSchema = z
  .strictObject({
    name: z.string().min(1).max(15).optional(),
    program: z
      .string()
      .min(1)
      .refine((v) => loadBuiltin(v) !== undefined, {
        message: `no such built-in program (known: ${Object.keys(BUILTIN_PROGRAMS)
          .map((k) => k.slice('/bin/'.length))
          .join(', ')})`,
      })
      .optional(),
    file: z.string().min(1).optional(),
    script: z.array(scriptOpSchema).superRefine(checkScriptVariables).optional(),
    /** A memory trace replayed as the process's references (formats as `vmlab replay` reads them). */
    replay: z
      .strictObject({
        trace: z.string().min(1),
        format: z.enum(['auto', ...TRACE_FORMATS]).default('auto'),
        instructions: z.boolean().default(false),
      })
      .optional(),
    args: z.array(z.union([z.string(), z.number()])).default([]),
    start: time.default(0),
    replicas: z.number().int().min(1).max(4096).default(1),
    oomScoreAdj: z.number().int().min(-1000).max(1000).default(0),
    residentLimit: size.optional(),
    group: z.string().optional(),
    /** The process's environment (strings; numbers are written out). */
    env: z
      .record(
        z.string().regex(/^[A-Za-z_]\w*$/, 'expected a variable name'),
        z.union([z.string(), z.number()]),
      )
      .default({}),
    /** The C library's malloc: its allocator and the leak report at exit (VMLAB_MALLOC, VMLAB_LEAK_CHECK). */
    malloc: z
      .strictObject({
        allocator: z
          .string()
          .refine((v) => ALLOCATOR_NAMES.includes(v) || isCodeFile(v), {
            message: `expected an allocator: ${ALLOCATOR_NAMES.slice(0, 4).join(', ')}, … (see vmlab malloc-replay --help), or an allocator file (.ts or .js, relative to the workload)`,
          })
          .optional(),
        leakCheck: z.enum(['off', 'summary', 'full']).optional(),
      })
      .optional(),
  })
  .refine((p) => [p.program, p.file, p.script, p.replay].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of program, file, script or replay',
  })
  .refine(
    (p) => p.malloc?.allocator === undefined || !isCodeFile(p.malloc.allocator) || p.script !== undefined,
    {
      message: 'an allocator file is loaded for script processes (a program picks its allocator by name)',
      path: ['malloc', 'allocator'],
    },
  );

/** The files processes see: a folder (relative to the workload), copied to a scratch root unless writeThrough. */
const filesSchema = z.union([
  z.string().min(1),
  z.strictObject({
    from: z.string().min(1),
    writeThrough: z.boolean().default(false),
    disk: z.enum(['ram', 'nvme', 'ssd', 'hdd']).default('ssd'),
  }),
]);

export const workloadSchema = z.strictObject({
  description: z.string().optional(),
  seed: z.number().int().min(0).default(0),
  machine: machineSchema.prefault({}),
  files: filesSchema.optional(),
  groups: z.record(z.string(), z.strictObject({ limit: size })).default({}),
  processes: z.array(processSchema).min(1),
});

export type Workload = z.output<typeof workloadSchema>;
export type WorkloadProcess = Workload['processes'][number];
export type { ScriptOp };

/** A workload with the path it came from (paths inside resolve against its folder). */
export interface LoadedWorkload {
  path: string;
  dir: string;
  workload: Workload;
}

/** Read and validate a workload file (InputError on any mistake). */
export function loadWorkload(path: string): LoadedWorkload {
  const workload = loadConfigFile(path, workloadSchema);
  return { path, dir: dirname(path), workload };
}

/** A path in a workload, resolved against the workload's folder. */
export function resolveIn(w: LoadedWorkload, p: string): string {
  return isAbsolute(p) ? p : resolve(w.dir, p);
}

/**
 * The files folder of a workload: `files` as given (relative to the workload), or its `files/`
 * folder when there is one. Undefined: an empty scratch root.
 */
export function filesOf(
  w: LoadedWorkload,
): { from: string; writeThrough: boolean; disk: 'ram' | 'nvme' | 'ssd' | 'hdd' } | undefined {
  const f = w.workload.files;
  if (f === undefined) {
    const beside = resolve(w.dir, 'files');
    return existsSync(beside) && statSync(beside).isDirectory()
      ? { from: beside, writeThrough: false, disk: 'ssd' }
      : undefined;
  }
  if (typeof f === 'string') return { from: resolveIn(w, f), writeThrough: false, disk: 'ssd' };
  return { from: resolveIn(w, f.from), writeThrough: f.writeThrough, disk: f.disk };
}

/** Cycles in a workload time at `hz`. */
export function cyclesOf(t: string | number, hz: number): number {
  const c = parseTime(t, hz);
  if (c === undefined) throw new Error(`cyclesOf: '${t}' is not a time`);
  return c;
}
