/**
 * Faults of the state store (Table Storage, Azurite behind a fault proxy) while the real timer handler runs the
 * labelled window in this process: 500/503 before a request reaches the service, 500 after a write landed (the
 * client retries a write that already happened), the endpoint refusing connections for a second and a half and
 * for a whole run (an Azurite restart: the in-memory Azurite would lose its data if really restarted, so the
 * proxy closes its listening socket instead), and 412/409 ETag conflicts from a second detector instance running
 * the same ticks at the same time. Compared with the clean run: same AlertIds delivered, same state tables.
 */
import { describe, expect, it } from 'vitest';

import { type FaultAction, type InvocationLog, type ProxiedRequest, tableError } from '../support/faults.js';
import { expectSameAsClean, useWorld } from '../support/reliabilityWorld.js';

const world = useWorld();

const failed = (runs: InvocationLog[]) => runs.filter((r) => r.error !== undefined);

describe('Table Storage faults', () => {
  it('500s before and after writes land, and an endpoint refusing connections (an Azurite restart)', async () => {
    world.beginScenario();
    await world.seed('ucts');
    const { tableProxy } = world;
    const batch = (r: ProxiedRequest) => r.method === 'POST' && r.path.includes('$batch');
    const anything = () => true;
    const fault = (label: string, action: FaultAction['kind'], status: number) =>
      ({
        kind: action,
        status,
        body: tableError(status === 503 ? 'ServerBusy' : 'InternalError'),
        label,
      }) as FaultAction;
    // Run index → the n-th request of the run that fails, and how.
    const plan: Record<number, [number, (r: ProxiedRequest) => boolean, FaultAction]> = {
      1: [3, anything, fault('500', 'respond', 500)],
      5: [1, batch, fault('500-after-write', 'forward-then-fail', 500)],
      9: [2, anything, fault('503', 'respond', 503)],
      13: [2, batch, fault('500-after-write', 'forward-then-fail', 500)],
      17: [1, batch, fault('500', 'respond', 500)],
      25: [2, batch, fault('500-after-write', 'forward-then-fail', 500)],
    };
    let refusals = 0;
    const runs = await world.runWindow('ucts', {
      before: async (_slot, i) => {
        const p = plan[i];
        if (p === undefined) tableProxy.rule = undefined;
        else {
          let seen = 0;
          tableProxy.rule = (r) => (p[1](r) && ++seen === p[0] ? p[2] : undefined);
        }
        if (i === 12) {
          // Down for a second and a half during a run: the clients' retries ride it out.
          void tableProxy.refuse(true).then(() => {
            refusals++;
            setTimeout(() => void tableProxy.refuse(false), 1_500);
          });
        }
        if (i === 20) {
          await tableProxy.refuse(true); // down for a whole run …
          refusals++;
        }
        if (i === 21) await tableProxy.refuse(false); // … and back
      },
    });
    expect(refusals).toBe(2);
    expect(Object.fromEntries(tableProxy.injected)).toEqual({
      '500': 2,
      '500-after-write': 3,
      '503': 1,
      refused: 2,
    });
    expect(failed(runs).length, 'the run while the store refused connections').toBeGreaterThanOrEqual(1);
    await expectSameAsClean(world, 'ucts', 'Table Storage faults');
  }, 120_000);

  it('a second detector instance running the same ticks: 412/409 conflicts, the same result', async () => {
    world.beginScenario();
    await world.seed('ucdual');
    let conflicts = 0;
    world.tableProxy.onUpstream = (_r, answer) => {
      const text = answer.body.toString('utf8');
      conflicts += (text.match(/HTTP\/1\.1 (412|409)/g) ?? []).length;
      if (answer.status === 412 || answer.status === 409) conflicts++;
    };
    const a = world.detector('ucdual');
    const b = world.detector('ucdual');
    const runs: InvocationLog[] = [];
    for (const slot of world.data.slots) {
      runs.push(...(await Promise.all([a.invoke(slot + 20_000), b.invoke(slot + 21_000)])));
    }
    await world.drain('ucdual', (at) => a.invoke(at));
    expect(failed(runs)).toEqual([]);
    expect(conflicts, 'ETag conflicts between the two instances').toBeGreaterThan(0);
    const outcome = await expectSameAsClean(world, 'ucdual', 'two instances');
    // Both instances may upload the same pending alert: at-least-once, deduplicated downstream by AlertId.
    expect(outcome.duplicates).toBeLessThanOrEqual(outcome.alertIds.length);
  }, 120_000);
});
