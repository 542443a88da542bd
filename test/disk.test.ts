/**
 * The block device (kernel/hw/disk.ts): a sparse host file, requests served first-in
 * first-out with the profile's latency and transfer time, completions as clock events.
 * Expected times are worked by hand from the profile table, in cycles.
 */
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootWorkload, summarize } from '../kernel/boot/cmd-run.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import { Clock } from '../kernel/hw/clock.ts';
import { BlockDevice, DISK_PROFILES, DiskError, type DiskProfileName } from '../kernel/hw/disk.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-disk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let serial = 0;
/** A fresh device on its own host file. */
function device(
  profile: DiskProfileName,
  options: { sizeBytes?: number; hz?: number; blockBytes?: number; deleteOnClose?: boolean } = {},
): { d: BlockDevice; clock: Clock; path: string } {
  const clock = new Clock({ hz: options.hz ?? 1e9 });
  const path = join(dir, `disk${serial++}`);
  const d = new BlockDevice({
    path,
    sizeBytes: options.sizeBytes ?? 1 << 20,
    blockBytes: options.blockBytes,
    profile,
    clock,
    deleteOnClose: options.deleteOnClose,
  });
  return { d, clock, path };
}

/** `n` bytes of a pattern seeded by `seed`. */
function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

/** Bytes [offset, offset + n) of a host file, read with fs. */
function hostBytes(path: string, offset: number, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(n);
  readSync(fd, buf, 0, n, offset);
  closeSync(fd);
  return new Uint8Array(buf);
}

describe('the backing file', () => {
  it('is created sparse at the configured size', () => {
    const { d, path } = device('ssd', { sizeBytes: 1 << 30 });
    expect(statSync(path).size).toBe(1 << 30);
    expect(statSync(path).blocks * 512).toBeLessThan(1 << 20);
    d.close();
    expect(existsSync(path)).toBe(true); // kept: deleteOnClose was not asked for
  });

  it('is extended, never truncated, when it exists already; its data stays', () => {
    const path = join(dir, 'existing');
    writeFileSync(path, Buffer.from([1, 2, 3, 4]));
    const clock = new Clock({ hz: 1e9 });
    const d = new BlockDevice({ path, sizeBytes: 4096, profile: 'ram', clock });
    expect(statSync(path).size).toBe(4096);
    const back = new Uint8Array(512);
    d.readNow(0, back);
    expect([...back.subarray(0, 6)]).toEqual([1, 2, 3, 4, 0, 0]);
    d.close();
    const small = new BlockDevice({ path, sizeBytes: 1024, profile: 'ram', clock });
    expect(statSync(path).size).toBe(4096);
    small.close();
  });

  it('holds what was written: in the host file at once, and through a read', () => {
    const { d, clock, path } = device('nvme');
    const data = pattern(4096, 3);
    d.submit({ op: 'write', offsetBytes: 8192, buffer: data });
    // The host I/O happens at submission, before the completion event.
    expect(clock.now).toBe(0);
    expect(hostBytes(path, 8192, 4096)).toEqual(data);
    expect(hostBytes(path, 8192 - 512, 512)).toEqual(new Uint8Array(512));
    const back = new Uint8Array(4096);
    d.submit({ op: 'read', offsetBytes: 8192, buffer: back });
    expect(back).toEqual(data);
    // A read of blocks never written returns zeros, even into a dirty buffer.
    const fresh = new Uint8Array(1024).fill(0xee);
    d.readNow(65536, fresh);
    expect(fresh).toEqual(new Uint8Array(1024));
    d.close();
  });

  it('deleteOnClose removes the file; close is idempotent', () => {
    const { d, path } = device('ram', { deleteOnClose: true });
    expect(existsSync(path)).toBe(true);
    d.close();
    expect(existsSync(path)).toBe(false);
    expect(() => d.close()).not.toThrow();
  });

  it('writeNow then reopening the same path reads the same bytes', () => {
    const { d, path, clock } = device('ssd', { sizeBytes: 8192 });
    d.writeNow(4096, pattern(4096, 9));
    d.close();
    const again = new BlockDevice({ path, sizeBytes: 8192, profile: 'ssd', clock });
    const back = new Uint8Array(4096);
    again.readNow(4096, back);
    expect(back).toEqual(pattern(4096, 9));
    expect(readFileSync(path).subarray(4096)).toEqual(Buffer.from(pattern(4096, 9)));
    again.close();
  });
});

