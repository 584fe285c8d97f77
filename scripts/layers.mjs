// @ts-check
/**
 * `npm run lint` runs this: the import graph of the project's TypeScript (functions/, shared/, bench/, scripts/,
 * test/) must have no circle, and inside shared/ imports must look down the floors below — at most
 * MAX_UPWARD imports may run back up, each under a comment that starts with "Upward import" and says why.
 *
 *   node scripts/layers.mjs            check; exit 1 with every circle and every unexplained upward import
 *   node scripts/layers.mjs --print    also print the floors with their folders and every upward import
 *   node scripts/layers.mjs --root DIR check another tree (the tests' own)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TREES = ['functions', 'shared', 'bench', 'scripts', 'test'];

/**
 * The floors of shared/, ground first: a folder (or a file at shared/'s top) imports only from lower floors.
 * The order follows the run: entry points → runtime → pipeline → scoring/alerts → activity, geo, baseline, config.
 */
export const FLOORS = [
  ['run', 'display.ts', 'version.ts', 'config', 'baseline'],
  ['geo', 'activity'],
  ['scoring'],
  ['alerts'],
  ['pipeline', 'delivery'],
  ['source', 'ops', 'demo'],
  ['runtime', 'backtest'],
  ['cli'],
];
export const MAX_UPWARD = 3;

/** @param {string} dir @returns {string[]} */
function sourceFiles(dir) {
  /** @type {string[]} */
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'fixtures') out.push(...sourceFiles(path));
    } else if (/\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/**
 * @typedef {{ from: string, to: string, line: number, explained: boolean }} Import
 * @param {string} file
 * @param {string} text
 * @returns {Import[]}
 */
function importsOf(file, text) {
  const lines = text.split('\n');
  const info = ts.preProcessFile(text, true, true);
  /** @type {Import[]} */
  const out = [];
  for (const ref of info.importedFiles) {
    if (!ref.fileName.startsWith('.')) continue;
    const target = normalize(join(dirname(file), ref.fileName)).replace(/\.js$/, '.ts');
    if (!target.endsWith('.ts')) continue; // JSON catalogues and the like
    let line = text.slice(0, ref.pos).split('\n').length - 1;
    while (line > 0 && !/^\s*(import|export)\b/.test(lines[line] ?? '')) line--;
    let above = line - 1;
    while (above >= 0 && /^\s*\/\//.test(lines[above] ?? '')) above--;
    const comment = lines.slice(above + 1, line).join(' ');
    out.push({ from: file, to: target, line: line + 1, explained: /\/\/\s*Upward import\b/.test(comment) });
  }
  return out;
}

/**
 * Strongly connected components of more than one file (Tarjan), each a circle of imports.
 * @param {Map<string, Set<string>>} graph
 * @returns {string[][]}
 */
export function circles(graph) {
  let index = 0;
  /** @type {Map<string, number>} */ const order = new Map();
  /** @type {Map<string, number>} */ const low = new Map();
  /** @type {string[]} */ const stack = [];
  /** @type {Set<string>} */ const onStack = new Set();
  /** @type {string[][]} */ const found = [];
  /** @param {string} v */
  const visit = (v) => {
    order.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!order.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, order.get(w) ?? 0));
    }
    if (low.get(v) === order.get(v)) {
      /** @type {string[]} */ const scc = [];
      let w;
      do {
        w = stack.pop() ?? v;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v)?.has(v) ?? false)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!order.has(v)) visit(v);
  return found;
}

/** @param {string} file a path relative to the root @returns {number | undefined} the floor of a file of shared/ */
export function floorOf(file) {
  const parts = file.split('/');
  if (parts[0] !== 'shared' || parts.length < 2) return undefined;
  const room = parts[1] ?? '';
  const floor = FLOORS.findIndex((rooms) => rooms.includes(room));
  if (floor < 0)
    throw new Error(`${file}: shared/${room} stands on no floor: add it to FLOORS in scripts/layers.mjs`);
  return floor;
}

/**
 * @param {string} root
 * @returns {{ circles: string[][], upward: Import[], imports: number }}
 */
export function checkLayers(root = ROOT) {
  const files = TREES.filter((t) => existsSync(join(root, t)))
    .flatMap((t) => sourceFiles(join(root, t)))
    .map((f) => relative(root, f));
  /** @type {Map<string, Set<string>>} */
  const graph = new Map(files.map((f) => [f, new Set()]));
  /** @type {Import[]} */
  const upward = [];
  let imports = 0;
  for (const file of files) {
    for (const imp of importsOf(file, readFileSync(join(root, file), 'utf8'))) {
      imports++;
      graph.get(file)?.add(imp.to);
      const from = floorOf(imp.from);
      const to = floorOf(imp.to);
      const sameRoom = imp.from.split('/')[1] === imp.to.split('/')[1];
      if (from !== undefined && to !== undefined && !sameRoom && to >= from) upward.push(imp);
    }
  }
  return { circles: circles(graph), upward, imports };
}

/** @param {string} line */
const say = (line) => process.stdout.write(`${line}\n`);

function main() {
  const at = process.argv.indexOf('--root');
  const root = at > 0 ? (process.argv[at + 1] ?? ROOT) : ROOT;
  const { circles: found, upward, imports } = checkLayers(root);
  const problems = [];
  for (const c of found) problems.push(`circle of imports: ${c.join(' -> ')} -> ${c[0] ?? ''}`);
  for (const u of upward.filter((i) => !i.explained))
    problems.push(
      `${u.from}:${u.line}: imports ${u.to} on the same or a higher floor, without an "// Upward import: why" comment`,
    );
  if (upward.length > MAX_UPWARD)
    problems.push(
      `${upward.length} upward imports in shared/ (at most ${MAX_UPWARD}): move code down instead`,
    );
  if (process.argv.includes('--print')) {
    FLOORS.forEach((rooms, i) => say(`floor ${i + 1}: ${rooms.join(', ')}`));
    for (const u of upward) say(`upward: ${u.from}:${u.line} -> ${u.to}`);
  }
  for (const p of problems) process.stderr.write(`${p}\n`);
  say(
    `layers: ${imports} imports, ${found.length} circle(s), ${upward.length} upward import(s) in shared/ (at most ${MAX_UPWARD})`,
  );
  process.exitCode = problems.length === 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
