/**
 * Replay benchmarks: references per second through the full machine (MMU, TLB, faults, policy,
 * swap) for a TLB-hitting stream and a fault-heavy one; swap round trips per second.
 */
import { replayTrace } from '../../kernel/boot/replay.ts';
import { REF_READ, REF_WRITE, type Trace } from '../../kernel/boot/traces.ts';
import { Prng } from '../../kernel/lib/prng.ts';
import type { BenchFigure } from './run.ts';

const PAGE = 4096;

function syntheticTrace(n: number, pageOf: (i: number) => number, writeEvery: number): Trace {
  const addresses = new Float64Array(n);
  const kinds = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    addresses[i] = 0x10000000 + pageOf(i) * PAGE + ((i * 8) % PAGE);
    kinds[i] = writeEvery > 0 && i % writeEvery === 0 ? REF_WRITE : REF_READ;
  }
  return { format: 'rw', addresses, kinds, length: n };
}

export function run(): BenchFigure[] {
  const figures: BenchFigure[] = [];
  const prng = new Prng(7);
  const hitting = syntheticTrace(4_000_000, (i) => (i >> 9) % 16, 4);
  const randomPages = new Int32Array(2_000_000);
  for (let i = 0; i < randomPages.length; i++) randomPages[i] = prng.below(8192);
  const heavy = syntheticTrace(randomPages.length, (i) => randomPages[i]!, 3);
  // 5% of references go to a page never seen before (a demand-zero fault), the rest to a hot set.
  let fresh = 1000;
  const mixedPages = new Int32Array(4_000_000);
  for (let i = 0; i < mixedPages.length; i++) mixedPages[i] = prng.below(20) === 0 ? fresh++ : prng.below(64);
  const mixed = syntheticTrace(mixedPages.length, (i) => mixedPages[i]!, 4);
  for (const policy of ['fifo', 'clock', 'lru']) {
    const c = replayTrace({
      trace: mixed,
      frames: 0,
      policy,
      machine: { memoryBytes: 2048 * 1024 * 1024 },
      swapProfile: 'ram',
    });
    figures.push({
      name: `replay ${policy}: 4M refs, 5% first touches (minor faults)`,
      value: c.references / c.hostSeconds,
      unit: 'refs/s',
    });
  }
  for (const policy of ['fifo', 'clock', 'lru']) {
    const a = replayTrace({
      trace: hitting,
      frames: 1024,
      policy,
      machine: { memoryBytes: 256 * 1024 * 1024 },
      swapProfile: 'ram',
    });
    figures.push({
      name: `replay ${policy}: 4M refs over 16 pages (TLB hits)`,
      value: a.references / a.hostSeconds,
      unit: 'refs/s',
    });
    const b = replayTrace({
      trace: heavy,
      frames: 4096,
      policy,
      machine: { memoryBytes: 256 * 1024 * 1024 },
      swapProfile: 'ram',
    });
    figures.push({
      name: `replay ${policy}: 2M random refs, 8192 pages, 4096 frames`,
      value: b.references / b.hostSeconds,
      unit: 'refs/s',
    });
    figures.push({ name: `  faults (${policy})`, value: b.faults, unit: 'faults' });
    if (policy === 'fifo') {
      figures.push({
        name: '  swap round trips (fifo, out+in pairs per host second)',
        value: Math.min(b.writebacks, b.majorFaults) / b.hostSeconds,
        unit: 'round trips/s',
      });
    }
  }
  return figures;
}
