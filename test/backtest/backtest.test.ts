/**
 * End-to-end tests of `unusual-city backtest` (the compiled CLI, built by test/support/build.ts) on the demo
 * tenant (generateTenant, 42 days, labelled attacks) plus two events from a caller whose name is an HTML
 * injection:
 *  - at every threshold the backtest's alerts are exactly those of `replay --set UC_ALERT_THRESHOLD=T`;
 *  - the JSON, the stdout table and the HTML report show the same numbers;
 *  - the report renders in headless Chromium with charts drawn, no network request, and the hostile caller
 *    name shown as text.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { Alert } from '../../shared/alerts/alert.js';
import { isoNumeric } from '../../shared/backtest/countryCodes.js';
import type { BacktestResults } from '../../shared/backtest/types.js';
import { labelsToJson } from '../../shared/demo/evaluate.js';
import { DEMO_START, generateTenant, OPS, PLACES, SUBSCRIPTION } from '../../shared/demo/tenant.js';
import { headlessChromium } from '../support/browser.js';
import { type CliResult, killRunningClis, spawnCli } from '../support/builtCli.js';

const THRESHOLDS = [30, 40, 50, 60, 70];
/** Replayed separately to compare with the backtest (the others are checked by the alerts files' ids). */
const REPLAYED = [30, 60];

/** A caller name an attacker could put in the Activity Log: it must reach the report as text only. */
const EVIL_CALLER = `<script>window.__pwned=1</script><img src="https://evil.example/x.png" onerror="window.__pwned=2">'"&amp;@contoso.com`;

let tmp = '';
let files: string[] = [];
let labelsPath = '';

const cli = (args: readonly string[], timeoutMs = 110_000): Promise<CliResult> =>
  spawnCli(args, { cwd: tmp, timeoutMs }).result;

function evilEvents(): ActivityEvent[] {
  const t = DEMO_START + 28 * 86_400_000 + 2 * 3_600_000;
  return [OPS.kvPolicy, OPS.roleAssign].map((op, i) => ({
    timeMs: t + i * 120_000,
    operation: op,
    operationKey: op.toLowerCase(),
    caller: EVIL_CALLER,
    callerType: 'user',
    callerIp: PLACES.moscow[0],
    category: 'Administrative',
    status: 'Succeeded',
    correlationId: `c0ffee00-0000-4000-a000-00000000000${i}`,
    eventDataId: `e0ffee00-0000-4000-a000-00000000000${i}`,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: 'rg-data',
    resourceId: `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg-data`,
  }));
}

/** The few browser APIs the screenshot check uses (the project compiles without the DOM library). */
interface BrowserGlobals {
  Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };
  document: {
    createElement(tag: 'canvas'): {
      width: number;
      height: number;
      getContext(kind: '2d'): {
        drawImage(img: unknown, x: number, y: number): void;
        getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
      };
    };
  };
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

let backtest: CliResult;
let results: BacktestResults;
const replayed = new Map<number, string>();

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-backtest-'));
  const data = generateTenant(42);
  files = [path.join(tmp, 'activity.jsonl'), path.join(tmp, 'evil.jsonl')];
  labelsPath = path.join(tmp, 'labels.json');
  await writeJsonLines(data.events, files[0]!);
  await writeJsonLines(evilEvents(), files[1]!);
  await writeFile(labelsPath, JSON.stringify(labelsToJson(data.labels)));

  // The backtest and the replays it is compared with run side by side.
  const [bt, ...reps] = await Promise.all([
    cli([
      'backtest',
      ...files,
      '--labels',
      labelsPath,
      '--thresholds',
      THRESHOLDS.join(','),
      '--report',
      'report.html',
      '--json',
      'results.json',
      '--alerts-dir',
      'alerts',
      // Decision-only settings (no extra replay); 24h and 20 are the current values.
      '--vary',
      'UC_ALERT_COOLDOWN=6h,24h,72h',
      '--vary',
      'UC_RESCORE_MARGIN=10,20,40',
      '--quiet',
    ]),
    ...REPLAYED.map((t) =>
      cli(['replay', ...files, '--out', `replay-${t}.jsonl`, '--set', `UC_ALERT_THRESHOLD=${t}`, '--quiet']),
    ),
  ]);
  backtest = bt!;
  // --quiet: no progress; warnings only (the embedded 2019 GeoIP database's).
  expect(backtest.stderr).toMatch(/^(warning: [^\n]*\n)+$/);
  expect(backtest.code).toBe(0);
  for (const r of reps) expect(r.code, r.stderr).toBe(0);
  for (const t of REPLAYED) replayed.set(t, await readFile(path.join(tmp, `replay-${t}.jsonl`), 'utf8'));
  results = JSON.parse(await readFile(path.join(tmp, 'results.json'), 'utf8')) as BacktestResults;
}, 150_000);

