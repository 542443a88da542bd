/**
 * The structured event log: pino JSON lines, one child logger per subsystem (kernel, mm,
 * reclaim, swap, oom, writeback, syscall) and per process. Every line carries the emulated time:
 * `time` in milliseconds since boot (so `pino-pretty -t UTC:HH:MM:ss.l` prints it as a clock
 * that starts at 00:00:00.000) and `cycles`; never the host's clock, so one seed gives one log.
 *
 * Levels: info for process lifecycle, signals, OOM kills, reclaim passes and one page fault in
 * FAULT_SAMPLE; debug for every page fault, swap-in and swap-out and every system call
 * (high-rate: off unless asked for). Hot paths test the cached booleans `faults`, `swapPages`
 * and `syscalls` instead of calling the logger.
 */
import pino from 'pino';

export type EventLevel = 'info' | 'debug' | 'trace';

/** At info level, one page fault in this many is logged (with `sampled: FAULT_SAMPLE`). */
export const FAULT_SAMPLE = 1024;

export class EventLog {
  readonly root: pino.Logger;
  /** Log every page fault (debug); otherwise one in FAULT_SAMPLE. */
  readonly faults: boolean;
  /** Log every swap-in and swap-out (debug). */
  readonly swapPages: boolean;
  /** Log every system call (debug). */
  readonly syscalls: boolean;
  private readonly children = new Map<string, pino.Logger>();
  private readonly destination: pino.DestinationStream & { flushSync?: () => void; end?: () => void };

  /** `now` is the emulated time in cycles, `hz` the CPU frequency. */
  constructor(options: { path: string; level: EventLevel; now: () => number; hz?: number }) {
    const msPerCycle = 1000 / (options.hz ?? 1e9);
    this.destination = pino.destination({ dest: options.path, sync: true, append: false, mkdir: true });
    this.root = pino(
      {
        level: options.level,
        base: undefined,
        timestamp: () => {
          const cycles = options.now();
          return `,"time":${Math.round(cycles * msPerCycle * 1e6) / 1e6},"cycles":${cycles}`;
        },
        formatters: { level: (label) => ({ level: label }) },
      },
      this.destination,
    );
    this.faults = this.root.isLevelEnabled('debug');
    this.swapPages = this.faults;
    this.syscalls = this.faults;
  }

  /** The logger of a subsystem ('kernel', 'reclaim', 'swap', 'oom', 'writeback', …). */
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
