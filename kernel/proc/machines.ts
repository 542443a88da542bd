/**
 * The state machines that are the single source of truth for process and kernel state
 * (xstate v5). They see only coarse events (a dispatch, a block, an exit: a few per context
 * switch); nothing per memory access goes through them.
 *
 * Process lifecycle:
 *   new --ADMIT--> ready --DISPATCH--> running --PREEMPT/YIELD--> ready
 *   running --BLOCK_IO/BLOCK_WAIT/BLOCK_SLEEP--> blocked.{io,wait,sleep} --WAKE--> ready
 *   running --EXIT--> zombie;  new/ready/running/blocked --KILL--> zombie;  zombie --REAP--> reaped
 *
 * Kernel (the scheduler's own state):
 *   booting --BOOTED--> running --NOTHING_READY [no live task, no pending event]--> halted
 *   running --NOTHING_READY [otherwise]--> idle --TASK_READY--> running
 *   idle --NOTHING_READY [no live task, no pending event]--> halted;  booting/running/idle --PANIC--> panic
 */
import { assign, setup } from 'xstate';

export type BlockReason = 'io' | 'wait' | 'sleep';

export interface ProcessContext {
  pid: number;
  exitCode: number | null;
  signal: number | null;
  dispatches: number;
}

export type ProcessEvent =
  | { type: 'ADMIT' }
  | { type: 'DISPATCH' }
  | { type: 'PREEMPT' }
  | { type: 'YIELD' }
  | { type: 'BLOCK_IO' }
  | { type: 'BLOCK_WAIT' }
  | { type: 'BLOCK_SLEEP' }
  | { type: 'WAKE' }
  | { type: 'EXIT'; code: number }
  | { type: 'KILL'; signal: number }
  | { type: 'REAP' };

export const processMachine = setup({
  types: {
    context: {} as ProcessContext,
    events: {} as ProcessEvent,
    input: {} as { pid: number },
  },
  actions: {
    countDispatch: assign({ dispatches: ({ context }) => context.dispatches + 1 }),
    recordExit: assign({
      exitCode: ({ event }) => (event.type === 'EXIT' ? event.code & 0xff : null),
    }),
    recordKill: assign({
      signal: ({ event }) => (event.type === 'KILL' ? event.signal : null),
    }),
  },
}).createMachine({
  id: 'process',
  context: ({ input }) => ({ pid: input.pid, exitCode: null, signal: null, dispatches: 0 }),
  initial: 'new',
  states: {
    new: {
      on: {
        ADMIT: 'ready',
        KILL: { target: 'zombie', actions: 'recordKill' },
      },
    },
    ready: {
      on: {
        DISPATCH: { target: 'running', actions: 'countDispatch' },
        KILL: { target: 'zombie', actions: 'recordKill' },
      },
    },
    running: {
      on: {
        PREEMPT: 'ready',
        YIELD: 'ready',
        BLOCK_IO: 'blocked.io',
        BLOCK_WAIT: 'blocked.wait',
        BLOCK_SLEEP: 'blocked.sleep',
        EXIT: { target: 'zombie', actions: 'recordExit' },
        KILL: { target: 'zombie', actions: 'recordKill' },
      },
    },
    blocked: {
      initial: 'io',
      states: { io: {}, wait: {}, sleep: {} },
      on: {
        WAKE: 'ready',
        KILL: { target: 'zombie', actions: 'recordKill' },
      },
    },
    zombie: {
      on: { REAP: 'reaped' },
    },
    reaped: { type: 'final' },
  },
});

export interface KernelContext {
  panicMessage: string | null;
  idleEntries: number;
}

export type KernelEvent =
  | { type: 'BOOTED' }
  | { type: 'NOTHING_READY'; liveTasks: number; pendingEvents?: number }
  | { type: 'TASK_READY' }
  | { type: 'PANIC'; message: string };

export const kernelMachine = setup({
  types: {
    context: {} as KernelContext,
    events: {} as KernelEvent,
  },
  guards: {
    // Nothing will ever run again: no live process and no pending event (a delayed start, I/O).
    noLiveTasks: ({ event }) =>
      event.type === 'NOTHING_READY' && event.liveTasks === 0 && (event.pendingEvents ?? 0) === 0,
  },
  actions: {
    countIdle: assign({ idleEntries: ({ context }) => context.idleEntries + 1 }),
    recordPanic: assign({
      panicMessage: ({ event }) => (event.type === 'PANIC' ? event.message : null),
    }),
  },
}).createMachine({
  id: 'kernel',
  context: { panicMessage: null, idleEntries: 0 },
  initial: 'booting',
  states: {
    booting: {
      on: {
        BOOTED: 'running',
        PANIC: { target: 'panic', actions: 'recordPanic' },
      },
    },
    running: {
      on: {
        NOTHING_READY: [
          { guard: 'noLiveTasks', target: 'halted' },
          { target: 'idle', actions: 'countIdle' },
        ],
        PANIC: { target: 'panic', actions: 'recordPanic' },
      },
    },
    idle: {
      on: {
        TASK_READY: 'running',
        NOTHING_READY: { guard: 'noLiveTasks', target: 'halted' },
        PANIC: { target: 'panic', actions: 'recordPanic' },
      },
    },
    halted: { type: 'final' },
    panic: { type: 'final' },
  },
});

/** Process states as flat names (blocked states as 'blocked.io' etc.). */
export type ProcessStateName =
  | 'new'
  | 'ready'
  | 'running'
  | 'blocked.io'
  | 'blocked.wait'
  | 'blocked.sleep'
  | 'zombie'
  | 'reaped';
