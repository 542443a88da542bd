/**
 * User-written YAML/JSON files checked against a schema (kernel/boot/configfile.ts): every
 * mistake is an InputError naming the file, the line and column, the field and what was
 * expected, with a suggestion for a misspelt key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InputError, loadConfigFile, nearest, parseConfigText } from '../kernel/boot/configfile.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const program = z.strictObject({ program: z.string(), args: z.array(z.string()).optional() });
const script = z.strictObject({ script: z.array(z.string()), repeat: z.number().int().optional() });

const workload = z.strictObject({
  name: z.string(),
  machine: z
    .strictObject({
      memory: z.string(),
      cpu: z.number().optional(),
      tlb: z.strictObject({ entries: z.number().int(), ways: z.number().int().optional() }).optional(),
    })
    .optional(),
  processes: z.array(z.union([program, script])).optional(),
  entryBytes: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)]).optional(),
});

/** The InputError message for `text`, or a failure if the text is accepted. */
function refusal(text: string, schema: z.ZodType = workload): string {
  try {
    parseConfigText('w.yaml', text, schema);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('parseConfigText accepted bad input');
}

describe('valid files', () => {
  it('returns the parsed, validated data for YAML and for JSON', () => {
    const yaml = 'name: a\nmachine:\n  memory: 4M\n  tlb: { entries: 64 }\nprocesses:\n  - program: touch\n';
    expect(parseConfigText('w.yaml', yaml, workload)).toEqual({
      name: 'a',
      machine: { memory: '4M', tlb: { entries: 64 } },
      processes: [{ program: 'touch' }],
    });
    const json = '{"name": "b", "processes": [{"script": ["x"], "repeat": 2}]}';
    expect(parseConfigText('w.json', json, workload)).toEqual({
      name: 'b',
      processes: [{ script: ['x'], repeat: 2 }],
    });
  });

  it('loads from a file, and names an unreadable file with its error code', () => {
    const path = join(dir, 'ok.yaml');
    writeFileSync(path, 'name: c\n');
    expect(loadConfigFile(path, workload)).toEqual({ name: 'c' });
    const missing = join(dir, 'missing.yaml');
    expect(() => loadConfigFile(missing, workload)).toThrow(InputError);
    expect(() => loadConfigFile(missing, workload)).toThrow(`${missing}: cannot read: ENOENT`);
    expect(() => loadConfigFile(dir, workload)).toThrow(/cannot read: EISDIR/);
  });
});

describe('YAML syntax errors', () => {
  it('give the position of the error', () => {
    expect(refusal('name: a\nmachine:\n  memory: [1, 2\n')).toMatch(/^w\.yaml:4:1: Flow sequence/);
    expect(refusal('name: a\n  bad: indent\n')).toMatch(/^w\.yaml:1:7: /);
    expect(refusal('name: a\nname: b\n')).toBe('w.yaml:2:1: Map keys must be unique');
    expect(refusal('name: "a\n')).toMatch(/^w\.yaml:2:1: Missing closing "quote/);
  });

  it('name the file path exactly as given', () => {
    expect(() => parseConfigText('dir/my file.yaml', 'a: [', workload)).toThrow(/^dir\/my file\.yaml:1:/);
  });
});

describe('unknown keys', () => {
  it('suggest the nearest known key and point at the misspelt key itself', () => {
    const msg = refusal('name: a\nmachine:\n  memory: 4M\n  tlb:\n    entires: 3\n');
    const lines = msg.split('\n');
    // The unknown key first (it is why `entries` is missing), at line 5 column 5.
    expect(lines[0]).toBe("w.yaml:5:5: machine.tlb.entires: unknown key (did you mean 'entries'?)");
    expect(lines[1]).toBe('w.yaml:5:5: machine.tlb.entries: expected number, received undefined');
  });

  it('list the known keys when none is close', () => {
    expect(refusal('name: a\nzzzzzzzz: 1\n')).toBe(
      'w.yaml:2:1: zzzzzzzz: unknown key (known: entryBytes, machine, name, processes)',
    );
  });

  it('are found inside JSON on one line, at the key', () => {
    expect(refusal('{"name": "a", "machine": {"memory": "1M", "cpuu": 1}}')).toBe(
      "w.yaml:1:43: machine.cpuu: unknown key (did you mean 'cpu'?)",
    );
  });

  it('nearest() only suggests likely typos', () => {
    expect(nearest('levles', ['levels', 'entryBytes'])).toBe('levels');
    expect(nearest('PAGESIZE', ['pageSize'])).toBe('pageSize');
    expect(nearest('xyz', ['levels', 'entryBytes'])).toBeUndefined();
    expect(nearest('a', [])).toBeUndefined();
  });
});

describe('wrong types', () => {
  it('name the field path and the line and column of the value', () => {
    expect(refusal('name: a\nmachine:\n  memory: 4\n')).toBe(
      'w.yaml:3:11: machine.memory: expected string, received number',
    );
    expect(refusal('name: a\nmachine:\n  memory: 4M\n  tlb:\n    entries: many\n')).toBe(
      'w.yaml:5:14: machine.tlb.entries: expected number, received string',
    );
  });

  it('index into arrays', () => {
    expect(refusal('name: a\nprocesses:\n  - program: x\n    args: [a, 5]\n')).toBe(
      'w.yaml:4:15: processes.0.args.1: expected string, received number',
    );
  });

  it('report a missing field at the map that lacks it', () => {
    expect(refusal('machine:\n  memory: 4M\n')).toBe('w.yaml:1:1: name: expected string, received undefined');
    expect(refusal('name: a\nmachine:\n  cpu: 1\n')).toBe(
      'w.yaml:3:3: machine.memory: expected string, received undefined',
    );
  });

  it('refuse an empty file or a top level that is not a map', () => {
    expect(refusal('')).toBe('w.yaml:1:1: (top level): expected object, received null');
    expect(refusal('- 1\n- 2\n')).toBe('w.yaml:1:1: (top level): expected object, received array');
  });

  it('list the literals a union of literals accepts, and the value given', () => {
    expect(refusal('name: a\nentryBytes: 3\n')).toBe('w.yaml:2:13: entryBytes: expected 1, 2, 4 or 8, got 3');
  });

  it('name every unknown key at its own line, and stop after five lines', () => {
    // Regression: only the first of several unknown keys in one map was reported.
    const text = `name: a\n${Array.from({ length: 8 }, (_, i) => `bad${i}: 1`).join('\n')}\n`;
    const lines = refusal(text).split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^w\.yaml:2:1: bad0: unknown key/);
    expect(lines[4]).toMatch(/^w\.yaml:6:1: bad4: unknown key/);
  });
});

describe('unions: the branch the user meant', () => {
  it('is the one whose keys the entry has, not the first one', () => {
    // Regression: the `program` branch was reported ("program: expected string, received
    // undefined") for an entry that is plainly a script with a bad `repeat`.
    expect(refusal('name: a\nprocesses:\n  - program: touch\n  - script: [a]\n    repeat: x\n')).toBe(
      'w.yaml:5:13: processes.1.repeat: expected number, received string',
    );
  });

  it('keeps a type error inside the matching branch', () => {
    expect(refusal('name: a\nprocesses:\n  - program: 5\n')).toBe(
      'w.yaml:3:14: processes.0.program: expected string, received number',
    );
  });

  it('suggests a key from the branches for a misspelt key', () => {
    expect(refusal('name: a\nprocesses:\n  - script: [a]\n    repaet: 2\n')).toBe(
      "w.yaml:4:5: processes.0.repaet: unknown key (did you mean 'repeat'?)",
    );
    expect(refusal('name: a\nprocesses:\n  - prgram: touch\n').split('\n')[0]).toBe(
      "w.yaml:3:5: processes.0.prgram: unknown key (did you mean 'program'?)",
    );
  });

  it('says which kinds of value are accepted when no branch fits the value at all', () => {
    const size = z.strictObject({ size: z.union([z.number(), z.string()]) });
    expect(refusal('size: [1]\n', size)).toBe('w.yaml:1:7: size: expected number or string, got [1]');
    expect(refusal('name: a\nprocesses:\n  - 7\n')).toBe('w.yaml:3:5: processes.0: expected object, got 7');
  });
});

describe('workload scripts are checked before they run', () => {
  it('a misspelt operation, a variable never set and an unknown program each name their line and a guess', async () => {
    const { parseConfigText } = await import('../kernel/boot/configfile.ts');
    const { workloadSchema } = await import('../kernel/boot/workload.ts');
    const text = [
      'processes:',
      '  - script:',
      '      - mmap: { length: 4K, as: buf }',
      '      - tuoch: { addr: buf, length: 4K }',
      '  - script:',
      '      - mmap: { length: 4K, as: buf }',
      '      - fork:',
      '          - touch: { addr: bfu, length: 4K }',
      '  - program: nosuch',
      '',
    ].join('\n');
    let message = '';
    try {
      parseConfigText('w.yaml', text, workloadSchema);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("w.yaml:4:9: processes.0.script.1.tuoch: unknown key (did you mean 'touch'?)");
    expect(message).toContain(
      "w.yaml:8:28: processes.1.script.1.fork.0.touch.addr: variable 'bfu' is not set by an earlier operation (did you mean 'buf'?)",
    );
    expect(message).toMatch(/w\.yaml:9:14: processes\.2\.program: no such built-in program \(known: touch/);
  });
});
