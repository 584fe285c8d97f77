import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';
import type { Node } from 'web-tree-sitter';

import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import { loadSettings } from '../../shared/config/settings.js';
import catalogueFile from '../../shared/config/settings.json' with { type: 'json' };
import { requireRuntimeSettings } from '../../shared/runtime/clients.js';
import {
  type Declarations,
  declarations,
  decoratorsOf,
  filesUnder,
  INFRA,
  objectProperties,
  parseBicep,
  propertyAt,
  rel,
  ROOT,
  squash,
  stringLiteral,
} from './bicep.js';

/**
 * The contract between the code's settings catalogue (shared/config/settings.json, read by
 * shared/config/settings.ts) and the app settings main.bicep gives the Function App: every UC_* setting arrives,
 * with the code's default unless a parameter tunes it or a deployed resource defines it, and no unknown UC_*
 * name is ever set.
 */

interface CatalogueEntry {
  name: string;
  default: string;
  secret?: boolean;
}
const catalogue: CatalogueEntry[] = catalogueFile.settings;
const catalogueNames = new Set(catalogue.map((s) => s.name));
const catalogueDefault = (name: string): string => {
  const entry = catalogue.find((s) => s.name === name);
  if (!entry) throw new Error(`${name} is not in shared/config/settings.json`);
  return entry.default;
};

/** The settings main.bicep takes from the deployed resources, and where each must come from. */
const WIRED: Readonly<Record<string, string>> = {
  UC_WORKSPACE_ID: 'workspace.outputs.customerId',
  UC_ALERTS_TABLE: 'workspace.outputs.tableName',
  UC_INGESTION_ENDPOINT: 'dataCollectionRule.outputs.ingestionEndpoint',
  UC_DCR_IMMUTABLE_ID: 'dataCollectionRule.outputs.immutableId',
  UC_TABLE_ENDPOINT: 'storage.outputs.tableEndpoint',
  UC_TABLE_PREFIX: 'cleanTablePrefix',
  UC_QUEUE_ENDPOINT: 'storage.outputs.queueEndpoint',
  UC_SHARD_QUEUE: 'storage.outputs.shardQueueName',
  UC_BLOB_ENDPOINT: 'storage.outputs.blobEndpoint',
  UC_GEOIP_BLOB: "'${storage.outputs.geoIpContainerName}/${geoIpEdition}.mmdb'",
  UC_GEOIP_EDITION: 'geoIpEdition',
  UC_SERVICE_TAGS_BLOB: "'${storage.outputs.geoIpContainerName}/ServiceTags.json'",
  UC_SERVICE_TAGS_SUBSCRIPTION_ID: "grantServiceTagsRead ? subscription().subscriptionId : ''",
  UC_SERVICE_TAGS_LOCATION: 'location',
  UC_ARM_ENDPOINT: 'environment().resourceManager',
  UC_IDENTITY_PRINCIPAL_ID: 'identity.outputs.principalId',
  UC_WORKSPACE_RESOURCE_ID: 'workspaceResourceId',
  UC_STORAGE_RESOURCE_ID: 'storage.outputs.resourceId',
  UC_DCR_RESOURCE_ID: 'dataCollectionRule.outputs.resourceId',
  UC_KEY_VAULT_RESOURCE_ID: 'keyVault.outputs.resourceId',
  UC_APPINSIGHTS_RESOURCE_ID: 'appInsights.outputs.resourceId',
  UC_ANALYTICS_RULE_ID: 'sentinel.outputs.analyticsRuleId',
  UC_STORAGE_CONNECTION_STRING: "''",
  UC_MAXMIND_ACCOUNT_ID:
    "'@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${maxMindAccountIdSecretName}/)'",
  UC_MAXMIND_LICENSE_KEY:
    "'@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${maxMindLicenseKeySecretName}/)'",
};

