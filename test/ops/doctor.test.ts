/**
 * `unusual-city doctor` against the local fakes (managed identity, Log Analytics over https, Azurite): all green
 * on a healthy deployment, and each injected fault turns its own check red with its fix. The compiled CLI without
 * settings exits non-zero naming UC_WORKSPACE_ID, without a stack trace.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import columns from '../../shared/alerts/columns.json' with { type: 'json' };
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { runDoctorCommand } from '../../shared/cli/doctor.js';
import { loadSettings } from '../../shared/config/settings.js';
import { AlertOutbox } from '../../shared/delivery/outbox.js';
import { BOOTSTRAP_PARTITION, BOOTSTRAP_ROW } from '../../shared/pipeline/runState.js';
import { CHECKPOINT_PARTITION, CHECKPOINT_ROW } from '../../shared/pipeline/state.js';
import { ACTIVITY_HEALTH_QUERY, type Check, LAST_RUN_QUERY } from '../../shared/runtime/doctor.js';
import { DETECTOR_ROLES } from '../../shared/runtime/doctorArm.js';
import { makeAlert } from '../delivery/helpers.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { spawnCli } from '../support/builtCli.js';
import { azureEnv } from '../support/e2eHarness.js';
import {
  type AzureActivityRow,
  type FakeLogAnalytics,
  type OtherQueryResult,
  startFakeLogAnalytics,
} from '../support/fakeLogAnalytics.js';
import { cityDatabase, withBuildEpoch } from '../support/fakeMaxMind.js';
import { type FakeResourceManager, startFakeResourceManager } from '../support/fakeResourceManager.js';
import { type FakeIdentity, startFakeIdentity } from '../support/identity.js';

const MIN = 60_000;
const DAY = 86_400_000;
const SUB_A = '11111111-1111-4111-8111-111111111111';
const SUB_B = '22222222-2222-4222-8222-222222222222';

/** The deployment as Azure Resource Manager knows it (infra/main.bicep's resources). */
const SUB = '33333333-3333-4333-8333-333333333333';
const RG = `/subscriptions/${SUB}/resourceGroups/rg-unusual-city`;
const WORKSPACE_ID = `${RG}/providers/Microsoft.OperationalInsights/workspaces/log-uc`;
const STORAGE_ID = `${RG}/providers/Microsoft.Storage/storageAccounts/stuc`;
const DCR_ID = `${RG}/providers/Microsoft.Insights/dataCollectionRules/dcr-uc`;
const VAULT_ID = `${RG}/providers/Microsoft.KeyVault/vaults/kv-uc`;
const APPINSIGHTS_ID = `${RG}/providers/Microsoft.Insights/components/appi-uc`;
const RULE_ID = `${WORKSPACE_ID}/providers/Microsoft.SecurityInsights/alertRules/4b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b`;
const TABLE_ID = `${WORKSPACE_ID}/tables/${columns.table}`;
/** Application Insights writes to its own workspace (the template's default): the run events are there. */
const TELEMETRY_WS = `${RG}/providers/Microsoft.OperationalInsights/workspaces/log-uc-telemetry`;
const TELEMETRY_WS_GUID = '7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d';
const PRINCIPAL = '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b';
const DCR_IMMUTABLE_ID = 'dcr-00000000000000000000000000000000';

