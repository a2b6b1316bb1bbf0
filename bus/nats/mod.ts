export { createNatsBus, type NatsBusOptions } from './bus.js';
