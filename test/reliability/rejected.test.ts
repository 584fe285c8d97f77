/**
 * Isolation (issue 14): a partition the service keeps refusing (HTTP 400, as for a property over its size) is
 * logged, counted in the run's telemetry (`rowsRejected`) and skipped; every run completes, the checkpoint moves,
 * a warning says the partition fails repeatedly, and every alert of the clean run is still delivered.
 */
import { expect, it } from 'vitest';

import { encodeKey } from '../../shared/baseline/keys.js';
import { compareOutcomes, OPS, tableError, tableOf, writesPartition } from '../support/faults.js';
import { useWorld } from '../support/reliabilityWorld.js';

const world = useWorld();

it('a partition the service refuses with 400 is skipped, counted and warned about; detection goes on', async () => {
  world.beginScenario();
  await world.seed('ucreject');
  const refused = encodeKey(OPS.snapshot.toLowerCase());
  world.tableProxy.rule = (request) =>
    request.method === 'POST' &&
    tableOf(request, 'ucreject') === 'baselines' &&
    writesPartition(request, refused)
      ? { kind: 'respond', status: 400, label: 'refused', body: tableError('PropertyValueTooLarge') }
      : undefined;
  const detector = world.detector('ucreject');
  const runs = [];
  for (const slot of world.data.slots) runs.push(await detector.invoke(slot + 20_000));
  runs.push(...(await world.drain('ucreject', (atMs) => detector.invoke(atMs))));
  world.tableProxy.rule = undefined;

  expect(runs.filter((r) => r.error !== undefined)).toEqual([]);
  expect(world.tableProxy.injected.get('refused') ?? 0).toBeGreaterThan(2);
  const rejected = runs.reduce((sum, r) => sum + (r.report?.rowsRejected ?? 0), 0);
  expect(rejected).toBeGreaterThan(2);
  expect(detector.logs.some((l) => /fails repeatedly/.test(l))).toBe(true);
  // No identity in the warning: the partition is named by a hash.
  expect(detector.logs.filter((l) => /Skipped a write/.test(l)).join('\n')).not.toContain('snapshots');

  const reference = await world.reference();
  const outcome = await world.outcome('ucreject');
  expect(outcome.checkpoint).toBe(reference.checkpoint);
  expect(compareOutcomes(reference, outcome).missing).toEqual([]);
}, 300_000);
