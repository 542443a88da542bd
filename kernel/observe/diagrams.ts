/**
 * State machines as Mermaid `stateDiagram-v2` text, drawn from the machine's own definition
 * (xstate/graph toDirectedGraph), so a diagram cannot disagree with the code.
 *
 *   [*] --> new                          initial state
 *   ready --> running : DISPATCH         one line per transition, in definition order
 *   running --> halted : NOTHING_READY [noLiveTasks]   guard names in brackets
 *   running --> idle : NOTHING_READY [else]            the fallback after a guarded one
 *   state blocked { [*] --> blocked_io … }             compound states, nested
 *   reaped --> [*]                       final states
 *
 * Mermaid ids are the state's path joined with '_' ('blocked_io'); a nested state whose id is
 * not its own name is declared `state "io" as blocked_io` inside its parent.
 */
import type { AnyStateMachine } from 'xstate';
import { type DirectedGraphEdge, type DirectedGraphNode, toDirectedGraph } from 'xstate/graph';

const INDENT = '    ';

/** Mermaid text for `machine` (no trailing newline). */
export function machineToMermaid(machine: AnyStateMachine): string {
  const root = toDirectedGraph(machine);
  const lines = ['stateDiagram-v2'];
  const initial = initialChildKey(root);
  if (initial !== undefined) lines.push(`${INDENT}[*] --> ${mermaidId(childByKey(root, initial))}`);
  for (const child of root.children) lines.push(...stateLines(child, 1));
  for (const edge of allEdges(root)) lines.push(`${INDENT}${edgeLine(edge)}`);
  for (const node of allNodes(root)) {
    if (node.stateNode.type === 'final' && node.stateNode.parent === machine.root) {
      lines.push(`${INDENT}${mermaidId(node)} --> [*]`);
    }
  }
  return lines.join('\n');
}

/** Declarations for `node`: compound states as `state X { … }` with their initial arrow. */
function stateLines(node: DirectedGraphNode, depth: number): string[] {
  const pad = INDENT.repeat(depth);
  const id = mermaidId(node);
  const key = String(node.stateNode.key);
  const out: string[] = [];
  if (node.children.length === 0) {
    out.push(id === key ? `${pad}${id}` : `${pad}state "${key}" as ${id}`);
    return out;
  }
  out.push(id === key ? `${pad}state ${id} {` : `${pad}state "${key}" as ${id} {`);
  const initial = initialChildKey(node);
  if (initial !== undefined) out.push(`${pad}${INDENT}[*] --> ${mermaidId(childByKey(node, initial))}`);
  for (const child of node.children) out.push(...stateLines(child, depth + 1));
  out.push(`${pad}}`);
  return out;
}

/** `source --> target : EVENT [guard]`. */
function edgeLine(edge: DirectedGraphEdge): string {
  return `${mermaidId(edge.source)} --> ${mermaidId(edge.target)} : ${edgeLabel(edge)}`;
}

/**
 * The label of a transition: its event, then its guard's name in brackets, or `[else]` for an
 * unguarded transition listed after a guarded one for the same event (xstate's fallback).
 */
export function edgeLabel(edge: DirectedGraphEdge): string {
  const t = edge.transition;
  const event = t.eventType;
  const guard = guardName(t.guard);
  if (guard !== undefined) return `${event} [${guard}]`;
  const siblings = (t.source.transitions.get(event) ?? []) as Array<{ guard?: unknown }>;
  const index = siblings.indexOf(t as { guard?: unknown });
  const afterGuarded = siblings.slice(0, Math.max(0, index)).some((s) => s.guard !== undefined);
  return afterGuarded ? `${event} [else]` : event;
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  if (typeof guard === 'function') return guard.name || 'guard';
  return 'guard';
}

/** The Mermaid id of a graph node: its state path joined with '_'. */
function mermaidId(node: { stateNode?: { path: string[] }; path?: string[] }): string {
  const path = node.stateNode?.path ?? node.path ?? [];
  return path.join('_');
}

function initialChildKey(node: DirectedGraphNode): string | undefined {
  const sn = node.stateNode;
  if (sn.type !== 'compound') return undefined;
  const target = sn.initial?.target?.[0];
  return target === undefined ? undefined : String(target.key);
}

function childByKey(node: DirectedGraphNode, key: string): DirectedGraphNode {
  const child = node.children.find((c) => String(c.stateNode.key) === key);
  if (child === undefined) throw new Error(`machineToMermaid: ${node.id} has no child state '${key}'`);
  return child;
}

/** Every node under `root`, depth first, in definition order. */
function allNodes(root: DirectedGraphNode): DirectedGraphNode[] {
  const out: DirectedGraphNode[] = [];
  const visit = (n: DirectedGraphNode): void => {
    for (const c of n.children) {
      out.push(c);
      visit(c);
    }
  };
  visit(root);
  return out;
}

/** Every transition of the machine, in definition order (a parent's before its children's). */
function allEdges(root: DirectedGraphNode): DirectedGraphEdge[] {
  return [...root.edges, ...allNodes(root).flatMap((n) => n.edges)];
}
