/**
 * Sizes are budgets, not counts: every stored property, every list and every alert field has a size budget
 * derived from the limit of the service that keeps it (Microsoft's published limits, see docs/reliability.md).
 * A value over its budget is cut — top entries first, with a marker saying how much was left out — and never
 * makes a write or a delivery fail. All of them live here, next to the limit each one derives from.
 */

/** The services' limits. */
export const SERVICE_LIMITS = {
  /** Table Storage: an Edm.String holds 64 KiB of UTF-16, i.e. 32,768 characters. */
  tableStringChars: 32 * 1024,
  /** Table Storage: an entity is at most 1 MiB (the service's size formula, 2 bytes a character). */
  tableEntityBytes: 1024 * 1024,
  /** Table Storage: PartitionKey and RowKey are at most 1 KiB each. */
  tableKeyBytes: 1024,
  /** Table Storage: an entity-group transaction is under 4 MiB and at most 100 entities. */
  tableBatchBytes: 4 * 1024 * 1024,
  tableBatchEntities: 100,
  /** Logs Ingestion API: one call is at most 1 MB (1,048,576 bytes), compressed or not. */
  ingestionCallBytes: 1024 * 1024,
  /** Log Analytics keeps 32 KB of a field's value (older documentation; the newer says 64 KB): keep ≤ 32 KB. */
  logAnalyticsFieldBytes: 32 * 1024,
} as const;

/** Budgets of stored properties (UTF-16 characters of the stored string, as Table Storage counts them). */
export const STORE_BUDGETS = {
  /** The alert ledger's episode operations (JSON list): half a string property, the row keeps the rest. */
  ledgerOperationsChars: SERVICE_LIMITS.tableStringChars / 2,
  /** A city's callers (JSON list): three quarters of a string property; the row's other fields are small. */
  cityCallersChars: (SERVICE_LIMITS.tableStringChars * 3) / 4,
  /** Any other free text stored in a row (names, descriptions, errors). */
  textChars: SERVICE_LIMITS.tableStringChars / 8,
} as const;

/**
 * Budgets of an alert row (UTF-8 bytes of its JSON, as the Logs Ingestion API and Log Analytics count them).
 * Each field stays far below what a Log Analytics column keeps, and the row a few KB: hundreds fit in a call.
 */
export const ALERT_BUDGETS = {
  /** Each list column (Operations, SrcIpAddrs, ResourceIds, CorrelationIds, BaselineCities). */
  listBytes: 4 * 1024,
  /** Explanation (summary and the top findings by score). */
  explanationBytes: 8 * 1024,
  /** Any text column (Description, Operation, Caller, …). */
  textBytes: 2 * 1024,
  /** The whole row: half a Log Analytics field, 1/64 of an ingestion call. */
  rowBytes: SERVICE_LIMITS.ingestionCallBytes / 64,
} as const;

/**
 * The reduced form of an alert the ingestion service refused as too large (HTTP 413): the same AlertId with every
 * list cut to this, so a row sent by an older detector (or under a larger budget) still reaches Sentinel.
 */
export const REDUCED_ALERT_BUDGETS = {
  listBytes: 512,
  /** Room for the summary and the top finding (about 1.1 KB each). */
  explanationBytes: 3 * 1024,
  textBytes: 1024,
  rowBytes: 16 * 1024,
} as const;

export type AlertBudgets = { [K in keyof typeof ALERT_BUDGETS]: number };

/**
 * Budgets of one input record (an Activity Log event read from a file). Azure's records are a few KB (the largest,
 * with claims and properties, tens of KB): anything far beyond is hostile or corrupt, and is skipped as a malformed
 * record before it can take the reader's memory (a 48 MB nested record once took the CLI to a V8 out-of-memory).
 */
export const INPUT_BUDGETS = {
  /** Bytes of one record (a JSON Lines line, an element of `records[]` or `rows[]`). */
  recordBytes: 4 * 1024 * 1024,
  /** JSON nesting depth of one record (Azure's are under 10 deep). */
  jsonDepth: 64,
} as const;

/** The marker that ends a cut list or text. */
export const omittedMarker = (omitted: number): string => `…and ${omitted} more`;
/** True for a list entry written by {@link omittedMarker} (dropped again when a stored list is read back). */
export const isOmittedMarker = (value: unknown): boolean =>
  typeof value === 'string' && /^…and \d+ more$/.test(value);

/** Sizes of JSON text: UTF-16 characters (Table Storage) or UTF-8 bytes (Logs Ingestion, Log Analytics). */
export type Measure = (json: string) => number;
export const utf16Chars: Measure = (json) => json.length;
export const utf8Bytes: Measure = (json) => Buffer.byteLength(json, 'utf8');

/**
 * The longest prefix of `items` (kept in their order: callers sort them best first) whose JSON list, with a
 * marker for the rest when some are left out, measures at most `budget`. Never throws.
 * @param marker the entry that ends a cut list; without it the list is only cut.
 */
export function fitList<T>(
  items: readonly T[],
  budget: number,
  measure: Measure,
  marker?: (omitted: number) => T,
): { kept: T[]; omitted: number } {
  const all = measure(JSON.stringify(items));
  if (all <= budget) return { kept: [...items], omitted: 0 };
  // Room for the brackets and the marker (its count has at most as many digits as the list's length).
  const reserve = 2 + (marker ? measure(JSON.stringify(marker(items.length))) + 1 : 0);
  const kept: T[] = [];
  let used = reserve;
  for (const item of items) {
    const size = measure(JSON.stringify(item)) + (kept.length > 0 ? 1 : 0);
    if (used + size > budget) break;
    kept.push(item);
    used += size;
  }
  const omitted = items.length - kept.length;
  if (marker && omitted > 0 && reserve <= budget) kept.push(marker(omitted));
  return { kept, omitted };
}

/** The JSON of a list cut to `budget` (see {@link fitList}), with the {@link omittedMarker} when cut. */
export function fitJsonList(items: readonly string[], budget: number, measure: Measure): string {
  return JSON.stringify(fitList(items, budget, measure, omittedMarker).kept);
}

/**
 * `text` cut so that its JSON form measures at most `budget`, ending with a marker (`…and 940 more`, characters)
 * when cut; never splits a surrogate pair.
 */
export function fitText(text: string, budget: number, measure: Measure): string {
  if (measure(JSON.stringify(text)) <= budget) return text;
  let lo = 0;
  let hi = text.length;
  const candidate = (n: number): string => {
    let end = n;
    const last = text.charCodeAt(end - 1);
    if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
    return `${text.slice(0, end)}${omittedMarker(text.length - end)}`;
  };
  // Binary search for the longest prefix that fits (escaping makes sizes non-linear in the length).
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(JSON.stringify(candidate(mid))) <= budget) lo = mid;
    else hi = mid - 1;
  }
  const out = candidate(lo);
  return measure(JSON.stringify(out)) <= budget ? out : '';
}
