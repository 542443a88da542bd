/** The replacement policies by name. */
import { AgingPolicy } from './aging.ts';
import { ClockPolicy } from './clock.ts';
import { FifoPolicy } from './fifo.ts';
import { LruPolicy } from './lru.ts';
import { Lru2ListPolicy } from './lru2list.ts';
import { MruPolicy } from './mru.ts';
import { NruPolicy } from './nru.ts';
import { OptPolicy } from './opt.ts';
import { RandomPolicy } from './random.ts';
import { OPT_TIES, type PolicyFactory, type PolicyOptions, type ReplacementPolicy } from './types.ts';
import { UnoptPolicy } from './unopt.ts';
import { WsClockPolicy } from './wsclock.ts';

const FACTORIES: Readonly<Record<string, PolicyFactory>> = {
  fifo: (o) => new FifoPolicy(o),
  clock: (o) => new ClockPolicy(o),
  lru: (o) => new LruPolicy(o),
  mru: (o) => new MruPolicy(o),
  nru: (o) => new NruPolicy(o),
  aging: (o) => new AgingPolicy(o),
  'lru-2list': (o) => new Lru2ListPolicy(o),
  wsclock: (o) => new WsClockPolicy(o),
  opt: (o) => new OptPolicy(o),
  unopt: (o) => new UnoptPolicy(o),
  random: (o) => new RandomPolicy(o),
};

/** Every policy's name, in the order the docs list them. */
export const POLICY_NAMES: readonly string[] = Object.keys(FACTORIES);

/**
 * A new policy called `name` for frames 0 .. options.frameCount - 1. Throws a RangeError naming
 * the valid policies for any other name, and a RangeError for an option out of range
 * (frameCount not a whole number >= 0, tickCycles not > 0, agingBits outside 1..32,
 * wsWindowCycles < 0, optTie not one of OPT_TIES).
 */
export function createPolicy(name: string, options: PolicyOptions): ReplacementPolicy {
  const factory = Object.hasOwn(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (factory === undefined)
    throw new RangeError(`unknown replacement policy '${name}' (one of ${POLICY_NAMES.join(', ')})`);
  if (!Number.isInteger(options.frameCount) || options.frameCount < 0)
    throw new RangeError(`${name}: frameCount ${options.frameCount} is not a whole number >= 0`);
  if (options.tickCycles !== undefined && !(options.tickCycles > 0))
    throw new RangeError(`${name}: tickCycles ${options.tickCycles} is not > 0`);
  if (options.optTie !== undefined && !OPT_TIES.includes(options.optTie))
    throw new RangeError(`${name}: optTie '${options.optTie}' is not ${OPT_TIES.join(', ')}`);
  return factory(options);
}

/** Does the built-in policy `name` need the future of a trace (opt, unopt)? False for a file or an unknown name. */
export function policyNeedsFuture(name: string): boolean {
  if (!Object.hasOwn(FACTORIES, name)) return false;
  return FACTORIES[name]!({ frameCount: 0 }).future === 'required';
}
