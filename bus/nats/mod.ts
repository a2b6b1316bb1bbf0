export { createNatsBus, type NatsBusOptions } from './bus.js';
export { resolveSecurity, type NatsAuth, type NatsTls } from './credentials.js';
