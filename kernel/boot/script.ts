/**
 * The script form of a workload process: a list of operations run by an interpreter program,
 * for workloads that need no TypeScript. Operations (each a one-key map):
 *
 *   mmap:     { length: 16M, prot: rw, shared: false, populate: false, as: buf }
 *             # with fd: f (and offset: 8K) it maps that open file instead of anonymous memory
 *   munmap:   { addr: buf, length: 16M }
 *   mremap:   { addr: buf, length: 16M, newLength: 32M, maymove: true, as: buf }
 *             # with to: addr, MREMAP_FIXED there (maymove must be true); the new address in `as`;
 *             # dontunmap: true leaves the old range mapped and empty (MREMAP_DONTUNMAP, same length)
 *   msync:    { addr: buf, length: 1M, mode: sync }                # sync, async, invalidate
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
 *   open:     { path: /data.bin, mode: rw, create: true, truncate: false, append: false, as: f }
 *   read:     { fd: f, addr: buf, length: 64K, offset: 0, as: n }   # pread with offset
 *   write:    { fd: 1, addr: buf, length: n }        # pwrite with offset; fd 1 is stdout
 *   fsync:    f
 *   ftruncate: { fd: f, length: 1M }
 *   close:    f
 *   unlink:   /data.bin
 *   malloc:   { size: 100, as: p }        # the malloc family of the process's allocator
 *   calloc:   { count: 10, size: 16, as: q }
 *   realloc:  { addr: p, size: 200, as: p }
 *   free:     p
 *
 * Addresses (and descriptors) are a variable name, a name plus an offset (`buf+4K`), or a
 * number. Sizes and times take units. A call that fails stores -errno in its variable and
 * prints `script: OP: ENAME` on stderr; the script goes on. The interpreter yields once per
 * page touched and once per operation.
 */
import { z } from 'zod';
import type { LeakCheck } from '../../userland/libc/leak.ts';
import { Libc } from '../../userland/libc/libc.ts';
import { Malloc, type MallocOptions } from '../../userland/libc/malloc.ts';
import { errnoName } from '../lib/errno.ts';
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
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MS_ASYNC,
  MS_INVALIDATE,
  MS_SYNC,
  O_APPEND,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
  type UserMain,
} from '../proc/uapi.ts';
import { nearest } from './configfile.ts';
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

type Ref = string | number;

type Op =
  | {
      mmap: {
        length: string | number;
        prot: string;
        shared: boolean;
        populate: boolean;
        fd?: Ref;
        offset: string | number;
        as?: string;
      };
    }
  | { msync: { addr: Ref; length: string | number; mode: 'sync' | 'async' | 'invalidate' } }
  | {
      open: {
        path: string;
        mode: 'r' | 'w' | 'rw';
        create: boolean;
        truncate: boolean;
        append: boolean;
        as?: string;
      };
    }
  | { read: { fd: Ref; addr: Ref; length: string | number; offset?: string | number; as?: string } }
  | { write: { fd: Ref; addr: Ref; length: Ref; offset?: string | number; as?: string } }
  | { fsync: Ref }
  | { ftruncate: { fd: Ref; length: string | number } }
  | { close: Ref }
  | { unlink: string }
  | { malloc: { size: string | number; as: string } }
  | { calloc: { count: number; size: string | number; as: string } }
  | { realloc: { addr: Ref; size: string | number; as: string } }
  | { free: Ref }
  | { munmap: { addr: string | number; length: string | number } }
  | {
      mremap: {
        addr: string | number;
        length: string | number;
        newLength: string | number;
        maymove: boolean;
        dontunmap: boolean;
        to?: string | number;
        as?: string;
      };
    }
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
        fd: addrText.optional(),
        offset: sizeText.default(0),
        as: varName.optional(),
      }),
    }),
    z.strictObject({
      msync: z.strictObject({
        addr: addrText,
        length: sizeText,
        mode: z.enum(['sync', 'async', 'invalidate']).default('sync'),
      }),
    }),
    z.strictObject({
      open: z.strictObject({
        path: z.string().min(1),
        mode: z.enum(['r', 'w', 'rw']).default('r'),
        create: z.boolean().default(false),
        truncate: z.boolean().default(false),
        append: z.boolean().default(false),
        as: varName.optional(),
      }),
    }),
    z.strictObject({
      read: z.strictObject({
        fd: addrText,
        addr: addrText,
        length: sizeText,
        offset: sizeText.optional(),
        as: varName.optional(),
      }),
    }),
    z.strictObject({
      write: z.strictObject({
        fd: addrText,
        addr: addrText,
        length: z.union([sizeText, addrText]),
        offset: sizeText.optional(),
        as: varName.optional(),
      }),
    }),
    z.strictObject({ fsync: addrText }),
    z.strictObject({ ftruncate: z.strictObject({ fd: addrText, length: sizeText }) }),
    z.strictObject({ close: addrText }),
    z.strictObject({ unlink: z.string().min(1) }),
    z.strictObject({ malloc: z.strictObject({ size: sizeText, as: varName }) }),
    z.strictObject({
      calloc: z.strictObject({ count: z.number().int().nonnegative(), size: sizeText, as: varName }),
    }),
    z.strictObject({ realloc: z.strictObject({ addr: addrText, size: sizeText, as: varName }) }),
    z.strictObject({ free: addrText }),
    z.strictObject({ munmap: z.strictObject({ addr: addrText, length: sizeText }) }),
    z.strictObject({
      mremap: z.strictObject({
        addr: addrText,
        length: sizeText,
        newLength: sizeText,
        maymove: z.boolean().default(false),
        dontunmap: z.boolean().default(false),
        to: addrText.optional(),
        as: varName.optional(),
      }),
    }),
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

