import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import settingsCatalogue from '../../shared/config/settings.json' with { type: 'json' };
import {
  type BicepFile,
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
import { evaluator, type Value } from './bicepEval.js';

/**
 * The deployment defects of issue 15, one block each, checked offline over the Bicep text (tree-sitter-bicep),
 * the parameter file, azure.yaml and the postprovision hook; name cleaning is evaluated with ARM's semantics
 * (test/infra/bicepEval.ts). What only a deployment can show is listed in README.md, "Deploying to Azure".
 */

const files = new Map<string, { file: BicepFile; decl: Declarations }>();
beforeAll(async () => {
  for (const path of filesUnder(INFRA, ['.bicep'])) {
    const file = await parseBicep(path);
    files.set(rel(path), { file, decl: declarations(file) });
  }
});
const decl = (path: string): Declarations => files.get(path)!.decl;
const source = (path: string): string => files.get(path)!.file.source;
const resource = (path: string, type: string) =>
  decl(path).resources.find((r) => r.type === type && !r.existing)!;
const moduleOf = (path: string) => decl('infra/main.bicep').modules.find((m) => m.path === path)!;
const minValue = (d: Declarations, param: string): string | undefined =>
  decoratorsOf(d.params.get(param)!.node).get('minValue')?.[0]?.text;
const azdParameters = (): Record<string, { value: unknown }> =>
  (
    JSON.parse(readFileSync(join(INFRA, 'main.parameters.json'), 'utf8')) as {
      parameters: Record<string, { value: unknown }>;
    }
  ).parameters;

describe('1. azd finds one resource for the service: only the site is tagged azd-service-name', () => {
  it('the plan gets the plain tags, the site the tags plus azd-service-name', () => {
    const path = 'infra/modules/functionApp.bicep';
    expect(propertyAt(resource(path, 'Microsoft.Web/serverfarms').body, 'tags')?.text).toBe('tags');
    expect(propertyAt(resource(path, 'Microsoft.Web/sites').body, 'tags')?.text).toBe('siteTags');
    expect(squash(decl(path).variables.get('siteTags')?.text ?? '')).toBe(
      "empty(azdServiceName) ? tags : union(tags, { 'azd-service-name': azdServiceName })",
    );
    const fn = moduleOf('modules/functionApp.bicep');
    expect(propertyAt(fn.body, 'params.tags')?.text).toBe('allTags');
    expect(stringLiteral(propertyAt(fn.body, 'params.azdServiceName'))).toBe('detector');
    // Nothing else anywhere carries the tag.
    for (const [path] of files) {
      const expected = path === 'infra/modules/functionApp.bicep' ? 1 : 0;
      expect(source(path).match(/'azd-service-name'/g)?.length ?? 0, path).toBe(expected);
    }
    // azure.yaml's service is the name the site is tagged with.
    expect(readFileSync(join(ROOT, 'azure.yaml'), 'utf8')).toMatch(/^services:\n {2}detector:$/m);
  });
});

describe('2. a first deployment does not depend on the alerts table having propagated', () => {
  it('the DCR waits for the table (its name comes from the table resource), and every name is deterministic, so a second `azd provision` converges', () => {
    const dcr = moduleOf('modules/dataCollectionRule.bicep');
    expect(propertyAt(dcr.body, 'params.tableName')?.text).toBe('workspace.outputs.tableName');
    expect(
      squash(decl('infra/modules/workspace.bicep').outputs.find((o) => o.name === 'tableName')!.node.text),
    ).toContain('= alertsTable.name');
    for (const [path] of files) expect(source(path), path).not.toMatch(/\b(newGuid|utcNow)\(/);
  });
});

describe('3. redeploying after `azd down`: Key Vault recovery, a name salt, purge protection off by default', () => {
  it('parameters: purge protection off, recovery and salt available, mapped from the azd environment', () => {
    const main = decl('infra/main.bicep');
    expect(main.params.get('keyVaultEnablePurgeProtection')?.defaultValue?.text).toBe('false');
    expect(main.params.get('keyVaultRecoverSoftDeleted')?.defaultValue?.text).toBe('false');
    expect(stringLiteral(main.params.get('keyVaultNameSalt')?.defaultValue)).toBe('');
    const kv = moduleOf('modules/keyVault.bicep');
    expect(propertyAt(kv.body, 'params.enablePurgeProtection')?.text).toBe('keyVaultEnablePurgeProtection');
    expect(propertyAt(kv.body, 'params.recoverSoftDeleted')?.text).toBe('keyVaultRecoverSoftDeleted');
    const vault = resource('infra/modules/keyVault.bicep', 'Microsoft.KeyVault/vaults');
    expect(squash(propertyAt(vault.body, 'properties.createMode')?.text ?? '')).toBe(
      "recoverSoftDeleted ? 'recover' : 'default'",
    );
    expect(decl('infra/modules/keyVault.bicep').params.get('enablePurgeProtection')?.defaultValue?.text).toBe(
      'false',
    );
    const params = azdParameters();
    expect(params.keyVaultRecoverSoftDeleted?.value).toBe('${UNUSUAL_CITY_KEY_VAULT_RECOVER=false}');
    expect(params.keyVaultNameSalt?.value).toBe('${UNUSUAL_CITY_KEY_VAULT_NAME_SALT}');
    expect(params.keyVaultEnablePurgeProtection?.value).toBe(
      '${UNUSUAL_CITY_KEY_VAULT_PURGE_PROTECTION=false}',
    );
  });

  it('the salt gives another valid vault name; without it the name is the one earlier deployments got', () => {
    const names = (salt: string) =>
      evaluator(decl('infra/main.bicep'), {
        params: { ...NAME_DEFAULTS, keyVaultNameSalt: salt },
        given: { resourceToken: 'abcdefghijk23' },
      })('names') as Record<string, string>;
    expect(names('').keyVault).toBe('kv-uc-abcdefghijk23');
    const salted = names('2026-12');
    expect(salted.keyVault).not.toBe(names('').keyVault);
    expect(salted.keyVault).toMatch(KEY_VAULT_NAME);
    expect(names('another').keyVault).not.toBe(salted.keyVault);
  });
});

describe('4. a service principal can deploy: deployerPrincipalType comes from azd', () => {
  it('main.parameters.json maps AZURE_PRINCIPAL_TYPE (default User), a value the parameter allows', () => {
    const value = azdParameters().deployerPrincipalType?.value;
    expect(value).toBe('${AZURE_PRINCIPAL_TYPE=User}');
    const allowed = decoratorsOf(decl('infra/main.bicep').params.get('deployerPrincipalType')!.node)
      .get('allowed')?.[0]
      ?.namedChildren.map((n) => stringLiteral(n));
    expect(allowed).toEqual(expect.arrayContaining(['User', 'ServicePrincipal']));
    expect(allowed).toContain(/=(\w+)\}$/.exec(String(value))?.[1]);
  });
});

describe('5. no FTP settings on Flex Consumption', () => {
  it('neither siteConfig.ftpsState nor the ftp publishing-credentials policy', () => {
    const path = 'infra/modules/functionApp.bicep';
    expect(
      propertyAt(resource(path, 'Microsoft.Web/sites').body, 'properties.siteConfig.ftpsState'),
    ).toBeUndefined();
    const policies = decl(path).resources.filter(
      (r) => r.type === 'Microsoft.Web/sites/basicPublishingCredentialsPolicies',
    );
    expect(policies.map((p) => stringLiteral(propertyAt(p.body, 'name')))).toEqual(['scm']);
    expect(squash(source(path))).not.toMatch(/ftpsState:/);
  });
});

describe('6. operators can cap scale-out', () => {
  it('maximumInstanceCount: 1-1000 in the module and in main.bicep, which passes it on', () => {
    for (const path of ['infra/main.bicep', 'infra/modules/functionApp.bicep']) {
      expect(minValue(decl(path), 'maximumInstanceCount'), path).toBe('1');
    }
    expect(propertyAt(moduleOf('modules/functionApp.bicep').body, 'params.maximumInstanceCount')?.text).toBe(
      'maximumInstanceCount',
    );
    const site = resource('infra/modules/functionApp.bicep', 'Microsoft.Web/sites');
    expect(
      propertyAt(site.body, 'properties.functionAppConfig.scaleAndConcurrency.maximumInstanceCount')?.text,
    ).toBe('maximumInstanceCount');
  });
});

describe('7. table retention -1: the linter warning is suppressed with its reason', () => {
  it('#disable-next-line BCP328 right above each retention property, a comment explaining it above', () => {
    const lines = source('infra/modules/workspace.bicep').split('\n');
    for (const property of [
      'retentionInDays: tableRetentionInDays',
      'totalRetentionInDays: tableTotalRetentionInDays',
    ]) {
      const at = lines.findIndex((l) => l.trim() === property);
      expect(at, property).toBeGreaterThan(0);
      expect(lines[at - 1]?.trim(), property).toBe('#disable-next-line BCP328');
    }
    const first = lines.findIndex((l) => l.trim() === '#disable-next-line BCP328');
    expect(lines.slice(first - 2, first).join(' ')).toMatch(/\/\/.*-1.*workspace/);
    expect(minValue(decl('infra/modules/workspace.bicep'), 'tableRetentionInDays')).toBe('-1');
  });
});

/** Parameter values the name expressions read, at their defaults. */
const NAME_DEFAULTS: Record<string, Value> = {
  baseName: 'uc',
  tablePrefix: 'unusualcity',
  alertsTableName: 'UnusualCityAlerts_CL',
  keyVaultNameSalt: '',
};
/** The resource types' naming rules (Azure resource name rules). */
const STORAGE_ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const KEY_VAULT_NAME = /^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
const STORAGE_TABLE_NAME = /^[A-Za-z][A-Za-z0-9]{2,62}$/;
const CUSTOM_LOG_TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,59}_CL$/;
const TABLE_SUFFIXES = ['Baselines', 'Tenant', 'Alerts', 'State', 'Outbox'];

