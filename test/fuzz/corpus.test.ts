/**
 * The hostile corpus (test/fuzz/corpus/; the torn diagnostic-records document is named .torn so that formatters
 * leave it torn — the reader goes by content, never by name): hand-made exports in three formats holding what a hostile or broken
 * source can put in them — ANSI escapes, CR/LF, bidi overrides, lone surrogates, Table Storage's forbidden key
 * characters, CSV-injection cells, IPv6 zones, IPv4-mapped and leading-zero IPs, null fields, wrong types in
 * dynamic columns, duplicated EventDataIds, dates in the year 1 and 9999, oversized fields, torn documents.
 * Read directly and through the compiled CLI (`replay`): the exact counts by reason, every good record, a summary
 * and alert table that are safe to print, and alerts that keep the data as data.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { newReadStats, readActivityFile } from '../../shared/activity/read.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { Alert } from '../../shared/alerts/alert.js';
import { formatAlertTable } from '../../shared/alerts/sinks.js';
import { displaySafe } from '../../shared/display.js';
import { hostileString, isDisplaySafe } from './hostile.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CORPUS = join(ROOT, 'test', 'fuzz', 'corpus');

const EXPECTED = {
  'hostile.jsonl': {
    records: 27,
    skipped: {
      'invalid-time': 5,
      'missing-time': 1,
      'missing-operation': 1,
      'oversized-field': 3,
      'not-an-object': 2,
      'unknown-format': 1,
      'invalid-json': 1,
    },
    ids: [
      'good-01',
      'good-02',
      'good-03',
      'good-04',
      'good-05',
      'good-06',
      'good-07',
      'dup-id',
      'dup-id',
      'good-10',
      'good-11',
      'good-12',
      'good-13',
    ],
  },
  'hostile.csv': {
    records: 11,
    skipped: { 'invalid-time': 2, 'missing-operation': 1, 'oversized-field': 1, 'invalid-csv': 1 },
    ids: ['csv-01', 'csv-02', 'csv-03', 'csv-04', 'csv-04', 'csv-last'],
  },
  'hostile-records.torn': {
    records: 9,
    skipped: {
      'missing-time': 1,
      'missing-operation': 1,
      'not-an-object': 1,
      'invalid-time': 1,
      'invalid-json': 1,
    },
    ids: ['rec-01', 'rec-02', 'rec-03', 'rec-04'],
  },
} as const;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uc-corpus-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('the hostile corpus', () => {
  for (const [file, want] of Object.entries(EXPECTED)) {
    it(`${file}: counted by reason, every good record read, samples safe to print`, async () => {
      const stats = newReadStats();
      const events: ActivityEvent[] = [];
      for await (const ev of readActivityFile(join(CORPUS, file), stats)) events.push(ev);
      expect(events.map((e) => e.eventDataId || e.correlationId)).toEqual(want.ids);
      expect(stats.skipped).toEqual(want.skipped);
      expect(stats.records).toBe(want.records);
      expect(stats.events + Object.values(stats.skipped).reduce((a, b) => a + b, 0)).toBe(stats.records);
      for (const s of stats.skippedSamples)
        expect(isDisplaySafe(`${s.id ?? ''} ${s.detail ?? ''}`)).toBe(true);
      // Data stays data: formula-looking callers and operations are kept as they were written.
      if (file === 'hostile.jsonl') {
        expect(events.find((e) => e.eventDataId === 'good-04')?.caller).toBe("=cmd|' /C calc'!A0");
        expect(events.find((e) => e.eventDataId === 'good-07')?.operation).toBe('OP/lone\ufffdsurrogate');
      }
    });
  }

  it('through the CLI: replay exits 0 and prints a summary safe for a terminal', async () => {
    const out = join(dir, 'alerts.jsonl');
    const files = Object.keys(EXPECTED).map((f) => join(CORPUS, f));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UC_')) env[k] = v;
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(
          process.execPath,
          [join(ROOT, 'dist', 'shared', 'cli', 'main.js'), 'replay', ...files, '--out', out, '--quiet'],
          {
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      },
    );
    expect(result.code, result.stderr).toBe(0);
    const printed = `${result.stdout}${result.stderr}`;
    expect(isDisplaySafe(printed.replace(/\n/g, '')), 'no control character reaches the terminal').toBe(true);
    const total = Object.values(EXPECTED).reduce(
      (n, w) => n + Object.values(w.skipped).reduce((a, b) => a + b, 0),
      0,
    );
    expect(result.stderr).toContain(`skipped (malformed): ${total}`);
    // No history: nothing scores high enough to alert; if something did, its text is safe too.
    const lines = (await readFile(out, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    for (const line of lines) {
      const alert = JSON.parse(line) as Alert;
      expect(isDisplaySafe(alert.Description)).toBe(true);
    }
  }, 60_000);
});

describe('alert text shown to people', () => {
  const alertWith = (f: { caller: string; op: string; city: string; ip: string; summary: string }): Alert =>
    ({
      TimeGenerated: '2026-10-05T10:00:00.000Z',
      AnomalyScore: 77.7,
      Caller: f.caller,
      SrcGeoCity: f.city,
      SrcGeoCountry: 'NG',
      SrcIpAddr: f.ip,
      Operation: f.op,
      Operations: [f.op],
      Explanation: { summary: f.summary, operations: [] },
    }) as unknown as Alert;

  it('the console table never passes control characters, ANSI escapes or bidi overrides through: one line per row', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            caller: hostileString(),
            op: hostileString(),
            city: hostileString(),
            ip: hostileString(),
            summary: hostileString(),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.boolean(),
        (fields, explained) => {
          const text = formatAlertTable(fields.map(alertWith), explained);
          const lines = text.split('\n');
          expect(lines.at(-1)).toBe('');
          expect(lines).toHaveLength(2 + fields.length * (explained ? 2 : 1) + 1);
          for (const line of lines) expect(isDisplaySafe(line)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('escapes are visible and the rest of the text is kept', () => {
    expect(displaySafe('a\u001b[31mb\r\nc\u202ed\u0000')).toBe('a\\x1b[31mb\\x0d\\x0ac\\u202ed\\x00');
    expect(displaySafe('Ünïcødé ✓ 🙂 =cmd|x')).toBe('Ünïcødé ✓ 🙂 =cmd|x');
    expect(displaySafe('x'.repeat(10), 5)).toBe('xxxx…');
    const table = formatAlertTable([
      alertWith({ caller: '\u001b[2J', op: 'OP', city: 'Lagos', ip: '1.2.3.4', summary: 's' }),
    ]);
    expect(table).toContain('\\x1b[2J');
    expect(table).not.toContain('\u001b');
  });
});
