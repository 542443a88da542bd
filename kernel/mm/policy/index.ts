/** The replacement policies by name. */
import { AgingPolicy } from './aging.ts';
import { ClockPolicy } from './clock.ts';
import { FifoPolicy } from './fifo.ts';
import { LruPolicy } from './lru.ts';
import { Lru2ListPolicy } from './lru2list.ts';
import { NruPolicy } from './nru.ts';
import { OptPolicy } from './opt.ts';
import { RandomPolicy } from './random.ts';
import type { PolicyFactory, PolicyOptions, ReplacementPolicy } from './types.ts';
import { WsClockPolicy } from './wsclock.ts';

const FACTORIES: Readonly<Record<string, PolicyFactory>> = {
  fifo: (o) => new FifoPolicy(o),
  clock: (o) => new ClockPolicy(o),
  lru: (o) => new LruPolicy(o),
  nru: (o) => new NruPolicy(o),
  aging: (o) => new AgingPolicy(o),
  'lru-2list': (o) => new Lru2ListPolicy(o),
  wsclock: (o) => new WsClockPolicy(o),
  opt: (o) => new OptPolicy(o),
  random: (o) => new RandomPolicy(o),
};

export const POLICY_NAMES: readonly string[] = Object.keys(FACTORIES);

/** A new policy called `name`. Throws a RangeError naming the valid policies for any other name. */
export function createPolicy(name: string, options: PolicyOptions): ReplacementPolicy {
  const factory = Object.hasOwn(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (factory === undefined)
    throw new RangeError(`unknown replacement policy '${name}' (one of ${POLICY_NAMES.join(', ')})`);
  return factory(options);
}