/**
 * Check, before a script runs, that every variable it reads was set by an earlier operation
 * (in the same script, in a repeat body before it, or, for a forked child, before the fork).
 * Each unset one becomes an issue at its field, with the nearest set name as a suggestion.
 */
export function checkScriptVariables(ops: Op[], ctx: z.RefinementCtx): void {
  walkVariables(ops, new Set(), [], ctx);
}

const REF_FIELDS: Record<string, string[]> = {
  munmap: ['addr'],
  mremap: ['addr', 'to'],
  msync: ['addr'],
  mprotect: ['addr'],
  madvise: ['addr'],
  touch: ['addr'],
  fill: ['addr'],
  verify: ['addr'],
  read: ['fd', 'addr'],
  write: ['fd', 'addr', 'length'],
  ftruncate: ['fd'],
  mmap: ['fd'],
  realloc: ['addr'],
};
const REF_OPS = ['fsync', 'close', 'free'];

function walkVariables(
  ops: Op[],
  set: Set<string>,
  path: Array<string | number>,
  ctx: z.RefinementCtx,
): void {
  ops.forEach((op, i) => {
    const [name, body] = Object.entries(op)[0] as [string, unknown];
    const at = [...path, i, name];
    const check = (value: unknown, where: Array<string | number>): void => {
      if (typeof value !== 'string') return;
      const m = /^([A-Za-z_]\w*)(?:\s*\+.*)?$/.exec(value);
      if (m === null || set.has(m[1]!)) return;
      if (parseSize(value) !== undefined) return; // a size such as 4K, not a variable
      const guess = nearest(m[1]!, [...set]);
      ctx.addIssue({
        code: 'custom',
        path: where,
        message: `variable '${m[1]}' is not set by an earlier operation${guess === undefined ? '' : ` (did you mean '${guess}'?)`}`,
      });
    };
    if (REF_OPS.includes(name)) check(body, at);
    for (const field of REF_FIELDS[name] ?? [])
      check((body as Record<string, unknown>)[field], [...at, field]);
    if (name === 'fork') walkVariables(body as Op[], new Set(set), at, ctx);
    if (name === 'repeat') walkVariables((body as { ops: Op[] }).ops, set, [...at, 'ops'], ctx);
    const as = (body as { as?: unknown } | null)?.as;
    if (typeof as === 'string') set.add(as);
  });
}

/** Thrown inside the interpreter to end the process with a status. */
class ScriptExit {
  constructor(readonly code: number) {}
}

/** How a script process allocates: its malloc and the leak report at exit. */
export interface ScriptOptions {
  /** Allocator name (userland/malloc; default ptmalloc), or a factory (a student's allocator file). */
  allocator?: MallocOptions['allocator'];
  leakCheck?: LeakCheck;
}

/**
 * One running script: its process, variables and C library. A variable that has held a
 * malloc-family pointer lives in the process's memory too (an 8-byte slot in libc's static
 * storage), as a C program's pointer would, so that the leak report's scan sees it.
 */
interface Run {
  ctx: UserContext;
  vars: Map<string, number>;
  /** Each variable's slot in the process's memory. */
  slots: Map<string, number>;
  hz: number;
  libc: Libc;
  options: ScriptOptions;
  /** The malloc family, made at the first malloc-family operation (or at start with a leak check). */
  malloc: Malloc | null;
}

