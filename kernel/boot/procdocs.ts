/**
 * The samples of docs/proc.md, generated from the code (`npm run docs:proc`; `--check` only
 * reports). A sample is the text between a marker line and `<!-- /sample -->`:
 *
 *   <!-- sample: proc workload=userland/workloads/default.yaml at=40ms what=/proc/meminfo -->
 *   <!-- sample: proc workload=W what=free what="free -h" -->            (no at: the end of the run)
 *   <!-- sample: proc workload=W at=40ms what=/proc/5/smaps vmas=1,4 -->  (an excerpt: VMAs 1 and 4)
 *   <!-- sample: pagemap workload=W at=40ms pid=5 vma=4 page=184 pages=2 -->
 *
 * A `proc` sample is what `vmlab proc W WHAT... [--at AT]` prints, after the command line and
 * without the ARG lines (they hold host paths): each view under its `== WHAT at N cycles
 * (STATE)` line. With `vmas`, smaps keeps the numbered VMAs (from 1) and puts `…` for each run
 * of the others. A `pagemap` sample is a TypeScript example that reads pagemap entries of a
 * process's VMA, and what it prints.
 *
 * Samples at the same workload and time share one run: reading /proc does not change the
 * machine, and the tools that watch a run from boot (vmstat, vmstat DELAY COUNT) only observe it
 * (their clock events are observer events), so each sample is what its own command prints.
 * Everything is emulated and seeded, so the bytes are the same on every host.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import { decodePagemapEntry, renderPagemap } from '../observe/procpid.ts';
import { type ToolView, watchTool } from '../observe/tools.ts';
import { bootWorkload, viewText, type WorkloadRun } from './cmd-run.ts';
import { InputError } from './configfile.ts';
import { parseTime } from './units.ts';
import { loadWorkload } from './workload.ts';

export const PROC_DOC = 'docs/proc.md';

const MARKER = /^<!-- sample: (\w+)(.*?)\s*-->$/;
const END_MARKER = '<!-- /sample -->';
const ATTRIBUTE = /(\w+)=(?:"([^"]*)"|(\S+))/g;

/** One marked block of a document: its marker, where its text lies, and the text. */
export interface Sample {
  readonly kind: 'proc' | 'pagemap';
  /** 1-based line of the marker. */
  readonly line: number;
  readonly attributes: ReadonlyMap<string, readonly string[]>;
  /** The sample's text is lines[bodyStart, bodyEnd) of the document (0-based; bodyEnd is the end marker). */
  readonly bodyStart: number;
  readonly bodyEnd: number;
  readonly text: string;
}

