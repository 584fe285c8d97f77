import {
  ALERT_BUDGETS,
  type AlertBudgets,
  fitList,
  fitText,
  omittedMarker,
  REDUCED_ALERT_BUDGETS,
  utf8Bytes,
} from '../config/budgets.js';
import type { Alert } from './row.js';

const TEXT_COLUMNS = [
  'Description',
  'Operation',
  'Caller',
  'SrcIpAddr',
  'SrcGeoCity',
  'SrcGeoRegion',
  'SrcGeoCountry',
  'SubscriptionId',
  'ResourceGroup',
] as const;
const LIST_COLUMNS = ['Operations', 'SrcIpAddrs', 'ResourceIds', 'CorrelationIds'] as const;

const rowBytes = (alert: Alert): number => utf8Bytes(JSON.stringify(alert));

/** The alert with every field within `budgets` (lists keep their first, best-scored, entries). */
function fitFields(alert: Alert, budgets: AlertBudgets): Alert {
  const out: Alert = { ...alert };
  for (const c of TEXT_COLUMNS) out[c] = fitText(alert[c], budgets.textBytes, utf8Bytes);
  for (const c of LIST_COLUMNS) {
    out[c] = fitList(alert[c], budgets.listBytes, utf8Bytes, omittedMarker).kept;
  }
  out.BaselineCities = fitList(alert.BaselineCities, budgets.listBytes, utf8Bytes).kept;
  const summary = fitText(alert.Explanation.summary, budgets.textBytes, utf8Bytes);
  // Findings are sorted by score: the cut keeps the top ones and says how many more there were.
  const room = budgets.explanationBytes - utf8Bytes(JSON.stringify({ summary, omitted: omittedMarker(1e9) }));
  const { kept, omitted } = fitList(alert.Explanation.operations, Math.max(0, room), utf8Bytes);
  out.Explanation = {
    summary,
    operations: kept,
    ...(omitted > 0 ? { omitted: omittedMarker(omitted) } : {}),
  };
  return out;
}

/**
 * The alert within the alert budgets (shared/config/budgets.ts): a row of a few KB whatever the input, far below
 * what a Log Analytics column keeps and a Logs Ingestion call takes. Identity (AlertId) and scores never change;
 * the full findings stay in the store (the ledger) and the baselines.
 */
export function fitAlert(alert: Alert, budgets: AlertBudgets = ALERT_BUDGETS): Alert {
  if (rowBytes(alert) <= budgets.rowBytes) return alert;
  const fitted = fitFields(alert, budgets);
  return rowBytes(fitted) <= budgets.rowBytes ? fitted : fitFields(alert, REDUCED_ALERT_BUDGETS);
}

/** The reduced form of an alert the ingestion service refused as too large: same AlertId, lists cut short. */
export function reducedAlert(alert: Alert): Alert {
  return fitFields(alert, REDUCED_ALERT_BUDGETS);
}