describe('8. name inputs are cleaned: a hyphen or capitals cannot break a resource name', () => {
  const evaluate = (params: Record<string, Value>) =>
    evaluator(decl('infra/main.bicep'), {
      params: { ...NAME_DEFAULTS, ...params },
      given: { resourceToken: 'abcdefghijk23' },
    });

  it.each([
    ['defaults', {}, 'uc', 'unusualcity', 'UnusualCityAlerts_CL'],
    [
      'hyphens and capitals',
      { baseName: 'My-App', tablePrefix: 'unusual-city', alertsTableName: 'Unusual-City' },
      'myapp',
      'unusualcity',
      'UnusualCity_CL',
    ],
    [
      'suffix in another case, underscores',
      { baseName: 'a_b.c', tablePrefix: 'uc_state', alertsTableName: 'my_alerts_cl' },
      'abc',
      'ucstate',
      'my_alerts_CL',
    ],
    [
      'leading digits, nothing usable',
      { baseName: '--', tablePrefix: '1st', alertsTableName: '9x' },
      'uc',
      'uc1st',
      'UC9x_CL',
    ],
  ])('%s', (_, params, base, prefix, table) => {
    const value = evaluate(params);
    expect(value('cleanBaseName')).toBe(base);
    expect(value('cleanTablePrefix')).toBe(prefix);
    expect(value('cleanAlertsTableName')).toBe(table);
    const names = value('names') as Record<string, string>;
    expect(names.storage).toMatch(STORAGE_ACCOUNT_NAME);
    expect(names.keyVault).toMatch(KEY_VAULT_NAME);
    for (const suffix of TABLE_SUFFIXES) expect(`${prefix}${suffix}`).toMatch(STORAGE_TABLE_NAME);
    expect(table).toMatch(CUSTOM_LOG_TABLE_NAME);
  });

  it('negative control: the raw inputs would break the names the cleaned ones keep valid', () => {
    expect('stMy-Appabcdefghijk23').not.toMatch(STORAGE_ACCOUNT_NAME);
    expect('unusual-cityBaselines').not.toMatch(STORAGE_TABLE_NAME);
    expect('Unusual-City').not.toMatch(CUSTOM_LOG_TABLE_NAME);
  });

  it('only the cleaned names reach resources and settings; the raw parameters are read by the cleaning alone', () => {
    const main = source('infra/main.bicep');
    for (const raw of ['baseName', 'tablePrefix', 'alertsTableName']) {
      const uses = main
        .split('\n')
        .filter((l) => new RegExp(`[^\\w.'-]${raw}\\b(?!:)`).test(l) && !/^\s*(@|param |\/\/)/.test(l));
      expect(
        uses.every((l) => l.includes(`substring(${raw}`) || l.includes(`length(${raw})`)),
        `${raw}: ${uses.join(' | ')}`,
      ).toBe(true);
    }
    expect(propertyAt(moduleOf('modules/workspace.bicep').body, 'params.tableName')?.text).toBe(
      'cleanAlertsTableName',
    );
    expect(propertyAt(moduleOf('modules/storage.bicep').body, 'params.tablePrefix')?.text).toBe(
      'cleanTablePrefix',
    );
  });
});

