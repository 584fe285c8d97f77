/**
 * Security properties a test can hold:
 * - no secret (MaxMind account and licence key, the storage account key in a connection string, the Application
 *   Insights key, the managed-identity header, bearer tokens) is ever logged, printed or sent to telemetry, in
 *   normal runs and failing ones, by the detector or by refreshGeoIpDatabase; a start-up failure never echoes one;
 * - every setting that reaches a Log Analytics query (its text, its URL or its body) is validated against a strict
 *   pattern: injection strings stop start-up, and anything accepted leaves the query's structure unchanged;
 * - least privilege in infra/: nothing at subscription scope except the optional diagnostic-setting template,
 *   which grants no role, and the optional Service Tags reader (a custom role with one read action); every role
 *   the deployment may assign is justified by a comment.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { InvocationContext, type LogLevel, type Timer } from '@azure/functions';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { makeRefreshHandler } from '../../functions/refreshGeoIpDatabase.js';
import { loadSettings, SettingsError } from '../../shared/config/settings.js';
import { createAzureDeps } from '../../shared/runtime/azure.js';
import { makeTelemetry, type TelemetryClientLike } from '../../shared/runtime/telemetry.js';
import { buildQuery, LogAnalyticsSource } from '../../shared/source/logAnalytics.js';
import {
  declarations,
  filesUnder,
  INFRA,
  objectProperties,
  parseBicep,
  propertyAt,
  rel,
} from '../infra/bicep.js';
import { AZURITE_KEY } from '../support/azurite.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import { parseActivityQuery } from '../support/fakeLogAnalytics.js';
import { type FakeMaxMind, startFakeMaxMind } from '../support/fakeMaxMind.js';
import { startWorld, tableError, type World } from '../support/faults.js';

const timer = (isPastDue = false): Timer => ({
  isPastDue,
  schedule: { adjustForDST: false },
  scheduleStatus: { last: '', next: '', lastUpdated: '' },
});

/** Everything a process shows the world: stdout, stderr, console. */
function captureOutput(): { text: () => string; restore: () => void } {
  const out: string[] = [];
  const writes = [process.stdout, process.stderr].map((stream) => {
    const original = stream.write.bind(stream) as (...a: unknown[]) => boolean;
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      out.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return original(chunk, ...rest);
    };
    return () => {
      stream.write = original;
    };
  });
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const saved = methods.map((m) => console[m].bind(console));
  for (const m of methods) console[m] = (...args: unknown[]) => out.push(args.map(String).join(' '));
  return {
    text: () => out.join('\n'),
    restore: () => {
      writes.forEach((r) => r());
      methods.forEach((m, i) => (console[m] = saved[i]!));
    },
  };
}

/** A telemetry client that records everything it would send. */
function capturingTelemetry(): { client: TelemetryClientLike; text: () => string } {
  const sent: string[] = [];
  return {
    client: {
      trackEvent: (t) => sent.push(JSON.stringify(t)),
      trackMetric: (t) => sent.push(JSON.stringify(t)),
      trackException: (t) =>
        sent.push(
          JSON.stringify({
            message: t.exception.message,
            stack: t.exception.stack,
            properties: t.properties,
          }),
        ),
      flush: () => undefined,
    },
    text: () => sent.join('\n'),
  };
}

function expectNoSecret(where: string, text: string, secrets: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets)) {
    expect(text.includes(value), `${where} contains the ${name}`).toBe(false);
  }
}

