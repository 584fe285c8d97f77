import { createRequire } from 'node:module';

import alertColumnsFile from '../../shared/alerts/columns.json' with { type: 'json' };

/**
 * Offline KQL checking for every query the project ships (detection query, Sentinel rule, workbook queries).
 *
 * Kusto.Language, the parser and binder behind the Kusto editors, from @kusto/language-service-next: a Bridge.NET
 * translation of the C# library. It reports syntax errors and semantic ones (unknown columns, tables and
 * functions, wrong argument types) against the table schemas given here, with no service involved. Its scripts
 * define globals (`Bridge`, `System`, `Kusto`), so they are loaded once; only the members used are typed below.
 *
 *   const diagnostics = checkKql(query, { tables: [azureActivityTable(), alertsTable()] });
 *   expect(formatDiagnostics(diagnostics)).toEqual([]);
 */

/** Kusto scalar type names, as `.create table` and the language spell them. */
export type KustoType =
  'bool' | 'datetime' | 'decimal' | 'dynamic' | 'guid' | 'int' | 'long' | 'real' | 'string' | 'timespan';

export interface TableSchema {
  name: string;
  /** Column name → Kusto type, in table order. */
  columns: readonly (readonly [string, KustoType])[];
}

export interface KqlOptions {
  /** The tables the query may read; nothing else exists for it. */
  tables: readonly TableSchema[];
  /** Database name (only shows in messages). Default `workspace`. */
  database?: string;
}

export interface KqlDiagnostic {
  /** Kusto.Language code, e.g. KS142 (unknown name), KS204 (unknown table), KS211 (unknown function). */
  code: string;
  severity: string;
  message: string;
  /** 1-based line and column of the start of the problem in the query text. */
  line: number;
  column: number;
  /** The query text the diagnostic points at (may be empty, e.g. for a missing token). */
  text: string;
}

export interface KqlAnalysis {
  diagnostics: KqlDiagnostic[];
  /** Columns of the query's result, name and Kusto type, in order (empty for a query with errors). */
  resultColumns: [string, string][];
}

interface List<T> {
  Count: number;
  getItem(index: number): T;
}

interface RawDiagnostic {
  Code: string;
  Severity: string;
  Message: string;
  Start: number;
  Length: number;
}

interface RawCode {
  GetDiagnostics(): List<RawDiagnostic>;
  TryGetLineAndOffset(position: number, line: { v: number }, offset: { v: number }): boolean;
  ResultType: { Columns?: List<{ Name: string; Type: { Name: string } }> } | null;
}

interface KustoLanguage {
  KustoCode: { ParseAndAnalyze(text: string, globals: unknown): RawCode };
  GlobalState: { Default: { WithDatabase(db: unknown): unknown } };
  Symbols: {
    ScalarTypes: { GetSymbol(name: string): unknown };
    ColumnSymbol: new (
      name: string,
      type: unknown,
      description: string | null,
      originalColumns: null,
      source: null,
      examples: null,
    ) => unknown;
    TableSymbol: { $ctor4: new (name: string, columns: unknown[]) => unknown };
    DatabaseSymbol: {
      $ctor2: new (name: string, alternateName: string | null, members: unknown[]) => unknown;
    };
  };
}

let language: KustoLanguage | undefined;

/** Loads the bridge runtime, then the language, once per process (never the .min and full files both). */
function kusto(): KustoLanguage {
  if (language === undefined) {
    const require = createRequire(import.meta.url);
    require('@kusto/language-service-next/bridge.min.js');
    require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
    language = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
  }
  return language;
}

const toArray = <T>(list: List<T> | null | undefined): T[] =>
  list ? Array.from({ length: list.Count }, (_, i) => list.getItem(i)) : [];

function tableSymbol(K: KustoLanguage, table: TableSchema): unknown {
  const columns = table.columns.map(([name, type]) => {
    const symbol = K.Symbols.ScalarTypes.GetSymbol(type);
    if (symbol === null || symbol === undefined) {
      throw new Error(`table ${table.name}: column ${name} has unknown Kusto type ${String(type)}`);
    }
    return new K.Symbols.ColumnSymbol(name, symbol, null, null, null, null);
  });
  return new K.Symbols.TableSymbol.$ctor4(table.name, columns);
}

