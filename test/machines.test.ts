/**
 * The process and kernel state machines, model-checked with xstate/graph: every state is
 * reachable, every transition of the definition is walked on a live actor, every event a
 * state does not list is refused, and a real kernel run only ever takes defined transitions.
 * Also: docs/diagrams.md is what `vmlab diagram` prints.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type AnyStateMachine, createActor, type StateValue, transition } from 'xstate';
import {
  adjacencyMapToArray,
  type DirectedGraphNode,
  getAdjacencyMap,
  getShortestPaths,
  getSimplePaths,
  getStateNodes,
  toDirectedGraph,
} from 'xstate/graph';
import { renderDiagramsPage } from '../kernel/boot/cmd-diagram.ts';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { edgeLabel, machineToMermaid } from '../kernel/observe/diagrams.ts';
import {
  type KernelEvent,
  kernelMachine,
  type ProcessEvent,
  processMachine,
} from '../kernel/proc/machines.ts';
import type { Task } from '../kernel/proc/task.ts';
import { loadBuiltin } from '../userland/programs/builtins.ts';

// ---- the models: every event, with the payloads that matter to guards ----

const PROCESS_EVENTS: readonly ProcessEvent[] = [
  { type: 'ADMIT' },
  { type: 'DISPATCH' },
  { type: 'PREEMPT' },
  { type: 'YIELD' },
  { type: 'BLOCK_IO' },
  { type: 'BLOCK_WAIT' },
  { type: 'BLOCK_SLEEP' },
  { type: 'WAKE' },
  { type: 'EXIT', code: 3 },
  { type: 'KILL', signal: 9 },
  { type: 'REAP' },
];

const KERNEL_EVENTS: readonly KernelEvent[] = [
  { type: 'BOOTED' },
  { type: 'NOTHING_READY', liveTasks: 0 },
  { type: 'NOTHING_READY', liveTasks: 2 },
  { type: 'TASK_READY' },
  { type: 'PANIC', message: 'test panic' },
];

interface Model {
  name: string;
  machine: AnyStateMachine;
  events: readonly { type: string }[];
  input?: unknown;
}

const MODELS: readonly Model[] = [
  { name: 'processMachine', machine: processMachine, events: PROCESS_EVENTS, input: { pid: 7 } },
  { name: 'kernelMachine', machine: kernelMachine, events: KERNEL_EVENTS },
];

/** A state value as a dotted path ('running', 'blocked.io'). */
function flat(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [key, child] = Object.entries(value)[0]!;
  return child === undefined ? key : `${key}.${flat(child as StateValue)}`;
}

/** Traversal options: states told apart by value only (contexts hold counters). */
function traversal(model: Model) {
  return {
    events: model.events,
    input: model.input,
    serializeState: (s: { value: StateValue }) => flat(s.value),
    serializeEvent: (e: { type: string }) => JSON.stringify(e),
  } as never;
}

/** Atomic and final states of a machine, as dotted paths. */
function leafStates(machine: AnyStateMachine): string[] {
  return getStateNodes(machine.root)
    .filter((n) => n.type === 'atomic' || n.type === 'final')
    .map((n) => n.path.join('.'));
}

interface ConfigEdge {
  source: string;
  target: string;
  event: string;
  guard: string | undefined;
  label: string;
}

/** Every transition of the definition (toDirectedGraph), with dotted source and target. */
function configEdges(machine: AnyStateMachine): ConfigEdge[] {
  const out: ConfigEdge[] = [];
  const visit = (n: DirectedGraphNode): void => {
    for (const e of n.edges) {
      const g = e.transition.guard as { type?: string } | string | undefined;
      out.push({
        source: e.source.path.join('.'),
        target: e.target.path.join('.'),
        event: e.transition.eventType,
        guard: typeof g === 'string' ? g : g?.type,
        label: edgeLabel(e),
      });
    }
    for (const c of n.children) visit(c);
  };
  visit(toDirectedGraph(machine));
  return out;
}

/** Leaf states at or under `path`. */
function leavesUnder(machine: AnyStateMachine, path: string): string[] {
  return leafStates(machine).filter((s) => s === path || s.startsWith(`${path}.`));
}