describe('service times', () => {
  it('are latency plus transfer, worked by hand from the profiles at 1 GHz', () => {
    // cycles = ceil(latencyUs * 1000 + bytes * 1e9 / bytesPerSecond)
    const cases: Array<[DiskProfileName, 'read' | 'write', number, number]> = [
      ['ram', 'read', 512, 1000 + 52], // 51.2 transfer cycles, rounded up
      ['nvme', 'write', 4096, 30_000 + 1366], // 4096 / 3 = 1365.33
      ['ssd', 'read', 4096, 100_000 + 8192], // exact: regression, was 108193
      ['ssd', 'write', 8192, 200_000 + 16_384], // exact: regression, was 216385
      ['ssd', 'read', 65536, 100_000 + 131_072], // exact: regression, was 231073
      ['hdd', 'write', 4096, 8_000_000 + 27_307], // 27306.67
      ['hdd', 'read', 0, 8_000_000],
    ];
    for (const [profile, op, bytes, cycles] of cases) {
      const { d } = device(profile, { deleteOnClose: true });
      expect(d.serviceCycles(op, bytes), `${profile} ${op} ${bytes}`).toBe(cycles);
      d.close();
    }
  });

  it('scale with the clock frequency', () => {
    const { d } = device('ssd', { hz: 2e9, deleteOnClose: true });
    expect(d.serviceCycles('read', 4096)).toBe(200_000 + 16_384);
    d.close();
  });

  it('the profile table is what the hand computations assume', () => {
    expect(DISK_PROFILES.ssd).toEqual({
      name: 'ssd',
      readLatencyUs: 100,
      writeLatencyUs: 200,
      bytesPerSecond: 500e6,
    });
    expect(DISK_PROFILES.hdd.readLatencyUs).toBe(8000);
    expect(DISK_PROFILES.hdd.bytesPerSecond).toBe(150e6);
  });
});

describe('first-in first-out completions', () => {
  it('start at max(now, busyUntil) and end latency + transfer later', () => {
    const { d, clock } = device('ssd', { deleteOnClose: true });
    clock.now = 1000;
    // Idle device: starts now.
    const a = d.submit({ op: 'write', offsetBytes: 0, buffer: new Uint8Array(4096) });
    expect(a).toBe(1000 + 200_000 + 8192);
    // Busy device: starts when the previous request ends.
    const b = d.submit({ op: 'read', offsetBytes: 0, buffer: new Uint8Array(512) });
    expect(b).toBe(a + 100_000 + 1024);
    const c = d.submit({ op: 'read', offsetBytes: 4096, buffer: new Uint8Array(4096) });
    expect(c).toBe(b + 100_000 + 8192);
    expect(d.inFlight).toBe(3);
    // Idle again after the queue drains: a new request starts at the later now.
    clock.runUntil(c + 50_000);
    expect(d.inFlight).toBe(0);
    const e = d.submit({ op: 'read', offsetBytes: 0, buffer: new Uint8Array(512) });
    expect(e).toBe(c + 50_000 + 100_000 + 1024);
    expect(d.busyCycles).toBe(a - 1000 + (b - a) + (c - b) + (e - c - 50_000));
    d.close();
  });

  it('fire in submission order, one event at a time, with advanceToNextEvent', () => {
    const { d, clock } = device('hdd', { deleteOnClose: true });
    const fired: Array<[string, number]> = [];
    const times: number[] = [];
    for (const [i, op] of (['write', 'read', 'write', 'read'] as const).entries()) {
      times.push(
        d.submit({
          op,
          offsetBytes: i * 4096,
          buffer: new Uint8Array(4096),
          onComplete: (now) => fired.push([`${op}${i}`, now]),
        }),
      );
    }
    // An unrelated event between the second and third completion fires between them.
    clock.schedule(times[1]! + 1, 'timer', (now) => fired.push(['timer', now]));
    expect(clock.pending()).toBe(5);
    const steps: number[] = [];
    while (clock.advanceToNextEvent()) steps.push(fired.length);
    expect(steps).toEqual([1, 2, 3, 4, 5]);
    expect(fired).toEqual([
      ['write0', times[0]],
      ['read1', times[1]],
      ['timer', times[1]! + 1],
      ['write2', times[2]],
      ['read3', times[3]],
    ]);
    expect(clock.now).toBe(times[3]);
    expect(d.inFlight).toBe(0);
    d.close();
  });

  it('runUntil fires exactly the completions due by then', () => {
    const { d, clock } = device('nvme', { deleteOnClose: true });
    const done: number[] = [];
    const t = [0, 1, 2].map((i) =>
      d.submit({
        op: 'read',
        offsetBytes: i * 512,
        buffer: new Uint8Array(512),
        onComplete: () => done.push(i),
      }),
    );
    clock.runUntil(t[1]! - 1);
    expect(done).toEqual([0]);
    expect(d.inFlight).toBe(2);
    clock.runUntil(t[1]!);
    expect(done).toEqual([0, 1]);
    clock.runUntil(t[2]! + 1000);
    expect(done).toEqual([0, 1, 2]);
    expect(clock.now).toBe(t[2]! + 1000);
    d.close();
  });
});

