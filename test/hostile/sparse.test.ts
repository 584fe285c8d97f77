/**
 * Issue 14, point 9 (the replay part): a sparse file spanning years does not simulate every empty 15-minute slot.
 * Three events six years apart once meant 209,808 simulated runs; the replay runs only the slots whose window
 * holds events and moves the checkpoint over the empty stretches in one step. Counted, not timed: every simulated
 * run ends with a checkpoint write, so the writes to the checkpoint row are the runs simulated (without the skip,
 * 210,000 of them: the test fails).
 */
import { expect, it } from 'vitest';

import { newReadStats } from '../../shared/activity/read.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { alertDefaults } from '../../shared/cli/runtime.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { replay } from '../../shared/pipeline/replay.js';
import { readCheckpoint } from '../../shared/pipeline/runState.js';
import { CHECKPOINT_PARTITION } from '../../shared/pipeline/state.js';
import { ev, IP } from '../support/events.js';

it('three events six years apart: a few runs, not 209,808, and the checkpoint at the end', async () => {
  const settings = loadSettings({}, {});
  const times = [Date.UTC(2020, 0, 1, 10), Date.UTC(2023, 0, 1, 10), Date.UTC(2026, 0, 1, 10)];
  const events = times.map((t) =>
    ev(t, 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE', 'dev1@contoso.com', IP.london),
  );
  const store = SqliteStore.open(':memory:');
  let runs = 0;
  let checkpointWrites = 0;
  const counting = Object.create(store) as SqliteStore;
  counting.updateRows = (table, partition, rowKeys, apply) => {
    if (table === 'state' && partition === CHECKPOINT_PARTITION) checkpointWrites += 1;
    return store.updateRows(table, partition, rowKeys, apply);
  };
  const summary = await replay({
    events: (async function* () {
      yield* events;
      await Promise.resolve();
    })(),
    readStats: newReadStats(),
    store: counting,
    geo: await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' }),
    sink: new MemoryAlertSink(),
    settings,
    defaults: alertDefaults(settings),
    onFindings: () => (runs += 1),
  });
  const tick = settings.UC_TICK_INTERVAL;
  const span = Math.floor(times[2]! / tick) - Math.floor(times[0]! / tick) + 1;
  expect(span).toBeGreaterThan(200_000);
  // The whole span is accounted for and the checkpoint stands at its end …
  expect(summary.ticks).toBe(span);
  expect(await readCheckpoint(store)).toBe(Math.floor(times[2]! / tick) * tick + tick);
  // … but only the runs whose window held an event were run, and each empty stretch was crossed in one step.
  const windowRuns = Math.ceil(settings.UC_LOOKBACK / tick);
  expect(runs).toBeGreaterThan(0);
  expect(runs).toBeLessThanOrEqual(3 * windowRuns);
  expect(checkpointWrites).toBeGreaterThanOrEqual(runs);
  expect(checkpointWrites).toBeLessThanOrEqual(3 * windowRuns + 2);
  await store.close();
});
