/**
 * doctor's checks through Azure Resource Manager: the detector's identity holds each role the template gives it
 * (role assignments at each resource, inherited ones included), the alerts table and the data collection rule
 * exist and match the settings, and the Sentinel analytics rule exists and is enabled. Read-only.
 */
import type { Settings } from '../config/settings.js';
import { ArmError, type ArmReader, odataString } from './arm.js';
import { type Check, why } from './check.js';

/** The API versions doctor reads with. */
export const ARM_API = {
  roleAssignments: '2022-04-01',
  dataCollectionRules: '2023-03-11',
  tables: '2022-10-01',
  alertRules: '2025-09-01',
  components: '2020-02-02',
  workspaces: '2022-10-01',
} as const;

/** The built-in roles the template assigns to the detector's identity (infra/modules/roles.bicep). */
export const DETECTOR_ROLES = {
  'Log Analytics Reader': '73c42c96-874c-492b-b04d-ab87d138a893',
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6',
} as const;
type RoleName = keyof typeof DETECTOR_ROLES;

type ResourceSetting =
  | 'UC_WORKSPACE_RESOURCE_ID'
  | 'UC_STORAGE_RESOURCE_ID'
  | 'UC_DCR_RESOURCE_ID'
  | 'UC_KEY_VAULT_RESOURCE_ID'
  | 'UC_APPINSIGHTS_RESOURCE_ID';

/** Where each role must be held, as the template assigns it. */
const ROLE_SCOPES: readonly { label: string; setting: ResourceSetting; roles: readonly RoleName[] }[] = [
  { label: 'the workspace', setting: 'UC_WORKSPACE_RESOURCE_ID', roles: ['Log Analytics Reader'] },
  {
    label: 'the storage account',
    setting: 'UC_STORAGE_RESOURCE_ID',
    roles: ['Storage Table Data Contributor', 'Storage Blob Data Owner', 'Storage Queue Data Contributor'],
  },
  { label: 'the DCR (may ingest)', setting: 'UC_DCR_RESOURCE_ID', roles: ['Monitoring Metrics Publisher'] },
  { label: 'the Key Vault', setting: 'UC_KEY_VAULT_RESOURCE_ID', roles: ['Key Vault Secrets User'] },
  {
    label: 'Application Insights',
    setting: 'UC_APPINSIGHTS_RESOURCE_ID',
    roles: ['Monitoring Metrics Publisher'],
  },
];

const setFix = (setting: string): string =>
  `set ${setting} from the deployment's outputs (azd env get-value ${setting}), or with --set ${setting}=…`;
const READ_FIX =
  'your identity may not read this: it needs Reader (or Monitoring Reader) on the resource group — deploy with grantDeployerDataAccess=true, or ask an owner';

/** The fix for an ARM error on `setting`'s resource: missing (404), forbidden (403), or anything else. */
function armFix(e: unknown, setting: string, missing: string): string {
  if (e instanceof ArmError && e.status === 404) return missing;
  if (e instanceof ArmError && (e.status === 403 || e.status === 401)) return READ_FIX;
  return `check UC_ARM_ENDPOINT and ${setting}, and your sign-in (az login)`;
}

/** Every ARM check, in order; each stands alone (one failing says nothing of the others). */
export async function armChecks(s: Settings, arm: ArmReader): Promise<Check[]> {
  const [roles, table, dcr, rule] = await Promise.all([
    roleChecks(s, arm),
    tableCheck(s, arm),
    dcrCheck(s, arm),
    ruleCheck(s, arm),
  ]);
  return [...roles, table, dcr, rule];
}

interface RoleAssignment {
  properties?: { roleDefinitionId?: string; principalId?: string };
}

async function roleChecks(s: Settings, arm: ArmReader): Promise<Check[]> {
  const principal = s.UC_IDENTITY_PRINCIPAL_ID;
  if (principal === '')
    return [
      {
        name: "the detector identity's roles",
        ok: false,
        detail: 'UC_IDENTITY_PRINCIPAL_ID is not set',
        fix: setFix('UC_IDENTITY_PRINCIPAL_ID'),
      },
    ];
  return Promise.all(ROLE_SCOPES.map((scope) => roleCheck(s, arm, principal, scope)));
}