/** Parses and binds `query` against the given tables: diagnostics (errors and warnings) and result columns. */
export function analyseKql(query: string, options: KqlOptions): KqlAnalysis {
  const K = kusto();
  const db = new K.Symbols.DatabaseSymbol.$ctor2(
    options.database ?? 'workspace',
    null,
    options.tables.map((t) => tableSymbol(K, t)),
  );
  const code = K.KustoCode.ParseAndAnalyze(query, K.GlobalState.Default.WithDatabase(db));
  const diagnostics = toArray(code.GetDiagnostics()).map((d): KqlDiagnostic => {
    const line = { v: 0 };
    const offset = { v: 0 };
    const found = code.TryGetLineAndOffset(d.Start, line, offset);
    return {
      code: d.Code,
      severity: d.Severity,
      message: d.Message,
      line: found ? line.v : 0,
      column: found ? offset.v : 0,
      text: query.slice(d.Start, d.Start + d.Length),
    };
  });
  const resultColumns = toArray(code.ResultType?.Columns).map((c): [string, string] => [c.Name, c.Type.Name]);
  return { diagnostics, resultColumns };
}

/** The diagnostics of `query` against the given tables; an empty list means it parses and binds. */
export function checkKql(query: string, options: KqlOptions): KqlDiagnostic[] {
  return analyseKql(query, options).diagnostics;
}

/** One readable line per diagnostic, for `expect(formatDiagnostics(d)).toEqual([])`. */
export function formatDiagnostics(diagnostics: readonly KqlDiagnostic[], source = 'query'): string[] {
  return diagnostics.map(
    (d) =>
      `${source}:${d.line}:${d.column} ${d.code} ${d.severity}: ${d.message} (at ${JSON.stringify(d.text)})`,
  );
}

/**
 * The AzureActivity table of Log Analytics (docs/azure-facts.md), every column the detector or an analyst
 * might use. Columns not listed would be reported as unknown: add them here when a query needs them.
 */
export function azureActivityTable(): TableSchema {
  return {
    name: 'AzureActivity',
    columns: [
      ['TenantId', 'string'],
      ['SourceSystem', 'string'],
      ['CallerIpAddress', 'string'],
      ['CategoryValue', 'string'],
      ['CorrelationId', 'string'],
      ['Authorization', 'string'],
      ['Authorization_d', 'dynamic'],
      ['Claims', 'string'],
      ['Claims_d', 'dynamic'],
      ['Level', 'string'],
      ['OperationNameValue', 'string'],
      ['Properties', 'string'],
      ['Properties_d', 'dynamic'],
      ['Caller', 'string'],
      ['EventDataId', 'string'],
      ['EventSubmissionTimestamp', 'datetime'],
      ['HTTPRequest', 'string'],
      ['OperationId', 'string'],
      ['ResourceGroup', 'string'],
      ['ResourceProviderValue', 'string'],
      ['ActivityStatusValue', 'string'],
      ['ActivitySubstatusValue', 'string'],
      ['Hierarchy', 'string'],
      ['TimeGenerated', 'datetime'],
      ['SubscriptionId', 'string'],
      ['OperationName', 'string'],
      ['ActivityStatus', 'string'],
      ['ActivitySubstatus', 'string'],
      ['Category', 'string'],
      ['ResourceId', 'string'],
      ['ResourceProvider', 'string'],
      ['Resource', 'string'],
      ['Type', 'string'],
      ['_ResourceId', 'string'],
      ['_SubscriptionId', 'string'],
    ],
  };
}

/** shared/alerts/columns.json types, which the code and the table share, in Kusto's spelling (the same). */
const ALERT_TYPES: Readonly<Record<string, KustoType>> = {
  string: 'string',
  int: 'int',
  long: 'long',
  real: 'real',
  bool: 'bool',
  datetime: 'datetime',
  dynamic: 'dynamic',
};

/**
 * The alerts table as Log Analytics holds it: the columns of shared/alerts/columns.json (the same file the
 * table schema and the DCR are generated from), plus the standard columns every custom table gets.
 */
export function alertsTable(name: string = alertColumnsFile.table): TableSchema {
  const columns = alertColumnsFile.columns.map((c): [string, KustoType] => {
    const type = ALERT_TYPES[c.type];
    if (type === undefined) throw new Error(`columns.json: column ${c.name} has unknown type ${c.type}`);
    return [c.name, type];
  });
  return { name, columns: [...columns, ['TenantId', 'string'], ['Type', 'string']] };
}

