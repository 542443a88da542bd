/**
 * A block device backed by a real host file (the swap file, file images).
 *
 * Requests are served first-in first-out by one device: a request starts when the previous
 * one has finished (or now, if the device is idle) and takes the profile's latency plus its
 * transfer time. Its completion is an event on the emulated clock.
 *
 * The host I/O itself happens when the request is submitted, in submission order, so the bytes
 * a read returns are those of every write submitted before it; the completion event is when
 * the emulated machine may use them. The host file is created sparse (ftruncate), so a large
 * swap area costs host disk only for the blocks written.
 *
 *   busyUntil >= now of the last submission;  completions fire in submission order
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import type { Clock } from './clock.ts';

export type DiskProfileName = 'ram' | 'nvme' | 'ssd' | 'hdd';

export interface DiskProfile {
  name: DiskProfileName;
  /** Fixed cost of a read (seek, rotation, controller) in microseconds. */
  readLatencyUs: number;
  /** Fixed cost of a write in microseconds. */
  writeLatencyUs: number;
  /** Sustained transfer rate. */
  bytesPerSecond: number;
}

export const DISK_PROFILES: Readonly<Record<DiskProfileName, DiskProfile>> = {
  ram: { name: 'ram', readLatencyUs: 1, writeLatencyUs: 1, bytesPerSecond: 10e9 },
  nvme: { name: 'nvme', readLatencyUs: 20, writeLatencyUs: 30, bytesPerSecond: 3e9 },
  ssd: { name: 'ssd', readLatencyUs: 100, writeLatencyUs: 200, bytesPerSecond: 500e6 },
  hdd: { name: 'hdd', readLatencyUs: 8000, writeLatencyUs: 8000, bytesPerSecond: 150e6 },
};

export type DiskOp = 'read' | 'write';

export interface DiskRequest {
  op: DiskOp;
  /** Byte offset on the device; a multiple of blockBytes. */
  offsetBytes: number;
  /** Data to write, or the buffer a read fills; its length is a multiple of blockBytes. */
  buffer: Uint8Array;
  /** Called at the completion time, from the clock's event loop. */
  onComplete?: (now: number) => void;
}

export interface DiskOptions {
  /**
   * Host file backing the device: created if missing, extended (sparsely) to sizeBytes. Null
   * for a device whose data its users move themselves (the file system: each file in the
   * sandbox is a host file of its own), which then only queues and times requests (`queue`).
   */
  path: string | null;
  sizeBytes: number;
  blockBytes?: number;
  profile: DiskProfileName;
  clock: Clock;
  /** Remove the host file when the device is closed (scratch swap files). */
  deleteOnClose?: boolean;
}

export class DiskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskError';
  }
}

export class BlockDevice {
  readonly path: string;
  /** False for a timing-only device (no backing file). */
  readonly hasBackingFile: boolean;
  readonly sizeBytes: number;
  readonly blockBytes: number;
  readonly profile: DiskProfile;
  private readonly clock: Clock;
  private readonly deleteOnClose: boolean;
  private fd: number;
  /** Time the device finishes its last queued request. */
  private busyUntil = 0;

  // Counters.
  reads = 0;
  writes = 0;
  bytesRead = 0;
  bytesWritten = 0;
  /** Requests submitted and not yet completed. */
  inFlight = 0;
  /** Cycles the device spent serving requests. */
  busyCycles = 0;

  constructor(options: DiskOptions) {
    const blockBytes = options.blockBytes ?? 512;
    if (!Number.isInteger(blockBytes) || blockBytes < 1 || (blockBytes & (blockBytes - 1)) !== 0) {
      throw new DiskError(`disk.blockBytes: ${blockBytes} is not a power of two`);
    }
    if (
      !Number.isInteger(options.sizeBytes) ||
      options.sizeBytes < 0 ||
      options.sizeBytes % blockBytes !== 0
    ) {
      throw new DiskError(
        `disk.sizeBytes: ${options.sizeBytes} is not a whole number of ${blockBytes}-byte blocks`,
      );
    }
    this.path = options.path ?? '(no backing file)';
    this.hasBackingFile = options.path !== null;
    this.sizeBytes = options.sizeBytes;
    this.blockBytes = blockBytes;
    this.profile = DISK_PROFILES[options.profile];
    if (this.profile === undefined) throw new DiskError(`disk.profile: unknown profile '${options.profile}'`);
    this.clock = options.clock;
    this.deleteOnClose = options.deleteOnClose ?? false;
    this.fd = -1;
    if (options.path === null) return;
    try {
      closeSync(openSync(options.path, 'a+'));
      this.fd = openSync(options.path, 'r+');
      if (fstatSync(this.fd).size < options.sizeBytes) ftruncateSync(this.fd, options.sizeBytes);
    } catch (err) {
      if (this.fd >= 0) closeSync(this.fd);
      throw new DiskError(`${options.path}: cannot open the disk's backing file: ${(err as Error).message}`);
    }
  }

