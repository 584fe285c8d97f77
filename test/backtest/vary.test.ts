/**
 * `runBacktest` in process on a 21-day demo tenant: variants (--vary) give the alerts of a replay with the
 * changed setting — decision-only settings without a replay of their own — and the settings proposed to
 * silence noisy pairs do silence them when applied.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { newReadStats, readActivityFiles } from '../../shared/activity/read.js';
import type { Alert } from '../../shared/alerts/alert.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import type { ThresholdDecision } from '../../shared/backtest/decide.js';
import { type Backtest, runBacktest, variantsOf } from '../../shared/backtest/run.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { alertDefaults, openGeo } from '../../shared/cli/runtime.js';
import { loadSettings, SettingsError } from '../../shared/config/settings.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { addAllowRule, type AllowKind, AllowlistProvider } from '../../shared/ops/allowlist.js';
import { replay } from '../../shared/pipeline/replay.js';

/** Paris (MaxMind geoname id): a commuter's city in the demo tenant. */
const PARIS = '2988507';

let tmp = '';
let file = '';
let labels: ReturnType<typeof generateTenant>['labels'];
let bt: Backtest;

/** The production replay with these settings: the alerts a sink would hold. */
async function replayAlerts(
  set: Record<string, string>,
  rules: readonly { kind: AllowKind; value: string }[] = [],
): Promise<Alert[]> {
  const settings = loadSettings({}, set);
  const { geo } = await openGeo(settings);
  const store = SqliteStore.open(':memory:');
  const sink = new MemoryAlertSink();
  const stats = newReadStats();
  try {
    // Allow rules as `baseline allow` stores them before the run.
    for (const r of rules) await addAllowRule(store, r, { by: 'test', reason: 'proposed', atMs: 0 });
    // Allowlists as the replay command applies them (shared/cli/main.ts).
    const allowlist = await (await AllowlistProvider.fromSettings(settings)).forRun(store);
    await replay({
      events: readActivityFiles([file], stats),
      readStats: stats,
      store,
      geo,
      sink,
      settings,
      defaults: alertDefaults(settings),
      ...(allowlist.size > 0 ? { suppress: allowlist.suppress } : {}),
    });
  } finally {
    await store.close();
  }
  return sink.alerts;
}

const replayIds = async (set: Record<string, string>): Promise<string[]> =>
  (await replayAlerts(set)).map((a) => a.AlertId);

const at = (b: Backtest, variant: string, threshold: number) =>
  b.results.variants.find((v) => v.name === variant)!.results.find((r) => r.threshold === threshold)!;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-backtest-vary-'));
  file = path.join(tmp, 'activity.jsonl');
  const data = generateTenant(21);
  labels = data.labels;
  await writeJsonLines(data.events, file);
  bt = await runBacktest({
    files: [file],
    labels,
    thresholds: [30, 50],
    set: {},
    vary: [
      { name: 'UC_ALERT_COOLDOWN', values: ['2h'] },
      { name: 'UC_FAMILIAR_SCORE_CAP', values: ['20'] },
      { name: 'UC_ALLOW_CITIES', values: [PARIS] },
    ],
    env: {},
  });
}, 120_000);

