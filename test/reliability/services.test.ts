/**
 * Faults of the services the detector reads from and writes alerts to, injected while the real timer handler
 * runs the labelled window in this process against the end-to-end harness: Log Analytics (429 with Retry-After,
 * 500, 503, a timeout, a partial result, a result cut at the service's limits, a body cut mid-JSON, 403, a slow
 * answer) and the Logs Ingestion API (429, 500, down for two hours; several hours in the soak). Each scenario is
 * compared with the clean run over the same data: the same AlertIds delivered (none lost, none extra) and the same
 * state tables; duplicates are counted.
 */
import { describe, expect, it } from 'vitest';

import { type FaultAction, type FaultProxy, HOUR, type InvocationLog } from '../support/faults.js';
import { expectSameAsClean, useWorld } from '../support/reliabilityWorld.js';

const world = useWorld();

/** The next request through `proxy` gets `action` (once). */
function once(proxy: FaultProxy, action: FaultAction): void {
  let used = false;
  proxy.rule = () => {
    if (used) return undefined;
    used = true;
    return action;
  };
}

const failed = (runs: InvocationLog[]) => runs.filter((r) => r.error !== undefined);
const stopped = (runs: InvocationLog[]) => runs.filter((r) => r.report?.stoppedBecause !== undefined);

describe('Log Analytics faults', () => {
  it('429 with Retry-After, 500, 503, a timeout, partial and over-limit results, a cut body, 403, a slow answer', async () => {
    world.beginScenario();
    await world.seed('ucla');
    const { logs, logsProxy } = world;
    const plan: Record<number, () => void> = {
      2: () => logs.failNext(429, 2),
      5: () => logs.failNext(500),
      8: () =>
        once(logsProxy, {
          kind: 'respond',
          status: 503,
          label: '503',
          body: '{"error":{"code":"ServiceUnavailable","message":"injected"}}',
        }),
      11: () => once(logsProxy, { kind: 'reset', delayMs: 1_000, label: 'timeout' }),
      14: () => logs.failNext('partial'),
      17: () => logs.failNext('truncate'),
      20: () => once(logsProxy, { kind: 'truncate', label: 'cut-json' }),
      23: () => logs.failNext(403),
      26: () => once(logsProxy, { kind: 'forward', delayMs: 1_500, label: 'slow' }),
    };
    const runs = await world.runWindow('ucla', { before: (_slot, i) => plan[i]?.() });
    const statuses = logs.requests.map((r) => r.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    expect(statuses.filter((s) => s === 500)).toHaveLength(1);
    expect(statuses.filter((s) => s === 403)).toHaveLength(1);
    expect(Object.fromEntries(logsProxy.injected)).toEqual({ '503': 1, timeout: 1, 'cut-json': 1, slow: 1 });
    // A partial result stops the run without its checkpoint; 403 fails it; the next run redoes both.
    expect(stopped(runs).length).toBeGreaterThanOrEqual(1);
    expect(failed(runs).length).toBeGreaterThanOrEqual(1);
    await expectSameAsClean(world, 'ucla', 'Log Analytics faults');
  }, 120_000);
});

describe('Logs Ingestion faults', () => {
  it('429, 500 and the endpoint down for two hours: everything arrives once it is back', async () => {
    world.beginScenario();
    await world.seed('ucingest');
    const { ingestion } = world;
    const start = world.data.windowStartMs;
    const runs = await world.runWindow('ucingest', {
      before: (slot, i) => {
        if (i === 0) ingestion.failNext(429);
        if (i === 10) ingestion.failNext(500, 2);
        // Down from 00:00 to 02:00 UTC (two alerts are raised meanwhile): they wait in the outbox.
        ingestion.setDown(slot >= start + 6 * HOUR && slot < start + 8 * HOUR);
      },
    });
    expect(failed(runs)).toEqual([]);
    expect(ingestion.requests.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    expect(ingestion.requests.filter((r) => r.status === 429).length).toBe(1);
    expect(runs.some((r) => (r.report?.pendingOutbox ?? 0) > 0)).toBe(true);
    const outcome = await expectSameAsClean(world, 'ucingest', 'ingestion faults');
    expect(outcome.duplicates).toBe(0);
  }, 180_000);
});
