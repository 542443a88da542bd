/**
 * The machine builder (kernel/boot/machine.ts): the defaults build, impossible settings are
 * InputErrors naming the setting, booting a kernel with a scratch swap file cleans up after
 * itself, and `vmlab demo` runs on the main presets.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../kernel/boot/configfile.ts';
import { bootKernel, buildMachine, DEFAULT_MACHINE, describeMachine } from '../kernel/boot/machine.ts';
import { MODE_USER } from '../kernel/hw/mmu.ts';
import { loadBuiltin } from '../userland/programs/builtins.ts';

const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');

/** Run the CLI without blocking the other tests. */
function vmlab(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [CLI, ...args], { cwd: process.cwd() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The InputError message `fn` throws. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('buildMachine', () => {
  it('builds the defaults: 64 MiB of x86-64 with a 64-entry 4-way TLB and a 1536-entry STLB at 1 GHz', () => {
    const m = buildMachine();
    expect(m.config).toEqual({ ...DEFAULT_MACHINE, stlbEntries: 1536, stlbWays: 12 });
    expect(m.mmu.stlb?.entries).toBe(1536);
    expect(m.mmu.stlb?.ways).toBe(12);
    expect(m.format.name).toBe('x86-64');
    expect(m.mem.frameCount).toBe((64 << 20) / 4096);
    expect(m.mem.pageBytes).toBe(4096);
    expect(m.mem.sizeBytes).toBe(64 << 20);
    expect(m.clock.hz).toBe(1e9);
    expect(m.clock.now).toBe(0);
    expect(m.mmu.format).toBe(m.format);
    expect(m.mmu.asidBits).toBe(12);
    expect(m.mmu.softwareManaged).toBe(false);
    expect(m.mmu.itlb).toBe(m.mmu.dtlb);
    expect(m.mmu.mode).toBe(MODE_USER);
    expect(describeMachine(m)).toEqual([
      'ARG seed 0',
      'ARG memory 67108864 bytes (16384 frames of 4096 bytes)',
      'ARG format x86-64 (levels 9/9/9/9, 8-byte entries, 48-bit VA)',
      'ARG cpu 1000000000 Hz',
      'ARG tlb 64 entries, 4-way, lru, hardware-managed',
      'ARG stlb 1536 entries, 12-way, unified',
      'ARG asid bits 12',
    ]);
  });

  it('gives a software-managed TLB no second level, and refuses one asked for', () => {
    expect(buildMachine({ tlbManagement: 'software' }).mmu.stlb).toBeNull();
    expect(buildMachine({ stlbEntries: 0 }).mmu.stlb).toBeNull();
    expect(() => buildMachine({ tlbManagement: 'software', stlbEntries: 512 })).toThrow(
      /machine: stlb: a software-managed TLB has no second level/,
    );
    // Ways unless given: the most of 12, 16, 8, 4, 2, 1 that divides the entries.
    expect(buildMachine({ stlbEntries: 512 }).mmu.stlb?.ways).toBe(16);
    expect(buildMachine({ stlbEntries: 24 }).mmu.stlb?.ways).toBe(12);
    expect(buildMachine({ stlbEntries: 6 }).mmu.stlb?.ways).toBe(2);
    expect(() => buildMachine({ stlbEntries: 100, stlbWays: 7 })).toThrow(
      /machine: stlb.ways: 7 does not divide 100 entries/,
    );
  });

  it('takes overrides, a format file among them', () => {
    const m = buildMachine({
      format: 'docs/examples/tiny-format.yaml',
      memoryBytes: 4096,
      splitTlb: true,
      tlbEntries: 8,
      tlbWays: 2,
      cpuHz: 2e9,
    });
    expect(m.format.name).toBe('tiny');
    expect(m.mem.frameCount).toBe(128);
    expect(m.mmu.itlb).not.toBe(m.mmu.dtlb);
    expect(m.clock.hz).toBe(2e9);
    expect(describeMachine(m)).toContain('ARG tlb 8 entries, 2-way, lru, hardware-managed, split I/D');
  });

  it('refuses memory that is not a whole number of pages', () => {
    expect(refusal(() => buildMachine({ memoryBytes: 4097 }))).toBe(
      'machine.memory: 4097 bytes is not a whole number of 4096-byte pages',
    );
    expect(refusal(() => buildMachine({ memoryBytes: 6144 }))).toMatch(/^machine\.memory: 6144 bytes/);
    expect(refusal(() => buildMachine({ memoryBytes: 0 }))).toMatch(/^machine\.memory: 0 bytes/);
    expect(refusal(() => buildMachine({ memoryBytes: -4096 }))).toMatch(/^machine\.memory: -4096 bytes/);
    expect(refusal(() => buildMachine({ memoryBytes: 4096.5 }))).toMatch(/^machine\.memory/);
    expect(refusal(() => buildMachine({ memoryBytes: Number.NaN }))).toMatch(/^machine\.memory/);
    // 32-byte pages: 48 bytes is one and a half.
    expect(refusal(() => buildMachine({ format: 'docs/examples/tiny-format.yaml', memoryBytes: 48 }))).toBe(
      'machine.memory: 48 bytes is not a whole number of 32-byte pages',
    );
  });

  it('refuses more frames than the frame number can name, or than vmlab models', () => {
    expect(
      refusal(() => buildMachine({ format: 'docs/examples/tiny-format.yaml', memoryBytes: 129 * 32 })),
    ).toBe('machine.memory: 129 frames exceed the 7-bit frame numbers of tiny');
    expect(refusal(() => buildMachine({ memoryBytes: 2 ** 26 * 4096 + 4096 }))).toMatch(
      /^machine\.memory: 67108865 frames; vmlab models at most 2\^26 frames/,
    );
  });

  it('refuses an impossible clock or TLB as InputErrors, not RangeErrors', () => {
    // Regression: a zero clock frequency escaped as a RangeError (a stack trace at the CLI).
    expect(refusal(() => buildMachine({ cpuHz: 0 }))).toMatch(
      /^machine: clock\.hz: 0 is not a positive frequency/,
    );
    expect(refusal(() => buildMachine({ asidBits: 17 }))).toMatch(/^machine: mmu\.asidBits: 17/);
    expect(() => buildMachine({ tlbEntries: 6, tlbWays: 4 })).toThrow(InputError);
  });

  it('refuses an unknown format, naming the presets', () => {
    expect(refusal(() => buildMachine({ format: 'pdp-11' }))).toMatch(/^format 'pdp-11' is neither a preset/);
  });
});

describe('bootKernel', () => {
  it('removes the scratch swap file and its directory at shutdown', () => {
    // Regression: the file went, its mkdtemp directory stayed in the temp directory.
    const m = bootKernel(buildMachine({ memoryBytes: 4 << 20 }), {
      loader: loadBuiltin,
      swap: { bytes: 1 << 20 },
    });
    const device = m.swapDevice!;
    expect(device).not.toBeNull();
    expect(device.sizeBytes).toBe(1 << 20);
    expect(device.profile.name).toBe('ssd');
    expect(existsSync(device.path)).toBe(true);
    m.shutdown();
    expect(existsSync(device.path)).toBe(false);
    expect(existsSync(dirname(device.path))).toBe(false);
    expect(() => m.shutdown()).not.toThrow();
  });

  it('refuses an unknown replacement policy as an InputError', () => {
    expect(
      refusal(() =>
        bootKernel(buildMachine({ memoryBytes: 4 << 20 }), { loader: loadBuiltin, policy: 'magic' }),
      ),
    ).toMatch(/^machine\.policy: /);
  });
});

describe('vmlab demo', () => {
  const formats = ['x86-64', 'sv39', 'x86-32'] as const;
  const runs = new Map<string, Awaited<ReturnType<typeof vmlab>>>();
  beforeAll(async () => {
    const results = await Promise.all(formats.map((f) => vmlab('demo', '-f', f, '--pages', '32')));
    for (const [i, f] of formats.entries()) runs.set(f, results[i]!);
  });

  it.each(formats)('%s: exit 0, the ARG lines, the counters and a hit rate', (format) => {
    const r = runs.get(format)!;
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('ARG seed 0');
    expect(lines[1]).toBe('ARG memory 67108864 bytes (16384 frames of 4096 bytes)');
    expect(lines[2]).toMatch(new RegExp(`^ARG format ${format} \\(levels `));
    expect(r.stdout).toContain('ARG tlb 64 entries, 4-way, lru, hardware-managed');
    // 32 pages, 64 touches per page, 4 rounds: 8192 accesses; one miss per page (the TLB holds 64).
    expect(r.stdout).toContain('demo: touched 32 pages (131072 bytes)');
    expect(r.stdout).toMatch(/^accesses\s+8192$/m);
    const hits = /^tlb hits \/ misses\s+(\d+) \/ (\d+)\s+\(hit rate (\d+\.\d\d)%\)$/m.exec(r.stdout);
    expect(hits).not.toBeNull();
    const [h, m, rate] = [Number(hits![1]), Number(hits![2]), Number(hits![3])];
    expect(h + m).toBe(8192);
    expect(m).toBe(32);
    expect(rate).toBeCloseTo((100 * h) / (h + m), 2);
    expect(r.stdout).toMatch(/^page faults\s+32$/m);
    expect(r.stdout).toMatch(/^EAT textbook\s+\d+\.\d\d cycles\/access/m);
    // The explained walk ends at the byte the demo wrote: page 1, offset 0x40 holds 1 + 0x40.
    expect(r.stdout).toMatch(
      /--> PA 0x[0-9a-f]+ \(decimal \d+\) = frame 0x[0-9a-f]+ \+ offset 0x40, byte there 0x41$/m,
    );
  });
});
