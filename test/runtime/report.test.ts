import { describe, expect, it } from 'vitest';

import { RunBudget } from '../../shared/runtime/budget.js';
import { deliverAndMaintain, newRunReport } from '../../shared/runtime/report.js';
import { makeTelemetry } from '../../shared/runtime/telemetry.js';

const T = Date.UTC(2026, 11, 1);

/** deliverAndMaintain ends every timer run, in the default mode and in queue mode alike. */
describe('end of a run: delivery and daily maintenance', () => {
  const setup = (deliver: () => Promise<{ delivered: number; failed: number; pending: number }>) => {
    const logs: string[] = [];
    const exceptions: string[] = [];
    let maintained = 0;
    const deps = {
      deliver,
      outbox: { countPending: () => Promise.resolve(4) },
      log: (level: string, message: string) => logs.push(`${level}: ${message}`),
      telemetry: makeTelemetry(
        {
          trackEvent: () => undefined,
          trackMetric: () => undefined,
          trackException: (t) => exceptions.push(`${t.exception.message} ${JSON.stringify(t.properties)}`),
          flush: () => undefined,
        },
        false,
      ),
      dailyMaintenance: () => {
        maintained += 1;
        return Promise.resolve('purged 2 marker(s)');
      },
    };
    return { deps, logs, exceptions, maintained: () => maintained };
  };

  it('a failed delivery leaves the alerts pending, logs it and reports the exception; the run goes on', async () => {
    const { deps, logs, exceptions } = setup(() => Promise.reject(new Error('503 from Logs Ingestion')));
    const report = newRunReport({ invocationId: 'i', isPastDue: false }, T + 15 * 60_000);
    report.ticks.push(T + 15 * 60_000);
    await deliverAndMaintain(deps, report, new RunBudget(60_000), () => T);
    expect(report.pendingOutbox).toBe(4);
    expect(report.delivered).toBe(0);
    expect(logs).toContain('error: Alert delivery failed, alerts stay pending: 503 from Logs Ingestion');
    expect(exceptions).toHaveLength(1);
    expect(exceptions[0]).toContain('503 from Logs Ingestion');
    expect(exceptions[0]).toContain('deliver');
  });

  it('counts what was delivered, and runs the daily maintenance only on the run that covers midnight UTC', async () => {
    const { deps, logs, maintained } = setup(() => Promise.resolve({ delivered: 3, failed: 1, pending: 1 }));
    const report = newRunReport({ invocationId: 'i', isPastDue: false }, T);
    report.ticks.push(T - 15 * 60_000);
    await deliverAndMaintain(deps, report, new RunBudget(60_000), () => T);
    expect([report.delivered, report.deliveryFailed, report.pendingOutbox]).toEqual([3, 1, 1]);
    expect(maintained()).toBe(0);
    report.ticks.push(T); // the tick at midnight UTC
    await deliverAndMaintain(deps, report, new RunBudget(60_000), () => T);
    expect(maintained()).toBe(1);
    expect(logs).toContain('info: Daily maintenance: purged 2 marker(s)');
  });
});
