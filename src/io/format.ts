/** Names of the ported weights format, kept apart from port.ts so readers need no fs or zlib. */
export const MODEL_JSON = 'model.json';
