/**
 * Country outlines for the backtest report's map: Natural Earth coastlines and borders from the npm package
 * world-atlas (ISC; TopoJSON, unprojected longitude/latitude, ids = ISO 3166-1 numeric), read from disk and
 * turned into SVG path data here, so the report carries its map inline and loads nothing when it is viewed.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** 1:110m for wide windows (108 KB of TopoJSON), 1:50m when the window is regional (756 KB). */
export type Resolution = '110m' | '50m';

export interface CountryOutline {
  /** ISO 3166-1 numeric ("826"); empty for the few Natural Earth units without one (e.g. Kosovo). */
  id: string;
  name: string;
  /** SVG path data in the projection given, rings closed, points closer than half a pixel merged. */
  d: string;
}

type Position = readonly [number, number];
interface Geometry {
  type: string;
  id?: string;
  properties?: { name?: string };
  arcs?: number[][] | number[][][];
}
interface Topology {
  transform: { scale: [number, number]; translate: [number, number] };
  arcs: [number, number][][];
  objects: { countries: { geometries: Geometry[] } };
}
interface Decoded {
  arcs: Position[][];
  countries: Geometry[];
}

const loaded = new Map<Resolution, Decoded>();

/** The countries of one resolution, arcs decoded to longitude/latitude (read once per process). */
function countriesAt(resolution: Resolution): Decoded {
  let decoded = loaded.get(resolution);
  if (decoded === undefined) {
    const file = createRequire(import.meta.url).resolve(`world-atlas/countries-${resolution}.json`);
    const topology = JSON.parse(readFileSync(file, 'utf8')) as Topology;
    const [sx, sy] = topology.transform.scale;
    const [tx, ty] = topology.transform.translate;
    // Quantized and delta-encoded: each position adds to the previous one.
    const arcs = topology.arcs.map((arc) => {
      let x = 0;
      let y = 0;
      return arc.map(([dx, dy]): Position => {
        x += dx;
        y += dy;
        return [x * sx + tx, y * sy + ty];
      });
    });
    decoded = { arcs, countries: topology.objects.countries.geometries };
    loaded.set(resolution, decoded);
  }
  return decoded;
}

/** A ring from its arcs: a negative index ~i is arc i reversed; each arc starts where the previous ended. */
function ringOf(arcs: readonly Position[][], indices: readonly number[]): Position[] {
  const out: Position[] = [];
  for (const i of indices) {
    const arc = i >= 0 ? arcs[i]! : [...arcs[~i]!].reverse();
    out.push(...(out.length > 0 ? arc.slice(1) : arc));
  }
  return out;
}

function polygonsOf(g: Geometry): number[][][] {
  if (g.type === 'Polygon') return [(g.arcs ?? []) as number[][]];
  if (g.type === 'MultiPolygon') return (g.arcs ?? []) as number[][][];
  return [];
}

export interface Window {
  lon0: number;
  lon1: number;
  lat0: number;
  lat1: number;
}

const overlaps = (ring: readonly Position[], w: Window): boolean => {
  let [lonMin, lonMax, latMin, latMax] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [lon, lat] of ring) {
    lonMin = Math.min(lonMin, lon);
    lonMax = Math.max(lonMax, lon);
    latMin = Math.min(latMin, lat);
    latMax = Math.max(latMax, lat);
  }
  return lonMax >= w.lon0 && lonMin <= w.lon1 && latMax >= w.lat0 && latMin <= w.lat1;
};

const r1 = (v: number): string => String(Math.round(v * 10) / 10);

/** Path data of one ring in pixels, or '' when it shrinks below a triangle at this scale. */
function ringPath(ring: readonly Position[], project: (lon: number, lat: number) => Position): string {
  const points: Position[] = [];
  for (const [lon, lat] of ring) {
    const p = project(lon, lat);
    const last = points[points.length - 1];
    if (last === undefined || Math.abs(p[0] - last[0]) + Math.abs(p[1] - last[1]) >= 0.5) points.push(p);
  }
  if (points.length < 3) return '';
  return `M${points.map(([x, y]) => `${r1(x)} ${r1(y)}`).join('L')}Z`;
}

/** The outlines of every country with a part in the window, projected by `project` (longitude, latitude → px). */
export function countryOutlines(
  window: Window,
  project: (lon: number, lat: number) => Position,
  resolution: Resolution = window.lon1 - window.lon0 > 100 ? '110m' : '50m',
): CountryOutline[] {
  const { arcs, countries } = countriesAt(resolution);
  const out: CountryOutline[] = [];
  for (const g of countries) {
    const d = polygonsOf(g)
      .flatMap((polygon) => polygon.map((indices) => ringOf(arcs, indices)))
      .filter((ring) => overlaps(ring, window))
      .map((ring) => ringPath(ring, project))
      .join('');
    if (d !== '') out.push({ id: g.id ?? '', name: g.properties?.name ?? '', d });
  }
  return out;
}
