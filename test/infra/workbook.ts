import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { INFRA } from './bicep.js';

/**
 * The workbook is kept as one JSON file (the portal's Advanced Editor form). The tests read every query out of
 * it, substitute the workbook parameters with representative values, and check each one.
 */

export const WORKBOOK_PATH = join(INFRA, 'sentinel/workbook/workbook.json');

export interface WorkbookItem {
  type: number;
  name?: string;
  content: Record<string, unknown> & { items?: WorkbookItem[]; parameters?: WorkbookParameter[] };
  customWidth?: string;
  conditionalVisibility?: unknown;
}

export interface WorkbookParameter {
  name: string;
  type: number;
  query?: string;
  resourceType?: string;
}

export interface Workbook {
  version: string;
  items: WorkbookItem[];
  fallbackResourceIds?: string[];
}

export interface WorkbookQuery {
  /** Item or parameter name, for messages. */
  where: string;
  /** The query as stored (with workbook parameter tokens). */
  raw: string;
  /** The query with parameter tokens replaced by representative values. */
  kql: string;
  source: 'workspace' | 'appInsights';
  /** The item (for visualisation settings); undefined for a parameter's query. */
  item?: WorkbookItem;
  /** Tokens `{Name}` / `{Name:format}` that name no workbook parameter. */
  unknownTokens: string[];
}

export const APP_INSIGHTS_RESOURCE_TYPE = 'microsoft.insights/components';

export function loadWorkbook(): Workbook {
  return JSON.parse(readFileSync(WORKBOOK_PATH, 'utf8')) as Workbook;
}

/** Every item, groups flattened, in document order. */
export function allItems(items: readonly WorkbookItem[]): WorkbookItem[] {
  return items.flatMap((i) => [i, ...allItems(i.content.items ?? [])]);
}

export function workbookParameters(workbook: Workbook): WorkbookParameter[] {
  return allItems(workbook.items).flatMap((i) => (i.type === 9 ? (i.content.parameters ?? []) : []));
}

/**
 * Representative values for the parameter tokens the workbook uses. Workbooks substitute tokens as text before
 * running a query; `:grain` is the time range's bin size, `:escape` escapes quotes for a string literal.
 */
const SAMPLE_VALUES: Readonly<Record<string, string>> = {
  'TimeRange:grain': '1h',
  TimeRange: '> ago(7d)',
  Operation: 'microsoft.compute/virtualmachines/write',
  'Operation:escape': 'microsoft.compute/virtualmachines/write',
};

function substitute(query: string, declared: ReadonlySet<string>): { kql: string; unknown: string[] } {
  const unknown: string[] = [];
  const kql = query.replace(/\{([A-Za-z]\w*)(?::([A-Za-z]+))?\}/g, (token, name: string, format?: string) => {
    const key = format === undefined ? name : `${name}:${format}`;
    const value = SAMPLE_VALUES[key];
    if (!declared.has(name) || value === undefined) {
      unknown.push(token);
      return token;
    }
    return value;
  });
  return { kql, unknown };
}

/** Every KQL query of the workbook: query items (in groups too) and query-based parameters. */
export function workbookQueries(workbook: Workbook = loadWorkbook()): WorkbookQuery[] {
  const parameters = workbookParameters(workbook);
  const declared = new Set(parameters.map((p) => p.name));
  const out: WorkbookQuery[] = [];
  const add = (where: string, raw: string, resourceType: unknown, item?: WorkbookItem): void => {
    const { kql, unknown } = substitute(raw, declared);
    out.push({
      where,
      raw,
      kql,
      source: resourceType === APP_INSIGHTS_RESOURCE_TYPE ? 'appInsights' : 'workspace',
      item,
      unknownTokens: unknown,
    });
  };
  for (const item of allItems(workbook.items)) {
    if (item.type === 3 && typeof item.content.query === 'string') {
      add(`workbook item ${item.name ?? '?'}`, item.content.query, item.content.resourceType, item);
    }
    for (const p of item.type === 9 ? (item.content.parameters ?? []) : []) {
      if (typeof p.query === 'string') add(`workbook parameter ${p.name}`, p.query, p.resourceType);
    }
  }
  return out;
}

/** Every string under a `query` key anywhere in the JSON: the extraction above must miss none of them. */
export function allQueryStrings(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allQueryStrings);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === 'query' && typeof v === 'string' ? [v] : allQueryStrings(v),
  );
}