describe('no secret in logs or telemetry', () => {
  let world: World;
  let maxmind: FakeMaxMind;
  let blob: AzuriteBlob;
  const AI_KEY = 'c0ffee00-5ec2-4e7a-9b1d-0a1b2c3d4e5f';
  beforeAll(async () => {
    [world, maxmind, blob] = await Promise.all([
      startWorld(),
      startFakeMaxMind({ accountId: '424242424242', licenceKey: 'LicenceKey_7f3a9c1e5b2d' }),
      startAzuriteBlob(),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([world?.close(), maxmind?.close(), blob?.stop()]);
  });

  const secrets = () => ({
    'MaxMind licence key': maxmind.licenceKey,
    'MaxMind account id': maxmind.accountId,
    'MaxMind basic credentials': Buffer.from(`${maxmind.accountId}:${maxmind.licenceKey}`).toString('base64'),
    'storage account key': AZURITE_KEY,
    'Application Insights key': AI_KEY,
    'managed-identity header': world.identity.header,
    'bearer token': 'test-token:',
  });

  it('the detector, in normal and failing runs: logs, console and telemetry hold none', async () => {
    world.beginScenario();
    await world.seed('ucsecret');
    const env = {
      ...world.env('ucsecret'),
      UC_MAXMIND_ACCOUNT_ID: maxmind.accountId,
      UC_MAXMIND_LICENSE_KEY: maxmind.licenceKey,
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${AI_KEY};IngestionEndpoint=https://127.0.0.1:9/`,
    };
    const telemetry = capturingTelemetry();
    const logs: string[] = [];
    const now = { ms: 0 };
    const handler = makeDetectHandler({
      env,
      clock: () => now.ms,
      deps: async () => ({
        ...(await createAzureDeps(loadSettings(env), env, (level, m) => logs.push(`${level}: ${m}`), {
          tlsCa: world.ca,
        })),
        telemetry: makeTelemetry(telemetry.client, false),
      }),
    });
    const output = captureOutput();
    const errors: string[] = [];
    try {
      const faults: Record<number, () => void> = {
        2: () => world.logs.failNext(403),
        3: () => world.logs.failNext('partial'),
        4: () => {
          let n = 0;
          world.tableProxy.rule = () =>
            ++n <= 3 ? { kind: 'respond', status: 500, body: tableError('InternalError') } : undefined;
        },
        5: () => world.ingestion.failNext(500, 2),
        6: () => {
          world.tableProxy.rule = undefined;
          world.ingestionProxy.rule = () => ({
            kind: 'respond',
            status: 401,
            body: '{"error":{"code":"InvalidToken","message":"The token is not valid."}}',
          });
        },
        8: () => (world.ingestionProxy.rule = undefined),
      };
      for (const [i, slot] of world.data.slots.slice(0, 12).entries()) {
        faults[i]?.();
        now.ms = slot + 20_000;
        const context = new InvocationContext({
          invocationId: `secret-${i}`,
          functionName: 'detectUnusualCity',
          logHandler: (level: LogLevel, ...args: unknown[]) =>
            logs.push(`${level}: ${args.map(String).join(' ')}`),
        });
        await handler(timer(), context).catch((e: unknown) =>
          errors.push(e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e)),
        );
      }
    } finally {
      output.restore();
    }
    // The failures happened (and were logged): this is not a test of silence.
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.join('\n')).toMatch(/denied access/);
    expect(telemetry.text()).toContain('UnusualCityRun');
    expect(telemetry.text()).toContain('"name":"UnusualCityAlert"');
    expectNoSecret('the logs', logs.join('\n'), secrets());
    expectNoSecret('the console', output.text(), secrets());
    expectNoSecret('the telemetry', telemetry.text(), secrets());
    expectNoSecret('the errors', errors.join('\n'), secrets());
    // Identities stay out of telemetry unless UC_TELEMETRY_INCLUDE_IDENTITIES=true.
    expect(telemetry.text()).not.toContain('@contoso.com');
  }, 120_000);

  it('refreshGeoIpDatabase, refreshed and refused: no licence key, account id or basic credentials anywhere', async () => {
    const env = {
      UC_GEOIP_BLOB: 'geoip/GeoLite2-City.mmdb',
      UC_MAXMIND_ACCOUNT_ID: maxmind.accountId,
      UC_MAXMIND_LICENSE_KEY: maxmind.licenceKey,
      UC_MAXMIND_DOWNLOAD_URL: maxmind.baseUrl,
      UC_STORAGE_CONNECTION_STRING: blob.connectionString,
    };
    const logs: string[] = [];
    const errors: string[] = [];
    const output = captureOutput();
    try {
      for (const mode of ['good', 'unauthorized', 'rate-limited'] as const) {
        maxmind.mode = mode;
        const handler = makeRefreshHandler({ env, download: { tls: { ca: maxmind.ca } } });
        const context = new InvocationContext({
          invocationId: `refresh-${mode}`,
          functionName: 'refreshGeoIpDatabase',
          logHandler: (level: LogLevel, ...args: unknown[]) =>
            logs.push(`${level}: ${args.map(String).join(' ')}`),
        });
        await handler(timer(), context).catch((e: unknown) => errors.push(String(e)));
      }
    } finally {
      output.restore();
    }
    expect(logs.some((l) => l.includes('updated geoip/GeoLite2-City.mmdb'))).toBe(true);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expectNoSecret('the logs', logs.join('\n'), secrets());
    expectNoSecret('the console', output.text(), secrets());
    expectNoSecret('the errors', errors.join('\n'), secrets());
  }, 60_000);

  it('a start-up failure names the bad setting and never echoes a secret or an embedded key', () => {
    const production =
      'DefaultEndpointsProtocol=https;AccountName=prodstate;AccountKey=c2VjcmV0LWtleS1ub3QtdG8tbG9n;EndpointSuffix=core.windows.net';
    const e = (() => {
      try {
        loadSettings({
          UC_STORAGE_CONNECTION_STRING: production,
          UC_MAXMIND_LICENSE_KEY: 'not a valid key!',
          UC_TABLE_ENDPOINT: 'https://x.table.core.windows.net/?sv=2022-11-02&sig=c2lnbmF0dXJl',
        });
      } catch (error) {
        return error as SettingsError;
      }
      throw new Error('loadSettings accepted a production connection string');
    })();
    expect(e).toBeInstanceOf(SettingsError);
    expect(e.message).toContain('UC_STORAGE_CONNECTION_STRING=');
    expect(e.message).toContain('AccountKey=(not shown)');
    expect(e.message).toContain('UC_MAXMIND_LICENSE_KEY=(secret, not shown)');
    for (const leaked of ['c2VjcmV0LWtleS1ub3QtdG8tbG9n', 'not a valid key!']) {
      expect(e.message).not.toContain(leaked);
      expect(JSON.stringify(e.problems)).not.toContain(leaked);
    }
  });
});