afterAll(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

describe('backtest variants', () => {
  test('one replay for the current settings and one per replay variant; decision variants re-use it', () => {
    const r = bt.results;
    expect(r.replays).toBe(2);
    expect(r.variants.map((v) => [v.name, v.method])).toEqual([
      ['current settings', 'replay'],
      ['UC_ALERT_COOLDOWN=2h', 'decision'],
      ['UC_FAMILIAR_SCORE_CAP=20', 'replay'],
      [`UC_ALLOW_CITIES=${PARIS}`, 'decision'],
    ]);
    const allowed = at(bt, `UC_ALLOW_CITIES=${PARIS}`, 30);
    expect(allowed.allowlisted).toBeGreaterThan(0);
    expect(allowed.alertCities.map((c) => c.cityKey)).not.toContain(`g:${PARIS}`);
    expect(at(bt, 'current settings', 30).allowlisted).toBe(0);
    expect(r.variants[1]!.change).toEqual({ setting: 'UC_ALERT_COOLDOWN', value: '2h' });
    expect(r.thresholds).toEqual([30, 50]);
    expect(bt.decisions.map((d: ThresholdDecision) => d.threshold)).toEqual([30, 50]);
  });

  test.each([
    ['UC_ALERT_COOLDOWN=2h', 30, { UC_ALERT_COOLDOWN: '2h' }],
    ['UC_FAMILIAR_SCORE_CAP=20', 30, { UC_FAMILIAR_SCORE_CAP: '20' }],
    [`UC_ALLOW_CITIES=${PARIS}`, 30, { UC_ALLOW_CITIES: PARIS }],
  ] as const)('%s at %i gives the alerts of a replay with that setting', async (variant, threshold, set) => {
    const ids = await replayIds({ ...set, UC_ALERT_THRESHOLD: String(threshold) });
    expect(at(bt, variant, threshold).alertIds).toEqual(ids);
    // The variant changed something: otherwise this could not tell a variant from the current settings.
    expect(ids).not.toEqual(at(bt, 'current settings', threshold).alertIds);
  });

  test("the Paris commuter's pair: allow that caller in Paris, never the whole city", () => {
    for (const t of [30, 50]) {
      const paris = at(bt, 'current settings', t).topPairs.filter((p) => p.cityKey === `g:${PARIS}`);
      expect(paris.length, `threshold ${t}`).toBeGreaterThan(0);
      for (const p of paris) {
        expect(p.callerCount).toBe(1);
        expect(p.silence).toMatchObject({
          setting: 'baseline allow caller+city',
          value: `${p.callers[0]!.toLowerCase()} g:${PARIS}`,
        });
        expect(p.silence!.assignment).toMatch(
          new RegExp(
            `^unusual-city baseline allow caller\\+city \\S+ ${PARIS} --for 30d --by "\\$USER" --reason '`,
          ),
        );
      }
    }
  });

  test('the proposed settings silence their pair when applied, and "at" is what the tenant then gets', async () => {
    const T = 30;
    const pairs = at(bt, 'current settings', T).topPairs;
    const all = pairs.filter((p) => p.silence !== undefined);
    const kinds = new Set(all.map((p) => p.silence!.setting));
    // Which pairs are noisy depends on the model; every proposal is one of these.
    const known = new Set([
      'baseline allow caller+city',
      'baseline allow caller+network',
      'baseline allow operation+city',
      'UC_EGRESS_RANGES',
      'UC_FAMILIAR_SCORE_CAP',
      'UC_ALERT_THRESHOLD',
      'UC_ALLOW_CITIES',
    ]);
    expect([...kinds].filter((k) => !known.has(k))).toEqual([]);
    // Allow rules: stored with the allow table's code, a production replay raises no alert of their pairs.
    const ruled = all.filter((p) => p.silence!.rule !== undefined);
    expect(ruled.length).toBeGreaterThan(0);
    const rules = ruled.map((p) => p.silence!.rule! as { kind: AllowKind; value: string });
    const allowed = await replayAlerts({ UC_ALERT_THRESHOLD: String(T) }, rules);
    for (const p of ruled) {
      const [caller] = p.silence!.rule!.kind.startsWith('caller') ? p.silence!.rule!.value.split(' ') : [];
      const still = allowed.filter(
        (a) =>
          a.Operation === p.operation &&
          (p.cityKey.startsWith('g:') ? `g:${a.SrcGeoCityId}` === p.cityKey : a.SrcGeoCity === p.city) &&
          (caller === undefined || a.Caller.toLowerCase() === caller),
      );
      expect(still, `${p.operation} from ${p.city} after ${p.silence!.assignment}`).toEqual([]);
      expect(p.silence!.at!.alerts).toBeLessThan(at(bt, 'current settings', T).alerts);
    }
    // ... while the other callers and cities still alert.
    expect(allowed.length).toBeGreaterThan(0);
    const proposals = all.filter((p) => p.silence!.rule === undefined);
    const thresholds = proposals
      .filter((p) => p.silence!.setting === 'UC_ALERT_THRESHOLD')
      .map((p) => Number(p.silence!.value));
    const others = [
      ...new Set(
        proposals
          .filter((p) => p.silence!.setting !== 'UC_ALERT_THRESHOLD')
          .map((p) => p.silence!.assignment),
      ),
    ];
    // One backtest: the proposed thresholds need no replay, nor do allowed cities; a score cap needs one.
    const vary = new Map<string, string[]>();
    for (const a of others) {
      const eq = a.indexOf('=');
      vary.set(a.slice(0, eq), [...(vary.get(a.slice(0, eq)) ?? []), a.slice(eq + 1)]);
    }
    const check = await runBacktest({
      files: [file],
      thresholds: [T, ...thresholds],
      set: {},
      vary: [...vary].map(([name, values]) => ({ name, values })),
      env: {},
      keepAllDecisions: true,
    });
    expect(check.results.replays).toBe(
      1 + (vary.get('UC_FAMILIAR_SCORE_CAP')?.length ?? 0) + (vary.get('UC_EGRESS_RANGES')?.length ?? 0),
    );
    for (const p of proposals) {
      const s = p.silence!;
      const variant = s.setting === 'UC_ALERT_THRESHOLD' ? 'current settings' : s.assignment;
      const t = s.setting === 'UC_ALERT_THRESHOLD' ? Number(s.value) : T;
      const v = check.results.variants.findIndex((x) => x.name === variant);
      const decision = check.variantDecisions![v]![check.results.thresholds.indexOf(t)]!;
      const still = decision.alerts.filter(
        (a) => a.top.observation.operation === p.operation && a.top.observation.city.key === p.cityKey,
      );
      expect(still, `${p.operation} from ${p.city} after ${s.assignment}`).toEqual([]);
      if (s.at !== undefined) expect(decision.alerts.length).toBe(s.at.alerts);
    }
    // ... and before the change the pair did alert at T.
    const before = bt.decisions[0]!;
    for (const p of proposals)
      expect(
        before.alerts.some(
          (a) => a.top.observation.operation === p.operation && a.top.observation.city.key === p.cityKey,
        ),
      ).toBe(true);
  });

  test('every variant is validated before the first replay', () => {
    expect(() =>
      variantsOf({ set: {}, vary: [{ name: 'UC_MERGE_KM', values: ['10', 'far'] }], env: {} }),
    ).toThrow(SettingsError);
    expect(() => variantsOf({ set: { UC_NOPE: '1' }, vary: [], env: {} })).toThrow(/UC_NOPE/);
    expect(
      variantsOf({ set: {}, vary: [{ name: 'UC_RESCORE_MARGIN', values: ['5', '40'] }], env: {} }),
    ).toHaveLength(3);
  });

  test('a --vary value equal to the current one is no variant: the current settings stand for it', () => {
    const names = (set: Record<string, string>, values: string[]) =>
      variantsOf({ set, vary: [{ name: 'UC_ALERT_COOLDOWN', values }], env: {} }).map((v) => v.name);
    // 24h and 1d are both the default cooldown.
    expect(names({}, ['6h', '24h', '1d'])).toEqual(['current settings', 'UC_ALERT_COOLDOWN=6h']);
    expect(names({ UC_ALERT_COOLDOWN: '6h' }, ['6h', '24h'])).toEqual([
      'current settings',
      'UC_ALERT_COOLDOWN=24h',
    ]);
  });

  test('each varied setting names its current value and the best option at the current threshold', () => {
    expect(bt.results.varied!.map((v) => [v.setting, v.current, v.skipped, v.options, v.rule])).toEqual([
      ['UC_ALERT_COOLDOWN', '24h', [], ['current settings', 'UC_ALERT_COOLDOWN=2h'], 'labels'],
      ['UC_FAMILIAR_SCORE_CAP', '40', [], ['current settings', 'UC_FAMILIAR_SCORE_CAP=20'], 'labels'],
      ['UC_ALLOW_CITIES', '', [], ['current settings', `UC_ALLOW_CITIES=${PARIS}`], 'labels'],
    ]);
    for (const v of bt.results.varied!) {
      // Most attacks detected, then fewest false alerts, then fewest alerts; a tie keeps the current settings.
      const [current, option] = v.options.map((name) => at(bt, name, 50));
      const key = (r: typeof current) => [
        -r!.evaluation!.detected,
        r!.evaluation!.falseAlertsPerDay,
        r!.alertsPerDay,
      ];
      const [a, b] = [key(option), key(current)];
      const i = a.findIndex((x, k) => x !== b[k]);
      expect(v.best, v.setting).toBe(i >= 0 && a[i]! < b[i]! ? v.options[1] : 'current settings');
    }
    // One option that is better and one that is not, so the test sees both outcomes.
    expect(new Set(bt.results.varied!.map((v) => v.best === 'current settings'))).toEqual(
      new Set([true, false]),
    );
  });
});
