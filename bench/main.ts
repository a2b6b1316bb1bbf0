import { benchBus } from './bus.js';
import { benchConnections } from './connections.js';
import { benchFailover } from './failover.js';
import { benchProfile } from './profile.js';
import { benchScatter } from './scatter.js';
import { benchSessions } from './sessions.js';
import { benchSimulate } from './simulate.js';

/** `npm run bench -- <name>`: each bench prints its figures beside raw NATS measured in the same run. */
const benches: Record<string, (write: (line: string) => void) => Promise<number>> = {
  bus: benchBus,
  sessions: benchSessions,
  failover: benchFailover,
  connections: benchConnections,
  simulate: benchSimulate,
  profile: benchProfile,
  scatter: benchScatter,
};

const write = (line: string): void => void process.stdout.write(line + '\n');
const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in benches));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench ${unknown.join(', ')}; available: ${Object.keys(benches).join(', ')}\n`);
  process.exitCode = 2;
} else {
  for (const name of names.length ? names : Object.keys(benches)) {
    process.exitCode = (await benches[name]!(write)) || process.exitCode;
  }
}
