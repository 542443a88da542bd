/**
 * The script form of a workload process: a list of operations run by an interpreter program,
 * for workloads that need no TypeScript. Operations (each a one-key map):
 *
 *   mmap:     { length: 16M, prot: rw, shared: false, populate: false, as: buf }
 *   munmap:   { addr: buf, length: 16M }
 *   mprotect: { addr: buf+4K, length: 4K, prot: r }
 *   madvise:  { addr: buf, length: 1M, advice: dontneed }     # dontneed, free, normal, …
 *   sbrk:     { increment: 64K, as: heap }                     # the old break goes in `as`
 *   touch:    { addr: buf, length: 16M, stride: 4K, write: true, rounds: 1 }
 *   fill:     { addr: buf, length: 1M, seed: 7 }               # a seeded byte pattern
 *   verify:   { addr: buf, length: 1M, seed: 7 }               # exit status 1 on a mismatch
 *   fork:     [ ...operations of the child... ]                # the child exits 0 at the end
 *   wait:     {}                                               # any child
 *   exec:     { program: touch, args: [64] }
 *   sleep:    2ms
 *   compute:  100us                                            # CPU work, no memory traffic
 *   print:    "text"                                           # to the process's stdout
 *   repeat:   { times: 3, ops: [ ... ] }
 *   exit:     0
 *
 * Addresses are a variable name, a name plus an offset (`buf+4K`), or a number. Sizes and
 * times take units. The interpreter yields once per page touched and once per operation.
 */
import { z } from 'zod';
import { Prng } from '../lib/prng.ts';
import {
  MADV_DONTNEED,
  MADV_FREE,
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MAP_ANONYMOUS,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../proc/uapi.ts';
import { parseSize, parseTime } from './units.ts';

const sizeText = z
  .union([z.number().int().nonnegative(), z.string()])
  .refine((v) => parseSize(v) !== undefined, {
    message: 'expected a size such as 4K, 16M or 4096',
  });
const addrText = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(
      /^[A-Za-z_][\w]*(\s*\+\s*\S+)?$|^\d+$|^0x[0-9a-fA-F]+$/,
      'expected a variable, variable+offset or a number',
    ),
]);
const timeText = z
  .union([z.number().int().nonnegative(), z.string()])
  .refine((v) => parseTime(v, 1e9) !== undefined, {
    message: 'expected a time such as 2ms, 100us or a cycle count',
  });
const prot = z.enum(['none', 'r', 'rw', 'rx', 'rwx', 'w', 'x', 'wx']).default('rw');
const varName = z.string().regex(/^[A-Za-z_]\w*$/, 'expected a variable name');

type Op =
  | { mmap: { length: string | number; prot: string; shared: boolean; populate: boolean; as?: string } }
  | { munmap: { addr: string | number; length: string | number } }
  | { mprotect: { addr: string | number; length: string | number; prot: string } }
  | { madvise: { addr: string | number; length: string | number; advice: string } }
  | { sbrk: { increment: string | number; as?: string } }
  | {
      touch: {
        addr: string | number;
        length: string | number;
        stride: string | number;
        write: boolean;
        rounds: number;
      };
    }
  | { fill: { addr: string | number; length: string | number; seed: number } }
  | { verify: { addr: string | number; length: string | number; seed: number } }
  | { fork: Op[] }
  | { wait: Record<string, never> }
  | { exec: { program: string; args: Array<string | number> } }
  | { sleep: string | number }
  | { compute: string | number }
  | { print: string }
  | { repeat: { times: number; ops: Op[] } }
  | { exit: number };

export type ScriptOp = Op;

