/**
 * `unusual-city baseline`: show, forget, allow/disallow/allows and audit — on local state (SQLite, `--state DIR`)
 * and on Table Storage (Azurite, Azure settings) — the effect of a forget on detection, and the built CLI's
 * contract: bootstrap from files, allow, then replay from the bootstrap's checkpoint honouring the allow table.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { UsageError } from '../../shared/cli/args.js';
import { runBaselineCommand } from '../../shared/cli/baseline.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { readAudit } from '../../shared/ops/audit.js';
import { checkpointOf, type OperationView } from '../../shared/ops/baseline.js';
import { runBootstrap, startBootstrap } from '../../shared/ops/bootstrap.js';
import { readCallerCities } from '../../shared/pipeline/callers.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteTables, startAzurite } from '../support/azurite.js';
import { ev, IP, replayEvents } from '../support/events.js';
import { DAY, GEONAME, history, HOUR, LISTKEYS, MIN, T0 } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'shared', 'cli', 'main.js');
const LAGOS = `g:${GEONAME.lagos}`;
const LONDON = `g:${GEONAME.london}`;
const attackAt = (day: number) =>
  ev(T0 + day * DAY + 3 * HOUR + 10 * MIN, LISTKEYS, 'admin@contoso.com', IP.lagos);
const NOW = T0 + 11 * DAY;
/** Hourly runs: the same baselines as 15-minute ones for these tests, in a quarter of the time. */
const HOURLY = { UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' };

let tmp = '';
let azurite: AzuriteTables;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'uc-baseline-'));
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => {
  await azurite.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** Learns `events` into any store, quickly: a bootstrap from them (the same baselines as hourly runs). */
async function learnInto(store: BaselineStore, events: readonly ActivityEvent[]): Promise<void> {
  const settings = loadSettings({});
  const source = new AggregatedEvents(settings.UC_TICK_INTERVAL, settings.UC_LOOKBACK);
  for (const e of events) source.add(e);
  await startBootstrap(store, {
    days: 30,
    endMs: Math.floor(source.maxMs / HOUR) * HOUR + HOUR,
    earliestMs: source.minMs,
    source: 'files',
    requestedBy: 'test',
    clock: () => T0 + 10 * DAY,
  });
  const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  const r = await runBootstrap({ settings, store, source, geo, log: () => undefined }, { owner: 'test' });
  expect(r.outcome).toBe('done');
}

/** Runs the command in-process; a UsageError propagates as main.ts would map it (exit 64). */
async function cli(args: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runBaselineCommand(args, {
    env,
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    clock: () => NOW,
  });
  return { code, stdout, stderr };
}

const backends: {
  name: string;
  open: () => Promise<{ store: BaselineStore; where: string[] }>;
}[] = [
  {
    name: 'local state (SQLite, --state DIR)',
    open: async () => {
      const dir = await mkdtemp(join(tmp, 'state-'));
      return { store: SqliteStore.openDirectory(dir), where: ['--state', dir] };
    },
  },
  {
    name: 'Table Storage (Azurite, Azure settings)',
    open: async () => {
      const prefix = `ucbase${Math.random().toString(36).slice(2, 8)}`;
      const conn = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};TableEndpoint=${azurite.endpoint}`;
      const store = await TableStorageStore.open({
        endpoint: azurite.endpoint,
        credential: azurite.credential,
        tablePrefix: prefix,
        allowInsecureConnection: true,
      });
      return {
        store,
        where: ['--set', `UC_STORAGE_CONNECTION_STRING=${conn}`, '--set', `UC_TABLE_PREFIX=${prefix}`],
      };
    },
  },
];

describe.each(backends)('baseline commands on $name', ({ open }) => {
  it('show, forget, allow, disallow, allows, audit', async () => {
    const { store, where } = await open();
    await learnInto(store, [...history(10), attackAt(10)]);
    const checkpoint = await checkpointOf(store);
    if (store instanceof SqliteStore) await store.close(); // the command opens the directory itself

    // show: the operation in any case; London established with three callers, Lagos seen once.
    const shown = await cli(['show', LISTKEYS.toUpperCase(), ...where]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`${LISTKEYS} (key ${LISTKEYS.toLowerCase()})`);
    expect(shown.stdout).toMatch(
      /City\s+Key\s+Hours\s+Raw hours\s+Days\s+First seen\s+Last seen\s+Established\s+Callers/,
    );
    expect(shown.stdout).toMatch(
      new RegExp(
        `London, England, GB\\s+${LONDON}\\s+\\d+\\.\\d\\s+80\\s+10\\s+.*yes\\s+1: admin@contoso.com`,
      ),
    );
    expect(shown.stdout).toMatch(
      new RegExp(`Lagos, .*NG\\s+${LAGOS}\\s+0\\.\\d\\s+1\\s+1\\s+.*no\\s+1: admin@contoso.com`),
    );
    const json = JSON.parse((await cli(['show', LISTKEYS, '--json', ...where])).stdout) as OperationView;
    expect(json.cities.map((c) => c.key)).toEqual([LONDON, LAGOS]);
    const london = json.cities[0]!;
    expect(london).toMatchObject({
      rawHours: 80,
      days: 10,
      established: true,
      callers: ['admin@contoso.com'],
    });
    expect(london.hours).toBeGreaterThan(50);
    expect(london.hours).toBeLessThan(80); // decayed, and the first hours weighed less until established
    // Decayed to the state's own time (its checkpoint, where the bootstrap ended), not to today's clock.
    expect(checkpoint).toBeLessThan(NOW);
    expect(json.asOf).toBe(new Date(checkpoint!).toISOString());
    // Without an operation: the operations learned.
    const listed = await cli(['show', ...where]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^operation\s+active hours\s+last seen\n/);
    expect(listed.stdout).toContain(LISTKEYS);
    expect((await cli(['show', 'Microsoft.Nothing/at/all', ...where])).code).toBe(1);

    // forget: by name, with who and why, also from the compromised caller's history.
    await expect(cli(['forget', LISTKEYS, 'Lagos', ...where])).rejects.toThrow(UsageError);
    expect((await cli(['forget', LISTKEYS, 'Atlantis', '--by', 'a', '--reason', 'r', ...where])).code).toBe(
      1,
    );
    const forgot = await cli([
      'forget',
      LISTKEYS,
      'lagos',
      '--caller',
      'admin@contoso.com',
      '--by',
      'alice',
      '--reason',
      'INC-1234 confirmed compromise',
      ...where,
    ]);
    expect(forgot.code).toBe(0);
    expect(forgot.stdout).toContain(
      `forgot ${LAGOS} (Lagos) for ${LISTKEYS.toLowerCase()}: 1 hour(s) on 1 day(s)`,
    );
    expect(forgot.stdout).toContain(`forgot ${LAGOS} for caller admin@contoso.com`);
    const after = JSON.parse((await cli(['show', LISTKEYS, '--json', ...where])).stdout) as OperationView;
    expect(after.cities.map((c) => c.key)).toEqual([LONDON]);
    // Forgetting again finds nothing.
    expect(
      (await cli(['forget', LISTKEYS, LAGOS, '--by', 'alice', '--reason', 'again', ...where])).code,
    ).toBe(1);

    // allow / disallow / allows.
    await expect(
      cli(['allow', 'range', '10.0.0.0/8', '--by', 'a', '--reason', 'r', ...where]),
    ).rejects.toThrow(/private range/);
    await expect(cli(['allow', 'caller', 'ci@contoso.com', ...where])).rejects.toThrow(/--by/);
    const allowed = await cli([
      'allow',
      'caller',
      'CI@contoso.com',
      '--by',
      'bob',
      '--reason',
      'pipeline',
      ...where,
    ]);
    expect(allowed.stdout).toBe('allowed: caller ci@contoso.com; honoured from the next run\n');
    const twice = await cli([
      'allow',
      'caller',
      'ci@contoso.com',
      '--by',
      'bob',
      '--reason',
      'pipeline v2',
      ...where,
    ]);
    expect(twice.stdout).toContain('already allowed');
    expect(
      (
        await cli([
          'allow',
          'operation+city',
          LISTKEYS,
          '2643743',
          '--by',
          'bob',
          '--reason',
          'office',
          ...where,
        ])
      ).code,
    ).toBe(0);
    const list = await cli(['allows', ...where], { UC_ALLOW_CITIES: '2643743' });
    expect(list.stdout).toBe(
      'from settings (1):\n' +
        '  city g:2643743 (UC_ALLOW_CITIES)\n' +
        'allow table (2):\n' +
        '  caller ci@contoso.com (allow table: bob, 2026-10-16: "pipeline v2")\n' +
        `  operation+city ${LISTKEYS.toLowerCase()} g:2643743 (allow table: bob, 2026-10-16: "office")\n`,
    );
    expect(
      (await cli(['disallow', 'caller', 'ci@contoso.com', '--by', 'carol', '--reason', 'retired', ...where]))
        .stdout,
    ).toContain('removed: caller ci@contoso.com');
    expect(
      (await cli(['disallow', 'caller', 'ci@contoso.com', '--by', 'c', '--reason', 'r', ...where])).code,
    ).toBe(1);

    // audit: every change, in order, with who and why.
    const audit = JSON.parse((await cli(['audit', '--json', ...where])).stdout) as {
      action: string;
      by: string;
      subject: string;
    }[];
    expect(audit.map((a) => [a.action, a.by, a.subject])).toEqual([
      ['bootstrap', 'test', '10.2 day(s) of files, 2026-10-05T00:00:00.000Z to 2026-10-15T04:00:00.000Z'],
      ['forget', 'alice', `${LISTKEYS.toLowerCase()} ${LAGOS}`],
      ['allow', 'bob', 'caller ci@contoso.com'],
      ['allow', 'bob', 'caller ci@contoso.com'],
      ['allow', 'bob', `operation+city ${LISTKEYS.toLowerCase()} g:2643743`],
      ['disallow', 'carol', 'caller ci@contoso.com'],
    ]);
    if (!(store instanceof SqliteStore)) {
      expect((await readCallerCities(store, 'admin@contoso.com')).has(LAGOS)).toBe(false);
      await store.close();
    }
  });
});

describe('forget after a compromise', () => {
  it('makes the attacker city new again for the operation and the caller, so it alerts again', async () => {
    // The stolen key is used from Lagos every other day; by the fourth day the city is "familiar" to the caller.
    const attacks = [10, 12, 14, 16].map(attackAt);
    const events: ActivityEvent[] = [...history(17), ...attacks];
    const control = await replayEvents(events, HOURLY);
    expect(control.sink.alerts.filter((a) => a.SrcGeoCity === 'Lagos').length).toBeLessThan(attacks.length);
    const dir = await mkdtemp(join(tmp, 'forget-'));
    const state = SqliteStore.openDirectory(dir);
    await replayEvents(events, HOURLY, state);
    await state.close();
    expect(
      (
        await cli([
          'forget',
          LISTKEYS,
          String(GEONAME.lagos),
          '--caller',
          'admin@contoso.com',
          '--by',
          'alice',
          '--reason',
          'confirmed compromise',
          '--state',
          dir,
        ])
      ).code,
    ).toBe(0);
    // Day 18: the attacker comes back.
    const more = [...events, ...history(2, T0 + 17 * DAY), attackAt(18)];
    const before = control.sink.alerts.length;
    await replayEvents(more, HOURLY, control.store);
    const forgotten = SqliteStore.openDirectory(dir);
    const after = await replayEvents(more, HOURLY, forgotten);
    const lagosAfterControl = control.sink.alerts.slice(before).filter((a) => a.SrcGeoCity === 'Lagos');
    expect(lagosAfterControl).toEqual([]);
    expect(after.sink.alerts.filter((a) => a.SrcGeoCity === 'Lagos').map((a) => a.FirstEventTime)).toEqual([
      new Date(T0 + 18 * DAY + 3 * HOUR + 10 * MIN).toISOString(),
    ]);
    expect((await readAudit(forgotten)).map((a) => a.action)).toEqual(['forget']);
    await Promise.all([control.store.close(), forgotten.close()]);
  });
});

/** The built CLI (dist/, built by the test set-up): exit codes and output are the contract. */
function runBuilt(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UC_')) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: tmp,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the built CLI', () => {
  it('bootstrap --from-files, baseline allow, then replay continues from the checkpoint and honours the table', async () => {
    const dir = join(tmp, 'cli-state');
    const historyFile = join(tmp, 'history.jsonl');
    const presentFile = join(tmp, 'present.jsonl');
    await writeJsonLines(history(10), historyFile);
    await writeJsonLines(
      [
        attackAt(10),
        ev(
          T0 + 10 * DAY + 3 * HOUR + 12 * MIN,
          'Microsoft.Compute/virtualMachines/write',
          'admin@contoso.com',
          IP.lagos,
        ),
      ],
      presentFile,
    );
    const boot = await runBuilt([
      'bootstrap',
      '--from-files',
      historyFile,
      '--state',
      dir,
      '--by',
      'ci',
      '--reason',
      'test',
    ]);
    expect(boot.code, boot.stderr).toBe(0);
    expect(boot.stdout).toMatch(
      /^bootstrap done: 10 day\(s\) of history, 2026-10-05T00:00:00.000Z to 2026-10-14T23:15:00.000Z: .* no alerts/,
    );
    // Its end is the checkpoint: the tick after the last history event (day 9, 23:10).
    const status = await runBuilt(['bootstrap', '--status', '--json', '--state', dir]);
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: 'done',
      source: 'files',
      end: '2026-10-14T23:15:00.000Z',
    });

    const allow = await runBuilt([
      'baseline',
      'allow',
      'operation+city',
      LISTKEYS,
      String(GEONAME.lagos),
      '--by',
      'alice',
      '--reason',
      'DR test',
      '--state',
      dir,
    ]);
    expect(allow.code, allow.stderr).toBe(0);
    const out = join(tmp, 'alerts.jsonl');
    const replayed = await runBuilt(['replay', presentFile, '--state', dir, '--out', out, '--quiet']);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toMatch(
      /allowlist matches: 1× operation\+city .* g:2332459 \(allow table: alice, .*"DR test"\)/,
    );
    expect(replayed.stderr).toMatch(/allowlisted:\s+1 rare finding\(s\) kept from alerting/);
    const alerts = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { SrcGeoCity: string; Operation: string });
    // The Lagos listKeys finding was allowed; the other operation from Lagos still alerts, on its own.
    expect(alerts.map((a) => [a.SrcGeoCity, a.Operation])).toEqual([
      ['Lagos', 'Microsoft.Compute/virtualMachines/write'],
    ]);

    const usage = await runBuilt(['baseline', 'forget', LISTKEYS, 'Lagos', '--state', dir]);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toContain('baseline forget needs --by <who>');
    const refused = await runBuilt(['bootstrap', '--from-files', historyFile, '--state', dir, '--days', '3']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('bootstrap refused');
    // A replay into a state whose bootstrap is unfinished would count the present before history: refused.
    const unfinished = join(tmp, 'unfinished');
    const pending = SqliteStore.openDirectory(unfinished);
    await startBootstrap(pending, { days: 3, endMs: T0 + 3 * DAY, source: 'files', requestedBy: 't' });
    await pending.close();
    const blocked = await runBuilt([
      'replay',
      presentFile,
      '--state',
      unfinished,
      '--out',
      join(tmp, 'x.jsonl'),
    ]);
    expect(blocked.code).toBe(64);
    expect(blocked.stderr).toContain('holds an unfinished bootstrap');
    const help = await runBuilt(['--help']);
    expect(help.stdout).toContain('unusual-city bootstrap');
    expect(help.stdout).toContain('unusual-city baseline show|forget|allow|disallow|allows|audit');
    const badSetting = await runBuilt([
      'baseline',
      'allows',
      '--state',
      dir,
      '--set',
      'UC_ALLOW_SERVICE_TAGS=AzureCloud',
    ]);
    expect(badSetting.code).toBe(78);
    expect(loadSettings({}).UC_BOOTSTRAP_DAYS).toBe(30);
  });
});
