import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadWorkload } from '../kernel/boot/workload.ts';

const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'vmlab-labs-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function vmlab(...args: string[]) {
  const r = spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user mistake: exit status 2, one message naming the file, no stack trace. */
function expectRefused(r: ReturnType<typeof vmlab>, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('students’ files on the command line', () => {
  it('vmlab replay --policy-file runs the class in the file, named after the file', () => {
    const r = vmlab(
      'replay',
      'userland/labs/replacement/traces/loop.txt',
      '--frames',
      '8',
      '--policy-file',
      'userland/labs/replacement/solution.ts',
      '--json',
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { faults: number; writebacks: number; config: { policy: string } };
    expect(out).toMatchObject({ faults: 431, writebacks: 69, config: { policy: 'solution.ts' } });
  });

  it('vmlab malloc-replay --allocator-file compares the file with the built-ins named by -a', () => {
    const r = vmlab(
      'malloc-replay',
      'userland/labs/malloc/traces/realloc.rep',
      '--allocator-file',
      'userland/labs/malloc/solution.ts',
      '-a',
      'explicit-first-fit',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/realloc\.rep\s+explicit-first-fit\s+1804 .* ok/);
    expect(r.stdout).toMatch(/realloc\.rep\s+solution\.ts\s+1804 .* ok/);
    expect(r.stdout).toContain('average utilization solution.ts');
  });

  it('refuses a missing policy file and a file that does not compile, naming the file (exit 2)', () => {
    expectRefused(
      vmlab('replay', 'userland/labs/replacement/traces/loop.txt', '--policy-file', join(dir, 'missing.ts')),
      /missing\.ts: no such file \(expected a replacement policy class\)/,
    );
    const broken = join(dir, 'broken.ts');
    writeFileSync(broken, 'export default class Broken {\n');
    expectRefused(
      vmlab('malloc-replay', 'userland/labs/malloc/traces/random.rep', '--allocator-file', broken),
      /broken\.ts: cannot load: .*broken\.ts:2:0/,
    );
  });
});

describe('a policy file in a workload', () => {
  it('machine.policy takes a .ts or .js file; other values must be a built-in name', () => {
    const ok = join(dir, 'ok.yaml');
    writeFileSync(ok, 'machine: { policy: ./my-policy.ts }\nprocesses:\n  - program: touch\n');
    expect(loadWorkload(ok).workload.machine.policy).toBe('./my-policy.ts');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'machine: { policy: lfu }\nprocesses:\n  - program: touch\n');
    expect(() => loadWorkload(bad)).toThrow(/machine\.policy: expected one of fifo, .* or a policy file/);
  });

  it('vmlab run loads the file relative to the workload (outside any package) and runs with it', () => {
    copyFileSync('userland/labs/replacement/solution.ts', join(dir, 'esc.ts'));
    const wl = join(dir, 'esc.yaml');
    writeFileSync(
      wl,
      [
        'machine: { memory: 8M, policy: esc.ts, swap: { size: 8M } }',
        'processes:',
        '  - name: squeeze',
        '    residentLimit: 256K',
        '    script:',
        '      - mmap: { length: 1M, as: buf }',
        '      - touch: { addr: buf, length: 1M, write: true }',
        '      - touch: { addr: buf, length: 1M }',
        '',
      ].join('\n'),
    );
    const r = vmlab('run', wl);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ARG policy esc.ts (global)');
    writeFileSync(wl, 'machine: { policy: nowhere.ts }\nprocesses:\n  - program: touch\n');
    expectRefused(vmlab('run', wl), /nowhere\.ts: no such file \(expected a replacement policy class\)/);
  });
});

describe('students’ files in a workload', () => {
  it('a script process runs with the allocator class of malloc.allocator (a path in the workload)', () => {
    // The lab's solution, where it sits (it imports the lab's interfaces by relative path).
    const mine = join(process.cwd(), 'userland/labs/malloc/solution.ts');
    writeFileSync(
      join(dir, 'alloc.yaml'),
      [
        'processes:',
        '  - name: mine',
        `    malloc: { allocator: ${mine}, leakCheck: summary }`,
        '    script:',
        '      - malloc: { size: 100, as: p }',
        '      - malloc: { size: 100, as: p }',
        '  - name: prog',
        '    program: leaky',
        `    malloc: { allocator: ${mine} }`,
        '',
      ].join('\n'),
    );
    const refused = vmlab('run', join(dir, 'alloc.yaml'));
    expectRefused(
      refused,
      /processes\.1\.malloc\.allocator: an allocator file is loaded for script processes/,
    );
    writeFileSync(
      join(dir, 'alloc.yaml'),
      readFileSync(join(dir, 'alloc.yaml'), 'utf8').split('  - name: prog')[0]!,
    );
    const r = vmlab('run', join(dir, 'alloc.yaml'), '--json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { processes: Array<{ status: string; stdout: string }> };
    expect(out.processes[0]!.status).toBe('exited 0');
    // The segregated-fit solution's own view of its blocks feeds the leak report.
    expect(out.processes[0]!.stdout).toMatch(/definitely lost: 100 bytes in 1 blocks/);
  });
});