/** Application Insights `customEvents` (the classic, App Insights-scoped schema the workbook health queries use). */
export function customEventsTable(): TableSchema {
  return {
    name: 'customEvents',
    columns: [
      ['timestamp', 'datetime'],
      ['name', 'string'],
      ['itemType', 'string'],
      ['customDimensions', 'dynamic'],
      ['customMeasurements', 'dynamic'],
      ['operation_Name', 'string'],
      ['operation_Id', 'string'],
      ['operation_ParentId', 'string'],
      ['operation_SyntheticSource', 'string'],
      ['session_Id', 'string'],
      ['user_Id', 'string'],
      ['user_AuthenticatedId', 'string'],
      ['user_AccountId', 'string'],
      ['application_Version', 'string'],
      ['client_Type', 'string'],
      ['client_Model', 'string'],
      ['client_OS', 'string'],
      ['client_IP', 'string'],
      ['client_City', 'string'],
      ['client_StateOrProvince', 'string'],
      ['client_CountryOrRegion', 'string'],
      ['client_Browser', 'string'],
      ['cloud_RoleName', 'string'],
      ['cloud_RoleInstance', 'string'],
      ['appId', 'string'],
      ['appName', 'string'],
      ['iKey', 'string'],
      ['sdkVersion', 'string'],
      ['itemId', 'string'],
      ['itemCount', 'int'],
    ],
  };
}

/**
 * Sentinel's SecurityIncident table (MicrosoftDocs/azure-reference-other, azure-monitor-ref/tables/securityincident.md;
 * ../shared/docs/round2-facts.md §1): one row per change of an incident.
 */
export function securityIncidentTable(): TableSchema {
  return {
    name: 'SecurityIncident',
    columns: [
      ['AdditionalData', 'dynamic'],
      ['AlertIds', 'dynamic'],
      ['BookmarkIds', 'dynamic'],
      ['Classification', 'string'],
      ['ClassificationComment', 'string'],
      ['ClassificationReason', 'string'],
      ['ClosedTime', 'datetime'],
      ['Comments', 'dynamic'],
      ['CreatedTime', 'datetime'],
      ['Description', 'string'],
      ['FirstActivityTime', 'datetime'],
      ['FirstModifiedTime', 'datetime'],
      ['IncidentName', 'string'],
      ['IncidentNumber', 'int'],
      ['IncidentUrl', 'string'],
      ['Labels', 'dynamic'],
      ['LastActivityTime', 'datetime'],
      ['LastModifiedTime', 'datetime'],
      ['ModifiedBy', 'string'],
      ['Owner', 'dynamic'],
      ['ProviderIncidentId', 'string'],
      ['ProviderName', 'string'],
      ['RelatedAnalyticRuleIds', 'dynamic'],
      ['Severity', 'string'],
      ['SourceSystem', 'string'],
      ['Status', 'string'],
      ['Tasks', 'dynamic'],
      ['TenantId', 'string'],
      ['TimeGenerated', 'datetime'],
      ['Title', 'string'],
      ['Type', 'string'],
    ],
  };
}

/** Sentinel's SecurityAlert table (azure-reference-other; articles/sentinel/security-alert-schema.md; §1). */
export function securityAlertTable(): TableSchema {
  const strings = [
    'AlertLink',
    'AlertName',
    'AlertSeverity',
    'AlertType',
    'CompromisedEntity',
    'ConfidenceLevel',
    'Description',
    'DisplayName',
    'Entities',
    'ExtendedLinks',
    'ExtendedProperties',
    'ProductComponentName',
    'ProductName',
    'ProviderName',
    'RemediationSteps',
    'ResourceId',
    'SourceComputerId',
    'SourceSystem',
    'Status',
    'SubTechniques',
    'SystemAlertId',
    'Tactics',
    'Techniques',
    'TenantId',
    'Type',
    'VendorName',
    'VendorOriginalId',
    'WorkspaceResourceGroup',
    'WorkspaceSubscriptionId',
  ];
  return {
    name: 'SecurityAlert',
    columns: [
      ...strings.map((c): [string, KustoType] => [c, 'string']),
      ['ConfidenceScore', 'real'],
      ['EndTime', 'datetime'],
      ['IsIncident', 'bool'],
      ['ProcessingEndTime', 'datetime'],
      ['StartTime', 'datetime'],
      ['TimeGenerated', 'datetime'],
    ],
  };
}
