/**
 * The set-up the reliability tests share (vitest only: bench/soak.ts uses test/support/faults.ts outside it).
 */
import { afterAll, beforeAll, expect } from 'vitest';

import { compareOutcomes, type Outcome, startWorld, type World } from './faults.js';

/**
 * One world for the test file: started before its tests, with the clean run over the window computed up front
 * (the slow part, so no test pays for it alone), and closed after them. The object returned stands for that
 * world from the first test on; reading it outside a test or hook throws.
 */
export function useWorld(): World {
  let started: World | undefined;
  beforeAll(async () => {
    started = await startWorld();
    await started.reference();
  }, 120_000);
  afterAll(async () => started?.close());
  return new Proxy({} as World, {
    get(_target, property) {
      if (started === undefined) throw new Error('the world is read before beforeAll started it');
      return Reflect.get(started, property) as unknown;
    },
  });
}

/**
 * The scenario's outcome (tables `prefix`) is the clean run's: no alert lost, none extra, the same state, nothing
 * pending. Returns the outcome.
 */
export async function expectSameAsClean(world: World, prefix: string, what: string): Promise<Outcome> {
  const reference = await world.reference();
  const outcome = await world.outcome(prefix);
  const cmp = compareOutcomes(reference, outcome);
  expect(cmp.missing, `${what}: alerts lost`).toEqual([]);
  expect(cmp.extra, `${what}: alerts the clean run did not raise`).toEqual([]);
  expect(cmp.stateDiffs, `${what}: state differs from the clean run`).toEqual([]);
  expect(outcome.pending, `${what}: alerts left pending`).toBe(0);
  return outcome;
}
