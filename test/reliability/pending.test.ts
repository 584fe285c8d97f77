/**
 * Issue 14, isolation: anything pending longer than a day is surfaced — in the run's telemetry
 * (`oldestPendingHours` of `UnusualCityRun`, which the workbook's health section shows) and as a warning — while
 * delivery keeps failing. The real outbox on SQLite, the end of every timer run (deliverAndMaintain).
 */
import { expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { AlertOutbox } from '../../shared/delivery/outbox.js';
import { RunBudget } from '../../shared/run/budget.js';
import { deliverAndMaintain, newRunReport } from '../../shared/runtime/report.js';
import { makeTelemetry } from '../../shared/runtime/telemetry.js';
import { makeAlert, T0 } from '../delivery/helpers.js';
import { loadWorkbook } from '../infra/workbook.js';

const HOUR = 3_600_000;

it('an alert pending 25 hours is reported in telemetry and warned about; one pending 2 hours only reported', async () => {
  const now = { ms: T0 };
  const outbox = new AlertOutbox(SqliteStore.open(':memory:'), { now: () => now.ms });
  await outbox.write([makeAlert(1)]);
  const logs: string[] = [];
  const measurements: Record<string, number>[] = [];
  const telemetry = makeTelemetry(
    {
      trackEvent: (t) => (t.name === 'UnusualCityRun' ? measurements.push(t.measurements ?? {}) : undefined),
      trackMetric: () => undefined,
      trackException: () => undefined,
      flush: () => undefined,
    },
    false,
  );
  const deps = {
    outbox,
    // The ingestion service keeps refusing: the alert stays pending.
    deliver: () => Promise.reject(new Error('503 from the Logs Ingestion endpoint')),
    log: (level: string, text: string) => logs.push(`${level}: ${text}`),
    telemetry,
  };
  const run = async (hoursLater: number) => {
    now.ms = T0 + hoursLater * HOUR;
    const report = newRunReport({ invocationId: `i${hoursLater}`, isPastDue: false }, now.ms);
    await deliverAndMaintain(deps, report, new RunBudget(10 * 60_000, () => now.ms), () => now.ms);
    telemetry.run(report);
    return report;
  };

  const early = await run(2);
  expect(early.pendingOutbox).toBe(1);
  expect(early.oldestPendingHours).toBe(2);
  expect(logs.filter((l) => /more than a day/.test(l))).toEqual([]);

  const late = await run(25);
  expect(late.oldestPendingHours).toBe(25);
  expect(logs.filter((l) => l.startsWith('warn:') && /pending delivery for 25 hours/.test(l))).toHaveLength(
    1,
  );
  expect(measurements.map((m) => m.oldestPendingHours)).toEqual([2, 25]);
  // The workbook's health section reads the measurement.
  expect(JSON.stringify(loadWorkbook())).toContain('customMeasurements.oldestPendingHours');
});
