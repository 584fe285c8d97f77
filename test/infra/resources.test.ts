import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';
import type { Node } from 'web-tree-sitter';

import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import { SERVICE_TAGS_ROLE_NAME } from '../../shared/ops/serviceTagsRefresh.js';
import {
  arrayElements,
  type BicepFile,
  type Declarations,
  declarations,
  descriptionOf,
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
 * Structural checks of the templates that a Bicep build would not make: least-privilege role assignments,
 * pinned API versions, no secrets, the alert table and DCR generated from the column file, AVM conventions.
 */

const bicepPaths = filesUnder(INFRA, ['.bicep']);
const files = new Map<string, { file: BicepFile; decl: Declarations }>();

beforeAll(async () => {
  for (const path of bicepPaths) {
    const file = await parseBicep(path);
    files.set(rel(path), { file, decl: declarations(file) });
  }
});

const decl = (path: string): Declarations => {
  const entry = files.get(path);
  if (!entry) throw new Error(`${path} not parsed`);
  return entry.decl;
};

const resourceOf = (path: string, type: string) => {
  const found = decl(path).resources.filter((r) => r.type === type && !r.existing);
  expect(found, `${path}: one ${type}`).toHaveLength(1);
  return found[0]!;
};

const literal = (node: Node | undefined): string | undefined => stringLiteral(node) ?? node?.text;

/**
 * API versions the templates may use: each checked against the resource provider's published versions when
 * chosen (infra-facts.md). Adding one is a reviewed change of this list.
 */
const API_VERSIONS: Readonly<Record<string, string>> = {
  'Microsoft.ManagedIdentity/userAssignedIdentities': '2023-01-31',
  'Microsoft.Storage/storageAccounts': '2023-05-01',
  'Microsoft.Storage/storageAccounts/blobServices': '2023-05-01',
  'Microsoft.Storage/storageAccounts/blobServices/containers': '2023-05-01',
  'Microsoft.Storage/storageAccounts/tableServices': '2023-05-01',
  'Microsoft.Storage/storageAccounts/tableServices/tables': '2023-05-01',
  // Queue mode: the shard queue and its poison queue.
  'Microsoft.Storage/storageAccounts/queueServices': '2023-05-01',
  'Microsoft.Storage/storageAccounts/queueServices/queues': '2023-05-01',
  'Microsoft.KeyVault/vaults': '2023-07-01',
  'Microsoft.OperationalInsights/workspaces': '2023-09-01',
  'Microsoft.OperationalInsights/workspaces/tables': '2022-10-01',
  'Microsoft.Insights/components': '2020-02-02',
  'Microsoft.Insights/dataCollectionRules': '2023-03-11',
  'Microsoft.Insights/workbooks': '2023-06-01',
  // The only API version of subscription diagnostic settings (there is no GA one).
  'Microsoft.Insights/diagnosticSettings': '2021-05-01-preview',
  'Microsoft.SecurityInsights/onboardingStates': '2024-03-01',
  'Microsoft.SecurityInsights/alertRules': '2024-03-01',
  'Microsoft.Web/serverfarms': '2024-04-01',
  'Microsoft.Web/sites': '2024-04-01',
  'Microsoft.Web/sites/basicPublishingCredentialsPolicies': '2024-04-01',
  'Microsoft.Authorization/roleAssignments': '2022-04-01',
  // The one custom role (Service Tags list only), at subscription scope.
  'Microsoft.Authorization/roleDefinitions': '2022-04-01',
};

/** Built-in role definition ids (the same in every tenant). */
const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893',
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1',
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05',
};