/** `(from, event type, to)` triples the machine really takes, from its adjacency map. */
function observedTransitions(model: Model): Array<{ from: string; event: { type: string }; to: string }> {
  const adj = getAdjacencyMap(model.machine, traversal(model));
  return adjacencyMapToArray(adj)
    .map((t) => ({
      from: flat((t.state as { value: StateValue }).value),
      event: t.event as { type: string },
      to: flat((t.nextState as { value: StateValue }).value),
    }))
    .filter((t) => t.from !== t.to);
}

/** A live actor driven along the shortest path to `state`. */
function actorAt(model: Model, state: string) {
  const path = getShortestPaths(model.machine, traversal(model)).find(
    (p) => flat((p.state as { value: StateValue }).value) === state,
  );
  if (path === undefined) throw new Error(`no path to ${state}`);
  const actor = createActor(model.machine, { input: model.input as never }).start();
  for (const step of path.steps.slice(1)) actor.send(step.event as never);
  expect(flat(actor.getSnapshot().value)).toBe(state);
  return actor;
}

describe.each(MODELS)('$name', (model) => {
  const { machine } = model;

  it('reaches every state, and replaying each shortest path on a live actor ends there', () => {
    const paths = getShortestPaths(machine, traversal(model));
    const reached = paths.map((p) => flat((p.state as { value: StateValue }).value));
    expect(new Set(reached)).toEqual(new Set(leafStates(machine)));
    for (const p of paths) {
      expect(p.steps[0]!.event.type).toBe('xstate.init');
      const actor = createActor(machine, { input: model.input as never }).start();
      for (const step of p.steps.slice(1)) actor.send(step.event as never);
      expect(flat(actor.getSnapshot().value)).toBe(flat((p.state as { value: StateValue }).value));
      actor.stop();
    }
  });

  it('walks every (state, event) transition of the definition on a live actor', () => {
    const taken = observedTransitions(model);
    for (const edge of configEdges(machine)) {
      const sources = leavesUnder(machine, edge.source);
      expect(sources.length).toBeGreaterThan(0);
      for (const from of sources) {
        const how = taken.find(
          (t) =>
            t.from === from &&
            t.event.type === edge.event &&
            leavesUnder(machine, edge.target).includes(t.to),
        );
        expect(how, `${from} --${edge.label}--> ${edge.target} is never taken`).toBeDefined();
        const actor = actorAt(model, from);
        actor.send(how!.event as never);
        expect(leavesUnder(machine, edge.target)).toContain(flat(actor.getSnapshot().value));
        actor.stop();
      }
    }
    // …and nothing is taken that the definition does not list
    const edges = configEdges(machine);
    for (const t of taken) {
      const listed = edges.some(
        (e) =>
          e.event === t.event.type &&
          leavesUnder(machine, e.source).includes(t.from) &&
          leavesUnder(machine, e.target).includes(t.to),
      );
      expect(listed, `${t.from} --${t.event.type}--> ${t.to}`).toBe(true);
    }
  });

  it('refuses every event a state does not list: can() is false and the state stays', () => {
    const edges = configEdges(machine);
    for (const state of leafStates(machine)) {
      const snap = actorAt(model, state).getSnapshot();
      for (const event of model.events) {
        const listed = edges.filter(
          (e) => e.event === event.type && leavesUnder(machine, e.source).includes(state),
        );
        const [next] = transition(machine, snap as never, event as never);
        const moved = flat((next as { value: StateValue }).value) !== state;
        if (listed.length === 0) {
          expect(snap.can(event as never), `${state} accepts ${event.type}`).toBe(false);
          expect(moved, `${state} moves on ${event.type}`).toBe(false);
        } else if (listed.some((e) => e.guard === undefined)) {
          expect(snap.can(event as never), `${state} refuses ${event.type}`).toBe(true);
          expect(moved).toBe(true);
        } else {
          expect(snap.can(event as never)).toBe(moved); // guarded only: the guard decides
        }
      }
    }
  });

  it('every step of every simple path is a transition of the definition', () => {
    const edges = configEdges(machine);
    const paths = getSimplePaths(machine, traversal(model));
    expect(paths.length).toBeGreaterThanOrEqual(leafStates(machine).length);
    for (const p of paths) {
      let from: string | undefined;
      for (const step of p.steps) {
        const to = flat((step.state as { value: StateValue }).value);
        if (from !== undefined) {
          const ok = edges.some(
            (e) =>
              e.event === step.event.type &&
              leavesUnder(machine, e.source).includes(from!) &&
              leavesUnder(machine, e.target).includes(to),
          );
          expect(ok, `${from} --${step.event.type}--> ${to}`).toBe(true);
        }
        from = to;
      }
    }
  });

  it('final states accept nothing', () => {
    for (const state of leafStates(machine)) {
      const node = getStateNodes(machine.root).find((n) => n.path.join('.') === state)!;
      if (node.type !== 'final') continue;
      const snap = actorAt(model, state).getSnapshot();
      for (const event of model.events) expect(snap.can(event as never)).toBe(false);
    }
  });
});

