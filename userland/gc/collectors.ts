/** The collectors by name, as VMLAB_GC and `vmlab gc-replay -c` name them. */
import type { CollectorFactory } from './collector.ts';
import { GenerationalCollector } from './generational.ts';
import { MarkCompactCollector } from './markcompact.ts';
import { MarkSweepCollector } from './marksweep.ts';
import { RefcountCollector } from './refcount.ts';

const FACTORIES: Readonly<Record<string, CollectorFactory>> = {
  marksweep: (env) => new MarkSweepCollector(env),
  markcompact: (env) => new MarkCompactCollector(env),
  generational: (env) => new GenerationalCollector(env),
  refcount: (env) => new RefcountCollector(env),
};

/** Every collector's name, in the order the docs list them. */
export const COLLECTOR_NAMES: readonly string[] = Object.keys(FACTORIES);

/** The factory of the collector called `name`; RangeError naming the valid ones otherwise. */
export function collectorFactory(name: string): CollectorFactory {
  const factory = Object.hasOwn(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (factory === undefined)
    throw new RangeError(`unknown collector '${name}' (one of ${COLLECTOR_NAMES.join(', ')})`);
  return factory;
}