/** Every right the deployment grants: role, on which resource type, to whom. Nothing else may appear. */
const EXPECTED_ASSIGNMENTS = [
  'identity keyVaultSecretsUser on Microsoft.KeyVault/vaults',
  'deployer keyVaultSecretsOfficer on Microsoft.KeyVault/vaults',
  'identity logAnalyticsReader on Microsoft.OperationalInsights/workspaces',
  'identity monitoringMetricsPublisher on Microsoft.Insights/components',
  'identity monitoringMetricsPublisher on Microsoft.Insights/dataCollectionRules',
  'identity storageBlobDataOwner on Microsoft.Storage/storageAccounts',
  // Queue mode (UC_SHARDING=queue): the timer enqueues shards, processShard's trigger consumes them.
  'identity storageQueueDataContributor on Microsoft.Storage/storageAccounts',
  'identity storageTableDataContributor on Microsoft.Storage/storageAccounts',
  // grantDeployerDataAccess: the operator runs baseline, bootstrap and doctor with their own identity.
  'operator logAnalyticsReader on Microsoft.OperationalInsights/workspaces',
  'operator storageTableDataContributor on Microsoft.Storage/storageAccounts',
  'operator storageBlobDataReader on Microsoft.Storage/storageAccounts',
  'operator monitoringReader on resourceGroup',
  // refreshServiceTags (grantServiceTagsRead): the custom role listing the Service Tags, nothing else.
  'identity serviceTagsReader on subscription',
].sort();

/** The one assignment scoped to the resource group rather than a resource: read-only, for the operator. */
const RESOURCE_GROUP_ASSIGNMENT = 'infra/modules/operatorAccess.bicep';
/** The one assignment at subscription scope: the custom role that may only list the Service Tags. */
const SUBSCRIPTION_ASSIGNMENT = 'infra/modules/serviceTagsReader.bicep';

describe('API versions', () => {
  it('every resource uses the allow-listed API version of its type', () => {
    const used: string[] = [];
    for (const [path, { decl: d }] of files) {
      for (const r of d.resources) {
        expect(API_VERSIONS[r.type], `${path}: ${r.typeAndVersion} is not allow-listed`).toBe(r.apiVersion);
        used.push(r.type);
      }
    }
    // The list is not stale either: each entry is used somewhere.
    expect([...new Set(used)].sort()).toEqual(Object.keys(API_VERSIONS).sort());
  });
});