afterAll(async () => {
  killRunningClis();
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

describe('backtest CLI on the demo tenant', () => {
  test('at each threshold, exactly the alerts of replay --set UC_ALERT_THRESHOLD=T (byte for byte)', async () => {
    expect(results.thresholds).toEqual(THRESHOLDS);
    expect(results.replays).toBe(1);
    const base = results.variants[0]!;
    for (const t of REPLAYED) {
      const fromReplay = replayed.get(t)!;
      const fromBacktest = await readFile(path.join(tmp, 'alerts', `alerts-${t}.jsonl`), 'utf8');
      expect(lines(fromReplay).length).toBeGreaterThan(0);
      expect(fromBacktest).toBe(fromReplay);
      const ids = lines(fromReplay).map((l) => (JSON.parse(l) as Alert).AlertId);
      expect(base.results.find((r) => r.threshold === t)!.alertIds).toEqual(ids);
    }
    // The thresholds differ: if they gave the same alerts, this test could not tell a threshold from another.
    expect(lines(replayed.get(30)!).length).toBeGreaterThan(lines(replayed.get(60)!).length);
    for (const r of base.results) {
      const file = await readFile(path.join(tmp, 'alerts', `alerts-${r.threshold}.jsonl`), 'utf8');
      const alerts = lines(file).map((l) => JSON.parse(l) as Alert);
      expect(alerts.map((a) => a.AlertId)).toEqual(r.alertIds);
      expect(r.alerts).toBe(alerts.length);
      expect(alerts.every((a) => a.AnomalyScore >= r.threshold)).toBe(true);
      expect(r.perDay.reduce((s, d) => s + d.alerts, 0)).toBe(r.alerts);
      expect(r.alertsPerDay).toBeCloseTo(r.alerts / results.period.days, 10);
      expect(r.callers).toBe(new Set(alerts.map((a) => a.Caller)).size);
      expect(r.current).toBe(r.threshold === 50);
    }
  });

  test('detection numbers per threshold come from the labels (evaluate)', async () => {
    const base = results.variants[0]!;
    const at50 = base.results.find((r) => r.threshold === 50)!;
    expect(at50.evaluation).toMatchObject({ attacks: 5, detected: 5, missedIds: [] });
    const evaluate = await cli([
      'evaluate',
      ...files,
      '--labels',
      labelsPath,
      '--alerts',
      path.join(tmp, 'alerts', 'alerts-30.jsonl'),
    ]);
    expect(evaluate.code).toBe(0);
    const at30 = base.results.find((r) => r.threshold === 30)!;
    expect(evaluate.stdout).toContain(`attacks detected:   ${at30.evaluation!.detected}/5`);
    expect(evaluate.stdout).toContain(`false alerts:       ${at30.evaluation!.falseAlerts} over`);
    expect(evaluate.stdout).toContain(`= ${at30.evaluation!.falseAlertsPerDay.toFixed(2)} per day`);
    // The hostile caller alerts (a false alert) and is among the noisy pairs' callers at 50.
    expect(at50.topPairs.some((p) => p.callers.includes(EVIL_CALLER))).toBe(true);
    // A score histogram of every per-caller score, most of them far from rare.
    const h = base.scoreHistogram.counts;
    expect(h).toHaveLength(20);
    expect(h.reduce((a, b) => a + b, 0)).toBe(base.replay.scores);
    expect(h[0]!).toBeGreaterThan(h[19]!);
  });

  test('stdout has a summary table with the JSON numbers', () => {
    const base = results.variants[0]!;
    for (const r of base.results) {
      const row = backtest.stdout
        .split('\n')
        .find((l) => l.trim().split(/\s+/)[0] === `${r.current ? '*' : ''}${r.threshold}`);
      expect(row, `row for ${r.threshold}`).toBeDefined();
      const cells = row!.trim().split(/\s+/);
      expect(cells.slice(1, 8)).toEqual([
        String(r.alerts),
        r.alertsPerDay.toFixed(2),
        String(r.callers),
        String(r.operations),
        String(r.cities),
        `${r.evaluation!.detected}/${r.evaluation!.attacks}`,
        r.evaluation!.falseAlertsPerDay.toFixed(2),
      ]);
    }
    expect(backtest.stdout).toContain('Noisy (operation, place) pairs at UC_ALERT_THRESHOLD=50');
    // Control characters of data never reach the terminal.
    // eslint-disable-next-line no-control-regex
    expect(/[\u0000-\u0008\u000b-\u001f\u007f]/.test(backtest.stdout)).toBe(false);
  });

  test('the HTML report renders offline in Chromium: charts, tables = JSON, no requests, injection as text', async () => {
    const report = path.join(tmp, 'report.html');
    const html = await readFile(report, 'utf8');
    expect(html).not.toContain('<script');
    expect(html).not.toMatch(/<img|<link|@import|url\(/i);
    const base = results.variants[0]!;

    const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'uc-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      ...(await headlessChromium()),
      viewport: { width: 1280, height: 900 },
    });
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`file://${report}`, { waitUntil: 'load' });

      // Alerts per day as small multiples: a row per threshold, a bar per day with alerts, the busiest day marked
      // (the first day with the most alerts) and listed in the table under the chart.
      expect(await page.locator('#chart-per-day g.panel').count()).toBe(THRESHOLDS.length);
      for (const r of base.results) {
        const panel = page.locator(`#chart-per-day g.panel[data-threshold="${r.threshold}"]`);
        const bars = await panel
          .locator('rect.day-bar')
          .evaluateAll((rs: { getAttribute(name: string): string | null }[]) =>
            rs.map((b) => [b.getAttribute('data-day'), Number(b.getAttribute('data-alerts'))] as const),
          );
        expect(bars).toEqual(r.perDay.filter((p) => p.alerts > 0).map((p) => [p.day, p.alerts]));
        const most = Math.max(...r.perDay.map((p) => p.alerts));
        const busiest = r.perDay.find((p) => p.alerts === most)!;
        expect(await panel.locator('rect.day-bar.busiest').getAttribute('data-day')).toBe(busiest.day);
        expect(await panel.locator('text.busiest-label').textContent()).toBe(
          `${busiest.day.slice(5)}: ${most}`,
        );
        const row = page.locator(`#busiest-table tr[data-threshold="${r.threshold}"]`);
        expect(await row.locator('td[data-k="day"]').textContent()).toBe(busiest.day);
        expect(await row.locator('td[data-k="alerts"]').textContent()).toBe(String(most));
        expect(await row.locator('td[data-k="falseAlerts"]').textContent()).toBe(String(busiest.falseAlerts));
        // The red foot of each bar: the alerts of labelled attacks that day.
        expect(await panel.locator('rect.attack-part').count()).toBe(
          r.perDay.filter((p) => p.alerts > p.falseAlerts!).length,
        );
      }
      expect(await page.locator('#chart-histogram rect.bar').count()).toBe(20);
      const heights = await page
        .locator('#chart-histogram rect.bar')
        .evaluateAll((rs: { getAttribute(name: string): string | null }[]) =>
          rs.map((r) => Number(r.getAttribute('height'))),
        );
      expect(heights.filter((h) => h > 0).length).toBe(
        base.scoreHistogram.counts.filter((c) => c > 0).length,
      );
      const placed = base.results[0]!.alertCities.filter((c) => !(c.latitude === 0 && c.longitude === 0));
      expect(placed.length).toBeGreaterThan(3);
      expect(await page.locator('#chart-map circle.city').count()).toBe(placed.length);
      expect(await page.locator('#chart-map path.grid').count()).toBeGreaterThan(4);
      // Coastlines and borders (world-atlas): many countries outlined, those alerts come from shaded.
      expect(await page.locator('#chart-map path.country').count()).toBeGreaterThan(40);
      const alerted = await page
        .locator('#chart-map path.country.alerted')
        .evaluateAll((ps: { getAttribute(name: string): string | null }[]) =>
          ps.map((p) => [p.getAttribute('data-id'), p.getAttribute('d')!.split('L').length] as const),
        );
      expect(alerted.map(([id]) => id).sort()).toEqual(
        [...new Set(placed.map((c) => isoNumeric(c.country)))].sort(),
      );
      for (const [id, points] of alerted) expect(points, `outline of country ${id}`).toBeGreaterThan(8);
      expect(await page.locator('#chart-map path.country[data-id="826"] title').textContent()).toContain(
        'United Kingdom',
      );
      const box = await page.locator('#chart-map').boundingBox();
      expect(box!.width).toBeGreaterThan(500);

      // The summary table holds the JSON numbers.
      for (const r of base.results) {
        const row = page.locator(`#summary-table tr[data-threshold="${r.threshold}"]`);
        const cell = (k: string) => row.locator(`td[data-k="${k}"]`).textContent();
        expect(await cell('alerts')).toBe(String(r.alerts));
        expect(await cell('alertsPerDay')).toBe(r.alertsPerDay.toFixed(2));
        expect(await cell('callers')).toBe(String(r.callers));
        expect(await cell('operations')).toBe(String(r.operations));
        expect(await cell('places')).toBe(String(r.cities));
        expect(await cell('detected')).toBe(`${r.evaluation!.detected}/${r.evaluation!.attacks}`);
        expect(await cell('falsePerDay')).toBe(r.evaluation!.falseAlertsPerDay.toFixed(2));
        // Noisy pairs of this threshold, in order, with their setting.
        const pairs = page.locator(`table.pairs[data-threshold="${r.threshold}"] tbody tr`);
        expect(await pairs.count()).toBe(Math.max(1, r.topPairs.length));
        for (const [i, p] of r.topPairs.entries()) {
          const tr = pairs.nth(i);
          expect(await tr.locator('td[data-k="alerts"]').textContent()).toBe(String(p.alerts));
          expect(await tr.locator('td[data-k="falseAlerts"]').textContent()).toBe(String(p.falseAlerts));
          expect(await tr.locator('td[data-k="operation"]').textContent()).toBe(p.operation);
          expect(await tr.locator('td[data-k="silence"]').textContent()).toBe(
            p.silence?.assignment ?? '(no single setting)',
          );
        }
      }
      const current = base.results.find((r) => r.current)!;
      expect(await page.locator('#alerts-table tbody tr').count()).toBe(current.alerts);

      // The --vary options: the current values were not replayed as variants; one bar per option, the best
      // starred — with labels: most attacks detected, then fewest false alerts, then fewest alerts.
      expect(results.variants.map((v) => v.name)).toEqual([
        'current settings',
        'UC_ALERT_COOLDOWN=6h',
        'UC_ALERT_COOLDOWN=72h',
        'UC_RESCORE_MARGIN=10',
        'UC_RESCORE_MARGIN=40',
      ]);
      expect(results.varied!.map((v) => [v.setting, v.current, v.skipped])).toEqual([
        ['UC_ALERT_COOLDOWN', '24h', ['24h']],
        ['UC_RESCORE_MARGIN', '20', ['20']],
      ]);
      const rank = (name: string) => {
        const r = results.variants.find((v) => v.name === name)!.results.find((x) => x.current)!;
        return [-r.evaluation!.detected, r.evaluation!.falseAlertsPerDay, r.alertsPerDay];
      };
      const before = (a: string, b: string) => {
        const [x, y] = [rank(a), rank(b)];
        const i = x.findIndex((v, k) => v !== y[k]);
        return i >= 0 && x[i]! < y[i]!;
      };
      for (const v of results.varied!) {
        const best = v.options.reduce((b, o) => (before(o, b) ? o : b));
        expect(v.best).toBe(best);
        const group = page.locator(`#chart-variants g.varied[data-setting="${v.setting}"]`);
        expect(await group.locator('g.option').count()).toBe(v.options.length);
        expect(await group.locator('g.option.best').getAttribute('data-variant')).toBe(best);
        expect(await group.locator('g.option.best text.option-label').textContent()).toMatch(/^★ /);
      }
      // The cooldown's options differ (72h is best on the demo tenant): the chart is not trivially the current value.
      expect(results.varied![0]!.best).toBe('UC_ALERT_COOLDOWN=72h');
      expect(await page.locator('#variants-table tr.best').getAttribute('data-variant')).toBe(
        'UC_ALERT_COOLDOWN=72h',
      );
      expect(await page.locator('#variants').textContent()).toContain(
        'UC_ALERT_COOLDOWN=24h (the current value: not replayed again)',
      );

      // The hostile caller is text: no script ran, no element was injected, the exact name is displayed.
      expect(await page.locator('script, img, iframe, object, embed, link').count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
      const callers = await page.locator('#alerts-table td.caller').allTextContents();
      expect(callers).toContain(EVIL_CALLER);
      expect(await page.locator('#noisy').textContent()).toContain(EVIL_CALLER);

      // A screenshot that is not blank.
      const shot = path.join(os.tmpdir(), 'unusual-city-backtest-report.png');
      const png = await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBe(png.length);
      expect(png.length).toBeGreaterThan(50_000);
      expect(requests.every((u) => u.startsWith('file:') || u.startsWith('data:'))).toBe(true);
      expect(requests.length).toBeGreaterThan(0);

      // Distinct colours in the screenshot, counted in a blank page from a data: URL (no network either).
      const blank = await context.newPage();
      const blankRequests: string[] = [];
      blank.on('request', (r) => blankRequests.push(r.url()));
      const colours = await blank.evaluate(
        async (src) => {
          const g = globalThis as unknown as BrowserGlobals;
          const img = new g.Image();
          img.src = src;
          await img.decode();
          const canvas = g.document.createElement('canvas');
          canvas.width = img.width;
          canvas.height = img.height;
          const ctx = canvas.getContext('2d');
          ctx.drawImage(img, 0, 0);
          const data = ctx.getImageData(0, 0, img.width, img.height).data;
          const seen = new Set<number>();
          for (let i = 0; i < data.length; i += 4)
            seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
          return { distinct: seen.size, width: img.width, height: img.height };
        },
        `data:image/png;base64,${png.toString('base64')}`,
      );
      expect(colours.width).toBe(1280);
      expect(colours.height).toBeGreaterThan(2000);
      expect(colours.distinct).toBeGreaterThan(50);
      expect(blankRequests.every((u) => u.startsWith('data:') || u === 'about:blank')).toBe(true);
    } finally {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });

  test('usage: --help says which variations need a replay; bad arguments fail before any replay', async () => {
    const help = await cli(['backtest', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('NEEDS ITS OWN REPLAY');
    const top = await cli(['--help']);
    expect(top.stdout).toContain('unusual-city backtest <file>...');

    const cases: [string[], number, RegExp][] = [
      [['backtest'], 64, /needs input files, or --days N/],
      [['backtest', files[0]!, '--thresholds', '30,abc'], 64, /--thresholds expects/],
      [['backtest', files[0]!, '--thresholds', '30,101'], 64, /--thresholds expects/],
      [['backtest', files[0]!, '--vary', 'UC_ALERT_THRESHOLD=40,60'], 64, /use --thresholds/],
      [['backtest', files[0]!, '--vary', 'UC_MERGE_KM'], 64, /--vary expects NAME=v1,v2/],
      [['backtest', files[0]!, '--vary', 'UC_NOT_A_SETTING=1,2'], 78, /UC_NOT_A_SETTING/],
      [['backtest', files[0]!, '--vary', 'UC_MERGE_KM=50,-3'], 78, /UC_MERGE_KM="-3"/],
      [['backtest', files[0]!, '--top', '0'], 64, /--top expects/],
      [['backtest', path.join(tmp, 'missing.jsonl')], 1, /not found/],
    ];
    const out = await Promise.all(cases.map(([args]) => cli(args, 20_000)));
    out.forEach((r, i) => {
      const [args, code, message] = cases[i]!;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    });
  });
});
