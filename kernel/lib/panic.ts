/**
 * Kernel panic: a broken invariant. The message starts with the name of the function that
 * found it (`buddyFree: block 12 is already free`), as xv6's panic() messages do.
 * Expected shortages (no frame, no object) are return values, never panics.
 */
export class KernelPanic extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelPanic';
  }
}

/** Throw a KernelPanic. Never returns. */
export function panic(message: string): never {
  throw new KernelPanic(message);
}
