/**
 * Issue 14, "Done when" (the replay): the compiled CLI (`replay --state`, the durable SQLite store with Table
 * Storage's limits) over a real-sized export — the 42-day demo tenant (30,000 events, its own labelled attacks)
 * with the London team of test/hostile/scenario.ts — plus the two attacks of the issue (60 operation names of
 * ~500 characters of `"` and `\` from Lagos; 1,000 known operations from Tokyo in one slot) and 100 hostile
 * callers: exit 0, both attackers alerted, everyone else exactly the clean run's alerts, no alert row over 64 KB.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { Alert } from '../../shared/alerts/alert.js';
import { DEMO_START, generateTenant } from '../../shared/demo/tenant.js';
import { killRunningClis, spawnCli } from '../support/builtCli.js';
import { IP } from '../support/events.js';
import { ATTACKERS, FROM, ISSUE_ATTACK, scenario, SETTINGS } from './scenario.js';

/** An address the embedded GeoIP database places in Tokyo. */
const TOKYO = '133.242.99.10';
let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-hostile-replay-'));
});
afterAll(async () => {
  killRunningClis();
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

/** The demo tenant moved to end where the London team's history starts, so the two overlap by two weeks. */
function realSizedExport(): ActivityEvent[] {
  const shift = FROM - 14 * 86_400_000 - DEMO_START;
  return generateTenant(42).events.map((e) => ({ ...e, timeMs: e.timeMs + shift }));
}

async function replayCli(name: string, events: ActivityEvent[]) {
  const input = path.join(tmp, `${name}.jsonl`);
  const out = path.join(tmp, `${name}.alerts.jsonl`);
  await writeJsonLines(
    [...events].sort((a, b) => a.timeMs - b.timeMs),
    input,
  );
  const set = Object.entries(SETTINGS).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const args = ['replay', input, '--out', out, '--state', path.join(tmp, `${name}.state`), '--quiet', ...set];
  const result = await spawnCli(args, { cwd: tmp, timeoutMs: 900_000 }).result;
  const lines = (await readFile(out, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
  return { result, lines, alerts: lines.map((l) => JSON.parse(l) as Alert) };
}

const others = (alerts: readonly Alert[]) =>
  alerts
    .filter((a) => !ATTACKERS.has(a.Caller))
    .map((a) => `${a.AlertId} ${a.Caller} @ ${a.SrcGeoCity}: ${a.Operation}`)
    .sort();

it('replay --state of a real-sized export plus both attacks: exit 0, attackers alerted, the rest as clean, rows ≤ 64 KB', async () => {
  const demo = realSizedExport();
  const { clean, attacked: issue } = scenario(ISSUE_ATTACK);
  // The demo tenant has an office in Mumbai: dev2 comes from Tokyo instead, a city new to this tenant too.
  const attacked = issue.map((e) => (e.callerIp === IP.mumbai ? { ...e, callerIp: TOKYO } : e));
  expect(demo.length + clean.length).toBeGreaterThan(30_000);

  const before = await replayCli('clean', [...demo, ...clean]);
  expect(before.result.code, before.result.stderr).toBe(0);
  const after = await replayCli('attacked', [...demo, ...attacked]);
  expect(after.result.code, after.result.stderr).toBe(0);

  const callers = new Set(after.alerts.map((a) => a.Caller));
  for (const attacker of ATTACKERS) expect(callers, `${attacker} is alerted`).toContain(attacker);
  // The demo's own attacks and the London bystander: some alerts to keep, and exactly those.
  expect(others(before.alerts).length).toBeGreaterThan(3);
  expect(others(after.alerts)).toEqual(others(before.alerts));
  for (const line of after.lines) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(64 * 1024);
}, 1_200_000);
