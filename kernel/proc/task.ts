/**
 * A task (Linux's task_struct): one process. Its lifecycle state lives in its xstate actor
 * (processMachine), which is the single source of truth: `state` reads it. The fields here are
 * the rest of the process: its address space, its program, its counters.
 *
 * A task exists only while its task_struct slab object does (KernelObject).
 */
import { type Actor, createActor } from 'xstate';
import type { FdTable } from '../fs/fdtable.ts';
import { type KernelCaches, KernelObject, SlabRef } from '../mm/kobjects.ts';
import type { AddressSpace } from '../mm/mm.ts';
import type { MemoryGroup } from '../mm/reclaim.ts';
import { type ProcessEvent, type ProcessStateName, processMachine } from './machines.ts';
import type { GcReport, UserContext } from './uapi.ts';

export type TaskProgram = Generator<void, number | undefined, void>;

/** How many GC pauses a task keeps for /proc/PID/gc and the report (the oldest go first). */
export const GC_PAUSES_KEPT = 4096;

export class Task extends KernelObject {
  readonly pid: number;
  ppid: number;
  /** Command name (comm), at most 15 characters as in Linux. */
  comm: string;
  mm: AddressSpace | null = null;
  /** Open files (descriptor table); null once the process has exited. */
  files: FdTable | null = null;
  program: TaskProgram | null = null;
  /** The environment (envp), shared read-only with forked children. */
  env: Readonly<Record<string, string>> = {};
  /** The program counter, as an offset into the text (see Kernel.fetchInstruction). */
  textOffset = 0;
  ctx: UserContext | null = null;
  readonly actor: Actor<typeof processMachine>;

  /** Set by a syscall or fault that must sleep: the task blocks at its next yield. */
  blockOn: 'io' | 'wait' | 'sleep' | null = null;
  /** Set by sched_yield: the task goes to the back of the run queue at its next yield. */
  yieldRequested = false;
  /** Time its pending I/O completes (cycles), when blockOn === 'io'. */
  ioDoneAt = 0;

  /**
   * Set when the task has been killed while running (the kill travels as an exception through
   * its program; a program that catches it still dies at its next instruction boundary).
   */
  pendingEnd: number | null = null;
  /** Exit status as wait() reports it, once the task is a zombie. */
  waitStatus = 0;
  children: Task[] = [];
  oomScoreAdj = 0;
  /** A kernel thread (kswapd): no address space, not counted among live processes. */
  kernelThread = false;
  /** Resident limit in pages for local replacement (0: none). */
  residentLimitPages = 0;
  /** The memory group (cgroup-like limit) this process belongs to. */
  group: MemoryGroup | null = null;

  /** The managed runtime's last vmlab_gc_report (null when the program has none). */
  gc: GcReport | null = null;
  /** Pause lengths (ns) and their end times (cycles), one per report, the latest GC_PAUSES_KEPT. */
  gcPausesNs: number[] = [];
  gcPauseTimes: number[] = [];

  minFlt = 0;
  majFlt = 0;
  cminFlt = 0;
  cmajFlt = 0;
  /** CPU cycles spent running. */
  cpuCycles = 0;
  startTime = 0;
  endTime = -1;
  /** Peak resident set (pages), kept after the address space is gone. */
  peakRssPages = 0;
  /** Swap entries the process held when it ended. */
  swapPagesAtEnd = 0;
  /** Captured stdout and stderr. */
  stdout = '';
  stderr = '';

  private constructor(ref: SlabRef, pid: number, ppid: number, comm: string) {
    super(ref);
    this.pid = pid;
    this.ppid = ppid;
    this.comm = comm.slice(0, 15);
    this.actor = createActor(processMachine, { input: { pid } });
    this.actor.start();
  }

  /** A new task in state `new`, or null when no task_struct can be allocated. */
  static create(caches: KernelCaches, pid: number, ppid: number, comm: string): Task | null {
    const ref = SlabRef.alloc(caches.task, { contents: 'zeroed' });
    return ref === null ? null : new Task(ref, pid, ppid, comm);
  }

  /** The lifecycle state, read from the actor. */
  get state(): ProcessStateName {
    const v = this.actor.getSnapshot().value;
    return (typeof v === 'string' ? v : `blocked.${(v as { blocked: string }).blocked}`) as ProcessStateName;
  }

  /** Send a lifecycle event; panics-free: an event the state does not accept is a kernel bug, reported by the caller. */
  send(event: ProcessEvent): boolean {
    const before = this.actor.getSnapshot();
    this.actor.send(event);
    // An event the state does not accept leaves the snapshot as it was (xstate ignores it).
    return this.actor.getSnapshot() !== before;
  }

  isAlive(): boolean {
    const s = this.state;
    return s !== 'zombie' && s !== 'reaped';
  }
}
