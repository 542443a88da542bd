/**
 * A progress bar for long runs (cli-progress), drawn on stderr only when stderr is a terminal.
 * It is driven by a clock event every `intervalCycles` of emulated time that only reads state,
 * so a run with a bar is the same run as one without.
 */
import cliProgress from 'cli-progress';
import type { Kernel } from '../proc/kernel.ts';

export function attachProgress(
  kernel: Kernel,
  options: { total: number; intervalCycles: number },
): () => void {
  if (!process.stderr.isTTY) return () => {};
  const bar = new cliProgress.SingleBar(
    {
      format: 'vmlab |{bar}| {value}/{total} processes done | {ms} ms emulated | faults {faults}',
      hideCursor: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const clock = kernel.hw.clock;
  const payload = (): Record<string, string | number> => ({
    ms: ((clock.now / clock.hz) * 1000).toFixed(1),
    faults: kernel.events.pgfault,
  });
  const done = (): number => [...kernel.tasks.values()].filter((t) => !t.kernelThread && !t.isAlive()).length;
  bar.start(options.total, 0, payload());
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    bar.update(done(), payload());
    if (kernel.liveTasks().length > 0 || clock.pending() > 0)
      clock.after(options.intervalCycles, 'progress', tick, { observer: true });
  };
  clock.after(options.intervalCycles, 'progress', tick, { observer: true });
  return () => {
    stopped = true;
    bar.update(done(), payload());
    bar.stop();
  };
}
