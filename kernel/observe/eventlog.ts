/**
 * The structured event log: pino JSON lines, one child logger per subsystem (kernel, mm, swap,
 * oom, sched) and per process, each line stamped with the emulated time in cycles (`time`) and
 * never with the host's clock, so that one seed gives one log. `pino-pretty` reads the file.
 *
 * Levels: info for process lifecycle, OOM kills, signals and reclaim passes; debug for every
 * page fault, swap-in and swap-out (high-rate: off unless asked for). Hot paths test the
 * cached booleans `faults` and `swapPages` instead of calling the logger.
 */
import pino from 'pino';

export type EventLevel = 'info' | 'debug' | 'trace';

export class EventLog {
  readonly root: pino.Logger;
  /** Log every page fault (debug). */
  readonly faults: boolean;
  /** Log every swap-in and swap-out (debug). */
  readonly swapPages: boolean;
  private readonly children = new Map<string, pino.Logger>();
  private readonly destination: pino.DestinationStream & { flushSync?: () => void; end?: () => void };

  constructor(options: { path: string; level: EventLevel; now: () => number }) {
    this.destination = pino.destination({ dest: options.path, sync: true, append: false, mkdir: true });
    this.root = pino(
      {
        level: options.level,
        base: undefined,
        timestamp: () => `,"time":${options.now()}`,
        formatters: { level: (label) => ({ level: label }) },
      },
      this.destination,
    );
    this.faults = this.root.isLevelEnabled('debug');
    this.swapPages = this.faults;
  }

  /** The logger of a subsystem ('kernel', 'mm', 'swap', 'oom', 'sched'). */
  subsystem(name: string): pino.Logger {
    let c = this.children.get(name);
    if (c === undefined) {
      c = this.root.child({ sub: name });
      this.children.set(name, c);
    }
    return c;
  }

  /** The logger of a process. */
  process(pid: number, comm: string): pino.Logger {
    const key = `pid:${pid}`;
    let c = this.children.get(key);
    if (c === undefined) {
      c = this.root.child({ sub: 'proc', pid, comm });
      this.children.set(key, c);
    }
    return c;
  }

  close(): void {
    this.destination.flushSync?.();
    this.destination.end?.();
  }
}