/**
 * A program that runs `ops`. `hz` converts times; variables start empty. The allocator and the
 * leak check come from `options`, else from the environment (VMLAB_MALLOC, VMLAB_LEAK_CHECK).
 */
export function scriptProgram(ops: Op[], hz: number, options: ScriptOptions = {}): UserMain {
  return (ctx) =>
    runScript(ctx, ops, { vars: new Map(), slots: new Map() }, hz, {
      allocator: options.allocator ?? ctx.env.VMLAB_MALLOC,
      leakCheck: options.leakCheck ?? (ctx.env.VMLAB_LEAK_CHECK as LeakCheck | undefined),
    });
}

function* runScript(
  ctx: UserContext,
  ops: Op[],
  state: { vars: Map<string, number>; slots: Map<string, number> },
  hz: number,
  options: ScriptOptions,
): Generator<void, number, void> {
  const libc = new Libc(ctx);
  const run: Run = { ctx, vars: state.vars, slots: state.slots, hz, libc, options, malloc: null };
  if ((options.leakCheck ?? 'off') !== 'off') mallocOf(run);
  let code = 0;
  try {
    yield* runOps(run, ops);
  } catch (e) {
    if (!(e instanceof ScriptExit)) throw e;
    code = e.code;
  }
  return libc.exit(code); // atexit handlers (the leak report) run first
}

