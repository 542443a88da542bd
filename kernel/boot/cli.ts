/**
 * The vmlab command line. Each subcommand lives in its own module; this file only wires them.
 * A user's mistake (InputError, a bad option) prints one clear line and exits with status 2.
 */
import { Command, CommanderError } from 'commander';
import { registerDemo } from './cmd-demo.ts';
import { registerDiagram } from './cmd-diagram.ts';
import { registerMallocReplay } from './cmd-malloc-replay.ts';
import { registerReplay } from './cmd-replay.ts';
import { registerProc, registerRun } from './cmd-run.ts';
import { registerTranslate } from './cmd-translate.ts';
import { InputError } from './configfile.ts';

const program = new Command('vmlab')
  .description('vmlab: an emulated computer and a small Unix-like kernel whose subject is memory')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerRun(program);
registerProc(program);
registerDemo(program);
registerDiagram(program);
registerTranslate(program);
registerReplay(program);
registerMallocReplay(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof InputError) {
    process.stderr.write(`vmlab: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
