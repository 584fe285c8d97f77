/** Who performed an operation, as far as the Activity Log lets us tell. */
export type CallerType = 'user' | 'servicePrincipal' | 'managedIdentity' | 'unknown';

/**
 * One Activity Log row, normalised from any supported input format
 * (AzureActivity JSON Lines, Log Analytics query response, portal CSV, raw diagnostic records).
 */
export interface ActivityEvent {
  /** Event time, epoch milliseconds (UTC). */
  timeMs: number;
  /** Operation name as given, e.g. `MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION`. */
  operation: string;
  /** Lower-cased operation name: operations are compared case-insensitively. */
  operationKey: string;
  /** UPN for users, object/application id for service principals and managed identities; '' if unknown. */
  caller: string;
  callerType: CallerType;
  /** Caller IP as given (trimmed); '' when Azure did not record one. */
  callerIp: string;
  category: string;
  status: string;
  correlationId: string;
  eventDataId: string;
  subscriptionId: string;
  resourceGroup: string;
  resourceId: string;
}

/** Why a record could not be read. Stable identifiers: they appear in summaries. */
export type SkipReason =
  | 'invalid-json'
  | 'invalid-csv'
  | 'not-an-object'
  | 'missing-time'
  | 'invalid-time'
  | 'missing-operation'
  /** An operation, caller or caller IP longer than any Azure writes (see FIELD_LIMITS in normalise.ts). */
  | 'oversized-field'
  | 'unknown-format';

export interface SkippedRecord {
  /** File the record came from. */
  source: string;
  /** 1-based line number (JSON Lines / CSV record start line) or 0-based index inside an array. */
  position: string;
  reason: SkipReason;
  /** EventDataId / correlation id of the record if one could be read, for the log. */
  id?: string;
  detail?: string;
}

export type InputFormat =
  'azure-activity-jsonl' | 'log-analytics-response' | 'portal-csv' | 'diagnostic-records';

/** Counters for one or more read files. */
export interface ReadStats {
  records: number;
  events: number;
  skipped: Partial<Record<SkipReason, number>>;
  /** The first few skipped records with their positions (bounded; the counts above are complete). */
  skippedSamples: SkippedRecord[];
  formats: Partial<Record<InputFormat, number>>;
}
