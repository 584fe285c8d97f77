/**
 * The analysts' verdicts as operations: the policy (settings, and allow rules added through the allow table with
 * their audit row) with which shared/pipeline/verdicts.ts applies them, and a verdict file (`--verdicts FILE`).
 */
import { readFile } from 'node:fs/promises';

import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { SkippedVerdict, Verdict, VerdictPolicy } from '../pipeline/verdicts.js';
import { parseVerdictLines } from '../pipeline/verdicts.js';
import type { LogFn } from '../run/log.js';
import { addAllowRule } from './allowlist.js';

/** How verdicts are applied to `store`: UC_VERDICT_ALLOW_NETWORK, UC_VERDICT_ALLOW_DAYS, audited allow rules. */
export function verdictPolicy(store: BaselineStore, settings: Settings, log?: LogFn): VerdictPolicy {
  return {
    allowNetwork: settings.UC_VERDICT_ALLOW_NETWORK,
    allowCityNetwork: settings.UC_VERDICT_ALLOW_CITY_NETWORK,
    allowDays: settings.UC_VERDICT_ALLOW_DAYS,
    allow: (rule, change) => addAllowRule(store, rule, change),
    ...(log ? { log } : {}),
  };
}

/** A verdict file: JSON Lines of verdict records (docs/operations.md). Bad lines are returned, not thrown. */
export async function readVerdictFile(
  path: string,
): Promise<{ verdicts: Verdict[]; skipped: SkippedVerdict[] }> {
  return parseVerdictLines(await readFile(path, 'utf8'));
}

/** One line naming the skipped records (the first few, with their positions). */
export function describeSkipped(skipped: readonly SkippedVerdict[], what: string): string {
  const shown = skipped
    .slice(0, 5)
    .map((s) => `${what} ${s.position}: ${s.reason}`)
    .join('; ');
  return `${skipped.length} verdict record(s) skipped (${shown}${skipped.length > 5 ? '; …' : ''})`;
}