describe('refusals', () => {
  it('misaligned, partial-block and out-of-range requests are DiskErrors that schedule nothing', () => {
    const { d, clock } = device('ram', { sizeBytes: 8192, deleteOnClose: true });
    const bad: Array<[number, number, RegExp]> = [
      [100, 512, /write at offset 100 is not block-aligned/],
      [-512, 512, /not block-aligned/],
      [0.5, 512, /not block-aligned/],
      [0, 100, /write of 100 bytes at 0 runs past the device or a block/],
      [7680, 1024, /write of 1024 bytes at 7680 runs past the device/],
      [8192, 512, /runs past the device/],
    ];
    for (const [offset, length, message] of bad) {
      expect(() => d.submit({ op: 'write', offsetBytes: offset, buffer: new Uint8Array(length) })).toThrow(
        DiskError,
      );
      expect(() => d.writeNow(offset, new Uint8Array(length))).toThrow(message);
    }
    expect(() => d.readNow(8192, new Uint8Array(512))).toThrow(
      /read of 512 bytes at 8192 runs past the device/,
    );
    expect(d.inFlight).toBe(0);
    expect(clock.pending()).toBe(0);
    expect(d.writes + d.reads).toBe(0);
    // The last block is in range.
    d.writeNow(7680, new Uint8Array(512));
    d.close();
    expect(() => d.readNow(0, new Uint8Array(512))).toThrow(/read on a closed disk/);
    expect(() => d.submit({ op: 'write', offsetBytes: 0, buffer: new Uint8Array(512) })).toThrow(DiskError);
  });

  it('impossible geometry, unknown profiles and unopenable paths are DiskErrors', () => {
    const clock = new Clock({ hz: 1e9 });
    const at = (name: string): string => join(dir, name);
    expect(
      () => new BlockDevice({ path: at('g1'), sizeBytes: 4096, blockBytes: 500, profile: 'ram', clock }),
    ).toThrow(/disk\.blockBytes: 500 is not a power of two/);
    expect(() => new BlockDevice({ path: at('g2'), sizeBytes: 1000, profile: 'ram', clock })).toThrow(
      /disk\.sizeBytes: 1000 is not a whole number of 512-byte blocks/,
    );
    expect(
      () => new BlockDevice({ path: at('g3'), sizeBytes: 4096, profile: 'tape' as DiskProfileName, clock }),
    ).toThrow(/disk\.profile: unknown profile 'tape'/);
    expect(
      () => new BlockDevice({ path: join(dir, 'no', 'such', 'dir'), sizeBytes: 4096, profile: 'ram', clock }),
    ).toThrow(DiskError);
    expect(() => new BlockDevice({ path: dir, sizeBytes: 4096, profile: 'ram', clock })).toThrow(
      /cannot open the disk's backing file/,
    );
  });
});

describe('counters', () => {
  it('count requests, bytes, requests in flight and busy cycles', () => {
    const { d, clock } = device('ssd', { deleteOnClose: true });
    d.submit({ op: 'write', offsetBytes: 0, buffer: new Uint8Array(4096) });
    d.submit({ op: 'write', offsetBytes: 4096, buffer: new Uint8Array(1024) });
    d.submit({ op: 'read', offsetBytes: 0, buffer: new Uint8Array(2048) });
    d.readNow(0, new Uint8Array(512));
    d.writeNow(0, new Uint8Array(512));
    expect(d.writes).toBe(3);
    expect(d.reads).toBe(2);
    expect(d.bytesWritten).toBe(4096 + 1024 + 512);
    expect(d.bytesRead).toBe(2048 + 512);
    expect(d.inFlight).toBe(3);
    // Immediate I/O takes no emulated time.
    expect(d.busyCycles).toBe(200_000 + 8192 + (200_000 + 2048) + (100_000 + 4096));
    clock.runUntil(Number.MAX_SAFE_INTEGER);
    expect(d.inFlight).toBe(0);
    d.close();
  });
});

describe('programs from files and execve', () => {
  it('runs a TypeScript program file and a script that execs a built-in', async () => {
    const w = loadWorkload('test/fixtures/programs/exec.yaml');
    const run = await bootWorkload(w);
    run.m.kernel.run();
    run.m.shutdown();
    const s = summarize(run.m, w);
    const hello = s.processes.find((p) => p.name === 'hello')!;
    expect(hello.status).toBe('exited 5');
    expect(hello.stdout).toBe('hello from hello with 2 arguments\n');
    const shell = s.processes.find((p) => p.stdout.startsWith('before exec'))!;
    expect(shell.status).toBe('exited 0');
    expect(shell.name).toBe('touch'); // comm follows the exec
    expect(shell.stdout).not.toContain('never printed');
    expect(shell.minorFaults).toBeGreaterThanOrEqual(8);
  });
});
