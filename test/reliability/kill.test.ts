/**
 * Crashes: the detector runs in child processes over the labelled window, against the end-to-end harness
 * (Azurite in this process outlives them), and is killed with SIGKILL at each step of a run: after the Log
 * Analytics answer arrived, while a baseline write is in flight (landed or not), right after alerts were
 * recorded in the outbox, while an upload to the Logs Ingestion API is in flight (accepted or not), just before
 * the checkpoint write, and at random moments. The timer fires again at the next slot; after the window, runs
 * in the last slot finish the work. The outcome must be the clean run's: the same AlertIds delivered (none lost,
 * none extra), the same state tables; duplicates (at-least-once) are counted and bounded by the kills that can
 * cause them.
 *
 * Seeded: RELIABILITY_SEED=<n> replays a schedule (the instant a process dies still varies with load).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  compareOutcomes,
  KILL_STEPS,
  type KillStep,
  randomKillPlan,
  seeded,
  startWorld,
  type World,
} from '../support/faults.js';

const SEED = Number(process.env.RELIABILITY_SEED ?? 20271031);

let world: World;
beforeAll(async () => {
  world = await startWorld();
}, 120_000);
afterAll(async () => world?.close());

describe(`SIGKILL at every step of a run (seed ${SEED})`, () => {
  it('converges to the clean run: same alerts delivered, same state, duplicates only from uploads cut short', async () => {
    const reference = await world.reference();
    expect(reference.alertIds.length).toBeGreaterThanOrEqual(5);
    const rand = seeded(SEED);
    const fired = new Set<KillStep>();
    let kills = 0;
    let duplicates = 0;
    for (let round = 0; round < 3 && fired.size < KILL_STEPS.length; round++) {
      const prefix = `uckill${round}`;
      world.beginScenario();
      await world.seed(prefix);
      const steps = KILL_STEPS.filter((s) => !fired.has(s));
      const result = await world.runWindowWithKills(
        prefix,
        steps.map((s) => randomKillPlan(s, rand)),
        { rand },
      );
      const outcome = await world.outcome(prefix);
      const cmp = compareOutcomes(reference, outcome);
      const what = `round ${round}: ${JSON.stringify(result.kills)}`;
      expect(cmp.missing, `${what}: alerts lost`).toEqual([]);
      expect(cmp.extra, `${what}: alerts that the clean run did not raise`).toEqual([]);
      expect(cmp.stateDiffs, `${what}: state differs from the clean run`).toEqual([]);
      expect(outcome.pending, what).toBe(0);
      // A duplicate needs an upload the service accepted and the process never saw acknowledged: a kill
      // mid-upload after the service answered, or a random-time kill that happened to fall there.
      const acceptedUnseen = result.kills.filter(
        (k) => (k.step === 'mid-upload' && k.landed) || k.step === 'random-time',
      ).length;
      expect(outcome.duplicates, what).toBeLessThanOrEqual(acceptedUnseen * reference.alertIds.length);
      for (const k of result.kills) fired.add(k.step);
      kills += result.kills.length;
      duplicates += outcome.duplicates;
    }
    expect([...fired].sort(), `steps killed at (${kills} kills, ${duplicates} duplicates)`).toEqual(
      [...KILL_STEPS].sort(),
    );
  }, 180_000);
});
