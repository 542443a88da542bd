/**
 * Scheduling policies: which ready task runs next. The run loop (kernel.ts) asks the policy;
 * the policy keeps only its queue. Round-robin is the default; a priority or MLFQ policy
 * implements the same interface.
 *
 *   every task in the queue is in state 'ready', and appears once
 */
import type { Task } from './task.ts';

export interface SchedPolicy {
  readonly name: string;
  /** A task became ready (admitted, preempted, yielded, woken). */
  enqueue(task: Task, reason: 'admit' | 'preempt' | 'yield' | 'wake'): void;
  /** The next task to run, removed from the queue; undefined when none is ready. */
  pickNext(): Task | undefined;
  /** Drop a task that ends while queued. */
  remove(task: Task): void;
  /** Ready tasks, in the order they would run. */
  queued(): readonly Task[];
}

/** Round-robin: first come, first served; a preempted task goes to the back. */
export class RoundRobin implements SchedPolicy {
  readonly name = 'round-robin';
  private readonly queue: Task[] = [];

  enqueue(task: Task): void {
    this.queue.push(task);
  }

  pickNext(): Task | undefined {
    return this.queue.shift();
  }

  remove(task: Task): void {
    const i = this.queue.indexOf(task);
    if (i >= 0) this.queue.splice(i, 1);
  }

  queued(): readonly Task[] {
    return this.queue;
  }
}
