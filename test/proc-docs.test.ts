/**
 * docs/proc.md's samples are what the code prints (kernel/boot/procdocs.ts): every marked sample
 * is regenerated and compared, and a sample that drifted is named (file:line, kind, files or
 * tools, workload and time) with its diff. `npm run docs:proc` rewrites them. The generator is
 * held to `vmlab proc` itself by running the same command through the CLI.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../kernel/boot/configfile.ts';
import { PROC_DOC, parseSamples, regenerate, renderSamples } from '../kernel/boot/procdocs.ts';
import { PROC_SYSTEM_FILES } from '../kernel/observe/procsys.ts';

describe('docs/proc.md samples', () => {
  it('match what the code prints now (npm run docs:proc regenerates them)', async () => {
    const { drift } = await regenerate(readFileSync(PROC_DOC, 'utf8'));
    for (const d of drift) expect.soft(d.actual, `${d.name} drifted`).toBe(d.expected);
    expect(drift.map((d) => d.name)).toEqual([]);
  });

  it('show every system file and every tool the page documents', () => {
    const samples = parseSamples(readFileSync(PROC_DOC, 'utf8'));
    const shown = samples.flatMap((s) => s.attributes.get('what') ?? []);
    for (const file of PROC_SYSTEM_FILES) expect(shown).toContain(file);
    for (const tool of ['free', 'free -h', 'vmstat', 'pmap 5', 'top']) expect(shown).toContain(tool);
    expect(shown.some((w) => /^vmstat \S+ \d+$/.test(w))).toBe(true);
    expect(samples.filter((s) => s.kind === 'pagemap')).toHaveLength(1);
  });
});

describe('the sample generator', () => {
  const cow = 'workload=userland/workloads/cow.yaml at=2ms';

  it('names a drifted sample, rewrites it in place, and is stable once rewritten', async () => {
    const excerpt = `<!-- sample: proc ${cow} what=/proc/4/smaps vmas=1,3 -->\n<!-- /sample -->`;
    const doc = [
      '# t',
      '',
      `<!-- sample: proc ${cow} what=/proc/swaps what=/proc/4/statm -->`,
      'stale text',
      '<!-- /sample -->',
      'after',
      '',
    ].join('\n');
    const first = await regenerate(`${doc}${excerpt}`, 't.md');
    expect(first.drift.map((d) => d.name)).toEqual([
      't.md:3 proc /proc/swaps, /proc/4/statm (cow.yaml at 2ms)',
      't.md:7 proc /proc/4/smaps (cow.yaml at 2ms)',
    ]);
    expect(first.drift[0]!.actual).toBe('stale text');
    // The excerpt keeps VMAs 1 and 3 and puts … for each run of the others.
    const smaps = first.drift[1]!.expected.split('\n');
    const headers = smaps.filter((l) => /^[0-9a-f]+-[0-9a-f]+ /.test(l) || l === '…');
    expect(headers).toHaveLength(4);
    expect([headers[1], headers[3]]).toEqual(['…', '…']);
    expect(headers[0]).toMatch(/^00400000-00401000 r-xp /);
    const lines = first.text.slice(0, first.text.indexOf('<!-- sample: proc', 10)).split('\n');
    expect(lines.slice(0, 3)).toEqual(doc.split('\n').slice(0, 3));
    expect(lines[3]).toBe('```');
    expect(lines[4]).toBe('$ npx vmlab proc userland/workloads/cow.yaml /proc/swaps /proc/4/statm --at 2ms');
    expect(lines[5]).toMatch(/^== \/proc\/swaps at \d+ cycles \(running\)$/);
    expect(lines[6]).toBe('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority');
    expect(lines[7]).toBe(''); // a blank line between two views, as vmlab proc prints them
    expect(lines.slice(-4)).toEqual(['```', '<!-- /sample -->', 'after', '']);
    expect(first.text.endsWith('```\n<!-- /sample -->')).toBe(true);
    expect((await regenerate(first.text, 't.md')).drift).toEqual([]);
  });

  it('prints what `vmlab proc` prints, less the ARG lines', async () => {
    const [sample] = parseSamples(
      `<!-- sample: proc ${cow} what=/proc/4/smaps_rollup what="free -h" -->\n<!-- /sample -->`,
    );
    const [text] = await renderSamples([sample!]);
    const cli = spawnSync(
      'node',
      [
        join(process.cwd(), 'kernel/boot/vmlab.mjs'),
        'proc',
        'userland/workloads/cow.yaml',
        '/proc/4/smaps_rollup',
        'free -h',
        '--at',
        '2ms',
      ],
      { encoding: 'utf8' },
    );
    expect(cli.status).toBe(0);
    const views = cli.stdout.slice(cli.stdout.indexOf('== '));
    const body = text!.split('\n').slice(2, -1).join('\n'); // inside the fence, after the command
    expect(`${body}\n`).toBe(views);
  });

  it('refuses a marker it cannot read or that is never closed', () => {
    expect(() => parseSamples('<!-- sample: bogus x=1 -->\n<!-- /sample -->')).toThrow(InputError);
    expect(() => parseSamples(`<!-- sample: proc ${cow} what=/proc/swaps -->\n`)).toThrow(
      /line 1: sample without/,
    );
    expect(() =>
      parseSamples(
        `<!-- sample: proc ${cow} what=a -->\n<!-- sample: proc ${cow} what=b -->\n<!-- /sample -->`,
      ),
    ).toThrow(/line 1: sample without/);
    expect(parseSamples('no samples here')).toEqual([]);
  });
});
