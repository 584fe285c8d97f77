/**
 * The audit trail of operator changes (allow, disallow, forget, bootstrap): table 'state', partition 'audit',
 * one row per change, keyed by time so that a partition read lists them in order. Rows are never updated.
 */
import { randomBytes } from 'node:crypto';

import type { BaselineStore, Entity } from '../baseline/store.js';

export const AUDIT_PARTITION = 'audit';

export type AuditAction = 'allow' | 'disallow' | 'forget' | 'bootstrap' | 'bootstrap-cancel';

export interface AuditRecord {
  action: AuditAction;
  /** Who made the change (`--by`), as given. */
  by: string;
  /** Why (`--reason`), as given. */
  reason: string;
  atMs: number;
  /** What changed, e.g. `caller alice@contoso.com` or `microsoft.compute/virtualmachines/write g:2332459`. */
  subject: string;
  /** Anything else worth keeping (JSON text): the forgotten row's counts, the bootstrap's period. */
  detail: string;
}

const str = (e: Entity, k: string): string => (typeof e[k] === 'string' ? e[k] : '');

let sequence = 0;

/**
 * Appends one record. The row key is the ISO time, a per-process sequence (records of one process in the same
 * millisecond keep their order) and a random suffix (records of two processes never collide).
 */
export async function appendAudit(store: BaselineStore, r: AuditRecord): Promise<void> {
  sequence = (sequence + 1) % 1_000_000;
  const key = `${new Date(r.atMs).toISOString()}~${String(sequence).padStart(6, '0')}${randomBytes(3).toString('hex')}`;
  await store.updateRows('state', AUDIT_PARTITION, [key], (cur) =>
    cur.has(key)
      ? new Map<string, Entity | null>()
      : new Map([
          [
            key,
            {
              action: r.action,
              by: r.by,
              reason: r.reason,
              atMs: r.atMs,
              subject: r.subject,
              detail: r.detail,
            },
          ],
        ]),
  );
}

/** Every record, oldest first. */
export async function readAudit(store: BaselineStore): Promise<AuditRecord[]> {
  const rows = await store.readPartition('state', AUDIT_PARTITION);
  return [...rows.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, e]) => ({
      action: str(e, 'action') as AuditAction,
      by: str(e, 'by'),
      reason: str(e, 'reason'),
      atMs: typeof e.atMs === 'number' ? e.atMs : 0,
      subject: str(e, 'subject'),
      detail: str(e, 'detail'),
    }));
}

/** `--by` and `--reason` are required for every change: an audit trail without them explains nothing. */
export function checkWhoAndWhy(by: string | undefined, reason: string | undefined): string | undefined {
  if (by === undefined || by.trim() === '') return 'needs --by <who> (recorded in the audit trail)';
  if (reason === undefined || reason.trim() === '')
    return 'needs --reason <text> (recorded in the audit trail)';
  if (by.length > 256) return '--by is longer than 256 characters';
  if (reason.length > 2000) return '--reason is longer than 2000 characters';
  return undefined;
}