  /**
   * Cycles a request of `bytes` bytes takes once the device starts it: latency plus transfer,
   * rounded up. Computed in cycles, not seconds, so that a whole number of cycles stays exact
   * (100 us + 4096 B at 500 MB/s at 1 GHz is 108192 cycles, not 108193).
   */
  serviceCycles(op: DiskOp, bytes: number): number {
    const latencyUs = op === 'read' ? this.profile.readLatencyUs : this.profile.writeLatencyUs;
    const hz = this.clock.hz;
    return Math.ceil((latencyUs * hz) / 1e6 + (bytes * hz) / this.profile.bytesPerSecond);
  }

  /**
   * Queue a request. The host I/O happens now; the completion fires at the returned time
   * (cycles), after every request submitted before it.
   */
  submit(request: DiskRequest): number {
    this.transfer(request.op, request.offsetBytes, request.buffer);
    return this.queue(request.op, request.buffer.length, request.onComplete, request.offsetBytes);
  }

  /**
   * Queue a request of `bytes` whose data the caller moves itself (a timing-only device):
   * it waits behind every earlier request and completes at the returned time (cycles).
   */
  queue(op: DiskOp, bytes: number, onComplete?: (now: number) => void, offsetBytes = 0): number {
    if (!this.hasBackingFile) {
      if (op === 'read') {
        this.reads++;
        this.bytesRead += bytes;
      } else {
        this.writes++;
        this.bytesWritten += bytes;
      }
    }
    const start = Math.max(this.clock.now, this.busyUntil);
    const service = this.serviceCycles(op, bytes);
    const done = start + service;
    this.busyUntil = done;
    this.busyCycles += service;
    this.inFlight++;
    this.clock.schedule(done, `disk ${op} @${offsetBytes}`, (now) => {
      this.inFlight--;
      onComplete?.(now);
    });
    return done;
  }

  /** Read at once, outside emulated time (boot, tools). Counted like any read. */
  readNow(offsetBytes: number, buffer: Uint8Array): void {
    this.transfer('read', offsetBytes, buffer);
  }

  /** Write at once, outside emulated time (boot, tools). Counted like any write. */
  writeNow(offsetBytes: number, buffer: Uint8Array): void {
    this.transfer('write', offsetBytes, buffer);
  }

  /** Close the backing file (and remove it when asked to). Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    if (this.deleteOnClose) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }

  private transfer(op: DiskOp, offsetBytes: number, buffer: Uint8Array): void {
    if (this.fd < 0) throw new DiskError(`${this.path}: ${op} on a closed disk`);
    const len = buffer.length;
    if (!Number.isInteger(offsetBytes) || offsetBytes < 0 || offsetBytes % this.blockBytes !== 0) {
      throw new DiskError(`${this.path}: ${op} at offset ${offsetBytes} is not block-aligned`);
    }
    if (len % this.blockBytes !== 0 || offsetBytes + len > this.sizeBytes) {
      throw new DiskError(
        `${this.path}: ${op} of ${len} bytes at ${offsetBytes} runs past the device or a block`,
      );
    }
    if (op === 'read') {
      let done = 0;
      while (done < len) {
        const n = readSync(this.fd, buffer, done, len - done, offsetBytes + done);
        if (n === 0) {
          buffer.fill(0, done);
          break;
        }
        done += n;
      }
      this.reads++;
      this.bytesRead += len;
    } else {
      let done = 0;
      while (done < len) done += writeSync(this.fd, buffer, done, len - done, offsetBytes + done);
      this.writes++;
      this.bytesWritten += len;
    }
  }
}