/** What the template creates: the resources and the identity's role assignments (plus others' and inherited ones). */
function deployedResources(arm: FakeResourceManager): void {
  arm.resources = new Map<string, unknown>([
    [WORKSPACE_ID, { id: WORKSPACE_ID, properties: {} }],
    [STORAGE_ID, { id: STORAGE_ID, properties: {} }],
    [VAULT_ID, { id: VAULT_ID, properties: {} }],
    [APPINSIGHTS_ID, { id: APPINSIGHTS_ID, kind: 'web', properties: { WorkspaceResourceId: TELEMETRY_WS } }],
    [TELEMETRY_WS, { id: TELEMETRY_WS, properties: { customerId: TELEMETRY_WS_GUID } }],
    [
      TABLE_ID,
      {
        id: TABLE_ID,
        name: columns.table,
        properties: { retentionInDays: 90, plan: 'Analytics', provisioningState: 'Succeeded' },
      },
    ],
    [
      DCR_ID,
      {
        id: DCR_ID,
        properties: {
          immutableId: DCR_IMMUTABLE_ID,
          dataFlows: [
            {
              streams: [`Custom-${columns.table}`],
              destinations: ['workspace'],
              outputStream: `Custom-${columns.table}`,
            },
          ],
          provisioningState: 'Succeeded',
        },
      },
    ],
    [RULE_ID, { id: RULE_ID, kind: 'Scheduled', properties: { displayName: 'Unusual city', enabled: true } }],
  ]);
  const grant = (scope: string, role: string, principalId = PRINCIPAL) => ({ scope, principalId, role });
  arm.roleAssignments = [
    grant(WORKSPACE_ID, DETECTOR_ROLES['Log Analytics Reader']),
    grant(STORAGE_ID, DETECTOR_ROLES['Storage Table Data Contributor']),
    grant(STORAGE_ID, DETECTOR_ROLES['Storage Blob Data Owner']),
    grant(STORAGE_ID, DETECTOR_ROLES['Storage Queue Data Contributor']),
    grant(DCR_ID, DETECTOR_ROLES['Monitoring Metrics Publisher']),
    grant(VAULT_ID, DETECTOR_ROLES['Key Vault Secrets User']),
    grant(APPINSIGHTS_ID, DETECTOR_ROLES['Monitoring Metrics Publisher']),
    // Someone else's roles, and a Reader inherited from the resource group (listed at every scope below it).
    grant(STORAGE_ID, DETECTOR_ROLES['Storage Blob Data Owner'], '6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c'),
    grant(RG, 'acdd72a7-3385-48ef-bd42-f606fba81ae7'),
  ];
}

/** UnusualCityRun events of Application Insights (AppEvents), as the workspace would hold them. */
let appEvents: { TimeGenerated: string; Name: string }[] = [];

/** What the doctor's two queries compute in Log Analytics, computed over the fake's rows. */
function doctorQueries(
  query: string,
  rows: readonly AzureActivityRow[],
  workspace: string,
): OtherQueryResult | undefined {
  const since = Date.now() - DAY;
  if (query === ACTIVITY_HEALTH_QUERY) {
    const bySub = new Map<string, { n: number; newest: number }>();
    for (const r of rows) {
      const t = Date.parse(String(r.TimeGenerated));
      if (!(t > since)) continue;
      const g = bySub.get(String(r.SubscriptionId)) ?? { n: 0, newest: 0 };
      bySub.set(String(r.SubscriptionId), { n: g.n + 1, newest: Math.max(g.newest, t) });
    }
    const out = [...bySub].sort((a, b) => b[1].newest - a[1].newest);
    return {
      columns: [
        ['SubscriptionId', 'string'],
        ['Rows', 'long'],
        ['Newest', 'datetime'],
      ],
      rows: out.map(([sub, g]) => [sub, g.n, new Date(g.newest).toISOString()]),
    };
  }
  if (query === LAST_RUN_QUERY) {
    const events = workspace === TELEMETRY_WS_GUID ? appEvents : [];
    const runs = events.filter((e) => e.Name === 'UnusualCityRun' && Date.parse(e.TimeGenerated) > since);
    const last = Math.max(...runs.map((e) => Date.parse(e.TimeGenerated)));
    return {
      columns: [
        ['Runs', 'long'],
        ['Last', 'datetime'],
      ],
      rows: [[runs.length, runs.length > 0 ? new Date(last).toISOString() : null]],
    };
  }
  return undefined;
}

let identity: FakeIdentity;
let restoreEnv: () => void;
let azurite: AzuriteTables;
let logs: FakeLogAnalytics;
let arm: FakeResourceManager;
let tmp = '';
let currentDb = '';
let prefixes = 0;

beforeAll(async () => {
  identity = await startFakeIdentity();
  restoreEnv = identity.install();
  azurite = await startAzurite();
  logs = await startFakeLogAnalytics({ rows: [], other: doctorQueries });
  arm = await startFakeResourceManager();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-doctor-'));
  currentDb = path.join(tmp, 'GeoLite2-City.mmdb');
  await writeFile(currentDb, withBuildEpoch(cityDatabase(), Math.floor(Date.now() / 1000) - 3 * 86_400));
});
afterAll(async () => {
  restoreEnv();
  await Promise.all([identity.close(), azurite.stop(), logs.close(), arm.close()]);
  await rm(tmp, { recursive: true, force: true });
});

