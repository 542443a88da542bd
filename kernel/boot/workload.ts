/**
 * Workload files: a YAML file that describes a machine and the processes to run on it.
 *
 *   seed: 1
 *   machine:
 *     memory: 64M            # sizes: 4K, 64MiB, 2G …
 *     format: x86-64         # a preset or a format file (relative to the workload)
 *     cpu: 1GHz
 *     tlb: { entries: 64, ways: 4, policy: lru, asidBits: 12, split: false, management: hardware }
 *     swap: { size: 128M, disk: ssd }       # omit for no swap
 *     policy: clock          # fifo, clock, lru, nru, aging, lru-2list, wsclock, opt, random,
 *                            # or a policy file (my-policy.ts, relative to the workload)
 *     scope: global          # or local
 *     overcommit: 0          # 0, 1, 2
 *     quantum: 1ms
 *     watermarks: { minFreeKbytes: 1024, scaleFactor: 10 }
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
 *     - name: scripted
 *       script:              # operations (see scriptOps in script.ts)
 *         - mmap: { length: 16M, as: buf }
 *         - touch: { addr: buf, length: 16M, write: true }
 *
 * Validation errors name the file, line, column and field (configfile.ts).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfigFile } from './configfile.ts';
import { type ScriptOp, scriptOpSchema } from './script.ts';
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

const POLICY_NAMES = ['fifo', 'clock', 'lru', 'nru', 'aging', 'lru-2list', 'wsclock', 'opt', 'random'];

/** Is a machine.policy value a file (a student's policy class) rather than a built-in name? */
export function isPolicyFile(policy: string): boolean {
  return /\.(ts|mts|js|mjs)$/.test(policy);
}

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
    })
    .prefault({}),
  swap: z
    .strictObject({
      size,
      disk: z.enum(['ram', 'nvme', 'ssd', 'hdd']).default('ssd'),
      file: z.string().optional(),
    })
    .optional(),
  policy: z
    .string()
    .refine((v) => POLICY_NAMES.includes(v) || isPolicyFile(v), {
      message: `expected one of ${POLICY_NAMES.join(', ')}, or a policy file (.ts or .js, relative to the workload)`,
    })
    .default('lru-2list'),
  scope: z.enum(['global', 'local']).default('global'),
  overcommit: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  overcommitRatio: z.number().int().min(0).max(1000).default(50),
  quantum: time.default('1ms'),
  kswapd: z.boolean().default(true),
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
    program: z.string().min(1).optional(),
    file: z.string().min(1).optional(),
    script: z.array(scriptOpSchema).optional(),
    args: z.array(z.union([z.string(), z.number()])).default([]),
    start: time.default(0),
    replicas: z.number().int().min(1).max(4096).default(1),
    oomScoreAdj: z.number().int().min(-1000).max(1000).default(0),
    residentLimit: size.optional(),
    group: z.string().optional(),
  })
  .refine((p) => [p.program, p.file, p.script].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of program, file or script',
  });

export const workloadSchema = z.strictObject({
  description: z.string().optional(),
  seed: z.number().int().min(0).default(0),
  machine: machineSchema.prefault({}),
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

/** Cycles in a workload time at `hz`. */
export function cyclesOf(t: string | number, hz: number): number {
  const c = parseTime(t, hz);
  if (c === undefined) throw new Error(`cyclesOf: '${t}' is not a time`);
  return c;
}
