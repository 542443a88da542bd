/**
 * `vmlab run --step`: run a workload a step at a time. A step ends at the next clock event (a
 * disk completion, a timer, a process start) or after one scheduler quantum, whichever comes
 * first; after each step one line shows the time, who runs and who waits, free memory and what
 * happened in the step. On a terminal the run waits for a key after each step (Enter: one
 * step, c: run to the end, q: stop here); otherwise it prints every step and goes on.
 */
import { createInterface } from 'node:readline/promises';
import type { Kernel } from '../proc/kernel.ts';
import type { BootedMachine } from './machine.ts';

export interface StepOptions {
  /** Stop at this emulated time (cycles). */
  untilCycles?: number;
  /** Where the step lines go. */
  write: (line: string) => void;
  /** Wait for a key between steps (a terminal on stdin). */
  interactive: boolean;
}

/** Counters a step line shows the change of. */
interface Counts {
  faults: number;
  major: number;
  swapIn: number;
  swapOut: number;
  switches: number;
}

function counts(k: Kernel): Counts {
  const e = k.events;
  return {
    faults: e.pgfault,
    major: e.pgmajfault,
    swapIn: e.pswpin,
    swapOut: e.pswpout,
    switches: e.context_switches,
  };
}

/** One step line: time, kernel state, processes by state, free pages, the step's events. */
export function stepLine(m: BootedMachine, step: number, before: Counts): string {
  const k = m.kernel;
  const now = counts(k);
  const byState = new Map<string, number[]>();
  for (const t of k.tasks.values()) {
    if (t.kernelThread || !t.isAlive()) continue;
    const s = t.state.startsWith('blocked') ? t.state.replace('blocked.', '') : t.state;
    byState.set(s, [...(byState.get(s) ?? []), t.pid]);
  }
  const procs =
    [...byState.entries()].map(([s, pids]) => `${s} ${pids.join(',')}`).join('; ') || 'none alive';
  const next = m.clock.nextEventLabel();
  const delta =
    `faults +${now.faults - before.faults} (major +${now.major - before.major}), ` +
    `swap in +${now.swapIn - before.swapIn} out +${now.swapOut - before.swapOut}`;
  return (
    `step ${String(step).padStart(5)} [${((m.clock.now / m.clock.hz) * 1000).toFixed(3).padStart(10)} ms] ` +
    `${k.state.padEnd(7)} ${procs} | free ${m.buddy.freePages()} pages | ${delta}` +
    (next === undefined ? '' : ` | next: ${next}`)
  );
}

/** Run `m` step by step to its end (or untilCycles, or a q key). Returns the kernel state. */
export async function stepThrough(m: BootedMachine, options: StepOptions): Promise<string> {
  const k = m.kernel;
  const until = options.untilCycles ?? Number.POSITIVE_INFINITY;
  const rl = options.interactive ? createInterface({ input: process.stdin, output: process.stderr }) : null;
  let free = !options.interactive;
  try {
    for (let step = 1; k.state !== 'halted' && k.state !== 'panic' && m.clock.now < until; step++) {
      const before = counts(k);
      const target = Math.min(m.clock.nextEventTime(), m.clock.now + k.tunables.quantumCycles, until);
      k.run({ untilCycles: Math.max(target, m.clock.now + 1) });
      options.write(stepLine(m, step, before));
      if (free || rl === null) continue;
      const answer = (await rl.question('[Enter] step, c continue, q quit: ')).trim().toLowerCase();
      if (answer === 'q') break;
      if (answer === 'c') free = true;
    }
  } finally {
    rl?.close();
  }
  return k.state;
}
