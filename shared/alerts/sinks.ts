import { constants } from 'node:fs';
import { access, open, readFile, truncate } from 'node:fs/promises';

import { displaySafe } from '../display.js';
import { type Alert, ALERT_COLUMNS } from './alert.js';

/** Where alerts go. `write` must be idempotent by AlertId: re-runs hand it alerts it already holds. */
export interface AlertSink {
  write(alerts: readonly Alert[]): Promise<void>;
}

/** Orders an alert's properties as the column file does, so every sink writes the same shape. */
export function toRow(alert: Alert): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  const source = alert as unknown as Record<string, unknown>;
  for (const c of ALERT_COLUMNS) row[c.name] = source[c.name];
  return row;
}

/** Keeps alerts in memory (tests, demo, evaluate). */
export class MemoryAlertSink implements AlertSink {
  readonly alerts: Alert[] = [];
  private readonly ids = new Set<string>();
  write(alerts: readonly Alert[]): Promise<void> {
    for (const a of alerts) {
      if (this.ids.has(a.AlertId)) continue;
      this.ids.add(a.AlertId);
      this.alerts.push(a);
    }
    return Promise.resolve();
  }
}

/**
 * Appends alerts to a JSON Lines file, one alert per line, each id at most once. On open it repairs a
 * last line torn by a crash (a write cut short has no trailing newline) and remembers the ids already in
 * the file, so a resumed replay adds exactly the alerts that are missing. Each write is fsynced before
 * the pipeline moves on to update baselines, so an alert is never lost between the two.
 */
export class JsonlAlertSink implements AlertSink {
  private constructor(
    readonly path: string,
    private readonly ids: Set<string>,
    /** Bytes dropped from a torn last line when the file was opened. */
    readonly repairedBytes: number,
  ) {}

  written = 0;

  static async open(path: string): Promise<JsonlAlertSink> {
    const ids = new Set<string>();
    let repaired = 0;
    const exists = await access(path, constants.F_OK).then(
      () => true,
      () => false,
    );
    if (exists) {
      // Bytes, not text: a write cut short can end inside a multi-byte character, and decoding would turn it
      // into U+FFFD (3 bytes), miscounting the torn tail and the offset to truncate at.
      const bytes = await readFile(path);
      const end = bytes.lastIndexOf(0x0a) + 1;
      if (end < bytes.length) {
        repaired = bytes.length - end;
        await truncate(path, end);
      }
      const lines = bytes.subarray(0, end).toString('utf8').split('\n');
      lines.forEach((line, i) => {
        if (line.trim() === '') return;
        try {
          const parsed = JSON.parse(line) as { AlertId?: unknown };
          if (typeof parsed.AlertId === 'string') ids.add(parsed.AlertId);
        } catch {
          throw new Error(
            `${path}:${i + 1} is not an alert JSON line; refusing to append to a file that is not ours`,
          );
        }
      });
    }
    return new JsonlAlertSink(path, ids, repaired);
  }

  get size(): number {
    return this.ids.size;
  }

  async write(alerts: readonly Alert[]): Promise<void> {
    const fresh = alerts.filter((a) => !this.ids.has(a.AlertId));
    if (fresh.length === 0) return;
    const text = fresh.map((a) => JSON.stringify(toRow(a)) + '\n').join('');
    const fh = await open(this.path, 'a');
    try {
      await fh.write(text);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    for (const a of fresh) this.ids.add(a.AlertId);
    this.written += fresh.length;
  }
}

/**
 * A readable table of alerts for the console. Every cell is {@link displaySafe}: a caller or operation holding
 * ANSI escapes, CR/LF or bidirectional overrides shows them as escapes instead of acting on the terminal.
 */
export function formatAlertTable(alerts: readonly Alert[], withExplanations = true): string {
  if (alerts.length === 0) return 'No alerts.\n';
  const header = ['Time (UTC)', 'Score', 'Caller', 'Place', 'IP', 'Operation', 'Ops'];
  const rows = alerts.map((a) =>
    [
      a.TimeGenerated.slice(0, 16).replace('T', ' '),
      a.AnomalyScore.toFixed(1),
      a.Caller,
      [a.SrcGeoCity, a.SrcGeoCountry].filter((s) => s !== '').join(', '),
      a.SrcIpAddr,
      a.Operation,
      String(a.Operations.length),
    ].map((cell) => displaySafe(cell)),
  );
  const widths = header.map((h, i) =>
    Math.min(60, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))),
  );
  const fmt = (r: string[]) => r.map((c, i) => c.slice(0, widths[i]).padEnd(widths[i] ?? 0)).join('  ');
  const lines = [fmt(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  alerts.forEach((a, i) => {
    lines.push(fmt(rows[i] ?? []));
    if (withExplanations) lines.push(`    ${displaySafe(a.Explanation.summary)}`);
  });
  return lines.join('\n') + '\n';
}
