/** Per-class evaluation: attacks per class, false alerts charged to the benign episode that explains them. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { Alert } from '../../shared/alerts/alert.js';
import {
  attributeFalseAlert,
  classReport,
  formatClassTable,
  mergeReports,
} from '../../shared/demo/classes.js';
import {
  type AttackLabel,
  type BenignLabel,
  evaluateAlerts,
  type Labels,
  labelsToJson,
  readLabels,
} from '../../shared/demo/evaluate.js';

const H = 3_600_000;
const DAY = 24 * H;
const iso = (ms: number) => new Date(ms).toISOString();
let n = 0;
const alert = (
  caller: string,
  ip: string,
  atMs: number,
  operations = ['OP/READ'],
  raisedMs = atMs + 10 * 60_000,
): Alert =>
  ({
    AlertId: `alert-${++n}`,
    Caller: caller,
    SrcIpAddrs: [ip],
    Operations: operations,
    FirstEventTime: iso(atMs),
    LastEventTime: iso(atMs + 60_000),
    TimeGenerated: iso(raisedMs),
  }) as Alert;

const attack = (
  id: string,
  cls: string,
  caller: string,
  ip: string,
  startMs: number,
  endMs: number,
  requiredOperations?: string[],
): AttackLabel => ({
  id,
  class: cls,
  description: '',
  caller,
  ips: [ip],
  startMs,
  endMs,
  ...(requiredOperations ? { requiredOperations } : {}),
});
const benign = (
  id: string,
  cls: string,
  callers: string[],
  ips: string[],
  startMs: number,
  endMs: number,
): BenignLabel => ({
  id,
  class: cls,
  description: '',
  callers,
  ips,
  startMs,
  endMs,
});

const labels: Labels = {
  startMs: 0,
  endMs: 10 * DAY,
  attacks: [
    attack('A1', 'foreign-password', 'eve@x', '1.1.1.1', 2 * DAY, 2 * DAY + H),
    attack('A2', 'foreign-password', 'bob@x', '2.2.2.2', 3 * DAY, 3 * DAY + H),
    attack('S-recon', 'slow-recon', 'ann@x', '3.3.3.3', 4 * DAY, 6 * DAY),
    attack('S-escalation', 'slow-escalation', 'ann@x', '3.3.3.3', 6 * DAY + 4 * H, 6 * DAY + 5 * H, [
      'OP/ROLE',
    ]),
  ],
  benign: [
    benign('B1', 'vpn-move', ['ann@x', 'bob@x', 'cat@x'], ['9.9.9.9'], 5 * DAY, 10 * DAY),
    benign('B2', 'holidays', ['ann@x', 'bob@x', 'cat@x', 'dan@x'], [], 7 * DAY, 8 * DAY),
    benign('B3', 'first-party', ['platform'], [], 0, 10 * DAY),
  ],
};

describe('per-class evaluation', () => {
  const alerts = [
    alert('eve@x', '1.1.1.1', 2 * DAY + 5 * 60_000), // detects A1 after 15 min
    alert('ann@x', '3.3.3.3', 4 * DAY), // detects the recon
    alert('ann@x', '3.3.3.3', 6 * DAY + 4 * H, ['OP/READ']), // about the attacker, but not the escalation
    alert('cat@x', '9.9.9.9', 7 * DAY + H), // VPN move and holiday: the VPN (IPs) is more specific
    alert('dan@x', '8.8.8.8', 7 * DAY + 2 * H), // holiday only
    alert('platform', '4.4.4.4', 3 * DAY), // first party
    alert('dan@x', '8.8.8.8', 9 * DAY), // after the holiday: other
    alert('cat@x', '9.9.9.9', 4 * DAY), // VPN address before the move: other
  ];

  it('counts detections and times per attack class, false alerts per benign class', () => {
    const e = evaluateAlerts(alerts, labels, labels.startMs, labels.endMs);
    const r = classReport(e, labels);
    const by = Object.fromEntries(r.rows.map((x) => [x.class, x]));
    expect(by['foreign-password']).toMatchObject({ attacks: 2, detected: 1, timesToDetectMs: [15 * 60_000] });
    expect(by['slow-recon']).toMatchObject({ attacks: 1, detected: 1 });
    expect(by['slow-escalation']).toMatchObject({ attacks: 1, detected: 0 });
    expect(by['vpn-move']!.falseAlerts).toBe(1);
    expect(by.holidays!.falseAlerts).toBe(1);
    expect(by['first-party']!.falseAlerts).toBe(1);
    expect(by.other!.falseAlerts).toBe(2);
    expect(r).toMatchObject({ attacks: 4, detected: 2, falseAlerts: 5, days: 10 });
    const table = formatClassTable(r, 'T');
    expect(table).toMatch(/foreign-password\s+1\/2\s+15 min\s+15 min/);
    expect(table).toMatch(/slow-escalation\s+0\/1\s+-\s+-/);
    expect(table).toMatch(/total\s+2\/4 .* 5 in 10 days = 0\.50\/day/);
  });

  it('an escalation is detected only by an alert raised during it that reports an escalation operation', () => {
    const late = alert('ann@x', '3.3.3.3', 6 * DAY + 4 * H, ['OP/READ', 'op/role']);
    const early = alert('ann@x', '3.3.3.3', 6 * DAY + 4 * H, ['OP/ROLE'], 6 * DAY + 3 * H); // raised before it began
    const e = evaluateAlerts([late, early], labels, 0, 10 * DAY);
    const esc = e.attacks.find((a) => a.attack.id === 'S-escalation')!;
    expect(esc.alertIds).toEqual([late.AlertId]);
    expect(e.falseAlerts).toEqual([]);
  });

  it('charges a false alert to the most specific episode, or to other', () => {
    const b = labels.benign!;
    expect(attributeFalseAlert(alert('bob@x', '9.9.9.9', 7 * DAY), b)).toBe('vpn-move');
    expect(attributeFalseAlert(alert('bob@x', '7.7.7.7', 7 * DAY), b)).toBe('holidays');
    expect(attributeFalseAlert(alert('zed@x', '7.7.7.7', 7 * DAY), b)).toBe('other');
    expect(attributeFalseAlert(alert('bob@x', '9.9.9.9', 2 * DAY), b)).toBe('other');
  });

  it('merges seeds: counts and times pooled, days added', () => {
    const r = classReport(evaluateAlerts(alerts, labels, 0, 10 * DAY), labels);
    const m = mergeReports([r, r]);
    expect(m).toMatchObject({ attacks: 8, detected: 4, falseAlerts: 10, days: 20 });
    expect(m.rows.find((x) => x.class === 'foreign-password')!.timesToDetectMs).toEqual([
      15 * 60_000,
      15 * 60_000,
    ]);
  });
});

describe('labels files', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('round-trip classes, required operations and benign episodes; old files without them still read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uc-labels-'));
    dirs.push(dir);
    const path = join(dir, 'labels.json');
    await writeFile(path, JSON.stringify(labelsToJson(labels)));
    expect(await readLabels(path)).toEqual(labels);
    const old = {
      start: iso(0),
      end: iso(DAY),
      attacks: [{ id: 'A1', description: 'd', caller: 'u', ips: ['1.2.3.4'], start: iso(0), end: iso(H) }],
    };
    await writeFile(path, JSON.stringify(old));
    const read = await readLabels(path);
    expect(read.benign).toBeUndefined();
    expect(read.attacks[0]).toEqual({
      id: 'A1',
      description: 'd',
      caller: 'u',
      ips: ['1.2.3.4'],
      startMs: 0,
      endMs: H,
    });
    await writeFile(
      path,
      JSON.stringify({ ...old, benign: [{ id: 'B1', callers: [], ips: [], start: iso(0), end: iso(H) }] }),
    );
    await expect(readLabels(path)).rejects.toThrow(/benign\.0\.class/);
  });
});
