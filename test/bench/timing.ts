/**
 * Timing helper for benchmarks: runs `body` (which performs `opsPerCall` operations) until at
 * least `minMs` of host time has passed, after a warm-up, and returns operations per second.
 */
import { performance } from 'node:perf_hooks';

export function opsPerSecond(body: () => void, opsPerCall: number, minMs = 400): number {
  for (let i = 0; i < 3; i++) body();
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    body();
    calls++;
    elapsed = performance.now() - start;
  } while (elapsed < minMs);
  return (calls * opsPerCall) / (elapsed / 1000);
}
