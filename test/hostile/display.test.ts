/**
 * Issue 14, point 5: attacker text is neutralised wherever people read it — the console alert table, the backtest's
 * terminal tables and the HTML report — including bidirectional overrides (a caller shown reversed), zero-width
 * and other format characters; the alert's own columns keep the raw values for hunting.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { formatAlertTable } from '../../shared/alerts/sinks.js';
import { terminalSafe } from '../../shared/backtest/format.js';
import { escapeHtml } from '../../shared/backtest/report.js';
import { displaySafe } from '../../shared/display.js';
import { makeAlert } from '../delivery/helpers.js';

/** Control (Cc) and format (Cf) characters, and the line/paragraph separators. */
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/u;
const HOSTILE = [
  '\u202e', // RIGHT-TO-LEFT OVERRIDE: "exe.gnp" displayed as "png.exe"
  '\u2066', // LEFT-TO-RIGHT ISOLATE
  '\u200b', // ZERO WIDTH SPACE: two callers that look the same
  '\u200d', // ZERO WIDTH JOINER
  '\ufeff', // BOM
  '\u00ad', // SOFT HYPHEN
  '\u{e0041}', // TAG LATIN CAPITAL LETTER A (invisible)
  '\u061c', // ARABIC LETTER MARK
  '\u001b[2J', // ANSI: clear the screen
];

describe('display of hostile values', () => {
  it('the console table, the terminal tables and the HTML report show no control or format character', () => {
    for (const h of HOSTILE) {
      const caller = `admin${h}gnp.exe@contoso.com`;
      const alert = { ...makeAlert(1), Caller: caller, Operation: `OP${h}/WRITE` };
      const table = formatAlertTable([alert]);
      expect(table.replace(/\n/g, '')).not.toMatch(UNSAFE);
      expect(escapeHtml(caller)).not.toMatch(UNSAFE);
      expect(terminalSafe(caller)).not.toMatch(UNSAFE);
      // The raw value stays in the alert (its column), for hunting.
      expect(alert.Caller).toBe(caller);
    }
    expect(displaySafe('a\u202eb')).toBe('a\\u202eb');
    expect(displaySafe('a\u{e0041}b')).toBe('a\\u{e0041}b');
    expect(escapeHtml('<b>\u202e</b>')).toBe('&#60;b&#62;\\u202e&#60;/b&#62;');
  });

  it('any string: nothing unsafe is left, and safe text (letters of any script, emoji) is kept as it is', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        expect(displaySafe(s)).not.toMatch(UNSAFE);
        expect(terminalSafe(s)).not.toMatch(UNSAFE);
        expect(escapeHtml(s)).not.toMatch(UNSAFE);
        if (!UNSAFE.test(s)) expect(displaySafe(s)).toBe(s);
      }),
      { numRuns: 2000 },
    );
    expect(displaySafe('Zoë 東京 مرحبا 🙂')).toBe('Zoë 東京 مرحبا 🙂');
  });
});
