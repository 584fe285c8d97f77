/** Milliseconds since the epoch: `Date.now` in production; tests and the soak pass their own clock. */
export type Clock = () => number;
