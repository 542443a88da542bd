/**
 * A small booted machine for kernel tests: inline test programs (UserMain generators) are
 * registered under made-up paths and found by a custom ProgramLoader, so a test can spawn them,
 * execve them and run the machine to the end or a step at a time.
 *
 *   const m = bootTestMachine({ memoryMiB: 16 });
 *   const [t] = runPrograms(m, [function* ({ sys, cpu }) { ...; yield; return 0; }]);
 *   expect(t.waitStatus).toBe(0);
 */
import { type BootedMachine, type BootOptions, bootKernel, buildMachine } from '../../kernel/boot/machine.ts';
import type { KernelTunables } from '../../kernel/proc/kernel.ts';
import type { Task } from '../../kernel/proc/task.ts';
import type { ProgramImage, UserContext, UserMain } from '../../kernel/proc/uapi.ts';

export const PAGE = 4096;

export interface TestMachineOptions {
  /** Emulated RAM in MiB (default 32). */
  memoryMiB?: number;
  /** Paging format preset (default x86-64). */
  format?: string;
  seed?: number;
  tunables?: Partial<KernelTunables>;
  /** Swap area size in MiB (default none). */
  swapMiB?: number;
  policy?: BootOptions['policy'];
  asidBits?: number;
  /** The files processes see (BootOptions.files): a host folder, copied unless writeThrough. */
  files?: BootOptions['files'];
}

export interface TestMachine extends BootedMachine {
  /** Register `main` under `path` (for execve) and return the path. */
  register(main: UserMain, path?: string): string;
  /** Register and spawn `main` as a new process (a child of init). Throws when spawn fails. */
  start(main: UserMain, options?: { name?: string }): Task;
  /** Run until every process has ended, then check every invariant. */
  runToEnd(): void;
  /** The last kernel log line ('' when the log is empty). */
  lastLog(): string;
}

/** Boot a machine whose loader finds the programs registered with `register`/`start`. */
export function bootTestMachine(options: TestMachineOptions = {}): TestMachine {
  const programs = new Map<string, UserMain>();
  const machine = buildMachine({
    memoryBytes: (options.memoryMiB ?? 32) * 1024 * 1024,
    format: options.format ?? 'x86-64',
    seed: options.seed ?? 0,
    ...(options.asidBits === undefined ? {} : { asidBits: options.asidBits }),
  });
  const booted = bootKernel(machine, {
    loader: (path): ProgramImage | undefined => {
      const main = programs.get(path);
      return main === undefined
        ? undefined
        : { path, main, textBytes: 8192, dataBytes: 4096, bssBytes: 4096 };
    },
    // No instruction fetches unless a test asks (fetchStrideBytes): a test of one concept keeps
    // its exact faults and timing, and text pages stay out of the page cache.
    tunables: { fetchStrideBytes: 0, ...options.tunables },
    policy: options.policy,
    swap: options.swapMiB === undefined ? undefined : { bytes: options.swapMiB * 1024 * 1024 },
    files: options.files,
  });
  let n = 0;
  const register = (main: UserMain, path?: string): string => {
    const p = path ?? `/bin/t${n++}`;
    programs.set(p, main);
    return p;
  };
  const start = (main: UserMain, opts: { name?: string } = {}): Task => {
    const path = register(main, opts.name === undefined ? undefined : `/bin/${opts.name}`);
    const t = booted.kernel.spawn(path, [path]);
    if (typeof t === 'number') throw new Error(`spawn ${path}: ${t}`);
    return t;
  };
  const runToEnd = (): void => {
    booted.kernel.run();
    booted.kernel.checkInvariants();
  };
  const lastLog = (): string => booted.kernel.log.at(-1)?.text ?? '';
  return Object.assign(booted, { register, start, runToEnd, lastLog });
}

/** Spawn every program, run the machine until all have ended, check invariants; the tasks. */
export function runPrograms(m: TestMachine, mains: UserMain[]): Task[] {
  const tasks = mains.map((main) => m.start(main));
  m.runToEnd();
  return tasks;
}

/** Run one program on a fresh machine. */
export function runOne(
  body: (ctx: UserContext) => Generator<void, number | undefined, void>,
  options: TestMachineOptions = {},
): { m: TestMachine; t: Task } {
  const m = bootTestMachine(options);
  const [t] = runPrograms(m, [body]);
  return { m, t: t! };
}

/** Give back every empty slab and every per-CPU page, so that free pages can be compared. */
export function settleFreePages(m: BootedMachine): number {
  for (const c of m.slab.caches()) c.shrink();
  m.buddy.drainPcp();
  return m.buddy.freePages();
}

/** The lines of /proc/PID/maps-like data for the process, as [start, end, prot] triples. */
export function mapsOf(task: Task): Array<[number, number, number]> {
  const mm = task.mm;
  if (mm === null) return [];
  return mm.vmas.all().map((v) => [v.start, v.end, v.flags & 7]);
}
