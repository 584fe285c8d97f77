import type { Alert } from '../alerts/alert.js';
import { displaySafe } from '../display.js';
import { isoNumeric } from './countryCodes.js';
import { fmt, SUMMARY_HEADER, summaryRow } from './format.js';
import {
  type AlertCity,
  type BacktestResults,
  type DayCount,
  describePeriod,
  type NoisyPair,
  type ThresholdResult,
  type VariantResult,
  type VariedSetting,
} from './types.js';
import { countryOutlines } from './worldMap.js';

/**
 * Escapes text for HTML and SVG element content and quoted attribute values. Every data-derived string goes
 * through it: caller names, operations and cities come from logs an attacker can write to.
 */
export function escapeHtml(text: string): string {
  // Control and format characters (bidi overrides: a caller shown reversed) as visible escapes first.
  return displaySafe(text).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}
const e = escapeHtml;
/** Escaped, with line-break opportunities after "/" and before "@" (operation names and UPNs are long). */
const wrap = (text: string): string => e(text).replace(/\//g, '/<wbr>').replace(/@/g, '<wbr>@');

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const colour = (i: number): string => PALETTE[i % PALETTE.length]!;
/** Coordinates rounded to 0.1 px: the SVG stays small and deterministic. */
const n1 = (x: number): string => String(Math.round(x * 10) / 10);

/** The busiest day of a threshold: the first day with the most alerts; undefined when it raised none. */
export function busiestDay(r: ThresholdResult): DayCount | undefined {
  let busiest: DayCount | undefined;
  for (const d of r.perDay)
    if (d.alerts > 0 && (busiest === undefined || d.alerts > busiest.alerts)) busiest = d;
  return busiest;
}

/**
 * Alerts per day as small multiples: one row of bars per threshold, all on the same scale, so thresholds that
 * differ by one alert a day can still be told apart. With labels, the alerts of labelled attacks are the bar's
 * red foot and false alerts the grey rest; the busiest day of each threshold is labelled.
 */
function perDayChart(results: readonly ThresholdResult[]): string {
  const W = 960;
  const m = { l: 150, r: 24, t: 4, b: 40 };
  const rowH = 66;
  const days = results[0]?.perDay.map((d) => d.day) ?? [];
  const w = W - m.l - m.r;
  const H = m.t + results.length * rowH + m.b;
  const max = Math.max(1, ...results.flatMap((r) => r.perDay.map((d) => d.alerts)));
  const slot = w / Math.max(1, days.length);
  const bw = Math.max(1, slot - (slot > 4 ? 2 : 0.5));
  const parts: string[] = [];
  results.forEach((r, k) => {
    const top = m.t + k * rowH + 16;
    const h = rowH - 26;
    const base = top + h;
    const y = (v: number) => base - (v / max) * h;
    const busiest = busiestDay(r);
    const bars: string[] = [];
    r.perDay.forEach((d, i) => {
      if (d.alerts === 0) return;
      const x0 = m.l + i * slot;
      const falseTip = d.falseAlerts !== undefined ? `, ${d.falseAlerts} false` : '';
      bars.push(
        `<rect class="day-bar${d === busiest ? ' busiest' : ''}${d.falseAlerts !== undefined ? ' labelled' : ''}" data-day="${e(d.day)}" data-alerts="${d.alerts}" x="${n1(x0)}" y="${n1(y(d.alerts))}" width="${n1(bw)}" height="${n1(base - y(d.alerts))}"><title>${e(d.day)}: ${d.alerts} alert(s)${falseTip}</title></rect>`,
      );
      const attack = d.falseAlerts !== undefined ? d.alerts - d.falseAlerts : 0;
      if (attack > 0)
        bars.push(
          `<rect class="attack-part" x="${n1(x0)}" y="${n1(y(attack))}" width="${n1(bw)}" height="${n1(base - y(attack))}"/>`,
        );
    });
    if (busiest !== undefined) {
      const i = days.indexOf(busiest.day);
      const cx = Math.min(Math.max(m.l + i * slot + bw / 2, m.l + 40), m.l + w - 40);
      bars.push(
        `<text class="busiest-label" x="${n1(cx)}" y="${n1(y(busiest.alerts) - 3)}" text-anchor="middle">${e(busiest.day.slice(5))}: ${busiest.alerts}</text>`,
      );
    }
    parts.push(
      `<g class="panel${r.current ? ' current' : ''}" data-threshold="${r.threshold}">` +
        `<text class="panel-title" x="8" y="${n1(top + h / 2 - 2)}">≥ ${r.threshold}${r.current ? ' (current)' : ''}</text>` +
        `<text class="tick" x="8" y="${n1(top + h / 2 + 13)}">${r.alerts} alerts, ${e(fmt.perDay(r.alertsPerDay))}/day</text>` +
        `<line class="axis" x1="${m.l}" x2="${m.l + w}" y1="${n1(base)}" y2="${n1(base)}"/>` +
        `<line class="grid" x1="${m.l}" x2="${m.l + w}" y1="${n1(top)}" y2="${n1(top)}"/>` +
        `<text class="tick" x="${m.l - 6}" y="${n1(top + 4)}" text-anchor="end">${max}</text>` +
        bars.join('') +
        `</g>`,
    );
  });
  const bottom = m.t + results.length * rowH;
  const every = Math.max(1, Math.ceil(days.length / 12));
  days.forEach((d, i) => {
    if (i % every !== 0) return;
    const cx = m.l + i * slot + bw / 2;
    parts.push(
      `<line class="axis" x1="${n1(cx)}" x2="${n1(cx)}" y1="${bottom - 10}" y2="${bottom - 6}"/>`,
      `<text class="tick" x="${n1(cx)}" y="${bottom + 8}" text-anchor="middle">${e(d.slice(5))}</text>`,
    );
  });
  parts.push(
    `<text class="label" x="${m.l + w / 2}" y="${H - 6}" text-anchor="middle">UTC day (month-day); every row on the same scale, 0–${max} alerts a day</text>`,
  );
  return `<svg id="chart-per-day" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Alerts per day, one row per threshold">${parts.join('')}</svg>`;
}

function busiestTable(results: readonly ThresholdResult[], labels: boolean): string {
  const head = [
    'threshold',
    'busiest day',
    'alerts that day',
    ...(labels ? ['false alerts that day'] : []),
    'days with alerts',
  ]
    .map((h) => `<th>${e(h)}</th>`)
    .join('');
  const rows = results
    .map((r) => {
      const d = busiestDay(r);
      const cells = [
        `<td data-k="threshold">${r.threshold}${r.current ? ' (current)' : ''}</td>`,
        `<td data-k="day">${d !== undefined ? e(d.day) : 'none'}</td>`,
        `<td data-k="alerts">${d?.alerts ?? 0}</td>`,
        ...(labels ? [`<td data-k="falseAlerts">${d?.falseAlerts ?? 0}</td>`] : []),
        `<td data-k="days">${r.perDay.filter((p) => p.alerts > 0).length} of ${r.perDay.length}</td>`,
      ];
      return `<tr data-threshold="${r.threshold}"${r.current ? ' class="current"' : ''}>${cells.join('')}</tr>`;
    })
    .join('');
  return `<table id="busiest-table"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}

/** Per-caller scores in 5-point bins, on a log scale, with the thresholds marked. */
function histogramChart(v: VariantResult, thresholds: readonly number[]): string {
  const W = 960;
  const H = 300;
  const m = { l: 56, r: 16, t: 24, b: 44 };
  const w = W - m.l - m.r;
  const h = H - m.t - m.b;
  const counts = v.scoreHistogram.counts;
  const bin = v.scoreHistogram.binWidth;
  const max = Math.max(1, ...counts);
  const logMax = Math.log10(1 + max);
  const x = (score: number) => m.l + (score / 100) * w;
  const y = (c: number) => m.t + h - (Math.log10(1 + c) / logMax) * h;
  const parts: string[] = [];
  for (let p = 0; p <= Math.ceil(Math.log10(max)); p++) {
    const c = Math.pow(10, p);
    if (c > max * 1.0001 && p > 0) break;
    parts.push(
      `<line class="grid" x1="${m.l}" x2="${m.l + w}" y1="${n1(y(c))}" y2="${n1(y(c))}"/>`,
      `<text class="tick" x="${m.l - 6}" y="${n1(y(c) + 4)}" text-anchor="end">${c.toLocaleString('en-US')}</text>`,
    );
  }
  counts.forEach((c, i) => {
    const x0 = x(i * bin);
    const bw = x((i + 1) * bin) - x0 - 2;
    const top = y(c);
    const alerting = (i + 1) * bin > v.currentThreshold;
    parts.push(
      `<rect class="bar${alerting ? ' alerting' : ''}" x="${n1(x0 + 1)}" y="${n1(top)}" width="${n1(bw)}" height="${n1(m.t + h - top)}"><title>scores ${i * bin}–${(i + 1) * bin}${i === counts.length - 1 ? ' (incl. 100)' : ''}: ${c.toLocaleString('en-US')}</title></rect>`,
    );
  });
  for (let s = 0; s <= 100; s += 10) {
    parts.push(`<text class="tick" x="${n1(x(s))}" y="${m.t + h + 18}" text-anchor="middle">${s}</text>`);
  }
  thresholds.forEach((t, k) => {
    parts.push(
      `<path class="threshold" d="M${n1(x(t))} ${m.t - 4} L${n1(x(t))} ${m.t + h}" stroke="${colour(k)}"><title>threshold ${t}</title></path>`,
      `<text class="tick" x="${n1(x(t))}" y="${m.t - 8}" text-anchor="middle" fill="${colour(k)}">${t}</text>`,
    );
  });
  parts.push(
    `<line class="axis" x1="${m.l}" x2="${m.l + w}" y1="${m.t + h}" y2="${m.t + h}"/>`,
    `<text class="label" x="${m.l + w / 2}" y="${H - 6}" text-anchor="middle">score</text>`,
    `<text class="label" transform="translate(14 ${m.t + h / 2}) rotate(-90)" text-anchor="middle">per-caller scores (log scale)</text>`,
  );
  return `<svg id="chart-histogram" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Score distribution">${parts.join('')}</svg>`;
}

/** Longitude/latitude window of the map: the alert places with a margin, 2:1 like the canvas, within the world. */
function mapWindow(places: readonly AlertCity[]): { lon0: number; lon1: number; lat0: number; lat1: number } {
  if (places.length === 0) return { lon0: -180, lon1: 180, lat0: -90, lat1: 90 };
  const lons = places.map((c) => c.longitude);
  const lats = places.map((c) => c.latitude);
  let lonSpan = Math.max(40, Math.max(...lons) - Math.min(...lons) + 30);
  let latSpan = Math.max(20, Math.max(...lats) - Math.min(...lats) + 20);
  if (lonSpan / latSpan > 2) latSpan = lonSpan / 2;
  else lonSpan = latSpan * 2;
  if (lonSpan >= 360 || latSpan >= 180) return { lon0: -180, lon1: 180, lat0: -90, lat1: 90 };
  const fit = (mid: number, span: number, lo: number, hi: number) => {
    const a = Math.min(Math.max(mid - span / 2, lo), hi - span);
    return [a, a + span] as const;
  };
  const [lon0, lon1] = fit((Math.min(...lons) + Math.max(...lons)) / 2, lonSpan, -180, 180);
  const [lat0, lat1] = fit((Math.min(...lats) + Math.max(...lats)) / 2, latSpan, -90, 90);
  return { lon0, lon1, lat0, lat1 };
}

/**
 * An equirectangular map fitted to the alert places: coastlines and borders (Natural Earth, from world-atlas,
 * inlined as SVG paths), the countries alerts come from shaded, a latitude/longitude graticule, and one labelled
 * dot per place, sized by alerts at the lowest threshold and coloured by the highest threshold at which the place
 * still alerts. Places of labelled attacks have a dark ring. A label that would cover another is left out (the
 * dot keeps its tooltip) and listed under the map.
 */
function mapChart(results: readonly ThresholdResult[]): {
  svg: string;
  unplaced: AlertCity[];
  unlabelled: AlertCity[];
} {
  const W = 960;
  const H = 480;
  const lowest = results[0];
  const unplaced: AlertCity[] = [];
  const placed: AlertCity[] = [];
  for (const c of lowest?.alertCities ?? []) {
    if (c.cityKey.startsWith('e:') || (c.latitude === 0 && c.longitude === 0)) unplaced.push(c);
    else placed.push(c);
  }
  const win = mapWindow(placed);
  const x = (lon: number) => ((lon - win.lon0) / (win.lon1 - win.lon0)) * W;
  const y = (lat: number) => ((win.lat1 - lat) / (win.lat1 - win.lat0)) * H;
  const span = win.lon1 - win.lon0;
  const step = span > 150 ? 30 : span > 60 ? 15 : span > 25 ? 10 : 5;
  const parts: string[] = [`<rect class="sea" x="0" y="0" width="${W}" height="${H}"/>`];
  parts.push(countriesLayer(placed, win, (lon, lat) => [x(lon), y(lat)]));
  for (let lon = Math.ceil(win.lon0 / step) * step; lon <= win.lon1; lon += step) {
    parts.push(`<path class="${lon === 0 ? 'meridian' : 'grid'}" d="M${n1(x(lon))} 0 L${n1(x(lon))} ${H}"/>`);
    parts.push(
      `<text class="tick" x="${n1(x(lon) + 3)}" y="${H - 4}">${Math.abs(lon)}°${lon < 0 ? 'W' : lon > 0 ? 'E' : ''}</text>`,
    );
  }
  for (let lat = Math.ceil(win.lat0 / step) * step; lat <= win.lat1; lat += step) {
    parts.push(`<path class="${lat === 0 ? 'meridian' : 'grid'}" d="M0 ${n1(y(lat))} L${W} ${n1(y(lat))}"/>`);
    parts.push(
      `<text class="tick" x="3" y="${n1(y(lat) - 3)}">${Math.abs(lat)}°${lat < 0 ? 'S' : lat > 0 ? 'N' : ''}</text>`,
    );
  }
  const highestIndex = (key: string) => {
    let k = -1;
    results.forEach((r, i) => {
      if (r.alertCities.some((c) => c.cityKey === key)) k = i;
    });
    return k;
  };
  type Box = { x0: number; y0: number; x1: number; y1: number };
  const dots = placed.map((c) => ({
    c,
    cx: x(c.longitude),
    cy: y(c.latitude),
    r: 4 + 2.5 * Math.sqrt(c.alerts),
  }));
  const taken: Box[] = dots.map((d) => ({ x0: d.cx - d.r, x1: d.cx + d.r, y0: d.cy - d.r, y1: d.cy + d.r }));
  const free = (b: Box, own: number) =>
    b.x0 >= 0 &&
    b.x1 <= W &&
    b.y0 >= 0 &&
    b.y1 <= H - 14 &&
    taken.every((o, i) => i === own || !(b.x0 < o.x1 && b.x1 > o.x0 && b.y0 < o.y1 && b.y1 > o.y0));
  const unlabelled: AlertCity[] = [];
  const labels: string[] = [];
  // Biggest first, drawn last so the small dots stay visible on top of them.
  dots.forEach(({ c, cx, cy, r }, i) => {
    const k = highestIndex(c.cityKey);
    const attack = (c.attackAlerts ?? 0) > 0;
    parts.push(
      `<circle class="city${attack ? ' attack' : ''}" cx="${n1(cx)}" cy="${n1(cy)}" r="${n1(r)}" fill="${colour(Math.max(0, k))}"><title>${e(c.city)}${c.country !== '' ? `, ${e(c.country)}` : ''}: ${c.alerts} alert(s) at ≥ ${lowest!.threshold}; still alerts at ≥ ${results[k]?.threshold ?? '-'}</title></circle>`,
    );
    const text = `${c.city}${c.country !== '' ? `, ${c.country}` : ''} (${c.alerts})`;
    const tw = text.length * 6.4;
    const d = r + 3;
    const options: { x: number; y: number; anchor: string; x0: number }[] = [
      { x: cx + d, y: cy + 4, anchor: 'start', x0: cx + d },
      { x: cx - d, y: cy + 4, anchor: 'end', x0: cx - d - tw },
      { x: cx, y: cy - d - 2, anchor: 'middle', x0: cx - tw / 2 },
      { x: cx, y: cy + d + 10, anchor: 'middle', x0: cx - tw / 2 },
      { x: cx + d, y: cy - d, anchor: 'start', x0: cx + d },
      { x: cx + d, y: cy + d + 8, anchor: 'start', x0: cx + d },
      { x: cx - d, y: cy - d, anchor: 'end', x0: cx - d - tw },
      { x: cx - d, y: cy + d + 8, anchor: 'end', x0: cx - d - tw },
    ];
    const pick = options.find((o) => free({ x0: o.x0, x1: o.x0 + tw, y0: o.y - 10, y1: o.y + 2 }, i));
    if (pick === undefined) {
      unlabelled.push(c);
      return;
    }
    taken.push({ x0: pick.x0, x1: pick.x0 + tw, y0: pick.y - 10, y1: pick.y + 2 });
    labels.push(
      `<text class="city-label" x="${n1(pick.x)}" y="${n1(pick.y)}" text-anchor="${pick.anchor}">${e(text)}</text>`,
    );
  });
  parts.push(...labels);
  const legend = results
    .map(
      (r, i) =>
        `<span class="key"><svg width="12" height="12" aria-hidden="true"><circle cx="6" cy="6" r="5" fill="${colour(i)}"/></svg> still alerts at ≥ ${r.threshold}</span>`,
    )
    .join(' ');
  return {
    svg: `<svg id="chart-map" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Alert places">${parts.join('')}</svg><p class="legend-row">${legend} <span class="key"><svg width="12" height="12" aria-hidden="true"><circle cx="6" cy="6" r="4" fill="#fff" stroke="#111" stroke-width="2.5"/></svg> labelled attack</span></p>`,
    unplaced,
    unlabelled,
  };
}

/** The countries in the window as outlines; those alert places are in are shaded, with their alerts. */
function countriesLayer(
  places: readonly AlertCity[],
  win: ReturnType<typeof mapWindow>,
  project: (lon: number, lat: number) => readonly [number, number],
): string {
  const alertsIn = new Map<string, number>();
  for (const c of places) {
    const id = isoNumeric(c.country);
    if (id !== undefined) alertsIn.set(id, (alertsIn.get(id) ?? 0) + c.alerts);
  }
  const paths = countryOutlines(win, project).map((c) => {
    const alerts = alertsIn.get(c.id);
    const tip = alerts !== undefined ? `${c.name}: ${alerts} alert(s) at the lowest threshold` : c.name;
    return `<path class="country${alerts !== undefined ? ' alerted' : ''}" data-id="${e(c.id)}" d="${c.d}"><title>${e(tip)}</title></path>`;
  });
  return `<g class="countries">${paths.join('')}</g>`;
}

function summaryTable(results: readonly ThresholdResult[]): string {
  const keys = [
    'threshold',
    'alerts',
    'alertsPerDay',
    'callers',
    'operations',
    'places',
    'detected',
    'falsePerDay',
    'ttd',
  ];
  const head = SUMMARY_HEADER.map((h) => `<th>${e(h)}</th>`).join('');
  const rows = results
    .map((r) => {
      const cells = summaryRow(r).map((c, i) => {
        const text = i === 0 ? fmt.threshold(r.threshold) + (r.current ? ' (current)' : '') : c;
        return `<td data-k="${keys[i]}">${e(text)}</td>`;
      });
      return `<tr data-threshold="${r.threshold}"${r.current ? ' class="current"' : ''}>${cells.join('')}</tr>`;
    })
    .join('');
  return `<table id="summary-table"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}

function pairsTable(r: ThresholdResult): string {
  const labels = r.evaluation !== undefined;
  const head = [
    '#',
    'operation',
    'place',
    'alerts',
    ...(labels ? ['false alerts'] : []),
    'callers',
    'max score',
    'silence with',
    'why',
  ]
    .map((h) => `<th>${e(h)}</th>`)
    .join('');
  const row = (p: NoisyPair, i: number) => {
    const callers = p.callers.map((c) => `<span class="caller">${wrap(c)}</span>`).join(', ');
    const more = p.callerCount > p.callers.length ? ` and ${p.callerCount - p.callers.length} more` : '';
    return (
      `<tr>` +
      `<td>${i + 1}</td>` +
      `<td data-k="operation">${wrap(p.operation)}</td>` +
      `<td data-k="place">${e(p.city)}${p.country !== '' ? `, ${e(p.country)}` : ''}</td>` +
      `<td data-k="alerts">${p.alerts}</td>` +
      (labels ? `<td data-k="falseAlerts">${p.falseAlerts ?? 0}</td>` : '') +
      `<td data-k="callers">${callers}${e(more)}</td>` +
      `<td data-k="maxScore">${e(fmt.score(p.maxScore))}</td>` +
      `<td data-k="silence"><code>${e(p.silence?.assignment ?? '(no single setting)')}</code></td>` +
      `<td class="why">${e(p.silence?.why ?? '')}</td>` +
      `</tr>`
    );
  };
  const body = r.topPairs.length > 0 ? r.topPairs.map(row).join('') : `<tr><td colspan="9">none</td></tr>`;
  return `<table class="pairs" data-threshold="${r.threshold}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

const MAX_ALERT_ROWS = 500;

function alertsTable(
  alerts: readonly Alert[],
  attackOf: (a: Alert) => string | undefined,
  labels: boolean,
): string {
  const head = [
    'time (run)',
    'score',
    'caller',
    'operations',
    'place',
    'IP',
    ...(labels ? ['labelled attack'] : []),
  ]
    .map((h) => `<th>${e(h)}</th>`)
    .join('');
  const rows = alerts
    .slice(0, MAX_ALERT_ROWS)
    .map((a) => {
      const attack = attackOf(a);
      return (
        `<tr data-alert-id="${e(a.AlertId)}">` +
        `<td>${e(a.TimeGenerated.slice(0, 16).replace('T', ' '))}</td>` +
        `<td>${e(fmt.score(a.AnomalyScore))}</td>` +
        `<td class="caller">${wrap(a.Caller)}</td>` +
        `<td>${wrap(a.Operations.join(', '))}</td>` +
        `<td>${e(a.SrcGeoCity)}${a.SrcGeoCountry !== '' ? `, ${e(a.SrcGeoCountry)}` : ''}</td>` +
        `<td>${e(a.SrcIpAddr)}</td>` +
        (labels
          ? `<td>${attack !== undefined ? e(attack) : '<span class="false">false alert</span>'}</td>`
          : '') +
        `</tr>`
      );
    })
    .join('');
  const more =
    alerts.length > MAX_ALERT_ROWS
      ? `<p class="note">First ${MAX_ALERT_ROWS} of ${alerts.length} alerts; all of them are in --alerts DIR.</p>`
      : '';
  return `<table id="alerts-table"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>${more}`;
}

const atCurrent = (v: VariantResult): ThresholdResult => v.results.find((r) => r.current) ?? v.results[0]!;

/** One option of a varied setting at the current threshold, in words: alerts a day, and with labels what they catch. */
function optionText(r: ThresholdResult): string {
  const ev = r.evaluation;
  const caught =
    ev !== undefined
      ? ` · ${ev.detected}/${ev.attacks} detected · ${fmt.perDay(ev.falseAlertsPerDay)} false/day`
      : '';
  return `${fmt.perDay(r.alertsPerDay)} alerts/day${caught}`;
}

/**
 * The --vary options side by side, one group of bars per setting: alerts a day at the current threshold for the
 * current value and each value tried; the best option (VariedSetting.best) is green and starred.
 */
function variantsChart(b: BacktestResults): string {
  const varied = b.varied ?? [];
  if (varied.length === 0) return '';
  const byName = new Map(b.variants.map((v) => [v.name, v]));
  const W = 960;
  const labelW = 280;
  const barW = 300;
  const rowH = 24;
  const max = Math.max(1e-9, ...b.variants.map((v) => atCurrent(v).alertsPerDay));
  const parts: string[] = [];
  let yTop = 8;
  for (const vs of varied) {
    parts.push(`<g class="varied" data-setting="${e(vs.setting)}">`);
    parts.push(`<text class="setting-title" x="8" y="${yTop + 14}">${e(vs.setting)}</text>`);
    yTop += 22;
    for (const name of vs.options) {
      const v = byName.get(name);
      if (v === undefined) continue;
      const r = atCurrent(v);
      const best = name === vs.best;
      const label =
        v.change === undefined ? `current: ${vs.setting}=${vs.current}` : `${vs.setting}=${v.change.value}`;
      const len = Math.max(1, (r.alertsPerDay / max) * barW);
      parts.push(
        `<g class="option${best ? ' best' : ''}${v.change === undefined ? ' current' : ''}" data-variant="${e(name)}">` +
          `<text class="option-label" x="${labelW - 8}" y="${yTop + 16}" text-anchor="end">${best ? '★ ' : ''}${e(label)}</text>` +
          `<rect class="option-bar" data-alerts-per-day="${r.alertsPerDay}" x="${labelW}" y="${yTop + 4}" width="${n1(len)}" height="${rowH - 8}"><title>${e(name)}: ${e(optionText(r))}</title></rect>` +
          `<text class="option-value" x="${n1(labelW + len + 6)}" y="${yTop + 16}">${e(optionText(r))}${best ? ' — best' : ''}</text>` +
          `</g>`,
      );
      yTop += rowH;
    }
    parts.push(`</g>`);
    yTop += 10;
  }
  return `<svg id="chart-variants" class="chart" viewBox="0 0 ${W} ${yTop}" width="${W}" height="${yTop}" role="img" aria-label="Options of the varied settings at the current threshold">${parts.join('')}</svg>`;
}

/** Under the variants chart: how "best" was chosen, and the --vary values that were the current value already. */
function variantsNote(b: BacktestResults, threshold: number): string {
  const varied = b.varied ?? [];
  const rule =
    varied[0]?.rule === 'labels'
      ? 'most labelled attacks detected, then fewest false alerts, then fewest alerts'
      : 'fewest alerts (no labels: check that the alerts it drops are not ones you need)';
  const skipped = varied
    .filter((v) => v.skipped.length > 0)
    .map((v) => `${e(v.setting)}=${v.skipped.map(e).join(', ')} (the current value: not replayed again)`);
  return `<p class="note">At the current threshold ${threshold}; best (★): ${rule}; a tie keeps the current value.${skipped.length > 0 ? ` Left out: ${skipped.join('; ')}.` : ''}</p>`;
}

function variantsTable(variants: readonly VariantResult[], varied: readonly VariedSetting[]): string {
  // The rows of a variant that beats the current value (the chart shows when the current value is best).
  const best = new Set(varied.map((v) => v.best).filter((name) => name !== 'current settings'));
  const head = ['variant', 'method', ...SUMMARY_HEADER].map((h) => `<th>${e(h)}</th>`).join('');
  const rows = variants
    .flatMap((v) =>
      v.results.map(
        (r) =>
          `<tr data-variant="${e(v.name)}" data-threshold="${r.threshold}"${r.current && best.has(v.name) ? ' class="best"' : ''}><td>${e(v.name)}</td><td>${e(v.method)}</td>${summaryRow(
            r,
          )
            .map((c) => `<td>${e(c)}</td>`)
            .join('')}</tr>`,
      ),
    )
    .join('');
  return `<table id="variants-table"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:24px auto;max-width:1200px;padding:0 16px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;margin:2px 0}.note{color:#57606a;font-size:13px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td[data-k]{font-variant-numeric:tabular-nums}tr.current td{background:#fff8c5;font-weight:600}
#summary-table td:not(:first-child),#variants-table td:nth-child(n+3){text-align:right}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
.why{min-width:260px;max-width:420px;color:#424a53;overflow-wrap:anywhere}.false{color:#cf222e}.caller{overflow-wrap:anywhere}
.pairs td[data-k=silence]{min-width:15em;max-width:15em}.pairs td[data-k=callers]{min-width:11em}.pairs td[data-k=operation]{min-width:14em;max-width:26em}
.chart{display:block;max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px;background:#fff}
.grid{stroke:#d8dee4;stroke-width:1;fill:none}.axis{stroke:#57606a;stroke-width:1}.meridian{stroke:#8c959f;stroke-width:1.2;fill:none}
.tick{font-size:11px;fill:#57606a}.label{font-size:12px;fill:#424a53}.legend{font-size:12px;fill:#24292f}
.series{fill:none;stroke-width:2;stroke-linejoin:round}.threshold{stroke-width:1.5;stroke-dasharray:4 3;fill:none}
.bar{fill:#8c959f}.bar.alerting{fill:#cf222e}.sea{fill:#eef5fb}
.country{fill:#f4f1ea;stroke:#a8a294;stroke-width:.6;stroke-linejoin:round}.country.alerted{fill:#fbd9b0}
.day-bar{fill:#57606a}.day-bar.labelled{fill:#afb8c1}.attack-part{fill:#cf222e}.busiest-label{font-size:10px;fill:#1b1f24;font-weight:600}.panel-title{font-size:13px;font-weight:600;fill:#24292f}
.panel.current .panel-title{fill:#9a6700}.setting-title{font-size:13px;font-weight:600;fill:#24292f}
.option-bar{fill:#8c959f}.option.best .option-bar{fill:#2da44e}.option-label,.option-value{font-size:12px;fill:#24292f}
.option.best .option-label,.option.best .option-value{font-weight:600}tr.best td{background:#dafbe1}
.city{fill-opacity:.85;stroke:#fff;stroke-width:1}.city.attack{stroke:#111;stroke-width:2.5}.city-label{font-size:11px;fill:#1b1f24;paint-order:stroke;stroke:#eef5fb;stroke-width:3px}
.legend-row{font-size:12px;color:#424a53}.key{margin-right:12px;white-space:nowrap}.key svg{vertical-align:middle}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
`;

/**
 * The backtest as one self-contained HTML file: inline CSS and SVG drawn here, no script, no external
 * resource (a Content-Security-Policy forbids any), so it opens offline and attacker-written strings in the
 * data can neither run nor load anything.
 */
export function renderReport(
  b: BacktestResults,
  currentAlerts: readonly Alert[],
  attackOf: (a: Alert) => string | undefined,
): string {
  const base = b.variants[0]!;
  const results = base.results;
  const current = results.find((r) => r.current) ?? results[0]!;
  const labels = current.evaluation !== undefined;
  const map = mapChart(results);
  const la = b.logAnalytics;
  const files =
    la !== undefined
      ? `Read from ${e(describePeriod(la))} (${la.queries.toLocaleString('en-US')} queries, ${la.groups.toLocaleString('en-US')} groups of ${la.slotMinutes}-minute slots)`
      : `Files: ${b.files.map((f) => `<code>${e(f)}</code>`).join(' ')}`;
  const sets = Object.entries(b.set)
    .map(([k, v]) => `<code>${e(`${k}=${v}`)}</code>`)
    .join(' ');
  const pairs = results
    .map(
      (r) =>
        `<details${r.current ? ' open' : ''} data-threshold="${r.threshold}"><summary>threshold ${r.threshold}${r.current ? ' (current)' : ''}: ${r.topPairs.length} pair(s)</summary>${pairsTable(r)}</details>`,
    )
    .join('');
  const unlabelled =
    map.unlabelled.length > 0
      ? `<p class="note">Unlabelled dots (labels would overlap; hover a dot for its name): ${map.unlabelled
          .map((c) => `${e(c.city)}${c.country !== '' ? `, ${e(c.country)}` : ''} (${c.alerts})`)
          .join('; ')}.</p>`
      : '';
  const unplaced =
    map.unplaced.length > 0
      ? `<p class="note">Not on the map (egress ranges or places without coordinates): ${map.unplaced
          .map((c) => `${e(c.city)} (${c.alerts})`)
          .join(', ')}.</p>`
      : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>unusual-city backtest ${e(b.period.start.slice(0, 10))} – ${e(b.period.end.slice(0, 10))}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>unusual-city backtest</h1>
<p class="meta">${e(b.period.start.slice(0, 10))} – ${e(b.period.end.slice(0, 10))} (${e(b.period.days.toFixed(1))} days), ${base.replay.events.toLocaleString('en-US')} events, ${base.replay.runs.toLocaleString('en-US')} simulated runs, ${b.replays} replay(s); ${base.replay.scores.toLocaleString('en-US')} per-caller scores.</p>
<p class="meta">${files}${b.labels !== undefined ? `; labels: <code>${e(b.labels)}</code>` : ''}${sets !== '' ? `; --set ${sets}` : ''}. Generated ${e(b.generatedAt)} by ${e(b.tool)} ${e(b.version)}.</p>
</header>
<section id="summary">
<h2>Per threshold</h2>
${summaryTable(results)}
<p class="note">One replay recorded every rare finding at the lowest threshold; each threshold's alerts were then decided again exactly as the pipeline decides them (episodes, cooldown, rescore margin, daily cap). "Detected" and "false/day" need labels; TTD is from an attack's first event to the run that alerted.</p>
</section>
<section id="per-day">
<h2>Alerts per day</h2>
${perDayChart(results)}
<p class="note">One row per threshold${labels ? '; red: alerts of labelled attacks, grey: false alerts' : ''}; the busiest day of each is labelled.</p>
${busiestTable(results, labels)}
</section>
<section id="histogram">
<h2>Score distribution</h2>
${histogramChart(base, b.thresholds)}
<p class="note">Every per-caller score the alert decision saw (one per caller and (operation, city, hour)); red bins reach the current threshold ${current.threshold}.</p>
</section>
<section id="map">
<h2>Where alerts come from</h2>
${map.svg}
${unlabelled}${unplaced}
<p class="note">Equirectangular map fitted to the places; shaded: the countries alerts come from; dot size: alerts at the lowest threshold (${results[0]?.threshold ?? '-'}). Coastlines and borders: Natural Earth (public domain) from the npm package world-atlas, drawn into this file — the report loads nothing.</p>
</section>
<section id="noisy">
<h2>Noisy (operation, place) pairs</h2>
<p class="note">${labels ? 'Pairs ranked by false alerts (alerts not part of a labelled attack).' : 'Pairs ranked by alerts.'} "Silence with" is the narrowest change that would stop the pair alerting at that threshold: an allow rule for one caller in the city (or on their one network) when one caller raises its alerts, for the operation in the city when several do, a setting otherwise, and the whole city only when many callers of many operations alert from it; "why" says what else it changes.</p>
${pairs}
</section>
<section id="alerts">
<h2>Alerts at the current threshold (${current.threshold})</h2>
${alertsTable(currentAlerts, attackOf, labels)}
</section>
${b.variants.length > 1 ? `<section id="variants"><h2>Variants</h2><p class="note">One setting changed at a time. "decision" variants re-used the first replay's findings (settings read only by the alert decision); "replay" variants replayed the ${la !== undefined ? 'period' : 'files'}.</p>${variantsChart(b)}${variantsNote(b, current.threshold)}${variantsTable(b.variants, b.varied ?? [])}</section>` : ''}
</body>
</html>
`;
}
