#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runDoctor } from './doctor.js';

const USAGE = `usage: cohort <command> [options]

commands:
  doctor [--nats URL]   check every bus capability once against a NATS server
                        (default: an embedded nats-server, or the in-memory bus
                        when no nats-server is installed) and print a table
`;

function write(line: string): void {
  process.stdout.write(line + '\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'doctor': {
      const { values } = parseArgs({ args: rest, options: { nats: { type: 'string' } }, strict: true });
      return runDoctor({ nats: values.nats, write });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`cohort: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

// Until main settles, an exit (say, an event loop that ran dry mid-check) is a failure.
process.exitCode = 1;
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cohort: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