interface World {
  env: Record<string, string>;
  store: TableStorageStore;
}

/** A healthy deployment in its own tables: recent activity, a fresh checkpoint, a finished bootstrap, a run event. */
async function healthy(): Promise<World> {
  const now = Date.now();
  const prefix = `doc${++prefixes}`;
  logs.rows = [
    { TimeGenerated: new Date(now - 7 * MIN).toISOString(), SubscriptionId: SUB_A },
    { TimeGenerated: new Date(now - 30 * MIN).toISOString(), SubscriptionId: SUB_A },
    { TimeGenerated: new Date(now - 50 * MIN).toISOString(), SubscriptionId: SUB_B },
  ];
  appEvents = [{ TimeGenerated: new Date(now - 9 * MIN).toISOString(), Name: 'UnusualCityRun' }];
  deployedResources(arm);
  const store = await TableStorageStore.open({
    endpoint: azurite.endpoint,
    credential: azurite.credential,
    tablePrefix: prefix,
    allowInsecureConnection: true,
  });
  const tick = Math.floor(now / (15 * MIN)) * 15 * MIN;
  await store.updateRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW], () => {
    return new Map([[CHECKPOINT_ROW, { lastTickMs: tick, updatedAt: new Date(tick).toISOString() }]]);
  });
  await store.updateRows('state', BOOTSTRAP_PARTITION, [BOOTSTRAP_ROW], () => {
    const status = { id: 'b1', state: 'done', phase: 'done', source: 'log-analytics', days: 30 };
    return new Map([[BOOTSTRAP_ROW, { ...status, windowsDone: 30, windowsTotal: 30, lastError: '' }]]);
  });
  const env = azureEnv(
    { identity, logs, azurite },
    {
      UC_TABLE_PREFIX: prefix,
      UC_GEOIP_DB_PATH: currentDb,
      UC_INGESTION_ENDPOINT: 'https://127.0.0.1:9/',
      UC_DCR_IMMUTABLE_ID: DCR_IMMUTABLE_ID,
      UC_ARM_ENDPOINT: arm.endpoint,
      UC_IDENTITY_PRINCIPAL_ID: PRINCIPAL,
      UC_WORKSPACE_RESOURCE_ID: WORKSPACE_ID,
      UC_STORAGE_RESOURCE_ID: STORAGE_ID,
      UC_DCR_RESOURCE_ID: DCR_ID,
      UC_KEY_VAULT_RESOURCE_ID: VAULT_ID,
      UC_APPINSIGHTS_RESOURCE_ID: APPINSIGHTS_ID,
      UC_ANALYTICS_RULE_ID: RULE_ID,
    },
  );
  return { env: { ...(process.env as Record<string, string>), ...env }, store };
}

/** The UC_* settings of an environment. */
const pick = (env: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('UC_')));

async function doctor(env: Record<string, string>, ...args: string[]) {
  let stdout = '';
  const code = await runDoctorCommand(args, {
    env,
    stdout: (s) => (stdout += s),
    stderr: () => undefined,
    tlsCa: logs.ca,
  });
  return { code, stdout };
}

async function checksOf(env: Record<string, string>): Promise<{ code: number; checks: Check[] }> {
  const { code, stdout } = await doctor(env, '--json');
  return { code, checks: (JSON.parse(stdout) as { checks: Check[] }).checks };
}

/** The named checks failed with a fix matching `fix`; every other check passed. */
function expectOnlyRed(checks: Check[], names: readonly string[], fix: RegExp): void {
  for (const c of checks) {
    if (names.includes(c.name)) {
      expect(c.ok, `${c.name}: ${c.detail}`).toBe(false);
      expect(c.fix, c.name).toMatch(fix);
    } else expect(c.ok, `${c.name} should pass: ${c.detail}`).toBe(true);
  }
  expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining([...names]));
}

