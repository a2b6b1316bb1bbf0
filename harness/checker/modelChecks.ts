/**
 * The machine is the model: replaying a session's journal through its
 * application's machine must take every event, and at every seq a client
 * saw (a read, the final document) give the document and state it saw. A
 * mismatch names the event where the two parted, as closely as the reads
 * allow: the only event since the last read that agreed, else the range;
 * two replays that disagree with each other pin it exactly.
 */
import { firstDifference } from './compare.js';
import type { CheckContext, SessionFacts } from './context.js';
import type { Operation } from './history.js';
import type { JournalEvent } from './journal.js';
import type { ModelAnomaly, SessionModel } from './model.js';
import { describeEvent, refOf, type Violation } from './violation.js';

/** Something a client saw of a session at a seq. */
interface Observation {
  readonly seq: number;
  readonly document: unknown;
  readonly state?: unknown;
  readonly what: string;
  readonly operations: readonly Operation[];
  readonly at: number;
  readonly final: boolean;
}

function observations(ctx: CheckContext, facts: SessionFacts): Observation[] {
  const out: Observation[] = [];
  for (const op of facts.operations) {
    if (op.kind !== 'read' || op.outcome !== 'ok' || op.seq === undefined) continue;
    const from = op.source === undefined || op.source === 'primary' ? '' : ` from the ${op.source}`;
    out.push({
      seq: op.seq,
      document: op.document,
      state: op.state,
      what: `a read by ${op.client}${from}`,
      operations: [op],
      at: op.completedAt,
      final: false,
    });
  }
  for (const f of ctx.input.finals ?? []) {
    if (f.app !== facts.app || f.session !== facts.session) continue;
    out.push({ ...f, what: 'the final document', operations: [], at: f.at ?? 0, final: true });
  }
  return out.sort((a, b) => a.seq - b.seq || a.at - b.at);
}

const STOPS: readonly ModelAnomaly['kind'][] = ['gap', 'refused'];

export function checkModel(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  const unknownApps = new Set<string>();
  for (const facts of ctx.sessions.values()) {
    const { app, session, model } = facts;
    if (model === undefined) {
      if (!unknownApps.has(app)) {
        unknownApps.add(app);
        out.push({
          invariant: 'model',
          app,
          session,
          operations: [],
          at: 0,
          message: `no application named ${app} was given: its sessions cannot be replayed`,
        });
      }
      continue;
    }
    for (const a of model.anomalies) out.push(anomaly(ctx, facts, a));
    const stopped = model.anomalies.some((a) => STOPS.includes(a.kind));
    let agreed: number | undefined;
    for (const obs of observations(ctx, facts)) {
      if (model.start === undefined || obs.seq < model.start.seq) {
        for (const op of obs.operations) ctx.unverifiable(op);
        continue;
      }
      const base = { invariant: 'model' as const, app, session, operations: obs.operations, at: obs.at };
      const m = model.at(obs.seq);
      if (m === undefined) {
        if (!stopped) {
          out.push({
            ...base,
            message: `${obs.what} reflects seq ${obs.seq}, but the journal ends at seq ${model.lastSeq}`,
          });
        }
        continue;
      }
      const difference =
        firstDifference(obs.document, m.document) ??
        (obs.state === undefined || firstDifference(obs.state, m.state) === undefined
          ? undefined
          : `state ${JSON.stringify(obs.state)} ≠ ${JSON.stringify(m.state)}`);
      if (difference !== undefined) {
        const { text, event } = parting(facts, model, agreed, obs.seq);
        out.push({
          ...base,
          message: `${obs.what} at seq ${obs.seq} is not what the journal replayed gives (seen ≠ model at ${difference}); ${text}`,
          ...(event === undefined ? {} : { event: refOf(event) }),
        });
        continue;
      }
      agreed = obs.seq;
      if (obs.final && !stopped && obs.seq !== model.lastSeq) {
        out.push({
          ...base,
          message: `the final document is at seq ${obs.seq}, but the journal goes on to seq ${model.lastSeq}`,
        });
      }
    }
  }
  return out;
}

function anomaly(ctx: CheckContext, facts: SessionFacts, a: ModelAnomaly): Violation {
  const op = a.event === undefined ? undefined : ctx.attribution.operationOf(a.event);
  const where = a.event === undefined ? '' : `${describeEvent(a.event)}: `;
  const effect = a.kind === 'refused' || a.kind === 'gap' ? '; the replay stops there' : '';
  return {
    invariant: 'model',
    app: facts.app,
    session: facts.session,
    operations: op === undefined ? [] : [op],
    at: op?.completedAt ?? a.event?.time ?? 0,
    message: `${where}${a.reason}${effect}`,
    ...(a.event === undefined ? {} : { event: refOf(a.event) }),
  };
}

/** Which event a mismatch at `seq` comes from, given the last seq a client saw agree (if any). */
function parting(
  facts: SessionFacts,
  model: SessionModel,
  agreed: number | undefined,
  seq: number,
): { text: string; event: JournalEvent | undefined } {
  const from = (agreed ?? model.start!.seq) + 1;
  const candidates: JournalEvent[] = [];
  for (let s = from; s <= seq; s++) {
    const e = model.eventAt(s);
    if (e !== undefined) candidates.push(e);
  }
  const d = facts.divergence;
  if (d !== undefined && d.seq <= seq && (agreed === undefined || d.seq > agreed)) {
    return {
      text: `the machine is not deterministic: two replays part at ${describeEvent(d.event)} (${d.difference})`,
      event: d.event,
    };
  }
  if (candidates.length === 1) return { text: `it parted at ${describeEvent(candidates[0]!)}`, event: candidates[0] };
  const since = agreed === undefined ? 'since the start' : `since seq ${agreed}, the last seq seen to agree`;
  const listed = candidates.slice(0, 5).map(describeEvent).join(', ');
  const more = candidates.length > 5 ? `, and ${candidates.length - 5} more` : '';
  return { text: `it parted at one of the events ${since}: ${listed}${more}`, event: candidates[0] };
}

export function checkDeterministic(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const facts of ctx.sessions.values()) {
    const d = facts.divergence;
    if (d === undefined) continue;
    const op = ctx.attribution.operationOf(d.event);
    out.push({
      invariant: 'deterministic',
      app: facts.app,
      session: facts.session,
      operations: op === undefined ? [] : [op],
      at: op?.completedAt ?? d.event.time,
      message: `two replays of the journal part at ${describeEvent(d.event)} (${d.difference}): the machine reads something besides its events (Date.now(), Math.random()?)`,
      event: refOf(d.event),
    });
  }
  return out;
}