describe("10. telemetry can go to a cheaper workspace than Sentinel's", () => {
  const telemetryTarget = (params: Record<string, Value>) =>
    evaluator(decl('infra/main.bicep'), {
      params: {
        ...NAME_DEFAULTS,
        existingWorkspaceResourceId: '',
        telemetryWorkspace: 'separate',
        telemetryWorkspaceResourceId: '',
        ...params,
      },
      given: { resourceToken: 'abcdefghijk23', workspaceResourceId: '/sentinel-workspace' },
    })('appInsightsWorkspaceResourceId');
  // resourceId() is the one deployment function this needs: a stand-in that shows which name it was given.
  it('default: a separate new workspace; "sentinel" or an explicit id otherwise', () => {
    expect(decl('infra/main.bicep').params.get('telemetryWorkspace')?.defaultValue?.text).toBe("'separate'");
    expect(telemetryTarget({})).toBe(
      'resourceId(Microsoft.OperationalInsights/workspaces, log-uc-telemetry-abcdefghijk23)',
    );
    expect(telemetryTarget({ telemetryWorkspace: 'sentinel' })).toBe('/sentinel-workspace');
    expect(telemetryTarget({ telemetryWorkspaceResourceId: '/ops' })).toBe('/ops');
    const appInsights = moduleOf('modules/appInsights.bicep');
    expect(propertyAt(appInsights.body, 'params.workspaceResourceId')?.text).toBe(
      'appInsightsWorkspaceResourceId',
    );
    const created = moduleOf('modules/logAnalytics.bicep');
    expect(
      decl('infra/main.bicep').modules.filter((m) => m.path === 'modules/logAnalytics.bicep'),
    ).toHaveLength(2);
    expect(created).toBeDefined();
    expect(squash(source('infra/main.bicep'))).toContain(
      "module telemetryLogAnalytics 'modules/logAnalytics.bicep' = if (createTelemetryWorkspace)",
    );
  });
});

