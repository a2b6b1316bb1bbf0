/**
 * The applications `npm run bench -- failover` runs on its worker
 * processes: one counter journaled, the same counter committed at level
 * `replicas`, so the two commit levels are measured side by side.
 */
import { assign, setup } from 'xstate';
import { defineApplication } from '../actors/application.js';

const counter = setup({
  types: {} as { context: { n: number }; events: { type: 'ADD'; by: number } },
}).createMachine({
  id: 'counter',
  context: { n: 0 },
  on: { ADD: { actions: assign({ n: ({ context, event }) => context.n + event.by }) } },
});

export const journaled = defineApplication({ name: 'journaled', machine: counter, commit: 'journal' });
export const replicated = defineApplication({ name: 'replicated', machine: counter, commit: 'replicas', syncReplicas: 1 });