/** What each module output the wiring uses must be, inside its module. */
const OUTPUT_SOURCES: Readonly<Record<string, string>> = {
  'workspace.outputs.customerId': 'workspace.properties.customerId',
  'workspace.outputs.tableName': 'alertsTable.name',
  'dataCollectionRule.outputs.ingestionEndpoint': 'rule.properties.endpoints.logsIngestion',
  'dataCollectionRule.outputs.immutableId': 'rule.properties.immutableId',
  'storage.outputs.tableEndpoint': 'account.properties.primaryEndpoints.table',
  'storage.outputs.blobEndpoint': 'account.properties.primaryEndpoints.blob',
  'storage.outputs.queueEndpoint': 'account.properties.primaryEndpoints.queue',
  'storage.outputs.shardQueueName': 'shardQueue.name',
  'storage.outputs.geoIpContainerName': 'geoIpContainer.name',
  'keyVault.outputs.uri': 'vault.properties.vaultUri',
  'identity.outputs.principalId': 'identity.properties.principalId',
  'storage.outputs.resourceId': 'account.id',
  'dataCollectionRule.outputs.resourceId': 'rule.id',
  'keyVault.outputs.resourceId': 'vault.id',
  'appInsights.outputs.resourceId': 'component.id',
  'sentinel.outputs.analyticsRuleId': "deployAnalyticsRule ? analyticsRule.id : ''",
};

let main: Declarations;
let functionApp: Declarations;

beforeAll(async () => {
  main = declarations(await parseBicep(join(INFRA, 'main.bicep')));
  functionApp = declarations(await parseBicep(join(INFRA, 'modules/functionApp.bicep')));
});

const variable = (d: Declarations, name: string): Node => {
  const node = d.variables.get(name);
  if (!node) throw new Error(`variable ${name} not found`);
  return node;
};

/** A parameter's default value as the text the app setting gets. */
function paramDefaultText(d: Declarations, name: string): string {
  const param = d.params.get(name);
  if (!param?.defaultValue) throw new Error(`parameter ${name} has no default`);
  const v = param.defaultValue;
  if (v.type === 'string') {
    const s = stringLiteral(v);
    if (s === undefined) throw new Error(`parameter ${name}: default is not a literal`);
    return s;
  }
  if (v.type === 'number' || v.type === 'boolean') return v.text;
  throw new Error(`parameter ${name}: unsupported default ${v.text}`);
}

/** The text an app setting gets from a tuning expression, with every parameter at its default. */
function tunedDefaultText(expression: Node): string {
  const text = squash(expression.text);
  let m = /^(\w+)$/.exec(text);
  if (m?.[1]) {
    expect(main.params.get(m[1])?.type, `${m[1]} must be a string parameter`).toBe('string');
    return paramDefaultText(main, m[1]);
  }
  m = /^string\((\w+)\)$/.exec(text);
  if (m?.[1]) {
    expect(main.params.get(m[1])?.type, `${m[1]} must be an int parameter`).toBe('int');
    return paramDefaultText(main, m[1]);
  }
  m = /^(\w+) \? 'true' : 'false'$/.exec(text);
  if (m?.[1]) {
    expect(main.params.get(m[1])?.type, `${m[1]} must be a bool parameter`).toBe('bool');
    return paramDefaultText(main, m[1]);
  }
  throw new Error(`unsupported tuning expression ${text}: use p, string(p) or p ? 'true' : 'false'`);
}