describe('processMachine: named illegal transitions', () => {
  const model = MODELS[0]!;
  it.each([
    ['blocked.io', { type: 'DISPATCH' }],
    ['blocked.wait', { type: 'DISPATCH' }],
    ['blocked.sleep', { type: 'DISPATCH' }],
    ['running', { type: 'WAKE' }],
    ['ready', { type: 'WAKE' }],
    ['running', { type: 'REAP' }],
    ['ready', { type: 'EXIT', code: 0 }],
    ['blocked.sleep', { type: 'EXIT', code: 0 }],
    ['new', { type: 'DISPATCH' }],
    ['zombie', { type: 'KILL', signal: 9 }],
    ['zombie', { type: 'ADMIT' }],
    ['reaped', { type: 'REAP' }],
  ] as Array<[string, ProcessEvent]>)('%s refuses %o', (state, event) => {
    const snap = actorAt(model, state).getSnapshot();
    expect(snap.can(event)).toBe(false);
    const [next] = transition(processMachine, snap, event);
    expect(flat(next.value)).toBe(state);
  });

  it('every simple path to reaped ends zombie --REAP--> reaped, and only running can EXIT', () => {
    const paths = getSimplePaths(processMachine, {
      ...(traversal(model) as object),
      toState: (s: { value: StateValue }) => flat(s.value) === 'reaped',
    } as never);
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) {
      const states = p.steps.map((s) => flat((s.state as { value: StateValue }).value));
      expect(states.at(-1)).toBe('reaped');
      expect(states.at(-2)).toBe('zombie');
      expect(p.steps.at(-1)!.event.type).toBe('REAP');
      const exit = p.steps.findIndex((s) => s.event.type === 'EXIT');
      if (exit > 0) expect(flat((p.steps[exit - 1]!.state as { value: StateValue }).value)).toBe('running');
    }
  });
});

describe('kernelMachine: guards', () => {
  const model = MODELS[1]!;
  it('idle ignores NOTHING_READY while tasks live, and halts when none does', () => {
    const actor = actorAt(model, 'idle');
    expect(actor.getSnapshot().can({ type: 'NOTHING_READY', liveTasks: 1 })).toBe(false);
    actor.send({ type: 'NOTHING_READY', liveTasks: 1 });
    expect(actor.getSnapshot().value).toBe('idle');
    actor.send({ type: 'NOTHING_READY', liveTasks: 0 });
    expect(actor.getSnapshot().value).toBe('halted');
  });

  it('running goes idle with live tasks and counts it, halts without', () => {
    const actor = actorAt(model, 'running');
    actor.send({ type: 'NOTHING_READY', liveTasks: 3 });
    expect(actor.getSnapshot().value).toBe('idle');
    expect(actor.getSnapshot().context.idleEntries).toBe(1);
    actor.send({ type: 'TASK_READY' });
    actor.send({ type: 'NOTHING_READY', liveTasks: 0 });
    expect(actor.getSnapshot().value).toBe('halted');
  });
});

// ---- a real kernel run ----

/** Legal (from, to) pairs of a machine, from its adjacency map. */
function legalPairs(model: Model): Set<string> {
  return new Set(observedTransitions(model).map((t) => `${t.from} -> ${t.to}`));
}

