/**
 * `npm run bench`: runs every benchmark module in this folder (or those named on the command
 * line) and prints one line per figure. Figures are host wall-clock rates: run on an idle machine
 * and copy them into docs/benchmarks.md with the machine's description.
 */
import { readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchFigure {
  name: string;
  value: number;
  unit: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const modules = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.includes(basename(f, '.bench.ts')))
  .sort();

console.log(`# node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'unknown cpu'}`);
for (const file of modules) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as {
    run: () => Promise<BenchFigure[]> | BenchFigure[];
  };
  console.log(`\n## ${basename(file, '.bench.ts')}`);
  for (const fig of await mod.run()) {
    const v = fig.value >= 100 ? Math.round(fig.value).toLocaleString('en-US') : fig.value.toFixed(2);
    console.log(`${fig.name.padEnd(52)} ${v.padStart(16)} ${fig.unit}`);
  }
}
