/**
 * Issue 14, "Done when" (the timer twin of test/hostile/replay.e2e.test.ts): the real timer handler, every 15
 * minutes over the ten-hour window of test/support/faults.ts, against Azurite's Table service, the local Log
 * Analytics, managed-identity and Logs Ingestion services (127.0.0.1 only), with the hostile values of
 * test/hostile/values.ts in the window: 60 operation names of ~500 characters of `"` and `\` from a new city,
 * 1,000 known operations from another in one slot, bidi characters in a caller and an operation, a record nested
 * 5,000 deep, numeric and old timestamps. Every run completes, the checkpoint reaches the end with nothing
 * pending, both attackers are alerted, every other caller gets exactly the clean run's alerts (AlertIds), no row
 * the ingestion service received exceeds 64 KB, and each AlertId arrived once. The soak runs the same round under
 * background faults (bench/soak.ts, `--kinds hostile`).
 */
import { expect, it } from 'vitest';

import { useWorld } from '../support/reliabilityWorld.js';
import { checkHostile, hostileWindowRows, seedHostile } from './values.js';

const world = useWorld();

it('the timer over the window with hostile values: runs complete, attackers alerted, the rest as clean, rows ≤ 64 KB', async () => {
  const reference = await world.reference();
  world.beginScenario();
  await seedHostile(world, 'uchostile');
  world.logs.rows = [
    ...world.logs.rows,
    ...(hostileWindowRows(world.data.windowStartMs) as typeof world.logs.rows),
  ];
  const runs = await world.runWindow('uchostile');

  expect(runs.filter((r) => r.error !== undefined || r.report?.stoppedBecause !== undefined)).toEqual([]);
  const outcome = await world.outcome('uchostile');
  expect(outcome.checkpoint).toBe(reference.checkpoint);
  expect(outcome.pending).toBe(0);
  const check = checkHostile(world, reference.alertIds, runs);
  expect(check.hostileCallersAlerted).toContain('mallory@contoso.com');
  expect(check.hostileCallersAlerted).toContain('trudy@contoso.com');
  expect(reference.alertIds.length).toBeGreaterThan(3);
  expect(check.lost, 'clean-run alerts of other callers missing').toEqual([]);
  expect(check.extra, `alerts the clean run did not raise: ${check.extraRows.join('; ')}`).toEqual([]);
  expect(check.maxRowBytes).toBeGreaterThan(0);
  expect(check.maxRowBytes).toBeLessThanOrEqual(64 * 1024);
  expect(check.duplicates).toBe(0);
}, 900_000);