// ---------------------------------------------------------------------------------------------------

/** Strings that would change a KQL query, a URL path or a request body if pasted in. */
const INJECTIONS = [
  'Administrative") | union (AzureActivity',
  "Administrative'); AzureActivity | take 1 //",
  'Administrative | take 1',
  'Administrative\n| project-away *',
  'Administrative//',
  'Administrative;',
  'Adminіstrative', // Cyrillic і
  'Administrative,Security,"]) | extend x=1 //',
  '$(whoami)',
  'Administrative%0a|take%201',
  '`Administrative`',
  'x'.repeat(65),
  '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11") | union *',
  '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11/../../subscriptions',
  '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11\n| take 1',
  '../workspaces/0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11',
  '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11?api-version=1',
];

/**
 * Every setting that reaches a Log Analytics query — its text (categories, statuses; the window from the
 * durations and the bootstrap days), its URL (workspace, endpoint) or its body (additional workspaces) — and the
 * names that reach other requests (tables, stream, DCR).
 */
const QUERY_SETTINGS = [
  'UC_CATEGORIES',
  'UC_STATUSES',
  'UC_WORKSPACE_ID',
  'UC_ADDITIONAL_WORKSPACE_IDS',
  'UC_LOOKBACK',
  'UC_TICK_INTERVAL',
  'UC_BOOTSTRAP_DAYS',
  'UC_LOGS_ENDPOINT',
  'UC_ALERTS_TABLE',
  'UC_TABLE_PREFIX',
  'UC_DCR_IMMUTABLE_ID',
] as const;

const WORKSPACE = '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11';
const TEMPLATE = readFileSync(join(import.meta.dirname, '../../shared/source/activity.kql'), 'utf8');

function refused(env: Record<string, string>): SettingsError | undefined {
  try {
    loadSettings(env);
    return undefined;
  } catch (e) {
    if (e instanceof SettingsError) return e;
    throw e;
  }
}