async function roleCheck(
  s: Settings,
  arm: ArmReader,
  principal: string,
  scope: (typeof ROLE_SCOPES)[number],
): Promise<Check> {
  const name = `roles on ${scope.label}`;
  const id = s[scope.setting];
  if (id === '')
    return { name, ok: false, detail: `${scope.setting} is not set`, fix: setFix(scope.setting) };
  try {
    // At this scope, the principal's assignments at, above and below it (ARM's principalId filter).
    const assignments = await arm.list<RoleAssignment>(
      `${id}/providers/Microsoft.Authorization/roleAssignments`,
      ARM_API.roleAssignments,
      `principalId eq ${odataString(principal)}`,
    );
    const held = new Set(
      assignments
        .filter((a) => a.properties?.principalId?.toLowerCase() === principal.toLowerCase())
        .map((a) => a.properties?.roleDefinitionId?.split('/').at(-1)?.toLowerCase()),
    );
    const missing = scope.roles.filter((r) => !held.has(DETECTOR_ROLES[r]));
    if (missing.length === 0) return { name, ok: true, detail: `holds ${scope.roles.join(', ')}` };
    const grants = missing.map(
      (r) =>
        `az role assignment create --assignee-object-id ${principal} --assignee-principal-type ServicePrincipal --role "${r}" --scope ${id}`,
    );
    return {
      name,
      ok: false,
      detail: `the identity ${principal} lacks ${missing.join(', ')}`,
      fix: `azd provision assigns it again; or ${grants.join(' && ')}`,
    };
  } catch (e) {
    const missing = `the resource of ${scope.setting} does not exist: check the setting, or azd provision`;
    return { name, ok: false, detail: why(e), fix: armFix(e, scope.setting, missing) };
  }
}

interface Table {
  properties?: { retentionInDays?: number; plan?: string; provisioningState?: string };
}

async function tableCheck(s: Settings, arm: ArmReader): Promise<Check> {
  const name = 'alerts table';
  const ws = s.UC_WORKSPACE_RESOURCE_ID;
  if (ws === '')
    return {
      name,
      ok: false,
      detail: 'UC_WORKSPACE_RESOURCE_ID is not set',
      fix: setFix('UC_WORKSPACE_RESOURCE_ID'),
    };
  try {
    const t = await arm.get<Table>(`${ws}/tables/${s.UC_ALERTS_TABLE}`, ARM_API.tables);
    const state = t.properties?.provisioningState ?? 'Succeeded';
    const detail = `${s.UC_ALERTS_TABLE} ${state === 'Succeeded' ? 'exists' : `is ${state}`} (plan ${t.properties?.plan ?? 'Analytics'}, retention ${t.properties?.retentionInDays ?? '?'} days)`;
    return state === 'Succeeded'
      ? { name, ok: true, detail }
      : {
          name,
          ok: false,
          detail,
          fix: 'wait a few minutes for the table to finish provisioning, then run doctor again',
        };
  } catch (e) {
    const missing = `azd provision creates ${s.UC_ALERTS_TABLE} (infra/modules/workspace.bicep), or set UC_ALERTS_TABLE to the table the DCR writes`;
    return { name, ok: false, detail: why(e), fix: armFix(e, 'UC_WORKSPACE_RESOURCE_ID', missing) };
  }
}

interface DataCollectionRule {
  properties?: { immutableId?: string; dataFlows?: { outputStream?: string }[] };
}