describe('deployment outputs: what the command line needs against this deployment', () => {
  const main = () => decl('infra/main.bicep');
  const outputs = () => new Map(main().outputs.map((o) => [o.name, squash(o.node.text)]));
  const catalogueNames = new Set(settingsCatalogue.settings.map((s) => s.name));
  const NOT_OUTPUT = ['UC_STORAGE_CONNECTION_STRING', 'UC_MAXMIND_ACCOUNT_ID', 'UC_MAXMIND_LICENSE_KEY'];

  it('every wired and tuned setting, by its catalogue name, equal to what the app gets', () => {
    const out = outputs();
    for (const variable of ['wiredSettings', 'tunedSettings']) {
      for (const name of objectProperties(main().variables.get(variable)).keys()) {
        if (NOT_OUTPUT.includes(name)) continue;
        expect(out.get(name), `${name} output`).toBe(`output ${name} string = ${variable}.${name}`);
      }
    }
    expect(out.get('UC_TABLE_ENDPOINT')).toBeDefined();
    for (const name of out.keys()) if (name.startsWith('UC_')) expect(catalogueNames, name).toContain(name);
  });

  it('no secret and no Key Vault reference is an output', () => {
    for (const [name, text] of outputs()) {
      expect(NOT_OUTPUT, name).not.toContain(name);
      expect(text, name).not.toMatch(/@Microsoft\.KeyVault|listKeys|ConnectionString/);
    }
  });

  it("the resources doctor checks are outputs (identity, DCR, rule, Application Insights), and none is named AZURE_CLIENT_ID (it would make the operator's CLI take the app's identity)", () => {
    const out = outputs();
    for (const name of [
      'FUNCTION_APP_NAME',
      'KEY_VAULT_NAME',
      'IDENTITY_PRINCIPAL_ID',
      'DCR_RESOURCE_ID',
      'ANALYTICS_RULE_ID',
      'APPLICATIONINSIGHTS_RESOURCE_ID',
      'APPLICATIONINSIGHTS_APP_ID',
      'WORKSPACE_RESOURCE_ID',
      'DEPLOYER_DATA_ACCESS',
    ]) {
      expect(out.has(name), name).toBe(true);
    }
    expect(out.has('AZURE_CLIENT_ID')).toBe(false);
  });
});