describe('settings that reach queries are validated strictly', () => {
  it('every injection string in every such setting stops start-up, naming the setting', () => {
    for (const name of QUERY_SETTINGS) {
      for (const value of INJECTIONS) {
        const e = refused({ [name]: value });
        expect(e, `${name}=${JSON.stringify(value)} was accepted`).toBeDefined();
        expect(e!.problems.map((p) => p.name)).toContain(name);
      }
    }
  });

  it('the Functions worker refuses to load the timer with such a setting, naming it', () => {
    // What the host does at start-up: import the compiled function module (registration validates settings).
    const module = join(import.meta.dirname, '../../dist/functions/detectUnusualCity.js');
    for (const name of [
      'UC_CATEGORIES',
      'UC_STATUSES',
      'UC_WORKSPACE_ID',
      'UC_ADDITIONAL_WORKSPACE_IDS',
    ] as const) {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        FUNCTIONS_WORKER_RUNTIME: 'node',
        UC_WORKSPACE_ID: WORKSPACE,
        [name]: name.includes('WORKSPACE')
          ? `${WORKSPACE}") | union *`
          : 'Administrative") | union (AzureActivity',
      };
      const r = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(module)})`], {
        env,
        encoding: 'utf8',
      });
      expect(r.status, `${name}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toContain(`Invalid app setting ${name}=`);
    }
  });

  it('an invocation with such a setting fails before any client is built', async () => {
    for (const [i, name] of QUERY_SETTINGS.entries()) {
      const handler = makeDetectHandler({ env: { UC_WORKSPACE_ID: WORKSPACE, [name]: INJECTIONS[i]! } });
      const context = new InvocationContext({
        invocationId: `refused-${name}`,
        functionName: 'detectUnusualCity',
      });
      await expect(handler(timer(), context), name).rejects.toThrow(
        new RegExp(`Invalid app setting ${name}=`),
      );
    }
  });

  it('whatever is accepted leaves the query unchanged in structure: only names and GUIDs get through', () => {
    const anyText = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 60 }),
      fc.constantFrom(...INJECTIONS),
      fc
        .array(fc.constantFrom('Administrative', 'Security', 'Policy', '"', ')', '|', ',', ' ', '\n', 'x'), {
          maxLength: 8,
        })
        .map((xs) => xs.join('')),
    );
    fc.assert(
      fc.property(anyText, anyText, anyText, (categories, statuses, workspaces) => {
        let s;
        try {
          s = loadSettings({
            UC_CATEGORIES: categories,
            UC_STATUSES: statuses,
            UC_ADDITIONAL_WORKSPACE_IDS: workspaces,
          });
        } catch (e) {
          expect(e).toBeInstanceOf(SettingsError);
          return;
        }
        for (const c of [...s.UC_CATEGORIES, ...s.UC_STATUSES]) expect(c).toMatch(/^[A-Za-z]{1,64}$/);
        for (const w of s.UC_ADDITIONAL_WORKSPACE_IDS)
          expect(w).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/i);
        // The source accepts them, and the query is the template behind a header of the expected shape.
        new LogAnalyticsSource({
          client: {} as never,
          workspaceId: WORKSPACE,
          categories: s.UC_CATEGORIES,
          statuses: s.UC_STATUSES,
          additionalWorkspaces: s.UC_ADDITIONAL_WORKSPACE_IDS,
        });
        const query = buildQuery(TEMPLATE, {
          startMs: Date.UTC(2026, 0, 1),
          endMs: Date.UTC(2026, 0, 1, 2),
          categories: s.UC_CATEGORIES,
          statuses: s.UC_STATUSES,
        });
        const header = parseActivityQuery(query, TEMPLATE);
        expect(typeof header, typeof header === 'string' ? header : '').toBe('object');
      }),
      { numRuns: 2000 },
    );
  });

  it('the query builder re-checks what it is given (defence in depth)', () => {
    for (const bad of ['Administrative")', 'a b', '', 'x'.repeat(65)]) {
      expect(() => buildQuery(TEMPLATE, { startMs: 0, endMs: 1, categories: [bad] })).toThrow(RangeError);
      expect(
        () => new LogAnalyticsSource({ client: {} as never, workspaceId: WORKSPACE, statuses: [bad] }),
      ).toThrow(RangeError);
    }
    expect(() => buildQuery(TEMPLATE, { startMs: Number.NaN, endMs: 1 })).toThrow(RangeError);
    expect(() => buildQuery(TEMPLATE, { startMs: 0, endMs: Date.UTC(10000, 0, 1) })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('least privilege in infra/', () => {
  const paths = filesUnder(INFRA, ['.bicep']);

  it('at subscription scope only the diagnostic setting (no role) and the Service Tags reader (one read action)', async () => {
    const scopes: Record<string, string> = {};
    for (const path of paths) {
      const file = await parseBicep(path);
      const scope = /^targetScope\s*=\s*'(\w+)'/m.exec(file.source)?.[1] ?? 'resourceGroup';
      scopes[rel(path)] = scope;
      const d = declarations(file);
      // No resource or module is pointed at a subscription, tenant or management group from a template, except
      // main.bicep's optional Service Tags reader (grantServiceTagsRead).
      for (const r of [...d.resources, ...d.modules]) {
        const target = propertyAt(r.body, 'scope')?.text ?? '';
        const where = `${rel(path)}: ${r.symbol} scope`;
        if (rel(path) === 'infra/main.bicep' && r.symbol === 'serviceTagsReader') {
          expect(target, where).toBe('subscription()');
          expect(r.node.text, where).toMatch(/= if \(grantServiceTagsRead\) \{/);
          continue;
        }
        expect(target, where).not.toMatch(/^(subscription|tenant|managementGroup)\(/);
      }
      if (rel(path) === 'infra/modules/serviceTagsReader.bicep') {
        // A custom role holding exactly one read action (roles.bicep, checked in test/infra/resources.test.ts),
        // assignable in this subscription only, and its one assignment.
        expect(d.resources.map((r) => r.type).sort()).toEqual([
          'Microsoft.Authorization/roleAssignments',
          'Microsoft.Authorization/roleDefinitions',
        ]);
        expect(file.source).not.toMatch(/roleIds\./);
        expect(d.modules).toEqual([]);
      } else if (scope === 'subscription') {
        expect(d.resources.map((r) => r.type)).toEqual(['Microsoft.Insights/diagnosticSettings']);
        expect(d.modules).toEqual([]);
      }
    }
    expect(Object.entries(scopes).filter(([, s]) => s !== 'resourceGroup')).toEqual([
      ['infra/activity-log/main.bicep', 'subscription'],
      ['infra/modules/serviceTagsReader.bicep', 'subscription'],
    ]);
    const roles = readFileSync(join(INFRA, 'modules', 'roles.bicep'), 'utf8');
    expect(/actions: \[\s*'([^']+)'\s*\]/.exec(roles)?.[1]).toBe(
      'Microsoft.Network/locations/serviceTags/read',
    );
  });

  it('every role the deployment may assign is justified by a comment right above it', async () => {
    const file = await parseBicep(join(INFRA, 'modules', 'roles.bicep'));
    const roles = objectProperties(declarations(file).variables.get('roleIds'));
    expect(roles.size).toBeGreaterThan(0);
    const lines = file.source.split('\n');
    for (const name of roles.keys()) {
      const at = lines.findIndex((l) => new RegExp(`^\\s*${name}\\s*:`).test(l));
      expect(at, name).toBeGreaterThan(0);
      const comment: string[] = [];
      for (let i = at - 1; i >= 0 && /^\s*\/\//.test(lines[i]!); i--) comment.unshift(lines[i]!.trim());
      expect(comment.join(' ').length, `${name} has no justification`).toBeGreaterThan(30);
    }
    // And every assignment uses one of these roles (no role id written anywhere else).
    for (const path of paths) {
      const source = readFileSync(path, 'utf8');
      for (const m of source.matchAll(/roleIds\.(\w+)/g))
        expect(roles.has(m[1]!), `${rel(path)}: ${m[1]}`).toBe(true);
    }
  });
});