describe('a real kernel run takes only defined transitions', () => {
  it('every task and the kernel itself move along edges of their machines; the kernel halts', () => {
    const m = bootKernel(buildMachine({ memoryBytes: 16 << 20 }), { loader: loadBuiltin });
    const k = m.kernel;
    const histories = new Map<number, string[]>();
    const watch = (t: Task): void => {
      if (histories.has(t.pid)) return;
      const seen: string[] = [t.state];
      histories.set(t.pid, seen);
      t.actor.subscribe((snap) => {
        const s = flat(snap.value);
        if (seen.at(-1) !== s) seen.push(s);
      });
    };
    // Watch each task from the moment the kernel registers it (before it is admitted).
    const set = k.tasks.set.bind(k.tasks);
    k.tasks.set = (pid: number, t: Task) => {
      watch(t);
      return set(pid, t);
    };
    const kernelStates = [k.state];
    k.actor.subscribe((snap) => {
      const s = flat(snap.value);
      if (kernelStates.at(-1) !== s) kernelStates.push(s);
    });
    const spawned: Task[] = [];
    for (const argv of [['touch', '16', '2'], ['cowdemo', '8'], ['sleep', '2000000'], ['segv']]) {
      const t = k.spawn(argv[0]!, argv);
      if (typeof t === 'number') throw new Error(`spawn ${argv[0]}: ${t}`);
      spawned.push(t);
    }
    expect(k.run()).toBe('halted');
    expect(kernelStates.at(-1)).toBe('halted');

    const processPairs = legalPairs(MODELS[0]!);
    const kernelPairs = legalPairs(MODELS[1]!);
    const pairsOf = (seq: string[]): string[] => seq.slice(1).map((s, i) => `${seq[i]} -> ${s}`);
    for (const pair of pairsOf(kernelStates)) expect(kernelPairs, `kernel ${pair}`).toContain(pair);
    const userPids = [...histories.keys()];
    expect(userPids.length).toBe(5); // four spawned and cowdemo's child
    for (const [pid, seq] of histories) {
      expect(seq[0], `pid ${pid}`).toBe('new');
      expect(seq.at(-1), `pid ${pid}`).toBe('reaped');
      for (const pair of pairsOf(seq)) expect(processPairs, `pid ${pid}: ${pair}`).toContain(pair);
    }
    const all = new Set([...histories.values()].flatMap(pairsOf));
    // the run exercised sleeping, waiting for a child, preemption or yield, exit and kill
    for (const pair of [
      'running -> blocked.sleep',
      'running -> blocked.wait',
      'blocked.sleep -> ready',
      'blocked.wait -> ready',
      'running -> zombie',
      'zombie -> reaped',
    ]) {
      expect(all).toContain(pair);
    }
    const segv = spawned[3]!;
    expect(segv.actor.getSnapshot().context.signal).toBe(11);
  });
});

// ---- diagrams ----

describe('diagrams', () => {
  it('draws every transition of each machine with its guard', () => {
    for (const { machine } of MODELS) {
      const text = machineToMermaid(machine);
      expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
      for (const e of configEdges(machine)) {
        const id = (p: string): string => p.replaceAll('.', '_');
        expect(text).toContain(`${id(e.source)} --> ${id(e.target)} : ${e.label}`);
      }
    }
    const kernel = machineToMermaid(kernelMachine);
    expect(kernel).toContain('running --> halted : NOTHING_READY [noLiveTasks]');
    expect(kernel).toContain('running --> idle : NOTHING_READY [else]');
    const proc = machineToMermaid(processMachine);
    expect(proc).toContain(
      '    state blocked {\n        [*] --> blocked_io\n        state "io" as blocked_io\n',
    );
    expect(proc).toContain('    [*] --> new\n');
    expect(proc).toContain('    reaped --> [*]');
  });

  it('docs/diagrams.md is exactly what `vmlab diagram` prints now', () => {
    const committed = readFileSync(new URL('../docs/diagrams.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderDiagramsPage());
    const cli = spawnSync(process.execPath, ['kernel/boot/vmlab.mjs', 'diagram'], {
      cwd: new URL('..', import.meta.url).pathname,
      encoding: 'utf8',
    });
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    expect(cli.stdout).toBe(committed);
  });
});
