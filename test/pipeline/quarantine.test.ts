import { describe, expect, it } from 'vitest';

import { callerBucket, callerRowKey } from '../../shared/pipeline/callers.js';
import { ev, IP, replayEvents } from '../support/events.js';

const T0 = Date.UTC(2026, 0, 5); // a Monday
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DEPLOY = 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE';
const LISTKEYS = 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION';
const ROLE = 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE';
const LAGOS = 'g:2332459';

/** Three weeks of a London team, the admin listing keys and assigning roles from London. */
function history() {
  const events = [];
  for (let d = 0; d < 21; d++) {
    if (d % 7 >= 5) continue;
    for (let hr = 9; hr < 18; hr++) {
      const t = T0 + d * DAY + hr * HOUR;
      for (let u = 0; u < 3; u++)
        events.push(ev(t + u * 7 * 60_000, DEPLOY, `dev${u}@contoso.com`, IP.london));
      if (hr === 10 || hr === 14) events.push(ev(t + 5 * 60_000, LISTKEYS, 'admin@contoso.com', IP.london));
      if (hr === 11 || hr === 15) events.push(ev(t + 5 * 60_000, ROLE, 'admin@contoso.com', IP.london));
    }
  }
  return events;
}

/** A campaign that stays: key reads from Lagos every 4 hours for 3 days, then a role assignment from there. */
function campaign() {
  const events = [];
  const start = T0 + 21 * DAY + 2 * HOUR;
  for (let k = 0; k < 18; k++) events.push(ev(start + k * 4 * HOUR, LISTKEYS, 'admin@contoso.com', IP.lagos));
  const escalation = start + 3 * DAY + 3 * HOUR;
  events.push(ev(escalation, ROLE, 'admin@contoso.com', IP.lagos));
  return { events, start, escalation };
}

describe('alert-aware learning: quarantine and escalation', () => {
  it('an attacker who stays is not learned as familiar, and escalation raises an update alert linked to the first', async () => {
    const c = campaign();
    const { sink, store } = await replayEvents([...history(), ...c.events]);
    const lagos = sink.alerts.filter((a) => a.SrcGeoCity === 'Lagos');
    const first = lagos.find((a) => a.ParentAlertId === '');
    expect(first).toBeDefined();
    const updates = lagos.filter((a) => a.ParentAlertId !== '');
    // The escalation (a role assignment, never part of the episode) reaches the SOC, linked to the first alert.
    const escalation = updates.find((a) => a.Operations.includes(ROLE));
    expect(escalation?.ParentAlertId).toBe(first!.AlertId);
    expect(Date.parse(escalation!.FirstEventTime)).toBeGreaterThanOrEqual(c.escalation);
    // One episode: the reads of three days raised no second first alert.
    expect(lagos.filter((a) => a.ParentAlertId === '')).toHaveLength(1);
    // The caller's Lagos row is in quarantine, and the explanation of the escalation says so.
    const rows = await store.readRows('tenant', callerBucket('admin@contoso.com'), [
      callerRowKey('admin@contoso.com', LAGOS),
    ]);
    expect(Number(rows.get(callerRowKey('admin@contoso.com', LAGOS))?.quarantinedUntilMs)).toBeGreaterThan(
      c.escalation,
    );
    expect(escalation!.Explanation.summary).toContain('in quarantine');
    expect(escalation!.Explanation.summary).not.toContain('has worked from this city on several days');
    await store.close();
  });

  it('without quarantine (UC_QUARANTINE_DAYS=0) the same campaign becomes familiar and the escalation is silent', async () => {
    const c = campaign();
    const { sink, store } = await replayEvents([...history(), ...c.events], { UC_QUARANTINE_DAYS: '0' });
    const escalation = sink.alerts.filter(
      (a) =>
        a.SrcGeoCity === 'Lagos' &&
        a.Operations.includes(ROLE) &&
        Date.parse(a.LastEventTime) >= c.escalation,
    );
    expect(escalation).toEqual([]);
    await store.close();
  });
});