describe('main.bicep app settings and the settings catalogue (shared/config/settings.json)', () => {
  it('reads the catalogue with loadJsonContent and turns it into name → default', () => {
    expect(squash(variable(main, 'settingsCatalogue').text)).toBe(
      "loadJsonContent('../shared/config/settings.json')",
    );
    expect(squash(variable(main, 'catalogueDefaults').text)).toBe(
      'toObject(settingsCatalogue.settings, s => s.name, s => s.default)',
    );
  });

  it('merges catalogue defaults, overrides, tuned parameters and wiring, in that order (later wins)', () => {
    expect(squash(variable(main, 'detectorSettings').text)).toBe(
      'union(catalogueDefaults, settingsOverrides, tunedSettings, wiredSettings)',
    );
    const fn = functionApp.params.get('detectorSettings');
    expect(fn?.type).toBe('object');
    const module = main.modules.find((m) => m.path === 'modules/functionApp.bicep');
    expect(propertyAt(module?.body, 'params.detectorSettings')?.text).toBe('detectorSettings');
  });

  it('tunes and wires only catalogue settings, each in one place', () => {
    const tuned = [...objectProperties(variable(main, 'tunedSettings')).keys()];
    const wired = [...objectProperties(variable(main, 'wiredSettings')).keys()];
    for (const name of [...tuned, ...wired]) expect(catalogueNames, name).toContain(name);
    expect(tuned.filter((n) => wired.includes(n))).toEqual([]);
    // So the union holds exactly the catalogue's names: every UC_ setting reaches the app, no unknown one does.
    expect(new Set([...catalogueNames, ...tuned, ...wired])).toEqual(catalogueNames);
  });

  it("gives every tuning parameter the code's default", () => {
    const tuned = objectProperties(variable(main, 'tunedSettings'));
    expect(tuned.size).toBeGreaterThanOrEqual(10);
    for (const [name, expression] of tuned) {
      expect(tunedDefaultText(expression), `${name} default`).toBe(catalogueDefault(name));
    }
  });

  it('exposes the noise/sensitivity settings as parameters, with bounds where the code has them', () => {
    const tuned = objectProperties(variable(main, 'tunedSettings'));
    for (const name of [
      'UC_ALERT_THRESHOLD',
      'UC_ALERT_COOLDOWN',
      'UC_EGRESS_RANGES',
      'UC_FAMILIAR_SCORE_CAP',
      'UC_DAILY_ALERT_CAP',
      'UC_SCHEDULE',
      'UC_LOOKBACK',
    ]) {
      expect([...tuned.keys()], name).toContain(name);
    }
    const threshold = /^string\((\w+)\)$/.exec(squash(tuned.get('UC_ALERT_THRESHOLD')!.text))![1]!;
    const decorators = decoratorsOf(main.params.get(threshold)!.node);
    expect(decorators.get('minValue')?.[0]?.text).toBe('0');
    expect(decorators.get('maxValue')?.[0]?.text).toBe('100');
    const severity = squash(tuned.get('UC_ALERT_SEVERITY')!.text);
    expect(decoratorsOf(main.params.get(severity)!.node).get('allowed')?.[0]?.text).toMatch(/'High'/);
  });

  it('wires exactly the resource-derived settings, from the right module outputs', async () => {
    const wired = objectProperties(variable(main, 'wiredSettings'));
    expect(Object.fromEntries([...wired].map(([k, v]) => [k, squash(v.text)]))).toEqual(WIRED);

    // Each module output used resolves to the resource property it names.
    const used = new Set(
      [...wired.values()].flatMap((v) => [...v.text.matchAll(/(\w+\.outputs\.\w+)/g)].map((m) => m[1]!)),
    );
    expect([...used].sort()).toEqual(Object.keys(OUTPUT_SOURCES).sort());
    for (const reference of used) {
      const [symbol, , output] = reference.split('.');
      const module = main.modules.find((m) => m.symbol === symbol);
      expect(module, reference).toBeDefined();
      const inner = declarations(await parseBicep(join(INFRA, module!.path)));
      const out = inner.outputs.find((o) => o.name === output);
      expect(out, reference).toBeDefined();
      expect(squash(out!.node.namedChildren.at(-1)!.text), reference).toBe(OUTPUT_SOURCES[reference]);
    }
  });

  it('references every secret setting from Key Vault, never as a value', () => {
    const secrets = catalogue.filter((s) => s.secret === true).map((s) => s.name);
    expect(secrets.length).toBeGreaterThan(0);
    const wired = objectProperties(variable(main, 'wiredSettings'));
    for (const name of secrets) {
      expect(squash(wired.get(name)?.text ?? ''), name).toMatch(/^'@Microsoft\.KeyVault\(SecretUri=\$\{/);
    }
  });

  it("keeps the alerts table and the table prefix equal to the code's defaults and the column file", () => {
    expect(paramDefaultText(main, 'alertsTableName')).toBe(catalogueDefault('UC_ALERTS_TABLE'));
    expect(paramDefaultText(main, 'alertsTableName')).toBe(columnsFile.table);
    const workspaceModule = main.modules.find((m) => m.symbol === 'workspace');
    expect(propertyAt(workspaceModule?.body, 'params.tableName')?.text).toBe('cleanAlertsTableName');
    expect(paramDefaultText(main, 'tablePrefix')).toBe(catalogueDefault('UC_TABLE_PREFIX'));
    expect(paramDefaultText(main, 'geoIpEdition')).toBe(catalogueDefault('UC_GEOIP_EDITION'));
    expect(paramDefaultText(main, 'shardQueueName')).toBe(catalogueDefault('UC_SHARD_QUEUE'));
    const storageModule = main.modules.find((m) => m.symbol === 'storage');
    expect(propertyAt(storageModule?.body, 'params.shardQueueName')?.text).toBe('shardQueueName');
  });

  it("with every parameter at its default, the app settings pass the code's own validation", () => {
    // What Azure would give the app: the catalogue, the tuned defaults, the wiring with sample resource values
    // (Key Vault references already resolved by the platform, as the app sees them).
    const RG = '/subscriptions/0f1e2d3c-4b5a-4697-8877-665544332211/resourceGroups/rg-unusual-city';
    const env: Record<string, string> = Object.fromEntries(catalogue.map((s) => [s.name, s.default]));
    for (const [name, expression] of objectProperties(variable(main, 'tunedSettings'))) {
      env[name] = tunedDefaultText(expression);
    }
    Object.assign(env, {
      UC_WORKSPACE_ID: '0f1e2d3c-4b5a-4697-8877-665544332211',
      UC_ALERTS_TABLE: paramDefaultText(main, 'alertsTableName'),
      UC_INGESTION_ENDPOINT:
        'https://dcr-0123456789abcdef0123456789abcdef-westeurope-1.logs.z1.ingest.monitor.azure.com',
      UC_DCR_IMMUTABLE_ID: 'dcr-0123456789abcdef0123456789abcdef',
      UC_TABLE_ENDPOINT: 'https://stucabc.table.core.windows.net/',
      UC_TABLE_PREFIX: paramDefaultText(main, 'tablePrefix'),
      UC_QUEUE_ENDPOINT: 'https://stucabc.queue.core.windows.net/',
      UC_SHARD_QUEUE: paramDefaultText(main, 'shardQueueName'),
      UC_BLOB_ENDPOINT: 'https://stucabc.blob.core.windows.net/',
      UC_GEOIP_BLOB: `${paramDefaultText(main, 'geoIpContainerName')}/${paramDefaultText(main, 'geoIpEdition')}.mmdb`,
      UC_GEOIP_EDITION: paramDefaultText(main, 'geoIpEdition'),
      UC_SERVICE_TAGS_BLOB: `${paramDefaultText(main, 'geoIpContainerName')}/ServiceTags.json`,
      UC_SERVICE_TAGS_SUBSCRIPTION_ID: '6f1d2c3b-4a59-4e68-9d7c-0b1a2c3d4e5f',
      UC_SERVICE_TAGS_LOCATION: 'westeurope',
      UC_STORAGE_CONNECTION_STRING: '',
      UC_ARM_ENDPOINT: 'https://management.azure.com/',
      UC_IDENTITY_PRINCIPAL_ID: '7d3c1a2b-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
      UC_WORKSPACE_RESOURCE_ID: `${RG}/providers/Microsoft.OperationalInsights/workspaces/log-uc-abc`,
      UC_STORAGE_RESOURCE_ID: `${RG}/providers/Microsoft.Storage/storageAccounts/stucabc`,
      UC_DCR_RESOURCE_ID: `${RG}/providers/Microsoft.Insights/dataCollectionRules/dcr-uc-abc`,
      UC_KEY_VAULT_RESOURCE_ID: `${RG}/providers/Microsoft.KeyVault/vaults/kv-uc-abc`,
      UC_APPINSIGHTS_RESOURCE_ID: `${RG}/providers/microsoft.insights/components/appi-uc-abc`,
      UC_ANALYTICS_RULE_ID: `${RG}/providers/Microsoft.OperationalInsights/workspaces/log-uc-abc/providers/Microsoft.SecurityInsights/alertRules/3f2e1d0c-4b5a-4697-8877-665544332211`,
      UC_MAXMIND_ACCOUNT_ID: '123456',
      UC_MAXMIND_LICENSE_KEY: 'abcDEF_123456_ghi',
    });
    expect(env.UC_GEOIP_BLOB).toBe('geoip/GeoLite2-City.mmdb');
    const settings = loadSettings(env);
    expect(() => requireRuntimeSettings(settings)).not.toThrow();
    expect(settings.UC_ALERT_THRESHOLD).toBe(50);
  });

  it('refuses overrides of unknown, tuned or wired names by failing the deployment', () => {
    expect(squash(variable(main, 'rejectedOverrides').text)).toBe(
      'filter(objectKeys(settingsOverrides), settingName => !contains(catalogueDefaults, settingName) || ' +
        'contains(tunedSettings, settingName) || contains(wiredSettings, settingName))',
    );
    const module = main.modules.find((m) => m.path === 'modules/functionApp.bicep');
    expect(propertyAt(module?.body, 'params.rejectedSettingsOverrides')?.text).toBe('rejectedOverrides');
    const param = functionApp.params.get('rejectedSettingsOverrides');
    expect(param?.type).toBe('array');
    expect(decoratorsOf(param!.node).get('maxLength')?.[0]?.text).toBe('0');
  });

  it('the parameters example only overrides settings that settingsOverrides accepts', () => {
    const example = JSON.parse(readFileSync(join(INFRA, 'main.parameters.example.json'), 'utf8')) as {
      parameters: Record<string, { value: unknown }>;
    };
    const overrides = Object.keys(example.parameters.settingsOverrides?.value ?? {});
    const tuned = new Set(objectProperties(variable(main, 'tunedSettings')).keys());
    for (const name of overrides) {
      expect(catalogueNames.has(name) && !tuned.has(name) && !(name in WIRED), name).toBe(true);
    }
  });
});

describe('functionApp.bicep app settings', () => {
  it("adds only the host and SDK settings, after the detector's (so they cannot be displaced)", () => {
    expect(squash(variable(functionApp, 'appSettings').text)).toBe(
      'union(detectorSettings, platformSettings)',
    );
    const platform = [...objectProperties(variable(functionApp, 'platformSettings')).keys()].sort();
    expect(platform).toEqual(
      [
        'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
        'APPLICATIONINSIGHTS_CONNECTION_STRING',
        'AZURE_CLIENT_ID',
        'AzureWebJobsStorage__blobServiceUri',
        'AzureWebJobsStorage__clientId',
        // processShard's identity-based queue trigger (queue mode).
        'AzureWebJobsStorage__queueServiceUri',
        'AzureWebJobsStorage__credential',
      ].sort(),
    );
    const site = functionApp.resources.find((r) => r.type === 'Microsoft.Web/sites');
    expect(squash(propertyAt(site?.body, 'properties.siteConfig.appSettings')?.text ?? '')).toBe(
      'map(items(appSettings), s => { name: s.key value: s.value })',
    );
  });

  it('sets none of the settings Flex Consumption rejects, and no key-based storage connection', () => {
    const forbidden = [
      'FUNCTIONS_WORKER_RUNTIME',
      'FUNCTIONS_EXTENSION_VERSION',
      'WEBSITE_RUN_FROM_PACKAGE',
      'WEBSITE_CONTENTSHARE',
      'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
      'WEBSITE_NODE_DEFAULT_VERSION',
    ];
    for (const path of filesUnder(INFRA, ['.bicep'])) {
      const source = readFileSync(path, 'utf8');
      for (const name of forbidden) {
        expect(source, `${rel(path)} sets ${name}`).not.toMatch(new RegExp(`\\b${name}\\s*:`));
      }
      expect(source, rel(path)).not.toMatch(/\bAzureWebJobsStorage\s*:/);
    }
  });
});

describe('UC_* names outside the catalogue', () => {
  it('infra/ and azure.yaml mention only catalogue settings (code, comments, docs, parameter files)', () => {
    const files = [...filesUnder(INFRA, ['.bicep', '.json', '.kql', '.md']), join(ROOT, 'azure.yaml')];
    const unknown: string[] = [];
    for (const path of files) {
      for (const m of readFileSync(path, 'utf8').matchAll(/\bUC_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!catalogueNames.has(m[0])) unknown.push(`${rel(path)}: ${m[0]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('every %SETTING% a function trigger reads is a catalogue setting (so the template sets it)', () => {
    const used = filesUnder(join(ROOT, 'functions'), ['.ts']).flatMap((path) =>
      [...readFileSync(path, 'utf8').matchAll(/'%(\w+)%'/g)].map((m) => m[1]!),
    );
    expect(used).toContain('UC_SCHEDULE');
    for (const name of used) expect(catalogueNames, name).toContain(name);
  });
});