/** The samples of a document, in order. InputError for a malformed or unclosed marker. */
export function parseSamples(markdown: string): Sample[] {
  const lines = markdown.split('\n');
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('<!-- sample:')) continue;
    const m = MARKER.exec(lines[i]!);
    if (m === null || (m[1] !== 'proc' && m[1] !== 'pagemap'))
      throw new InputError(`line ${i + 1}: bad sample marker '${lines[i]}'`);
    const end = lines.indexOf(END_MARKER, i + 1);
    const next = lines.findIndex((l, j) => j > i && l.startsWith('<!-- sample:'));
    if (end < 0 || (next >= 0 && next < end))
      throw new InputError(`line ${i + 1}: sample without ${END_MARKER}`);
    const attributes = new Map<string, string[]>();
    for (const a of m[2]!.matchAll(ATTRIBUTE)) {
      const list = attributes.get(a[1]!) ?? [];
      list.push(a[2] ?? a[3]!);
      attributes.set(a[1]!, list);
    }
    samples.push({
      kind: m[1],
      line: i + 1,
      attributes,
      bodyStart: i + 1,
      bodyEnd: end,
      text: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return samples;
}

/** A sample's name for messages: `docs/proc.md:62 proc /proc/meminfo (default.yaml at 40ms)`. */
export function sampleName(sample: Sample, doc = PROC_DOC): string {
  const workload = attribute(sample, 'workload').split('/').at(-1);
  const what =
    sample.kind === 'proc' ? sample.attributes.get('what')?.join(', ') : `pid ${attribute(sample, 'pid')}`;
  return `${doc}:${sample.line} ${sample.kind} ${what} (${workload} at ${sample.attributes.get('at')?.[0] ?? 'the end'})`;
}

function attribute(sample: Sample, name: string): string {
  const value = sample.attributes.get(name)?.[0];
  if (value === undefined) throw new InputError(`line ${sample.line}: the sample needs ${name}=`);
  return value;
}

function numberAttribute(sample: Sample, name: string): number {
  const n = Number(attribute(sample, name));
  if (!Number.isSafeInteger(n) || n < 0) throw new InputError(`line ${sample.line}: ${name}= is not a count`);
  return n;
}

/** A shell word as the docs write it: quoted when it holds a space. */
function shellWord(word: string): string {
  return /[\s']/.test(word) ? `'${word}'` : word;
}

/** The views of one run, rendered at its stop. */
type Render = (run: WorkloadRun) => string;

/** How a sample is rendered. */
interface Job {
  readonly sample: Sample;
  /** Set up before the run (the tools' watchers), returning the renderer for the stop. */
  prepare(run: WorkloadRun): Render;
}

function procJob(sample: Sample): Job {
  const workload = attribute(sample, 'workload');
  const at = sample.attributes.get('at')?.[0];
  const what = sample.attributes.get('what') ?? [];
  if (what.length === 0) throw new InputError(`line ${sample.line}: the sample needs what=`);
  const vmas = sample.attributes.get('vmas')?.[0]?.split(',').map(Number);
  const command = `$ npx vmlab proc ${[workload, ...what].map(shellWord).join(' ')}${at === undefined ? '' : ` --at ${at}`}`;
  return {
    sample,
    prepare(run) {
      const watchers: Array<ToolView | undefined> = what.map((w) => watchTool(run.m.kernel, w));
      return (r) => {
        const k = r.m.kernel;
        const views = what.map((w, i) => {
          const text = viewText(k, w, watchers[i]);
          return `== ${w} at ${k.hw.clock.now} cycles (${k.state})\n${vmas === undefined ? text : smapsExcerpt(text, vmas)}`;
        });
        return fenced([command, views.join('\n').replace(/\n$/, '')].join('\n'));
      };
    },
  };
}

/** The VMAs numbered in `keep` (from 1) of an smaps text, and a `…` line for each run of the others. */
function smapsExcerpt(smaps: string, keep: readonly number[]): string {
  const blocks = smaps.split(/^(?=[0-9a-f]+-[0-9a-f]+ )/m);
  let out = '';
  let skipping = false;
  for (const [i, block] of blocks.entries()) {
    if (keep.includes(i + 1)) {
      out += block;
      skipping = false;
    } else if (!skipping) {
      out += '…\n';
      skipping = true;
    }
  }
  return out;
}

function pagemapJob(sample: Sample): Job {
  const workload = attribute(sample, 'workload');
  const pid = numberAttribute(sample, 'pid');
  const vma = numberAttribute(sample, 'vma');
  const page = numberAttribute(sample, 'page');
  const pages = numberAttribute(sample, 'pages');
  const at = attribute(sample, 'at');
  return {
    sample,
    prepare: () => (run) => {
      const k = run.m.kernel;
      const task = k.tasks.get(pid);
      const area = task?.mm?.vmas.all()[vma - 1];
      if (task === undefined || area === undefined)
        throw new InputError(`line ${sample.line}: pid ${pid} has no VMA ${vma} at ${at}`);
      const page0 = area.start + page * k.hw.format.pageBytes;
      const bytes = renderPagemap(k, task, { startVa: page0, endVa: page0 + pages * k.hw.format.pageBytes });
      const entries = Array.from({ length: pages }, (_, i) => decodePagemapEntry(bytes, i));
      const until = parseTime(at, run.m.clock.hz);
      if (until === undefined) throw new InputError(`line ${sample.line}: at=${at} is not a time`);
      const cycles = String(until).replace(/\B(?=(\d{3})+$)/g, '_');
      const code = [
        "import { bootWorkload } from './kernel/boot/cmd-run.ts';",
        "import { loadWorkload } from './kernel/boot/workload.ts';",
        "import { decodePagemapEntry, renderPagemap } from './kernel/observe/procpid.ts';",
        '',
        `const run = await bootWorkload(loadWorkload('${workload}'));`,
        `run.m.kernel.run({ untilCycles: ${cycles} }); // --at ${at}`,
        `const task = run.m.kernel.tasks.get(${pid})!;`,
        `const vma = task.mm!.vmas.all()[${vma - 1}]!; // its VMA ${vma}`,
        `const first = vma.start + ${page} * ${k.hw.format.pageBytes}; // page ${page} of the VMA`,
        `const bytes = renderPagemap(run.m.kernel, task, { startVa: first, endVa: first + ${pages} * ${k.hw.format.pageBytes} });`,
        `console.log(${entries.map((_, i) => `decodePagemapEntry(bytes, ${i})`).join(', ')});`,
        'run.m.shutdown();',
      ].join('\n');
      return `${fenced(code, 'ts')}\n\nprints (\`npx tsx pagemap.mts\`)\n\n${fenced(format(...entries))}`;
    },
  };
}

function fenced(text: string, lang = ''): string {
  return `\`\`\`${lang}\n${text}\n\`\`\``;
}

function jobOf(sample: Sample): Job {
  return sample.kind === 'proc' ? procJob(sample) : pagemapJob(sample);
}

/** Render every sample from the code: the new text of each, in order; one run per workload and time. */
export async function renderSamples(samples: readonly Sample[]): Promise<string[]> {
  const jobs = samples.map(jobOf);
  const groups = new Map<string, Job[]>();
  for (const job of jobs) {
    const a = job.sample.attributes;
    const key = `${a.get('workload')?.[0]} @${a.get('at')?.[0] ?? 'end'}`;
    groups.set(key, [...(groups.get(key) ?? []), job]);
  }
  const out = new Map<Job, string>();
  for (const group of groups.values()) {
    const first = group[0]!.sample;
    const run = await bootWorkload(loadWorkload(attribute(first, 'workload')));
    try {
      const renders = group.map((job) => job.prepare(run));
      const at = first.attributes.get('at')?.[0];
      const cycles = at === undefined ? undefined : parseTime(at, run.m.clock.hz);
      if (at !== undefined && cycles === undefined)
        throw new InputError(`line ${first.line}: at=${at} is not a time`);
      run.m.kernel.run({ untilCycles: cycles });
      for (const [i, job] of group.entries()) out.set(job, renders[i]!(run));
    } finally {
      run.m.shutdown();
    }
  }
  return jobs.map((job) => out.get(job)!);
}

/** A sample whose text differs from what the code prints now. */
export interface Drift {
  readonly name: string;
  readonly expected: string;
  readonly actual: string;
}

/** The document with every sample regenerated, and the samples that changed. */
export async function regenerate(
  markdown: string,
  doc = PROC_DOC,
): Promise<{ text: string; drift: Drift[] }> {
  const samples = parseSamples(markdown);
  const fresh = await renderSamples(samples);
  const lines = markdown.split('\n');
  const drift: Drift[] = [];
  // From the last sample back, so that earlier line numbers stay valid.
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i]!;
    if (s.text !== fresh[i]) drift.unshift({ name: sampleName(s, doc), expected: fresh[i]!, actual: s.text });
    lines.splice(s.bodyStart, s.bodyEnd - s.bodyStart, ...fresh[i]!.split('\n'));
  }
  return { text: lines.join('\n'), drift };
}

/** `tsx kernel/boot/procdocs.ts [--check]`: rewrite docs/proc.md's samples, or only list drift. */
async function main(args: readonly string[]): Promise<number> {
  const check = args.includes('--check');
  const before = readFileSync(PROC_DOC, 'utf8');
  const { text, drift } = await regenerate(before);
  for (const d of drift) process.stdout.write(`${check ? 'drifted' : 'updated'}: ${d.name}\n`);
  if (!check && text !== before) writeFileSync(PROC_DOC, text);
  process.stdout.write(
    `${parseSamples(before).length} samples, ${drift.length} ${check ? 'drifted' : 'updated'}\n`,
  );
  return check && drift.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`procdocs: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
