/**
 * Dirty file pages and their writeback: write-notify on shared mappings (a clean page is
 * mapped read-only so that its first write is seen), page_mkclean at writeback, the flusher's
 * expire interval and background limit, and the throttling of a writer past dirty_ratio.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { meminfoFields } from '../kernel/observe/procsys.ts';
import type { KernelTunables } from '../kernel/proc/kernel.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MS_SYNC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type UserContext,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, type TestMachine } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;
const MS = 1_000_000; // cycles per emulated millisecond at 1 GHz
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A machine whose sandbox holds `name` (`pages` zero pages); the host folder. */
function machine(pages: number, tunables: Partial<KernelTunables> = {}): { m: TestMachine; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vmlab-writeback-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'f.bin'), new Uint8Array(pages * PAGE));
  return { m: bootTestMachine({ files: { from: dir, writeThrough: true }, tunables }), dir };
}

function run(m: TestMachine, body: (ctx: UserContext) => Generator<void, number | undefined, void>): number {
  const t = m.start(body);
  m.runToEnd();
  return t.waitStatus;
}

const dirtyKb = (m: TestMachine): number => meminfoFields(m.kernel).find(([k]) => k === 'Dirty')![1];
const hostByte = (dir: string, at: number): number => readFileSync(join(dir, 'f.bin'))[at]!;

describe('write-notify', () => {
  it('a clean shared page is read-only until written; writeback cleans and write-protects it again', () => {
    const { m, dir } = machine(2);
    const seen: Array<[string, unknown]> = [];
    const status = run(m, function* ({ sys, cpu }) {
      const s = sys.mmap(0, 2 * PAGE, RW, MAP_SHARED, sys.open('/f.bin', O_RDWR), 0);
      cpu.load8(s);
      seen.push(['read: writable', sys.vmlab_pageinfo(s).writable], ['read: Dirty', dirtyKb(m)]);
      cpu.store8(s, 7);
      seen.push(['written: writable', sys.vmlab_pageinfo(s).writable], ['written: Dirty', dirtyKb(m)]);
      sys.msync(s, PAGE, MS_SYNC);
      seen.push(['synced: writable', sys.vmlab_pageinfo(s).writable], ['synced: Dirty', dirtyKb(m)]);
      seen.push(['synced: host', hostByte(dir, 0)]);
      cpu.store8(s + 1, 8);
      seen.push(['again: Dirty', dirtyKb(m)]);
      yield;
      return 0;
    });
    expect(status).toBe(0);
    expect(seen).toEqual([
      ['read: writable', false],
      ['read: Dirty', 0],
      ['written: writable', true],
      ['written: Dirty', 4],
      ['synced: writable', false],
      ['synced: Dirty', 0],
      ['synced: host', 7],
      ['again: Dirty', 4],
    ]);
    expect(hostByte(dir, 1)).toBe(8); // written back when the process exited
    expect(m.kernel.events.nr_dirtied).toBe(2);
  });
});

describe('the flusher', () => {
  it('writes a page once it has been dirty for the expire interval, with no sync from the process', () => {
    const { m, dir } = machine(1, { dirtyWritebackCycles: 1 * MS, dirtyExpireCycles: 5 * MS });
    const host: number[] = [];
    const status = run(m, function* ({ sys, cpu }) {
      const buf = sys.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      cpu.store8(buf, 42);
      sys.write(sys.open('/f.bin', O_RDWR), buf, 1);
      yield* sys.nanosleep(2_000_000); // 2 ms: not expired yet
      host.push(hostByte(dir, 0));
      yield* sys.nanosleep(10_000_000); // 12 ms: the flusher has written it
      host.push(hostByte(dir, 0));
      return 0;
    });
    expect(status).toBe(0);
    expect(host).toEqual([0, 42]);
    expect(m.kernel.events.nr_written).toBe(1);
  });

  it('starts at once past dirty_background_ratio, before anything expires', () => {
    const pages = 512;
    const { m } = machine(pages, { dirtyBackgroundRatio: 1, dirtyRatio: 90 });
    let writtenEarly = -1;
    let dirtyLeft = -1;
    let background = -1;
    const status = run(m, function* ({ sys }) {
      const buf = sys.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      sys.write(sys.open('/f.bin', O_RDWR), buf, pages * PAGE); // 2 MiB dirty: past 1%
      yield* sys.nanosleep(1_000_000);
      writtenEarly = m.kernel.pageCache.writtenPages; // submitted: the disk may not be done yet
      dirtyLeft = m.kernel.pageCache.nrDirty;
      background = m.kernel.dirtyLimits().background;
      return 0;
    });
    expect(status).toBe(0);
    expect(writtenEarly).toBeGreaterThan(0); // well before the 30 s expiry
    expect(dirtyLeft).toBeLessThanOrEqual(background); // down to the background limit, no further
    expect(dirtyLeft).toBeGreaterThan(0);
  });

  it('a writer past dirty_ratio writes back itself and sleeps until the disk is done', () => {
    const pages = 512;
    const { m } = machine(pages, { dirtyBackgroundRatio: 1, dirtyRatio: 2 });
    const seen: Array<[number, number]> = [];
    const status = run(m, function* ({ sys }) {
      const buf = sys.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const fd = sys.open('/f.bin', O_RDWR);
      const t0 = m.clock.now;
      sys.write(fd, buf, pages * PAGE);
      seen.push([m.kernel.pageCache.writtenPages, m.kernel.pageCache.nrDirty]);
      yield; // the throttled writer sleeps here until its writeback completes
      seen.push([m.clock.now - t0, 0]);
      return 0;
    });
    expect(status).toBe(0);
    const [written, dirtyAfter] = seen[0]!;
    expect(written).toBeGreaterThan(0); // written during the write() call itself
    expect(dirtyAfter).toBeLessThanOrEqual(m.kernel.dirtyLimits().background + 1);
    expect(seen[1]![0]).toBeGreaterThan(100_000); // slept for the disk (ssd: 200 us a write)
  });
});