async function dcrCheck(s: Settings, arm: ArmReader): Promise<Check> {
  const name = 'data collection rule';
  const id = s.UC_DCR_RESOURCE_ID;
  if (id === '')
    return { name, ok: false, detail: 'UC_DCR_RESOURCE_ID is not set', fix: setFix('UC_DCR_RESOURCE_ID') };
  try {
    const dcr = await arm.get<DataCollectionRule>(id, ARM_API.dataCollectionRules);
    const immutableId = dcr.properties?.immutableId ?? '';
    const stream = `Custom-${s.UC_ALERTS_TABLE}`;
    const streams = (dcr.properties?.dataFlows ?? []).map((f) => f.outputStream ?? '');
    if (immutableId.toLowerCase() !== s.UC_DCR_IMMUTABLE_ID.toLowerCase())
      return {
        name,
        ok: false,
        detail: `its immutable id is ${immutableId}, UC_DCR_IMMUTABLE_ID is ${s.UC_DCR_IMMUTABLE_ID || '(empty)'}`,
        fix: setFix('UC_DCR_IMMUTABLE_ID'),
      };
    if (!streams.includes(stream))
      return {
        name,
        ok: false,
        detail: `no data flow writes ${stream} (outputs: ${streams.join(', ') || 'none'})`,
        fix: 'azd provision restores the rule (infra/modules/dataCollectionRule.bicep), or set UC_ALERTS_TABLE to its table',
      };
    return { name, ok: true, detail: `exists, ${immutableId}, writes ${stream}` };
  } catch (e) {
    const missing =
      'azd provision creates it again (infra/modules/dataCollectionRule.bicep); alerts wait in the outbox';
    return { name, ok: false, detail: why(e), fix: armFix(e, 'UC_DCR_RESOURCE_ID', missing) };
  }
}

interface AlertRule {
  properties?: { enabled?: boolean; displayName?: string };
}

async function ruleCheck(s: Settings, arm: ArmReader): Promise<Check> {
  const name = 'Sentinel analytics rule';
  const id = s.UC_ANALYTICS_RULE_ID;
  if (id === '')
    return {
      name,
      ok: true,
      detail:
        'not checked: UC_ANALYTICS_RULE_ID is empty (the template leaves it empty with deploySentinelContent=false)',
    };
  try {
    const rule = await arm.get<AlertRule>(id, ARM_API.alertRules);
    const title = `"${rule.properties?.displayName ?? id.split('/').at(-1)}"`;
    return rule.properties?.enabled === true
      ? { name, ok: true, detail: `${title} exists and is enabled` }
      : {
          name,
          ok: false,
          detail: `${title} exists but is disabled: alerts reach the table, no incident is raised`,
          fix: 'enable it (Microsoft Sentinel → Analytics → Active rules → Enable), or azd provision with analyticsRuleEnabled=true',
        };
  } catch (e) {
    const missing =
      'azd provision with deploySentinelContent=true creates it (Sentinel must be onboarded on the workspace), or set UC_ANALYTICS_RULE_ID';
    return { name, ok: false, detail: why(e), fix: armFix(e, 'UC_ANALYTICS_RULE_ID', missing) };
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A workspace resource id as ARM returns it, safe to put in a URL path. */
const WORKSPACE_ID =
  /^\/subscriptions\/[0-9a-f-]{36}\/resourceGroups\/[A-Za-z0-9._()-]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[A-Za-z0-9-]+$/i;

/**
 * The id (GUID) of the workspace Application Insights writes the detector's telemetry to: the component's
 * WorkspaceResourceId, then that workspace's customerId. By default the template gives telemetry its own workspace,
 * so `UnusualCityRun` events are not in UC_WORKSPACE_ID.
 */
export async function telemetryWorkspaceId(s: Settings, arm: ArmReader): Promise<string> {
  const component = await arm.get<{ properties?: { WorkspaceResourceId?: string } }>(
    s.UC_APPINSIGHTS_RESOURCE_ID,
    ARM_API.components,
  );
  const ws = component.properties?.WorkspaceResourceId ?? '';
  if (!WORKSPACE_ID.test(ws))
    throw new Error(`Application Insights names no workspace (WorkspaceResourceId ${JSON.stringify(ws)})`);
  const workspace = await arm.get<{ properties?: { customerId?: string } }>(ws, ARM_API.workspaces);
  const id = workspace.properties?.customerId ?? '';
  if (!GUID.test(id)) throw new Error(`workspace ${ws} has no customerId`);
  return id;
}
