import type { Command } from 'commander';

/** `visq model …` commands (fit, eval). */
export function registerModelCommands(program: Command): void {
  program.command('model').description('fit and evaluate models');
}