describe('role assignments', () => {
  const assignments = () =>
    [...files].flatMap(([path, { decl: d }]) =>
      d.resources
        .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments')
        .map((r) => ({ path, d, r })),
    );

  it('the role ids live in one commented map (modules/roles.bicep), with the built-in ids', () => {
    const roles = decl('infra/modules/roles.bicep');
    const map = objectProperties(roles.variables.get('roleIds'));
    expect(Object.fromEntries([...map].map(([k, v]) => [k, stringLiteral(v)]))).toEqual(BUILT_IN_ROLES);
    const source = files.get('infra/modules/roles.bicep')!.file.source;
    expect(source.match(/^\s*\/\/ /gm)?.length ?? 0).toBeGreaterThanOrEqual(map.size);
    // No role id (or any GUID) is written anywhere else.
    for (const [path, { file }] of files) {
      if (path === 'infra/modules/roles.bicep') continue;
      expect(file.source, path).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i);
    }
  });

  it('each is named guid(scope.id, principal, role), scoped to one resource of its module, with a principal type', () => {
    const list = assignments();
    expect(list.length).toBe(EXPECTED_ASSIGNMENTS.length);
    for (const { path, d, r } of list) {
      const where = `${path}: ${r.symbol}`;
      const name = propertyAt(r.body, 'name');
      expect(name?.type, where).toBe('call_expression');
      expect(name?.childForFieldName('function')?.text, where).toBe('guid');
      const args = name?.childForFieldName('arguments')?.namedChildren ?? [];
      expect(args, where).toHaveLength(3);

      const scope = propertyAt(r.body, 'scope')?.text;
      if (path === SUBSCRIPTION_ASSIGNMENT) {
        // A custom role: its id is the module's own role definition, not a built-in id of roleIds.
        expect(scope, where).toBeUndefined();
        expect(
          args.map((a) => a.text),
          where,
        ).toEqual(['subscription().id', 'principalId', 'role.id']);
        expect(propertyAt(r.body, 'properties.roleDefinitionId')?.text, where).toBe('role.id');
        expect(propertyAt(r.body, 'properties.principalType')?.text, where).toBe("'ServicePrincipal'");
        continue;
      }
      if (path === RESOURCE_GROUP_ASSIGNMENT) {
        expect(scope, where).toBeUndefined();
        expect(args[0]?.text, where).toBe('resourceGroup().id');
        expect(args[2]?.text, where).toBe('roleIds.monitoringReader');
      } else {
        const scopeResource = d.resources.find((x) => x.symbol === scope);
        expect(scopeResource, `${where}: scope must be a resource of the module`).toBeDefined();
        expect(args[0]?.text, where).toBe(`${scope}.id`);
      }
      expect(args[1]?.text, where).toBe(propertyAt(r.body, 'properties.principalId')?.text);
      const role = /^roleIds\.(\w+)$/.exec(args[2]?.text ?? '')?.[1];
      expect(role && role in BUILT_IN_ROLES, `${where}: role from roleIds`).toBe(true);
      expect(squash(propertyAt(r.body, 'properties.roleDefinitionId')?.text ?? ''), where).toBe(
        `subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.${role})`,
      );
      expect(propertyAt(r.body, 'properties.principalType'), where).toBeDefined();
      expect(
        d.imports.map((i) => i.path),
        where,
      ).toContain('roles.bicep');
    }
  });

  it("grants exactly the detector's rights (and the deployer's optional Key Vault one), nothing else", () => {
    const granted = assignments().map(({ path, d, r }) => {
      if (path === SUBSCRIPTION_ASSIGNMENT) return 'identity serviceTagsReader on subscription';
      const scope = d.resources.find((x) => x.symbol === propertyAt(r.body, 'scope')?.text);
      const principal = propertyAt(r.body, 'properties.principalId')?.text;
      const who =
        { principalId: 'identity', secretsOfficerPrincipalId: 'deployer' }[principal ?? ''] ?? 'operator';
      const role = /roleIds\.(\w+)/.exec(propertyAt(r.body, 'name')?.text ?? '')?.[1];
      return `${who} ${role} on ${scope?.type ?? 'resourceGroup'}`;
    });
    expect(granted.sort()).toEqual(EXPECTED_ASSIGNMENTS);
    // The identity's principal is main.bicep's managed identity in every module that assigns a role to it.
    const main = decl('infra/main.bicep');
    for (const m of main.modules) {
      const principal = propertyAt(m.body, 'params.principalId');
      if (principal) expect(principal.text, m.symbol).toBe('identity.outputs.principalId');
    }
  });

  it("grants the operator's roles only with grantDeployerDataAccess (default false) and a deployer principal", () => {
    const main = decl('infra/main.bicep');
    expect(main.params.get('grantDeployerDataAccess')?.defaultValue?.text).toBe('false');
    expect(squash(main.variables.get('grantDeployer')?.text ?? '')).toBe(
      'grantDeployerDataAccess && !empty(deployerPrincipalId)',
    );
    expect(squash(main.variables.get('operatorPrincipalId')?.text ?? '')).toBe(
      "grantDeployer ? deployerPrincipalId : ''",
    );
    for (const path of ['modules/workspace.bicep', 'modules/storage.bicep']) {
      const m = main.modules.find((x) => x.path === path);
      expect(propertyAt(m?.body, 'params.operatorPrincipalId')?.text, path).toBe('operatorPrincipalId');
      expect(propertyAt(m?.body, 'params.operatorPrincipalType')?.text, path).toBe('deployerPrincipalType');
    }
    const access = main.modules.find((x) => x.path === 'modules/operatorAccess.bicep')!;
    expect(access.node.text).toMatch(/= if \(grantDeployer\) \{/);
    // In the modules, each operator assignment exists only for a non-empty principal.
    for (const { path, r } of assignments()) {
      const principal = propertyAt(r.body, 'properties.principalId')?.text;
      if (principal !== 'operatorPrincipalId' || path === RESOURCE_GROUP_ASSIGNMENT) continue;
      expect(r.node.text, `${path}: ${r.symbol}`).toMatch(/= if \(!empty\(operatorPrincipalId\)\) \{/);
    }
  });
});

describe('no secrets in templates or parameter files', () => {
  const scanned = () => [...filesUnder(INFRA, ['.bicep', '.json', '.kql', '.md']), join(ROOT, 'azure.yaml')];

  /** Patterns of credentials or of expressions that read them. */
  const SECRET_PATTERNS: readonly RegExp[] = [
    /AccountKey=/i,
    /SharedAccessSignature=|SharedAccessKey=/i,
    /[?&]sig=[A-Za-z0-9%]/,
    /DefaultEndpointsProtocol=/i,
    /\blist(Keys|AccountSas|ServiceSas|ConnectionStrings|Secrets|Credentials?)\s*\(/,
    /\.(primaryKey|secondaryKey|primaryMasterKey|secondaryMasterKey|primarySharedKey)\b/i,
    /InstrumentationKey=[0-9a-f]{8}-/i,
    /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
    /\bpassword\s*[:=]\s*'[^']/i,
  ];

  const findSecrets = (text: string): string[] =>
    SECRET_PATTERNS.filter((p) => p.test(text)).map((p) => p.source);

  it('no file holds a key, SAS, connection string with a key, or an expression that reads one', () => {
    for (const path of scanned()) expect(findSecrets(readFileSync(path, 'utf8')), rel(path)).toEqual([]);
  });

  it('negative control: the scan flags each kind of secret', () => {
    const samples = [
      "value: 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc=='",
      'value: account.listKeys().keys[0].value',
      "url: 'https://a.blob.core.windows.net/c?sv=2022&sig=abc%3D'",
      'key: workspace.listKeys().primarySharedKey',
      "conn: 'InstrumentationKey=00000000-0000-0000-0000-000000000000'",
      "password: 'hunter2'",
    ];
    for (const s of samples) expect(findSecrets(s), s).not.toEqual([]);
  });

  it('no template creates a Key Vault secret, and no @secure() parameter has a default', () => {
    for (const [path, { decl: d }] of files) {
      for (const r of d.resources)
        expect(r.type, path).not.toMatch(/^Microsoft\.KeyVault\/vaults\/(secrets|keys)$/);
      for (const p of d.params.values()) {
        const secure = files
          .get(path)!
          .file.source.slice(0, p.node.startIndex)
          .match(/@secure\(\)\s*$/);
        if (secure) expect(p.defaultValue, `${path}: ${p.name}`).toBeUndefined();
      }
    }
  });

  it('parameter files set no value for a secret-looking parameter', () => {
    for (const path of filesUnder(INFRA, ['.parameters.json', '.parameters.example.json'])) {
      const parameters = (JSON.parse(readFileSync(path, 'utf8')) as { parameters: Record<string, unknown> })
        .parameters;
      for (const name of Object.keys(parameters)) {
        expect(
          // keyVault… parameters configure the vault, they hold no key.
          /(password|secret|key|token|credential)(?!Name)/i.test(
            name.replace(/SecretName$/, 'Name').replace(/^keyVault/, 'vault'),
          ),
          `${rel(path)}: ${name}`,
        ).toBe(false);
      }
    }
  });
});

describe('alerts table and data collection rule: generated from shared/alerts/columns.json', () => {
  const TABLE_TYPES = ['boolean', 'dateTime', 'dynamic', 'guid', 'int', 'long', 'real', 'string'];
  const STREAM_TYPES = ['boolean', 'datetime', 'dynamic', 'int', 'long', 'real', 'string'];
  /** The code's column types (shared/alerts/alert.ts ColumnType). */
  const CODE_TYPES = ['bool', 'datetime', 'dynamic', 'int', 'long', 'real', 'string'];

  const typeMap = (path: string, variable: string): Record<string, string> =>
    Object.fromEntries(
      [...objectProperties(decl(path).variables.get(variable))].map(([k, v]) => [k, literal(v)!]),
    );

  it('both modules load the column file with loadJsonContent', () => {
    for (const path of ['infra/modules/workspace.bicep', 'infra/modules/dataCollectionRule.bicep']) {
      expect(squash(decl(path).variables.get('alertColumns')?.text ?? ''), path).toBe(
        "loadJsonContent('../../shared/alerts/columns.json').columns",
      );
    }
    expect(columnsFile.stream).toBe(`Custom-${columnsFile.table}`);
    expect(columnsFile.columns.find((c) => c.name === 'TimeGenerated')?.type).toBe('datetime');
  });

  it('the table schema is the column file, typed for Log Analytics', () => {
    const types = typeMap('infra/modules/workspace.bicep', 'tableColumnTypes');
    expect(Object.keys(types).sort()).toEqual(CODE_TYPES);
    for (const t of Object.values(types)) expect(TABLE_TYPES).toContain(t);
    expect(types).toMatchObject({ bool: 'boolean', datetime: 'dateTime' });
    const table = resourceOf(
      'infra/modules/workspace.bicep',
      'Microsoft.OperationalInsights/workspaces/tables',
    );
    expect(squash(propertyAt(table.body, 'properties.schema.columns')?.text ?? '')).toBe(
      'map(alertColumns, c => { name: c.name type: tableColumnTypes[c.type] description: c.description })',
    );
    expect(propertyAt(table.body, 'properties.schema.name')?.text).toBe('tableName');
    expect(propertyAt(table.body, 'name')?.text).toBe('tableName');
    expect(literal(propertyAt(table.body, 'properties.plan'))).toBe('Analytics');
    // What the map produces: every column of the file, in order, with a valid type.
    const generated = columnsFile.columns.map((c) => ({ name: c.name, type: types[c.type] }));
    expect(generated.every((c) => c.type !== undefined)).toBe(true);
  });

  it('the DCR stream declaration is the column file, typed for DCRs, flowing to Custom-<table>', () => {
    const path = 'infra/modules/dataCollectionRule.bicep';
    const types = typeMap(path, 'streamColumnTypes');
    expect(Object.keys(types).sort()).toEqual(CODE_TYPES);
    for (const t of Object.values(types)) expect(STREAM_TYPES).toContain(t);
    const rule = resourceOf(path, 'Microsoft.Insights/dataCollectionRules');
    expect(literal(propertyAt(rule.body, 'kind'))).toBe('Direct');
    const declarationsNode = propertyAt(rule.body, 'properties.streamDeclarations');
    const [streamKey, stream] = [...objectProperties(declarationsNode)][0] ?? [];
    expect(streamKey).toBe("'${streamName}'");
    expect(squash(propertyAt(stream, 'columns')?.text ?? '')).toBe(
      'map(alertColumns, c => { name: c.name type: streamColumnTypes[c.type] })',
    );
    expect(decl(path).variables.get('streamName')?.text).toBe("'Custom-${tableName}'");
    const flow = arrayElements(propertyAt(rule.body, 'properties.dataFlows'))[0];
    expect(propertyAt(flow, 'outputStream')?.text).toBe('streamName');
    expect(arrayElements(propertyAt(flow, 'streams')).map((n) => n.text)).toEqual(['streamName']);
    expect(literal(propertyAt(flow, 'transformKql'))).toBe('source');
  });

  it("the DCR is in the workspace's region and waits for the table", () => {
    const main = decl('infra/main.bicep');
    const dcr = main.modules.find((m) => m.path === 'modules/dataCollectionRule.bicep');
    expect(propertyAt(dcr?.body, 'params.location')?.text).toBe('workspace.outputs.location');
    expect(propertyAt(dcr?.body, 'params.tableName')?.text).toBe('workspace.outputs.tableName');
  });
});

describe('the Service Tags custom role (refreshServiceTags)', () => {
  it('holds only Microsoft.Network/locations/serviceTags/read, assignable in its own subscription only', () => {
    const roles = decl('infra/modules/roles.bicep');
    const spec = objectProperties(roles.variables.get('serviceTagsReaderRole'));
    expect(arrayElements(spec.get('actions')).map((n) => stringLiteral(n))).toEqual([
      'Microsoft.Network/locations/serviceTags/read',
    ]);
    // The role name the code's 403 message tells the operator to grant.
    expect(stringLiteral(spec.get('roleName'))).toBe(SERVICE_TAGS_ROLE_NAME);

    const module = 'infra/modules/serviceTagsReader.bicep';
    expect(files.get(module)!.file.source).toMatch(/^targetScope = 'subscription'$/m);
    const role = resourceOf(module, 'Microsoft.Authorization/roleDefinitions');
    expect(squash(propertyAt(role.body, 'name')?.text ?? '')).toBe(
      'guid(subscription().id, serviceTagsReaderRole.seed)',
    );
    expect(propertyAt(role.body, 'properties.type')?.text).toBe("'CustomRole'");
    expect(squash(propertyAt(role.body, 'properties.roleName')?.text ?? '')).toBe(
      "'${serviceTagsReaderRole.roleName} (${subscription().subscriptionId})'",
    );
    const permissions = arrayElements(propertyAt(role.body, 'properties.permissions'));
    expect(permissions).toHaveLength(1);
    expect(propertyAt(permissions[0], 'actions')?.text).toBe('serviceTagsReaderRole.actions');
    for (const none of ['notActions', 'dataActions', 'notDataActions'])
      expect(arrayElements(propertyAt(permissions[0], none)), none).toEqual([]);
    expect(propertyAt(role.body, 'properties.assignableScopes')?.text.replace(/\s+/g, '')).toBe(
      '[subscription().id]',
    );
  });

  it('main.bicep deploys it at subscription scope for the identity, only with grantServiceTagsRead (default true)', () => {
    const main = decl('infra/main.bicep');
    expect(main.params.get('grantServiceTagsRead')?.defaultValue?.text).toBe('true');
    const m = main.modules.find((x) => x.path === 'modules/serviceTagsReader.bicep')!;
    expect(m.node.text).toMatch(/= if \(grantServiceTagsRead\) \{/);
    expect(propertyAt(m.body, 'scope')?.text).toBe('subscription()');
    expect([...objectProperties(propertyAt(m.body, 'params')).keys()]).toEqual(['principalId']);
  });
});

describe('resources: the security-relevant settings', () => {
  it("storage: Entra ID only, TLS 1.2, no public blobs; the code's tables and both containers", () => {
    const path = 'infra/modules/storage.bicep';
    const account = resourceOf(path, 'Microsoft.Storage/storageAccounts');
    expect(propertyAt(account.body, 'properties.allowSharedKeyAccess')?.text).toBe('false');
    expect(literal(propertyAt(account.body, 'properties.minimumTlsVersion'))).toBe('TLS1_2');
    expect(propertyAt(account.body, 'properties.allowBlobPublicAccess')?.text).toBe('false');
    expect(propertyAt(account.body, 'properties.supportsHttpsTrafficOnly')?.text).toBe('true');

    // The suffixes the code appends to UC_TABLE_PREFIX (shared/baseline/tableStorage.ts TABLE_SUFFIXES).
    const code = readFileSync(join(ROOT, 'shared/baseline/tableStorage.ts'), 'utf8');
    const block = /const TABLE_SUFFIXES[^{]*\{([^}]*)\}/.exec(code)?.[1] ?? '';
    const codeSuffixes = [...block.matchAll(/'(\w+)'/g)].map((m) => m[1]);
    expect(codeSuffixes.length).toBeGreaterThanOrEqual(5);
    const suffixes = arrayElements(decl(path).variables.get('tableSuffixes')).map((n) => stringLiteral(n));
    expect(suffixes).toEqual(codeSuffixes);
    const tables = resourceOf(path, 'Microsoft.Storage/storageAccounts/tableServices/tables');
    expect(propertyAt(tables.body, 'name')?.text).toBe("'${tablePrefix}${suffix}'");
    const containers = decl(path).resources.filter(
      (r) => r.type === 'Microsoft.Storage/storageAccounts/blobServices/containers',
    );
    expect(containers.map((c) => propertyAt(c.body, 'name')?.text).sort()).toEqual(
      ['deploymentContainerName', 'geoIpContainerName'].sort(),
    );
    for (const c of containers) expect(literal(propertyAt(c.body, 'properties.publicAccess'))).toBe('None');
    // Queue mode: the shard queue (UC_SHARD_QUEUE) and the poison queue the Functions host moves failures to.
    const queues = decl(path).resources.filter(
      (r) => r.type === 'Microsoft.Storage/storageAccounts/queueServices/queues',
    );
    expect(queues.map((q) => propertyAt(q.body, 'name')?.text).sort()).toEqual(
      ["'${shardQueueName}-poison'", 'shardQueueName'].sort(),
    );
  });

  it('function app: Flex Consumption, Node 22, the user-assigned identity everywhere', () => {
    const path = 'infra/modules/functionApp.bicep';
    const plan = resourceOf(path, 'Microsoft.Web/serverfarms');
    expect(literal(propertyAt(plan.body, 'sku.tier'))).toBe('FlexConsumption');
    expect(literal(propertyAt(plan.body, 'sku.name'))).toBe('FC1');
    expect(propertyAt(plan.body, 'properties.reserved')?.text).toBe('true');
    const site = resourceOf(path, 'Microsoft.Web/sites');
    expect(literal(propertyAt(site.body, 'kind'))).toBe('functionapp,linux');
    expect(literal(propertyAt(site.body, 'identity.type'))).toBe('UserAssigned');
    expect(propertyAt(site.body, 'properties.keyVaultReferenceIdentity')?.text).toBe('identityResourceId');
    expect(propertyAt(site.body, 'properties.httpsOnly')?.text).toBe('true');
    const config = propertyAt(site.body, 'properties.functionAppConfig');
    expect(literal(propertyAt(config, 'runtime.name'))).toBe('node');
    expect(literal(propertyAt(config, 'runtime.version'))).toBe('22');
    expect(literal(propertyAt(config, 'deployment.storage.type'))).toBe('blobContainer');
    expect(literal(propertyAt(config, 'deployment.storage.authentication.type'))).toBe(
      'UserAssignedIdentity',
    );
    expect(propertyAt(config, 'deployment.storage.authentication.userAssignedIdentityResourceId')?.text).toBe(
      'identityResourceId',
    );
    const settings = objectProperties(decl(path).variables.get('platformSettings'));
    expect(literal(settings.get('AzureWebJobsStorage__credential'))).toBe('managedidentity');
    expect(settings.get('AzureWebJobsStorage__clientId')?.text).toBe('identityClientId');
    expect(settings.get('AZURE_CLIENT_ID')?.text).toBe('identityClientId');
    expect(settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING')?.text).toBe(
      "'ClientId=${identityClientId};Authorization=AAD'",
    );
    // The app is the one azd deploys to: azure.yaml's service name reaches the module.
    const main = decl('infra/main.bicep');
    const fn = main.modules.find((m) => m.path === 'modules/functionApp.bicep');
    expect(stringLiteral(propertyAt(fn?.body, 'params.azdServiceName'))).toBe('detector');
  });

  it('application insights: workspace-based, local auth disabled by default', () => {
    const path = 'infra/modules/appInsights.bicep';
    const component = resourceOf(path, 'Microsoft.Insights/components');
    expect(propertyAt(component.body, 'properties.WorkspaceResourceId')?.text).toBe('workspaceResourceId');
    expect(propertyAt(component.body, 'properties.DisableLocalAuth')?.text).toBe('disableLocalAuth');
    expect(decl(path).params.get('disableLocalAuth')?.defaultValue?.text).toBe('true');
    expect(decl('infra/main.bicep').params.get('appInsightsDisableLocalAuth')?.defaultValue?.text).toBe(
      'true',
    );
  });

  it('key vault: RBAC mode, soft delete', () => {
    const vault = resourceOf('infra/modules/keyVault.bicep', 'Microsoft.KeyVault/vaults');
    expect(propertyAt(vault.body, 'properties.enableRbacAuthorization')?.text).toBe('true');
    expect(propertyAt(vault.body, 'properties.enableSoftDelete')?.text).toBe('true');
    expect(propertyAt(vault.body, 'properties.accessPolicies')).toBeUndefined();
  });

  it('activity log: a subscription-scope diagnostic setting sending the Administrative category to the workspace', () => {
    const path = 'infra/activity-log/main.bicep';
    const source = files.get(path)!.file.source;
    expect(source).toMatch(/^targetScope = 'subscription'$/m);
    const setting = resourceOf(path, 'Microsoft.Insights/diagnosticSettings');
    expect(propertyAt(setting.body, 'properties.workspaceId')?.text).toBe('workspaceResourceId');
    const categories = arrayElements(decl(path).params.get('categories')?.defaultValue).map((n) =>
      stringLiteral(n),
    );
    expect(categories).toContain('Administrative');
    expect(files.get('infra/main.bicep')!.file.source).toMatch(/^targetScope = 'resourceGroup'$/m);
  });
});

describe('conventions (Azure Verified Modules)', () => {
  it('every parameter is described, starting "Required." exactly when it has no default', () => {
    for (const [path, { decl: d }] of files) {
      for (const p of d.params.values()) {
        const description = descriptionOf(p.node);
        expect(description, `${path}: ${p.name}`).toMatch(/^(Required|Optional)\. \S/);
        expect(description?.startsWith('Required.'), `${path}: ${p.name}`).toBe(p.defaultValue === undefined);
      }
    }
  });

  it('every output and every template is described', () => {
    for (const [path, { decl: d, file }] of files) {
      for (const o of d.outputs) expect(descriptionOf(o.node), `${path}: output ${o.name}`).toMatch(/\S/);
      if (path !== 'infra/modules/roles.bicep')
        expect(file.source, path).toMatch(/^metadata description = '/m);
    }
  });
});

describe('parameter files and azure.yaml', () => {
  const mainParams = () => decl('infra/main.bicep').params;

  it.each(['main.parameters.json', 'main.parameters.example.json'])(
    '%s names only main.bicep parameters and gives every required one',
    (name) => {
      const file = JSON.parse(readFileSync(join(INFRA, name), 'utf8')) as {
        $schema: string;
        parameters: Record<string, { value: unknown }>;
      };
      expect(file.$schema).toContain('deploymentParameters.json');
      const params = mainParams();
      for (const p of Object.keys(file.parameters)) expect([...params.keys()], `${name}: ${p}`).toContain(p);
      for (const p of params.values()) {
        if (p.defaultValue === undefined) expect(Object.keys(file.parameters), `${name}`).toContain(p.name);
      }
    },
  );

  it("main.parameters.json is azd's (environment substitutions); the example has none", () => {
    const azd = readFileSync(join(INFRA, 'main.parameters.json'), 'utf8');
    expect(azd).toContain('${AZURE_ENV_NAME}');
    expect(azd).toContain('${AZURE_LOCATION}');
    expect(readFileSync(join(INFRA, 'main.parameters.example.json'), 'utf8')).not.toContain('${');
  });

  it('azure.yaml provisions infra/ with Bicep and deploys the repo as the "detector" function service', () => {
    const yaml = readFileSync(join(ROOT, 'azure.yaml'), 'utf8');
    expect(yaml).toMatch(/^name: unusual-city$/m);
    expect(yaml).toMatch(/^infra:\n(?: {2}.*\n)*? {2}provider: bicep$/m);
    expect(yaml).toMatch(/^ {2}path: infra$/m);
    expect(yaml).toMatch(/^services:\n {2}detector:\n(?: {4}.*\n)*/m);
    expect(yaml).toMatch(/^ {4}project: \.$/m);
    expect(yaml).toMatch(/^ {4}language: ts$/m);
    expect(yaml).toMatch(/^ {4}host: function$/m);
    expect(yaml).not.toMatch(/\t/);
  });
});