describe('postprovision hook (azure.yaml, infra/hooks)', () => {
  const HOOK_ENV = {
    KEY_VAULT_NAME: 'kv-uc-abcdefghijk23',
    MAXMIND_ACCOUNT_ID_SECRET_NAME: 'maxmind-account-id',
    MAXMIND_LICENSE_KEY_SECRET_NAME: 'maxmind-license-key',
    FUNCTION_APP_NAME: 'func-uc-abcdefghijk23',
    AZURE_RESOURCE_GROUP: 'rg-unusual-city',
  };
  const run = (env: Record<string, string>) =>
    execFileSync('sh', [join(INFRA, 'hooks/postprovision.sh')], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      encoding: 'utf8',
    });

  it('azure.yaml runs the sh script on POSIX and the PowerShell one on Windows, after provisioning', () => {
    const yaml = readFileSync(join(ROOT, 'azure.yaml'), 'utf8');
    expect(yaml).toMatch(
      /^hooks:\n {2}postprovision:\n {4}posix:\n {6}shell: sh\n {6}run: \.\/infra\/hooks\/postprovision\.sh\n {4}windows:\n {6}shell: pwsh\n {6}run: \.\/infra\/hooks\/postprovision\.ps1$/m,
    );
  });

  it("prints the four next steps in order, with this deployment's names, and exits 0", () => {
    const out = run({ ...HOOK_ENV, DEPLOYER_DATA_ACCESS: 'true' });
    const steps = [
      '1. Set the MaxMind secrets',
      '2. Run the first GeoIP refresh',
      '3. Run the bootstrap',
      '4. Check the deployment',
    ];
    const at = steps.map((s) => out.indexOf(s));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(out).toContain(
      'az keyvault secret set --vault-name kv-uc-abcdefghijk23 --name maxmind-account-id',
    );
    expect(out).toContain('--name maxmind-license-key');
    expect(out).toContain(
      'https://func-uc-abcdefghijk23.azurewebsites.net/admin/functions/refreshGeoIpDatabase',
    );
    expect(out).toContain(
      'https://func-uc-abcdefghijk23.azurewebsites.net/admin/functions/refreshServiceTags',
    );
    expect(out).toContain('az functionapp keys list -g rg-unusual-city -n func-uc-abcdefghijk23');
    expect(out).toContain('unusual-city bootstrap');
    expect(out).toContain('unusual-city doctor');
    // A command that can fall back to the npm registry is never suggested.
    expect(out).not.toMatch(/\bnpx\b/);
    expect(out).not.toMatch(/<[A-Z_]+>/);
    expect(out).not.toContain('Monitoring Reader');
  });

  it('without the data roles it says which roles running from this machine needs; a missing value shows as <NAME>', () => {
    const out = run({ KEY_VAULT_NAME: HOOK_ENV.KEY_VAULT_NAME });
    expect(out).toContain('--name <MAXMIND_ACCOUNT_ID_SECRET_NAME>');
    expect(out).toContain('https://<FUNCTION_APP_NAME>.azurewebsites.net');
    expect(out).toContain('UNUSUAL_CITY_GRANT_DEPLOYER_DATA_ACCESS');
    for (const role of [
      'Log Analytics Reader',
      'Storage Table Data Contributor',
      'Storage Blob Data Reader',
      'Monitoring Reader',
    ]) {
      expect(out).toContain(role);
    }
  });

  it("reads only deployment outputs and azd's own variables; the PowerShell script reads the same and prints the same steps", () => {
    const sh = readFileSync(join(INFRA, 'hooks/postprovision.sh'), 'utf8');
    const ps1 = readFileSync(join(INFRA, 'hooks/postprovision.ps1'), 'utf8');
    const shReads = [...sh.matchAll(/\bvalue ([A-Z_]+)\b/g)].map((m) => m[1]!);
    const psReads = [...ps1.matchAll(/Get-Value '([A-Z_]+)'/g)].map((m) => m[1]!);
    expect(new Set(psReads)).toEqual(new Set(shReads));
    const outputNames = new Set(decl('infra/main.bicep').outputs.map((o) => o.name));
    for (const name of shReads) {
      expect(outputNames.has(name) || ['AZURE_RESOURCE_GROUP', 'AZURE_ENV_NAME'].includes(name), name).toBe(
        true,
      );
    }
    const lines = (text: string) =>
      text
        .split('\n')
        .filter((l) => /^\d\. |unusual-city (bootstrap|doctor)|keyvault secret set/.test(l.trim()));
    for (const url of [
      '.azurewebsites.net/admin/functions/refreshGeoIpDatabase',
      '.azurewebsites.net/admin/functions/refreshServiceTags',
      '.azurewebsites.net/api/bootstrapBaselines?days=30',
    ]) {
      expect(sh, url).toContain(url);
      expect(ps1, url).toContain(url);
    }
    expect(lines(ps1).map((l) => l.replace(/\$\w+/g, 'X').replace(/[`"']/g, '').trim().slice(0, 40))).toEqual(
      lines(sh).map((l) =>
        l
          .replace(/\$\w+/g, 'X')
          .replace(/[\\"']/g, '')
          .trim()
          .slice(0, 40),
      ),
    );
  });
});
