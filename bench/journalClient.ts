import { connect, headers, nuid } from '@nats-io/transport-node';
import type { AllocationProfile } from './heapSampling.js';
import { forkBenchProcess, type BenchProcess } from './benchProcess.js';
import { JSVC_COMMAND_HEADER, JSVC_REQUEST_PREFIX, type JournalServiceStats } from './journalService.js';

/** What the bench may ask the journaling service's process (bench/journalServiceProcess.ts). */
export interface JournalServiceOps {
  stats: JournalServiceStats;
  heapSamplingStart: number;
  heapSamplingStop: AllocationProfile;
  stop: number;
}

export function startJournalServiceProcess(url: string): Promise<BenchProcess<JournalServiceOps>> {
  return forkBenchProcess<JournalServiceOps>('journalServiceProcess', url, 'journaling service');
}

/** The client of the journaling service, as a user would write it: a request with a fresh command id, a reply checked. */
export interface JournalClient {
  /** One command for `session` (a subject token); resolves once the service has its append acknowledged. */
  send(session: string): Promise<number>;
  close(): Promise<void>;
}

const decoder = new TextDecoder();

/** `body` is what every request carries (sized like a cohort send's request body). */
export async function connectJournalClient(url: string, body: Uint8Array): Promise<JournalClient> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  return {
    send: async (session) => {
      const h = headers();
      h.set(JSVC_COMMAND_HEADER, nuid.next());
      const reply = await nc.request(JSVC_REQUEST_PREFIX + session, body, { timeout: 5_000, headers: h });
      const answer = JSON.parse(decoder.decode(reply.data)) as { ok: boolean; seq?: number; error?: string };
      if (!answer.ok) throw new Error(`journaling service: ${answer.error}`);
      return answer.seq ?? 0;
    },
    close: () => nc.close(),
  };
}
