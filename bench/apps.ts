/**
 * What the benches run: the smallest useful session, a counter (its
 * document does not grow with the run). `npm run bench -- failover` loads
 * this module into its worker processes: the counter journaled, and the
 * same counter committed at level `replicas`, side by side.
 */
import { assign, setup } from 'xstate';
import { defineApplication } from '../index.js';

export const counterMachine = setup({
  types: {} as { context: { n: number }; events: { type: 'ADD'; by: number } },
}).createMachine({
  id: 'counter',
  context: { n: 0 },
  on: { ADD: { actions: assign({ n: ({ context, event }) => context.n + event.by }) } },
});

export const journaled = defineApplication({ name: 'journaled', machine: counterMachine, commit: 'journal' });
export const replicated = defineApplication({
  name: 'replicated',
  machine: counterMachine,
  commit: 'replicas',
  syncReplicas: 1,
});