function* runOps(run: Run, ops: Op[]): Generator<void, void, void> {
  for (const op of ops) {
    yield* runOp(run, op);
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

function mallocOf(run: Run): Malloc {
  run.malloc ??= new Malloc(run.libc, {
    allocator: run.options.allocator ?? 'ptmalloc',
    leakCheck: run.options.leakCheck ?? 'off',
  });
  return run.malloc;
}

/**
 * Set variable `name`, and its slot in the process's memory: a heap pointer ('heap') gets a
 * slot if it has none; any other value updates an existing slot only.
 */
function setVar(run: Run, name: string, value: number, kind: 'heap' | 'plain' = 'plain'): void {
  run.vars.set(name, value);
  let slot = run.slots.get(name);
  if (slot === undefined) {
    if (kind === 'plain') return;
    slot = run.libc.staticData(8);
    if (slot < 0) return; // no memory for the slot: the value lives in the interpreter only
    run.slots.set(name, slot);
  }
  run.ctx.cpu.store64(slot, value >= 0 ? value : 0);
}

/** Keep a call's result in `as` (if named); a failure (-errno) is reported on stderr. */
function result(run: Run, what: string, value: number, as: string | undefined): void {
  if (as !== undefined) setVar(run, as, value);
  if (value < 0 && value > -4096) writeText(run.ctx, `script: ${what}: ${errnoName(-value)}`, 2);
}

const OPEN_MODES = { r: O_RDONLY, w: O_WRONLY, rw: O_RDWR } as const;
const MSYNC_MODES = { sync: MS_SYNC, async: MS_ASYNC, invalidate: MS_INVALIDATE } as const;

function* runOp(run: Run, op: Op): Generator<void, void, void> {
  const { ctx, vars, hz } = run;
  const { cpu, sys } = ctx;
  if ('mmap' in op) {
    const o = op.mmap;
    let flags = o.shared ? MAP_SHARED : MAP_PRIVATE;
    if (o.fd === undefined) flags |= MAP_ANONYMOUS;
    if (o.populate) flags |= MAP_POPULATE;
    const fd = o.fd === undefined ? -1 : addr(o.fd, vars);
    const a = sys.mmap(0, size(o.length), PROTS[o.prot]!, flags, fd, o.fd === undefined ? 0 : size(o.offset));
    result(run, 'mmap', a, o.as);
  } else if ('munmap' in op) {
    sys.munmap(addr(op.munmap.addr, vars), size(op.munmap.length));
  } else if ('mremap' in op) {
    const o = op.mremap;
    let flags = o.maymove ? MREMAP_MAYMOVE : 0;
    if (o.to !== undefined) flags |= MREMAP_FIXED;
    if (o.dontunmap) flags |= MREMAP_DONTUNMAP;
    const to = o.to === undefined ? 0 : addr(o.to, vars);
    result(run, 'mremap', sys.mremap(addr(o.addr, vars), size(o.length), size(o.newLength), flags, to), o.as);
  } else if ('msync' in op) {
    const o = op.msync;
    result(run, 'msync', sys.msync(addr(o.addr, vars), size(o.length), MSYNC_MODES[o.mode]), undefined);
  } else if ('mprotect' in op) {
    sys.mprotect(addr(op.mprotect.addr, vars), size(op.mprotect.length), PROTS[op.mprotect.prot]!);
  } else if ('madvise' in op) {
    sys.madvise(addr(op.madvise.addr, vars), size(op.madvise.length), ADVICE[op.madvise.advice]!);
  } else if ('open' in op) {
    const o = op.open;
    let flags: number = OPEN_MODES[o.mode];
    if (o.create) flags |= O_CREAT;
    if (o.truncate) flags |= O_TRUNC;
    if (o.append) flags |= O_APPEND;
    result(run, `open ${o.path}`, sys.open(o.path, flags, 0o644), o.as);
  } else if ('read' in op || 'write' in op) {
    const o = 'read' in op ? op.read : op.write;
    const what = 'read' in op ? 'read' : 'write';
    const fd = addr(o.fd, vars);
    const at = addr(o.addr, vars);
    const len = addr(o.length, vars); // a size, or a variable (the count an earlier read returned)
    let n: number;
    if (o.offset === undefined) n = what === 'read' ? sys.read(fd, at, len) : sys.write(fd, at, len);
    else
      n =
        what === 'read'
          ? sys.pread64(fd, at, len, size(o.offset))
          : sys.pwrite64(fd, at, len, size(o.offset));
    result(run, what, n, o.as);
  } else if ('fsync' in op) {
    result(run, 'fsync', sys.fsync(addr(op.fsync, vars)), undefined);
  } else if ('ftruncate' in op) {
    result(
      run,
      'ftruncate',
      sys.ftruncate(addr(op.ftruncate.fd, vars), size(op.ftruncate.length)),
      undefined,
    );
  } else if ('close' in op) {
    result(run, 'close', sys.close(addr(op.close, vars)), undefined);
  } else if ('unlink' in op) {
    result(run, `unlink ${op.unlink}`, sys.unlink(op.unlink), undefined);
  } else if ('malloc' in op) {
    setVar(run, op.malloc.as, mallocOf(run).malloc(size(op.malloc.size)), 'heap');
  } else if ('calloc' in op) {
    setVar(run, op.calloc.as, mallocOf(run).calloc(op.calloc.count, size(op.calloc.size)), 'heap');
  } else if ('realloc' in op) {
    const o = op.realloc;
    setVar(run, o.as, mallocOf(run).realloc(addr(o.addr, vars), size(o.size)), 'heap');
  } else if ('free' in op) {
    mallocOf(run).free(addr(op.free, vars));
  } else if ('sbrk' in op) {
    const inc =
      typeof op.sbrk.increment === 'number'
        ? op.sbrk.increment
        : (parseSize(op.sbrk.increment.replace(/^-/, '')) ?? 0) *
          (op.sbrk.increment.startsWith('-') ? -1 : 1);
    const old = sys.brk(0);
    sys.brk(old + inc);
    if (op.sbrk.as !== undefined) setVar(run, op.sbrk.as, old);
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
    // The child's memory is a copy of the parent's: the same slots hold the same values.
    const state = { vars: new Map(vars), slots: new Map(run.slots) };
    sys.fork((child) => runScript(child, childOps, state, hz, run.options));
  } else if ('wait' in op) {
    yield* sys.wait4(-1, 0, 0);
  } else if ('exec' in op) {
    sys.execve(op.exec.program, [op.exec.program, ...op.exec.args.map(String)]);
  } else if ('sleep' in op) {
    yield* sys.nanosleep((parseTime(op.sleep, hz)! / hz) * 1e9);
  } else if ('compute' in op) {
    cpu.compute(parseTime(op.compute, hz)!);
  } else if ('print' in op) {
    writeText(ctx, op.print, 1);
  } else if ('repeat' in op) {
    for (let i = 0; i < op.repeat.times; i++) yield* runOps(run, op.repeat.ops);
  } else if ('exit' in op) {
    throw new ScriptExit(op.exit);
  }
}

/** Write a line to stdout (1) or stderr (2) through a scratch page mapped for the purpose. */
function writeText(ctx: UserContext, text: string, fd: 1 | 2): void {
  const bytes = new TextEncoder().encode(`${text}\n`);
  const len = Math.max(bytes.length, 1);
  const a = ctx.sys.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a < 0) return;
  ctx.cpu.storeBytes(a, bytes);
  ctx.sys.write(fd, a, bytes.length);
  ctx.sys.munmap(a, len);
}
