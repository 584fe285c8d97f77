import { describe, expect, it } from 'vitest';

import { DAY_MS, HOUR_MS } from '../../shared/scoring/model.js';
import { CITIES, defaultParams, History, T0 } from '../support/model.js';

describe('learning gate: days the tenant was observed, not days since its first event', () => {
  it('one old record does not open the gate: a tenant seen on 2 days is still learning', () => {
    const h = new History(defaultParams());
    // A single record a year old (an attacker can write any timestamp into a replayed file)...
    h.observe('op/a', CITIES.london, T0 - 365 * DAY_MS, ['u1']);
    // ...then one day of real activity.
    for (let k = 0; k < 8; k++) h.observe('op/a', CITIES.london, T0 + (9 + k) * HOUR_MS, ['u1']);
    const r = h.score('op/a', CITIES.lagos, T0 + DAY_MS + 10 * HOUR_MS, 'u1');
    expect(r.tenantDays).toBe(2);
    expect(r.learningFactor).toBeLessThan(1);
    expect(r.sentence).toContain('tenant observed on 2 day(s)');
  });

  it('a tenant observed on UC_LEARNING_TENANT_DAYS days scores in full', () => {
    const h = new History(defaultParams());
    for (let d = 0; d < 7; d++) {
      for (let k = 0; k < 30; k++)
        h.observe('op/a', CITIES.london, T0 + d * DAY_MS + (k % 10) * HOUR_MS, [`u${k}`]);
    }
    const r = h.score('op/a', CITIES.lagos, T0 + 8 * DAY_MS, 'u1');
    expect(r.tenantDays).toBe(7);
    expect(r.learningFactor).toBe(1);
  });
});
