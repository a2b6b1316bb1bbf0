import { resolveEnvironment, type Environment } from '../environment.js';
import { DEFAULT_INBOX_PREFIX, type Bus } from '../types.js';
import { validateSubject } from '../names.js';
import { DEFAULT_API_TIMEOUT, MemoryBus } from './bus.js';
import { MemoryServer, type MemoryServerOptions } from './server.js';

export { MemoryServer, DEFAULT_MAX_PAYLOAD, type MemoryServerOptions } from './server.js';
export { SERVER, type ConnectionHooks, type Hop, type HopKind, type Network, type NetworkEvent } from './network.js';
export { DEFAULT_API_TIMEOUT } from './bus.js';

export interface MemoryBusOptions {
  /** Share one server between connections (simulated workers); default: a private one. */
  server?: MemoryServer;
  /** Times requests (default the server's environment); a private server is made with it too. */
  environment?: Partial<Environment>;
  /** Only for the private server: on a shared one it is that server's setting. */
  maxPayload?: number;
  /** Where this connection takes answers to its requests (default `replyPrefix`). */
  inboxPrefix?: string;
  /**
   * The only place this connection sends answers to (default `_INBOX`): every
   * process of a cluster uses the same, and each one's inbox lies under it.
   */
  replyPrefix?: string;
  /** On a server with a simulated network: how long a JetStream API call waits for its answer (default 5 000 ms). */
  apiTimeout?: number;
}

export function createMemoryServer(options: MemoryServerOptions = {}): MemoryServer {
  return new MemoryServer(options);
}

/** The in-process bus: the embedded default without a NATS server, and the substrate of simulations. */
export function createMemoryBus(options: MemoryBusOptions = {}): Bus {
  const { server, maxPayload } = options;
  if (server !== undefined && maxPayload !== undefined && maxPayload !== server.maxPayload) {
    throw new TypeError('maxPayload belongs to the server: pass it to createMemoryServer');
  }
  const host =
    server ??
    new MemoryServer({
      ...(options.environment && { environment: options.environment }),
      ...(maxPayload !== undefined && { maxPayload }),
    });
  const replyPrefix = options.replyPrefix ?? DEFAULT_INBOX_PREFIX;
  const inboxPrefix = options.inboxPrefix ?? replyPrefix;
  const apiTimeout = options.apiTimeout ?? DEFAULT_API_TIMEOUT;
  if (!Number.isFinite(apiTimeout) || apiTimeout < 1)
    throw new RangeError(`apiTimeout must be >= 1 ms, got ${apiTimeout}`);
  validateSubject(replyPrefix, { wildcards: false, kind: 'reply prefix' });
  validateSubject(inboxPrefix, { wildcards: false, kind: 'inbox prefix' });
  return new MemoryBus(
    host,
    options.environment === undefined ? host.clock : resolveEnvironment(options.environment).clock,
    inboxPrefix,
    replyPrefix,
    apiTimeout,
  );
}

/** The connection number of a memory bus on its server; undefined for any other bus. */
export function connectionOf(bus: Bus): number | undefined {
  return bus instanceof MemoryBus ? bus.connection : undefined;
}