describe('unusual-city doctor against the local fakes', () => {
  test('a healthy deployment: every check ✓, one line each, exit 0', async () => {
    const { env, store } = await healthy();
    const { code, stdout } = await doctor(env);
    await store.close();
    expect(code, stdout).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(
      lines.every((l) => l.startsWith('✓ ')),
      stdout,
    ).toBe(true);
    expect(lines.map((l) => l.slice(2, l.indexOf(':')))).toEqual([
      'settings',
      'token for Log Analytics',
      'token for Logs Ingestion',
      'token for Azure Resource Manager',
      'AzureActivity in the workspace',
      'Table Storage',
      'checkpoint',
      'bootstrap',
      'alert outbox',
      'GeoIP database',
      'roles on the workspace',
      'roles on the storage account',
      'roles on the DCR (may ingest)',
      'roles on the Key Vault',
      'roles on Application Insights',
      'alerts table',
      'data collection rule',
      'Sentinel analytics rule',
      'last run in Application Insights',
    ]);
    expect(stdout).toMatch(
      /newest row 7 min old; subscriptions sending: 1{8}-.* \(2 rows\), 2{8}-.* \(1 rows\)/,
    );
    expect(stdout).toMatch(/✓ GeoIP database: GeoLite2-City built \d{4}-\d\d-\d\d \(3 days old\)/);
    expect(stdout).toContain('✓ bootstrap: done, 30 day(s) of history');
    expect(stdout).toContain(
      '✓ roles on the storage account: holds Storage Table Data Contributor, Storage Blob Data Owner, Storage Queue Data Contributor',
    );
    expect(stdout).toContain(
      `✓ data collection rule: exists, ${DCR_IMMUTABLE_ID}, writes Custom-${columns.table}`,
    );
    expect(stdout).toContain('✓ Sentinel analytics rule: "Unusual city" exists and is enabled');
    // The run events are read in Application Insights' own workspace, found through ARM.
    expect(stdout).toContain(`(1 in the last day, workspace ${TELEMETRY_WS_GUID})`);
    // The real protocol: the principal filter, OData-quoted, at each resource; the API versions doctor uses.
    expect(arm.requests).toContain(
      `${DCR_ID}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&%24filter=principalId+eq+%27${PRINCIPAL}%27`,
    );
    expect(arm.requests).toContain(`${DCR_ID}?api-version=2023-03-11`);
    expect(arm.requests).toContain(`${TABLE_ID}?api-version=2022-10-01`);
    expect(arm.requests).toContain(`${RULE_ID}?api-version=2025-09-01`);
    // The identity's four assignments seen at the storage account (three there, Reader inherited): two pages.
    expect(arm.requests.filter((r) => r.startsWith(`${STORAGE_ID}/providers`))).toHaveLength(2);
    arm.reset();
  });

  test('each injected fault turns its own check red, with its fix', async () => {
    const faults: [
      string,
      (w: World) => Record<string, string> | Promise<Record<string, string>>,
      string[],
      RegExp,
    ][] = [
      ['bad setting', (w) => ({ ...w.env, UC_ALERT_THRESHOLD: 'abc' }), ['settings'], /--set NAME=VALUE/],
      [
        'no AzureActivity',
        (w) => ((logs.rows = []), w.env),
        ['AzureActivity in the workspace'],
        /Activity Log to this workspace/,
      ],
      [
        'stale AzureActivity',
        (w) => (
          (logs.rows = [
            { TimeGenerated: new Date(Date.now() - 5 * 3_600_000).toISOString(), SubscriptionId: SUB_A },
          ]),
          w.env
        ),
        ['AzureActivity in the workspace'],
        /stopped arriving/,
      ],
      [
        'workspace refuses',
        (w) => (logs.failNext(403, 2), w.env),
        ['AzureActivity in the workspace', 'last run in Application Insights'],
        /Log Analytics Reader|APPLICATIONINSIGHTS_CONNECTION_STRING/,
      ],
      [
        'old checkpoint',
        async (w) => {
          await w.store.updateRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW], () => {
            const old = Date.now() - 3 * 3_600_000;
            return new Map([[CHECKPOINT_ROW, { lastTickMs: old, updatedAt: new Date(old).toISOString() }]]);
          });
          return w.env;
        },
        ['checkpoint'],
        /runs are failing/,
      ],
      [
        'no bootstrap',
        async (w) => {
          await w.store.updateRows(
            'state',
            BOOTSTRAP_PARTITION,
            [BOOTSTRAP_ROW],
            () => new Map([[BOOTSTRAP_ROW, null]]),
          );
          return w.env;
        },
        ['bootstrap'],
        /unusual-city bootstrap --days 30/,
      ],
      [
        'undelivered alert',
        async (w) => {
          await new AlertOutbox(w.store, { now: () => Date.now() - 2 * 3_600_000 }).write([makeAlert(1)]);
          return w.env;
        },
        ['alert outbox'],
        /Monitoring Metrics Publisher on the DCR/,
      ],
      [
        'stale GeoIP',
        (w) => ({ ...w.env, UC_GEOIP_DB_PATH: '' }),
        ['GeoIP database'],
        /refreshGeoIpDatabase/,
      ],
      [
        'no run event',
        (w) => ((appEvents = []), w.env),
        ['last run in Application Insights'],
        /APPLICATIONINSIGHTS_CONNECTION_STRING/,
      ],
      [
        'a role missing',
        (w) => {
          arm.roleAssignments = arm.roleAssignments.filter(
            (a) =>
              !(
                a.scope === STORAGE_ID &&
                a.principalId === PRINCIPAL &&
                a.role === DETECTOR_ROLES['Storage Blob Data Owner']
              ),
          );
          return w.env;
        },
        ['roles on the storage account'],
        new RegExp(
          `--assignee-object-id ${PRINCIPAL} .*--role "Storage Blob Data Owner" --scope ${STORAGE_ID}$`,
        ),
      ],
      [
        'role assignments forbidden (403)',
        (w) => (arm.fail(`${WORKSPACE_ID}/providers/Microsoft.Authorization/`, 403), w.env),
        ['roles on the workspace'],
        /Reader \(or Monitoring Reader\) on the resource group.*grantDeployerDataAccess=true/,
      ],
      [
        'DCR deleted (404)',
        (w) => (arm.resources.delete(DCR_ID), w.env),
        ['data collection rule', 'roles on the DCR (may ingest)'],
        /azd provision/,
      ],
      [
        'DCR of another immutable id',
        (w) => ({ ...w.env, UC_DCR_IMMUTABLE_ID: 'dcr-11111111111111111111111111111111' }),
        ['data collection rule'],
        /azd env get-value UC_DCR_IMMUTABLE_ID/,
      ],
      [
        'alerts table missing',
        (w) => (arm.resources.delete(TABLE_ID), w.env),
        ['alerts table'],
        /azd provision creates UnusualCityAlerts_CL/,
      ],
      [
        'analytics rule disabled',
        (w) => {
          arm.resources.set(RULE_ID, {
            id: RULE_ID,
            properties: { displayName: 'Unusual city', enabled: false },
          });
          return w.env;
        },
        ['Sentinel analytics rule'],
        /Analytics → Active rules → Enable/,
      ],
      [
        'analytics rule deleted',
        (w) => (arm.resources.delete(RULE_ID), w.env),
        ['Sentinel analytics rule'],
        /deploySentinelContent=true/,
      ],
      [
        'resource ids not set',
        (w) => ({ ...w.env, UC_IDENTITY_PRINCIPAL_ID: '', UC_DCR_RESOURCE_ID: '' }),
        ["the detector identity's roles", 'data collection rule'],
        /azd env get-value UC_(IDENTITY_PRINCIPAL_ID|DCR_RESOURCE_ID)/,
      ],
      [
        'telemetry workspace unreadable (403)',
        (w) => (arm.fail(TELEMETRY_WS, 403), w.env),
        ['last run in Application Insights'],
        /UC_APPINSIGHTS_RESOURCE_ID, and that your identity may read it/,
      ],
      [
        'no Table Storage',
        (w) => ({
          ...w.env,
          UC_STORAGE_CONNECTION_STRING: w.env.UC_STORAGE_CONNECTION_STRING!.replace(
            /TableEndpoint=[^;]+/,
            'TableEndpoint=http://127.0.0.1:9/devstoreaccount1',
          ),
        }),
        ['Table Storage'],
        /Storage Table Data Contributor/,
      ],
    ];
    for (const [what, inject, red, fix] of faults) {
      const world = await healthy();
      try {
        const env = await inject(world);
        const { code, checks } = await checksOf(env);
        expect(code, what).toBe(1);
        if (what === 'bad setting') {
          expect(checks).toHaveLength(1);
          expect(checks[0]!.detail).toContain('UC_ALERT_THRESHOLD="abc"');
        }
        if (what === 'no Table Storage') expect(checks.map((c) => c.name)).not.toContain('checkpoint');
        expectOnlyRed(checks, red, fix);
      } finally {
        logs.reset();
        arm.reset();
        await world.store.close();
      }
    }
  }, 360_000);

  test('tokens refused by the identity endpoint (compiled CLI): the token checks say how to sign in', async () => {
    const world = await healthy();
    try {
      // In a child process: the SDK caches managed-identity tokens per process.
      const env = { ...azureEnv({ identity, logs, azurite }), ...pick(world.env), IDENTITY_HEADER: 'wrong' };
      const r = await spawnCli(['doctor', '--json'], { cwd: tmp, timeoutMs: 60_000, env }).result;
      expect(r.code, r.stderr).toBe(1);
      const checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
      const tokens = checks.filter((c) => c.name.startsWith('token for '));
      expect(tokens.map((c) => c.name)).toEqual([
        'token for Log Analytics',
        'token for Logs Ingestion',
        'token for Azure Resource Manager',
      ]);
      for (const c of tokens) {
        expect(c.ok, c.name).toBe(false);
        expect(c.fix).toMatch(/az login/);
      }
      expect(checks.find((c) => c.name === 'Table Storage')?.ok).toBe(true); // Azurite: a key, no token
    } finally {
      await world.store.close();
    }
  });

  test('resource ids are refused at start-up unless they are ids of their type, safe in a URL path', () => {
    expect(
      loadSettings({ UC_DCR_RESOURCE_ID: DCR_ID, UC_ANALYTICS_RULE_ID: RULE_ID }).UC_DCR_RESOURCE_ID,
    ).toBe(DCR_ID);
    for (const [name, value] of [
      ['UC_DCR_RESOURCE_ID', STORAGE_ID], // another type
      ['UC_DCR_RESOURCE_ID', `${DCR_ID}?api-version=1`],
      ['UC_DCR_RESOURCE_ID', `${RG}/providers/Microsoft.Insights/dataCollectionRules/..`],
      ['UC_WORKSPACE_RESOURCE_ID', `${RG}/../../providers/Microsoft.OperationalInsights/workspaces/x`],
      ['UC_ANALYTICS_RULE_ID', `${RULE_ID}/../x`],
      ['UC_IDENTITY_PRINCIPAL_ID', "x' or principalId ne '"],
      ['UC_ARM_ENDPOINT', 'http://management.azure.com'],
    ]) {
      expect(() => loadSettings({ [name!]: value! }), `${name}=${value}`).toThrow(
        new RegExp(`${name}="${value!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`),
      );
    }
  });

  test("the roles doctor expects are the template's (infra/modules/roles.bicep)", async () => {
    const bicep = await readFile(new URL('../../infra/modules/roles.bicep', import.meta.url), 'utf8');
    const ids = new Map([...bicep.matchAll(/^\s+(\w+): '([0-9a-f-]{36})'/gm)].map((m) => [m[1]!, m[2]!]));
    const camel = (name: string) =>
      name.replace(/ (\w)/g, (_, c: string) => c.toUpperCase()).replace(/^\w/, (c) => c.toLowerCase());
    for (const [name, id] of Object.entries(DETECTOR_ROLES)) expect(ids.get(camel(name)), name).toBe(id);
  });

  test('the compiled CLI without settings exits 1 naming UC_WORKSPACE_ID, without a stack trace', async () => {
    const r = await spawnCli(['doctor'], { cwd: tmp, timeoutMs: 60_000 }).result;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^✗ settings: .*UC_WORKSPACE_ID/);
    expect(r.stdout).toContain('fix: ');
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/\n\s+at /);
    const json = await spawnCli(['doctor', '--json'], { cwd: tmp, timeoutMs: 60_000 }).result;
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, checks: [{ name: 'settings', ok: false }] });
  });
});
