/**
 * The script form of a workload process: operations parsed by the schema and run by the
 * interpreter inside a process (malloc family, files, file mappings, errors on stderr).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ScriptOptions, scriptOpSchema, scriptProgram } from '../kernel/boot/script.ts';
import type { Task } from '../kernel/proc/task.ts';
import { bootTestMachine } from './helpers/kernel.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Run a script (YAML-shaped operations) in a machine whose sandbox is a new folder. */
function runScript(ops: unknown[], options: ScriptOptions & { env?: Record<string, string> } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vmlab-script-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'in.txt'), 'hello from the host\n');
  const m = bootTestMachine({ files: { from: dir, writeThrough: true } });
  const parsed = z.array(scriptOpSchema).parse(ops);
  const path = m.register(scriptProgram(parsed, m.clock.hz, options), '/bin/script');
  const t = m.kernel.spawn(path, [path], { env: options.env ?? {} }) as Task;
  m.runToEnd();
  return { t, m, dir };
}

describe('script operations', () => {
  it('malloc, calloc, realloc and free go through the process allocator, in its memory', () => {
    const { t, m } = runScript([
      { malloc: { size: 100, as: 'p' } },
      { fill: { addr: 'p', length: 100, seed: 4 } },
      { realloc: { addr: 'p', size: '64K', as: 'p' } },
      { verify: { addr: 'p', length: 100, seed: 4 } },
      { calloc: { count: 10, size: 16, as: 'q' } },
      { free: 'q' },
      { free: 'p' },
    ]);
    expect(t.waitStatus).toBe(0);
    expect(m.kernel.events.pgfault).toBeGreaterThan(0);
  });

  it('opens, reads, writes, maps and syncs files; a failing call prints its errno on stderr', () => {
    const { t, dir } = runScript([
      { mmap: { length: '4K', as: 'buf' } },
      { open: { path: '/in.txt', as: 'f' } },
      { read: { fd: 'f', addr: 'buf', length: '4K', as: 'n' } },
      { write: { fd: 1, addr: 'buf', length: 'n' } },
      { open: { path: '/out.bin', mode: 'rw', create: true, as: 'o' } },
      { ftruncate: { fd: 'o', length: '8K' } },
      { mmap: { length: '8K', shared: true, fd: 'o', as: 'm' } },
      { fill: { addr: 'm', length: '8K', seed: 2 } },
      { msync: { addr: 'm', length: '8K' } },
      { write: { fd: 'o', addr: 'buf', length: 5, offset: '8K' } },
      { fsync: 'o' },
      { close: 'o' },
      { open: { path: '/missing', as: 'x' } },
      { unlink: '/in.txt' },
    ]);
    expect(t.waitStatus).toBe(0);
    expect(t.stdout).toBe('hello from the host\n');
    expect(t.stderr).toBe('script: open /missing: ENOENT\n');
    const out = readFileSync(join(dir, 'out.bin'));
    expect(out.length).toBe(8192 + 5);
    expect(out.subarray(8192).toString()).toBe('hello');
    expect(out.subarray(0, 8192).some((b) => b !== 0)).toBe(true); // the mapped fill reached the file
  });

  it('mremap moves a mapping with its bytes (the new address in `as`), and a refusal prints its errno', () => {
    const { t, m } = runScript([
      { mmap: { length: '64K', as: 'buf' } },
      { fill: { addr: 'buf', length: '64K', seed: 9 } },
      { mmap: { length: '4K', as: 'wall' } }, // usually right below buf: no room to grow down
      { mremap: { addr: 'buf', length: '64K', newLength: '1M', maymove: true, as: 'big' } },
      { verify: { addr: 'big', length: '64K', seed: 9 } },
      { touch: { addr: 'big+64K', length: '960K', stride: '4K', write: true } },
      { mremap: { addr: 'big', length: '1M', newLength: '2M', maymove: false, to: 'wall', as: 'x' } },
      { mremap: { addr: 'big', length: '1M', newLength: '4K', as: 'small' } },
      { verify: { addr: 'small', length: '4K', seed: 9 } },
    ]);
    expect(t.waitStatus).toBe(0);
    expect(t.stderr).toBe('script: mremap: EINVAL\n'); // MREMAP_FIXED without MREMAP_MAYMOVE
    expect(m.kernel.events.pgfault).toBeGreaterThan(0);
    // The same script without the moves and the touch (its refusal, and its stderr line, kept):
    // the moved 16 pages never fault again, the 240 pages it grew by fault once each.
    const base = runScript([
      { mmap: { length: '64K', as: 'buf' } },
      { fill: { addr: 'buf', length: '64K', seed: 9 } },
      { mmap: { length: '4K', as: 'wall' } },
      { mremap: { addr: 'buf', length: '64K', newLength: '2M', maymove: false, to: 'wall', as: 'x' } },
    ]);
    expect(t.minFlt - base.t.minFlt).toBe(240);
  });

  it('mremap with dontunmap leaves the old range mapped and empty: the bytes are at the new address only', () => {
    const ops = [
      { mmap: { length: '16K', as: 'buf' } },
      { fill: { addr: 'buf', length: '16K', seed: 5 } },
      {
        mremap: { addr: 'buf', length: '16K', newLength: '16K', maymove: true, dontunmap: true, as: 'moved' },
      },
      { verify: { addr: 'moved', length: '16K', seed: 5 } },
      { touch: { addr: 'buf', length: '16K', stride: '4K', write: false } }, // mapped: no SIGSEGV
    ];
    expect(runScript(ops).t.waitStatus).toBe(0);
    // The old range reads zeros now, so verifying the seeded bytes there fails (exit status 1).
    const { t } = runScript([...ops, { verify: { addr: 'buf', length: '16K', seed: 5 } }]);
    expect(t.waitStatus).toBe(1 << 8);
    expect(t.stderr).toBe('');
  });

  it('takes its allocator and leak check from the environment (VMLAB_MALLOC, VMLAB_LEAK_CHECK)', () => {
    const { t } = runScript([{ malloc: { size: 48, as: 'p' } }, { malloc: { size: 48, as: 'p' } }], {
      env: { VMLAB_MALLOC: 'sizeclass', VMLAB_LEAK_CHECK: 'summary' },
    });
    expect(t.waitStatus).toBe(0);
    expect(t.stdout).toMatch(/LEAK SUMMARY/);
    // The first block lost its last pointer when `p` was set again; the second is still in `p`.
    expect(t.stdout).toMatch(/definitely lost: 48 bytes in 1 blocks/);
    expect(t.stdout).toMatch(/still reachable: 48 bytes in 1 blocks/);
  });
});