export const scriptOpSchema: z.ZodType<Op> = z.lazy(() =>
  z.union([
    z.strictObject({
      mmap: z.strictObject({
        length: sizeText,
        prot,
        shared: z.boolean().default(false),
        populate: z.boolean().default(false),
        as: varName.optional(),
      }),
    }),
    z.strictObject({ munmap: z.strictObject({ addr: addrText, length: sizeText }) }),
    z.strictObject({ mprotect: z.strictObject({ addr: addrText, length: sizeText, prot }) }),
    z.strictObject({
      madvise: z.strictObject({
        addr: addrText,
        length: sizeText,
        advice: z.enum(['dontneed', 'free', 'normal', 'random', 'sequential', 'willneed']),
      }),
    }),
    z.strictObject({
      sbrk: z.strictObject({ increment: z.union([z.number().int(), z.string()]), as: varName.optional() }),
    }),
    z.strictObject({
      touch: z.strictObject({
        addr: addrText,
        length: sizeText,
        stride: sizeText.default('4K'),
        write: z.boolean().default(false),
        rounds: z.number().int().min(1).default(1),
      }),
    }),
    z.strictObject({
      fill: z.strictObject({ addr: addrText, length: sizeText, seed: z.number().int().default(1) }),
    }),
    z.strictObject({
      verify: z.strictObject({ addr: addrText, length: sizeText, seed: z.number().int().default(1) }),
    }),
    z.strictObject({ fork: z.array(scriptOpSchema) }),
    z.strictObject({ wait: z.strictObject({}) }),
    z.strictObject({
      exec: z.strictObject({
        program: z.string().min(1),
        args: z.array(z.union([z.string(), z.number()])).default([]),
      }),
    }),
    z.strictObject({ sleep: timeText }),
    z.strictObject({ compute: timeText }),
    z.strictObject({ print: z.string() }),
    z.strictObject({
      repeat: z.strictObject({ times: z.number().int().min(0).max(1_000_000), ops: z.array(scriptOpSchema) }),
    }),
    z.strictObject({ exit: z.number().int().min(0).max(255) }),
  ]),
) as z.ZodType<Op>;

const PROTS: Record<string, number> = {
  none: 0,
  r: PROT_READ,
  w: PROT_WRITE,
  x: PROT_EXEC,
  rw: PROT_READ | PROT_WRITE,
  rx: PROT_READ | PROT_EXEC,
  wx: PROT_WRITE | PROT_EXEC,
  rwx: PROT_READ | PROT_WRITE | PROT_EXEC,
};
const ADVICE: Record<string, number> = {
  dontneed: MADV_DONTNEED,
  free: MADV_FREE,
  normal: MADV_NORMAL,
  random: MADV_RANDOM,
  sequential: MADV_SEQUENTIAL,
  willneed: MADV_WILLNEED,
};

/** Thrown inside the interpreter to end the process with a status. */
class ScriptExit {
  constructor(readonly code: number) {}
}

/** A program that runs `ops`. `hz` converts times; variables start empty. */
export function scriptProgram(ops: Op[], hz: number): UserMain {
  return function* (ctx) {
    const vars = new Map<string, number>();
    try {
      yield* runOps(ctx, ops, vars, hz);
    } catch (e) {
      if (e instanceof ScriptExit) return e.code;
      throw e;
    }
    return 0;
  };
}

function* runOps(
  ctx: UserContext,
  ops: Op[],
  vars: Map<string, number>,
  hz: number,
): Generator<void, void, void> {
  for (const op of ops) {
    yield* runOp(ctx, op, vars, hz);
    yield;
  }
}

function size(v: string | number): number {
  return parseSize(v)!;
}

function addr(v: string | number, vars: Map<string, number>): number {
  if (typeof v === 'number') return v;
  const m = /^([A-Za-z_]\w*)(?:\s*\+\s*(\S+))?$/.exec(v);
  if (m === null) return parseSize(v)!;
  const base = vars.get(m[1]!);
  if (base === undefined) throw new ScriptError(`variable '${m[1]}' is not set`);
  return base + (m[2] === undefined ? 0 : size(m[2]));
}

/** A script mistake found while running (an unset variable): the process aborts. */
export class ScriptError extends Error {}

