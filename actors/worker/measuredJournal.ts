import type { Clock } from '../../bus/clock.js';
import type { Journal } from '../../bus/types.js';
import type { CohortMetrics } from '../../metrics/instruments.js';

const OK = Object.freeze({ outcome: 'ok' });

/**
 * The worker's journal with every append timed (session records, epoch
 * markers, health probes alike), on the worker's clock: the one place
 * appends leave the worker, so no caller measures for itself.
 */
export function measuredJournal(journal: Journal, clock: Clock, metrics: CohortMetrics): Journal {
  const appendDuration = metrics.appendDuration;
  return {
    name: journal.name,
    append: async (subject, data, options) => {
      const started = clock.now();
      try {
        const ack = await journal.append(subject, data, options);
        appendDuration.record(clock.now() - started, OK);
        return ack;
      } catch (err) {
        appendDuration.record(clock.now() - started, {
          outcome: err instanceof Error ? err.name : 'Error',
        });
        throw err;
      }
    },
    read: (filter, options) => journal.read(filter, options),
    follow: (filter, options, handler) => journal.follow(filter, options, handler),
    lastSeq: (subject) => journal.lastSeq(subject),
    last: (subject) => journal.last(subject),
    subjectCounts: (filter) => journal.subjectCounts(filter),
    purge: (subject, options) => journal.purge(subject, options),
    destroy: () => journal.destroy(),
  };
}
