import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { Alert } from '../../shared/alerts/alert.js';
import { loadSettings } from '../../shared/config/settings.js';
import { runDemo } from '../../shared/demo/demo.js';
import { evaluateAlerts, matchesAttack, readLabels } from '../../shared/demo/evaluate.js';
import { generateTenant, PLACE_CITIES, PLACES } from '../../shared/demo/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('demo tenant', () => {
  it('is deterministic', () => {
    const a = generateTenant(10);
    const b = generateTenant(10);
    expect(b.events).toEqual(a.events);
    expect(a.events.length).toBeGreaterThan(5_000);
  });

  it('every demo IP resolves to its named city in the embedded GeoLite2-City', async () => {
    const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
    for (const [place, ips] of Object.entries(PLACES)) {
      for (const ip of ips) {
        const r = geo.locate(ip);
        expect(r.kind === 'city' && r.city.name, `${place} ${ip}`).toBe(
          PLACE_CITIES[place as keyof typeof PLACES],
        );
      }
    }
  });

  it('detects every labelled attack with at most one false alert per day, quickly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uc-demo-'));
    dirs.push(dir);
    let out = '';
    const result = await runDemo({
      settings: loadSettings({}),
      outDir: dir,
      quiet: true,
      write: (s) => (out += s),
    });
    const e = result.evaluation;
    expect(e.attacks).toHaveLength(5);
    expect(e.attacks.filter((a) => !a.detected).map((a) => a.attack.id)).toEqual([]);
    expect(e.falseAlertsPerDay).toBeLessThanOrEqual(1);
    // Every attack is alerted by the first or second timer run after it starts.
    for (const a of e.attacks) expect(a.timeToDetectMs, a.attack.id).toBeLessThanOrEqual(30 * 60_000);
    // The printed report carries the alerts with explanations and the evaluation.
    expect(out).toContain('attacks detected:   5/5');
    expect(out).toContain('never seen');
    // The files it wrote are a replayable data set: labels read back, alerts file holds the same alerts.
    const labels = await readLabels(result.files.labels);
    expect(labels.attacks.map((a) => a.id)).toEqual(['A1', 'A2', 'A3', 'A4', 'A5']);
    const fileAlerts = (await readFile(result.files.alerts, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Alert);
    expect(fileAlerts.map((a) => a.AlertId)).toEqual(result.alerts.map((a) => a.AlertId));
    expect(evaluateAlerts(fileAlerts, labels, labels.startMs, labels.endMs).detected).toBe(5);
  }, 180_000);
});

describe('evaluation', () => {
  const attack = {
    id: 'X',
    description: '',
    caller: 'u@x',
    ips: ['1.2.3.4'],
    startMs: 1_000_000,
    endMs: 2_000_000,
  };
  const alert = (over: Partial<Alert>): Alert =>
    ({
      AlertId: Math.random().toString(36),
      Caller: 'u@x',
      SrcIpAddrs: ['1.2.3.4'],
      FirstEventTime: new Date(1_100_000).toISOString(),
      LastEventTime: new Date(1_200_000).toISOString(),
      TimeGenerated: new Date(1_900_000).toISOString(),
      ...over,
    }) as Alert;

  it('matches alerts to attacks by caller, IP and time', () => {
    expect(matchesAttack(alert({}), attack)).toBe(true);
    expect(matchesAttack(alert({ Caller: 'v@x' }), attack)).toBe(false);
    expect(matchesAttack(alert({ SrcIpAddrs: ['5.6.7.8'] }), attack)).toBe(false);
    expect(
      matchesAttack(
        alert({
          FirstEventTime: new Date(3_000_000).toISOString(),
          LastEventTime: new Date(3_000_000).toISOString(),
        }),
        attack,
      ),
    ).toBe(false);
  });

  it('counts detections, false alerts per day and time to detect', () => {
    const e = evaluateAlerts(
      [alert({}), alert({ Caller: 'fp@x' }), alert({ Caller: 'fp2@x' })],
      { startMs: 0, endMs: 0, attacks: [attack] },
      0,
      2 * 86_400_000,
    );
    expect(e.detected).toBe(1);
    expect(e.falseAlerts).toHaveLength(2);
    expect(e.falseAlertsPerDay).toBe(1);
    expect(e.attacks[0]!.timeToDetectMs).toBe(900_000);
    expect(e.medianTimeToDetectMs).toBe(900_000);
  });
});
