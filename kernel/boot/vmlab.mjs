#!/usr/bin/env node
// The `vmlab` command: loads the TypeScript sources through tsx and runs the CLI.
import { register } from 'tsx/esm/api';

// A reader that goes away (`vmlab run | head`) ends the output quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

register();
await import('./cli.ts');