function* runOp(
  ctx: UserContext,
  op: Op,
  vars: Map<string, number>,
  hz: number,
): Generator<void, void, void> {
  const { cpu, sys } = ctx;
  if ('mmap' in op) {
    const o = op.mmap;
    let flags = MAP_ANONYMOUS | (o.shared ? MAP_SHARED : MAP_PRIVATE);
    if (o.populate) flags |= MAP_POPULATE;
    const a = sys.mmap(0, size(o.length), PROTS[o.prot]!, flags, -1, 0);
    if (o.as !== undefined) vars.set(o.as, a);
  } else if ('munmap' in op) {
    sys.munmap(addr(op.munmap.addr, vars), size(op.munmap.length));
  } else if ('mprotect' in op) {
    sys.mprotect(addr(op.mprotect.addr, vars), size(op.mprotect.length), PROTS[op.mprotect.prot]!);
  } else if ('madvise' in op) {
    sys.madvise(addr(op.madvise.addr, vars), size(op.madvise.length), ADVICE[op.madvise.advice]!);
  } else if ('sbrk' in op) {
    const inc =
      typeof op.sbrk.increment === 'number'
        ? op.sbrk.increment
        : (parseSize(op.sbrk.increment.replace(/^-/, '')) ?? 0) *
          (op.sbrk.increment.startsWith('-') ? -1 : 1);
    const old = sys.brk(0);
    sys.brk(old + inc);
    if (op.sbrk.as !== undefined) vars.set(op.sbrk.as, old);
  } else if ('touch' in op) {
    const o = op.touch;
    const start = addr(o.addr, vars);
    const len = size(o.length);
    const stride = Math.max(1, size(o.stride));
    for (let r = 0; r < o.rounds; r++) {
      for (let off = 0; off < len; off += stride) {
        if (o.write) cpu.store8(start + off, (off / stride + r) & 0xff);
        else cpu.load8(start + off);
        yield;
      }
    }
  } else if ('fill' in op || 'verify' in op) {
    const o = 'fill' in op ? op.fill : op.verify;
    const start = addr(o.addr, vars);
    const len = size(o.length);
    const prng = new Prng(o.seed);
    const chunk = new Uint8Array(4096);
    const got = new Uint8Array(4096);
    for (let off = 0; off < len; off += chunk.length) {
      const n = Math.min(chunk.length, len - off);
      for (let i = 0; i < n; i++) chunk[i] = prng.nextU32() & 0xff;
      if ('fill' in op) {
        cpu.storeBytes(start + off, chunk.subarray(0, n));
      } else {
        cpu.loadBytes(start + off, got, 0, n);
        for (let i = 0; i < n; i++) if (got[i] !== chunk[i]) throw new ScriptExit(1);
      }
      yield;
    }
  } else if ('fork' in op) {
    const childOps = op.fork;
    const snapshot = new Map(vars);
    sys.fork(forkedProgram(childOps, snapshot, hz));
  } else if ('wait' in op) {
    yield* sys.wait4(-1, 0, 0);
  } else if ('exec' in op) {
    sys.execve(op.exec.program, [op.exec.program, ...op.exec.args.map(String)]);
  } else if ('sleep' in op) {
    yield* sys.nanosleep((parseTime(op.sleep, hz)! / hz) * 1e9);
  } else if ('compute' in op) {
    cpu.compute(parseTime(op.compute, hz)!);
  } else if ('print' in op) {
    printText(ctx, op.print);
  } else if ('repeat' in op) {
    for (let i = 0; i < op.repeat.times; i++) yield* runOps(ctx, op.repeat.ops, vars, hz);
  } else if ('exit' in op) {
    throw new ScriptExit(op.exit);
  }
}

/** The child of a scripted fork: the same variables, its own operations. */
function forkedProgram(ops: Op[], vars: Map<string, number>, hz: number): UserMain {
  return function* (ctx) {
    const own = new Map(vars);
    try {
      yield* runOps(ctx, ops, own, hz);
    } catch (e) {
      if (e instanceof ScriptExit) return e.code;
      throw e;
    }
    return 0;
  };
}

/** Write text to stdout through a scratch page mapped for the purpose. */
function printText(ctx: UserContext, text: string): void {
  const bytes = new TextEncoder().encode(`${text}\n`);
  const len = Math.max(bytes.length, 1);
  const a = ctx.sys.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a < 0) return;
  ctx.cpu.storeBytes(a, bytes);
  ctx.sys.write(1, a, bytes.length);
  ctx.sys.munmap(a, len);
}
