import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootWorkload, summarize } from '../kernel/boot/cmd-run.ts';
import { loadWorkload } from '../kernel/boot/workload.ts';
import { Clock } from '../kernel/hw/clock.ts';
import { BlockDevice, DISK_PROFILES, DiskError } from '../kernel/hw/disk.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-disk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the block device', () => {
  it('is a sparse host file of the configured size; data written is data read, in the host file too', () => {
    const clock = new Clock({ hz: 1e9 });
    const path = join(dir, 'd1');
    const d = new BlockDevice({ path, sizeBytes: 1 << 30, profile: 'ssd', clock });
    expect(statSync(path).size).toBe(1 << 30);
    expect(statSync(path).blocks * 512).toBeLessThan(1 << 20); // sparse
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
    d.writeNow(8192, data);
    const back = new Uint8Array(4096);
    d.readNow(8192, back);
    expect(back).toEqual(data);
    const fd = openSync(path, 'r');
    const host = Buffer.alloc(16);
    readSync(fd, host, 0, 16, 8192 + 100);
    closeSync(fd);
    expect([...host]).toEqual([...data.subarray(100, 116)]);
    expect(d.writes).toBe(1);
    expect(d.reads).toBe(1);
    d.close();
  });

  it('serves requests first-in first-out, each after the previous, with the profile latency', () => {
    const clock = new Clock({ hz: 1e9 });
    const d = new BlockDevice({
      path: join(dir, 'd2'),
      sizeBytes: 1 << 20,
      profile: 'hdd',
      clock,
      deleteOnClose: true,
    });
    const p = DISK_PROFILES.hdd;
    const write = clock.cyclesFor(p.writeLatencyUs / 1e6 + 4096 / p.bytesPerSecond);
    const read = clock.cyclesFor(p.readLatencyUs / 1e6 + 4096 / p.bytesPerSecond);
    const done: string[] = [];
    const t1 = d.submit({
      op: 'write',
      offsetBytes: 0,
      buffer: new Uint8Array(4096),
      onComplete: () => done.push('w'),
    });
    const t2 = d.submit({
      op: 'read',
      offsetBytes: 0,
      buffer: new Uint8Array(4096),
      onComplete: () => done.push('r'),
    });
    expect(t1).toBe(write);
    expect(t2).toBe(write + read);
    expect(d.inFlight).toBe(2);
    clock.runUntil(write);
    expect(done).toEqual(['w']);
    clock.runUntil(t2);
    expect(done).toEqual(['w', 'r']);
    expect(d.inFlight).toBe(0);
    // An idle device starts a new request at once.
    clock.runUntil(t2 + 10_000_000);
    expect(d.submit({ op: 'read', offsetBytes: 512, buffer: new Uint8Array(512) })).toBe(
      clock.now + d.serviceCycles('read', 512),
    );
    d.close();
    expect(existsSync(join(dir, 'd2'))).toBe(false);
  });

  it('refuses misaligned and out-of-range requests', () => {
    const clock = new Clock({ hz: 1e9 });
    const d = new BlockDevice({ path: join(dir, 'd3'), sizeBytes: 8192, profile: 'ram', clock });
    expect(() => d.writeNow(100, new Uint8Array(512))).toThrow(DiskError);
    expect(() => d.readNow(8192, new Uint8Array(512))).toThrow(/runs past the device/);
    expect(() => d.readNow(0, new Uint8Array(100))).toThrow(DiskError);
    d.close();
    expect(() => d.readNow(0, new Uint8Array(512))).toThrow(/closed disk/);
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
