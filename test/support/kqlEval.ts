import { analyseKql, type TableSchema } from './kusto.js';

/**
 * A small KQL evaluator for the Sentinel rule (infra/sentinel/rule.kql) and the verdict query
 * (shared/source/verdicts.kql): it runs the query over rows as Log Analytics would hold them, at a given "now", to
 * show what each scheduled run of the rule selects and what the local Log Analytics answers for verdicts.
 *
 * Faithful for exactly the operators and functions the rule uses, and nothing else: the query is parsed by
 * Kusto.Language (the parser behind the Kusto editors, test/support/kusto.ts) and bound against the table schemas
 * first (any diagnostic throws), then its syntax tree is walked. A node kind or function that is not listed below
 * throws, so a rule that grows past what this evaluator knows fails its test instead of being half-evaluated.
 *
 *   statements   let name = <scalar>;   <tabular expression>
 *   tabular      Table | union isfuzzy=true (datatable(<schema>)[]), Table | (…)
 *   operators    where, extend, summarize (min, max, count, arg_max(x, *)) by columns, project,
 *                mv-expand name = column to typeof(string), join kind=inner (…) on column, order by … asc|desc
 *   scalars      literals (long, real, string, @'verbatim', bool, timespan, datetime), names, ( ), [index],
 *                dynamic.member, + - > >= < <= == != and or, contains (case-insensitive), has (a whole term,
 *                case-insensitive), matches regex, ago, ingestion_time, iff, tostring, todynamic, parse_json,
 *                coalesce, strlen, strcat, substring, replace_regex
 *
 * Values: datetime and timespan are milliseconds (numbers), dynamic values are JSON values, a missing value is
 * null (comparisons with null are false, as in Kusto). Regular expressions are RE2 in Kusto and run here as
 * JavaScript Unicode expressions (the `u` flag): the same for the character classes the rule uses
 * (\p{Cc} \p{Cf} \p{Zl} \p{Zp}, ranges, anchors, counted repetition). Strings are measured in UTF-16 code units.
 */

export type KqlValue = string | number | boolean | null | KqlValue[] | { [key: string]: KqlValue };
export type KqlRow = Record<string, KqlValue>;

/** A row as stored: its columns (datetimes as ISO text are read as datetimes) and when it was ingested. */
export interface IngestedRow {
  row: Record<string, unknown>;
  ingestedMs: number;
}

export interface EvaluateOptions {
  /** The table schemas (the same as for binding); column types decide how stored values are read. */
  schemas: readonly TableSchema[];
  /** Rows by table name; a table with no entry has no rows. */
  data: Readonly<Record<string, readonly IngestedRow[]>>;
  /** The query's now() (what ago() is relative to). */
  nowMs: number;
}

const INGESTED = Symbol('ingestion_time');
type Row = KqlRow & { [INGESTED]?: number };

interface SyntaxNode {
  Kind: number;
  ChildCount: number;
  GetChild(i: number): SyntaxNode | null;
  IsToken: boolean;
  Text: string;
}

interface Bridge {
  System: { Enum: { getName(e: unknown, v: number): string } };
  Kusto: {
    Language: { KustoCode: { Parse(text: string): { Syntax: SyntaxNode } }; Syntax: { SyntaxKind: unknown } };
  };
}

const bridge = (): Bridge => globalThis as unknown as Bridge;
const kind = (n: SyntaxNode): string =>
  bridge().System.Enum.getName(bridge().Kusto.Language.Syntax.SyntaxKind, n.Kind);
const children = (n: SyntaxNode): SyntaxNode[] =>
  Array.from({ length: n.ChildCount }, (_, i) => n.GetChild(i)).filter((c): c is SyntaxNode => c !== null);
const nodes = (n: SyntaxNode): SyntaxNode[] => children(n).filter((c) => !c.IsToken);
/** The elements of a List of SeparatedElements (or of plain elements). */
const elements = (list: SyntaxNode): SyntaxNode[] =>
  children(list).flatMap((c) => (kind(c) === 'SeparatedElement' ? [children(c)[0]!] : c.IsToken ? [] : [c]));
/** The text of the first token: the name of a NameReference or NameDeclaration. */
/** Every token of a node, joined without spaces (`kind=inner`, `asc`). */
const squashTokens = (n: SyntaxNode): string =>
  n.IsToken
    ? n.Text
    : children(n)
        .map((c) => squashTokens(c))
        .join('');
const firstToken = (n: SyntaxNode): string => (n.IsToken ? n.Text : firstToken(children(n)[0]!));

const unsupported = (n: SyntaxNode): never => {
  throw new Error(`kqlEval: unsupported ${kind(n)} (${firstToken(n)}…)`);
};

const TIMESPAN_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

function timespan(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`kqlEval: unsupported timespan ${text}`);
  return Number(m[1]) * TIMESPAN_UNITS[m[2]!]!;
}

function stringLiteral(text: string): string {
  if (text.startsWith('@')) return text.slice(2, -1).replaceAll(text[1]! + text[1]!, text[1]!);
  const body = text.slice(1, -1);
  return body.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

/** todynamic(): JSON text as its value; text that is not JSON stays a string (as in Kusto). */
function parseDynamic(value: string): KqlValue {
  try {
    return JSON.parse(value) as KqlValue;
  } catch {
    return value;
  }
}

/** `has`: the needle is a whole term of the text (bounded by non-alphanumeric characters), ignoring case. */
function hasTerm(haystack: string, needle: string): boolean {
  if (needle === '') return true;
  const h = haystack.toLowerCase();
  const n = needle.toLowerCase();
  const word = (c: string | undefined): boolean => c !== undefined && /[\p{L}\p{N}_]/u.test(c);
  for (let i = h.indexOf(n); i >= 0; i = h.indexOf(n, i + 1)) {
    if (!word(h[i - 1]) && !word(h[i + n.length])) return true;
  }
  return false;
}

/** A stored value read as its column's type. */
function readValue(value: unknown, type: string): KqlValue {
  if (value === undefined || value === null) return null;
  if (type === 'datetime') return typeof value === 'string' ? Date.parse(value) : (value as number);
  if (type === 'dynamic' && typeof value === 'string') return parseDynamic(value);
  return value as KqlValue;
}

const compare = (
  a: KqlValue,
  b: KqlValue,
  test: (x: number | string, y: number | string) => boolean,
): boolean =>
  a !== null &&
  b !== null &&
  (typeof a === 'number' || typeof a === 'string') &&
  (typeof b === 'number' || typeof b === 'string')
    ? test(a, b)
    : false;

const num = (v: KqlValue): number => {
  if (typeof v !== 'number') throw new TypeError(`kqlEval: expected a number, got ${JSON.stringify(v)}`);
  return v;
};
const text = (v: KqlValue): string =>
  v === null ? '' : typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);

/** Binary operators over evaluated operands, by syntax kind. */
const BINARY: Readonly<Record<string, (x: KqlValue, y: KqlValue) => KqlValue>> = {
  AddExpression: (x, y) => (x === null || y === null ? null : num(x) + num(y)),
  SubtractExpression: (x, y) => (x === null || y === null ? null : num(x) - num(y)),
  GreaterThanExpression: (x, y) => compare(x, y, (p, q) => p > q),
  GreaterThanOrEqualExpression: (x, y) => compare(x, y, (p, q) => p >= q),
  LessThanExpression: (x, y) => compare(x, y, (p, q) => p < q),
  LessThanOrEqualExpression: (x, y) => compare(x, y, (p, q) => p <= q),
  EqualExpression: (x, y) => compare(x, y, (p, q) => p === q),
  NotEqualExpression: (x, y) => compare(x, y, (p, q) => p !== q),
  // `contains` ignores case, as in Kusto.
  ContainsExpression: (x, y) => text(x).toLowerCase().includes(text(y).toLowerCase()),
  HasExpression: (x, y) => hasTerm(text(x), text(y)),
  MatchesRegexExpression: (x, y) => new RegExp(text(y), 'u').test(text(x)),
};

/** Parsed queries that bound without diagnostics, by schema set and text (binding costs ~0.5 s a query). */
const checked = new Map<string, SyntaxNode>();

function parseChecked(query: string, schemas: readonly TableSchema[]): SyntaxNode {
  const key = `${JSON.stringify(schemas)}\n${query}`;
  let root = checked.get(key);
  if (root === undefined) {
    const diagnostics = analyseKql(query, { tables: schemas }).diagnostics;
    if (diagnostics.length > 0)
      throw new Error(`kqlEval: the query does not bind: ${diagnostics[0]!.message}`);
    root = bridge().Kusto.Language.KustoCode.Parse(query).Syntax;
    checked.set(key, root);
  }
  return root;
}

export function evaluateKql(query: string, options: EvaluateOptions): KqlRow[] {
  return new Evaluator(options).run(parseChecked(query, options.schemas));
}

/** One evaluation: the query's `let` values and the options; one method per kind of syntax node. */
class Evaluator {
  private readonly lets = new Map<string, KqlValue>();

  constructor(private readonly options: EvaluateOptions) {}

  run(root: SyntaxNode): KqlRow[] {
    let result: Row[] | undefined;
    for (const statement of elements(nodes(root).at(-1)!)) {
      if (kind(statement) === 'LetStatement') {
        const [name, value] = nodes(statement);
        this.lets.set(firstToken(name!), this.scalar(value!, {}));
      } else if (kind(statement) === 'ExpressionStatement') {
        result = this.tabular(nodes(statement)[0]!);
      } else unsupported(statement);
    }
    if (!result) throw new Error('kqlEval: the query has no tabular expression');
    return result;
  }

  private table(name: string, fuzzy: boolean): Row[] {
    const schema = this.options.schemas.find((s) => s.name === name);
    if (!schema) {
      if (fuzzy) return [];
      throw new Error(`kqlEval: unknown table ${name}`);
    }
    return (this.options.data[name] ?? []).map(({ row, ingestedMs }) => {
      const out: Row = Object.fromEntries(schema.columns.map(([c, type]) => [c, readValue(row[c], type)]));
      out[INGESTED] = ingestedMs;
      return out;
    });
  }

  private tabular(n: SyntaxNode): Row[] {
    switch (kind(n)) {
      case 'NameReference':
        return this.table(firstToken(n), false);
      case 'ParenthesizedExpression':
        return this.tabular(nodes(n)[0]!);
      case 'DataTableExpression': {
        const values = elements(nodes(n).at(-1)!);
        if (values.length > 0) unsupported(n);
        return [];
      }
      case 'UnionOperator': {
        const [parameters, operands] = nodes(n);
        const named = elements(parameters!).map(
          (p) => `${firstToken(p)}=${children(p).at(-1)!.IsToken ? '' : firstToken(children(p).at(-1)!)}`,
        );
        if (named.some((p) => p !== 'isfuzzy=true')) unsupported(n);
        const fuzzy = named.length > 0;
        return elements(operands!).flatMap((o) =>
          kind(o) === 'NameReference' ? this.table(firstToken(o), fuzzy) : this.tabular(o),
        );
      }
      case 'PipeExpression': {
        const [left, operator] = nodes(n);
        return this.apply(this.tabular(left!), operator!);
      }
      default:
        return unsupported(n);
    }
  }

  private apply(rows: Row[], op: SyntaxNode): Row[] {
    const parts = nodes(op);
    switch (kind(op)) {
      case 'FilterOperator': {
        if (elements(parts[0]!).length > 0) unsupported(op);
        return rows.filter((r) => this.scalar(parts[1]!, r) === true);
      }
      case 'ExtendOperator':
        return rows.map((r) => {
          const out: Row = { ...r };
          for (const e of elements(parts[0]!)) {
            if (kind(e) !== 'SimpleNamedExpression') unsupported(e);
            const [name, value] = nodes(e);
            out[firstToken(name!)] = this.scalar(value!, out);
          }
          return out;
        });
      case 'ProjectOperator':
        return rows.map((r) =>
          Object.fromEntries(
            elements(parts[0]!).map((e) => {
              if (kind(e) === 'NameReference') return [firstToken(e), r[firstToken(e)] ?? null];
              if (kind(e) !== 'SimpleNamedExpression') unsupported(e);
              const [name, value] = nodes(e);
              return [firstToken(name!), this.scalar(value!, r)];
            }),
          ),
        );
      case 'SummarizeOperator':
        return this.summarize(rows, op);
      case 'MvExpandOperator':
        return this.mvExpand(rows, op);
      case 'JoinOperator':
        return this.join(rows, op);
      case 'SortOperator':
        return this.sort(rows, op);
      default:
        return unsupported(op);
    }
  }

  /** `mv-expand name = column to typeof(string)`: one row per element (none for an empty or missing array). */
  private mvExpand(rows: Row[], op: SyntaxNode): Row[] {
    const parts = nodes(op);
    const expressions = elements(parts.at(-1)!);
    if (parts.length !== 2 || expressions.length !== 1) unsupported(op);
    const [named, to] = nodes(expressions[0]!);
    if (kind(named!) !== 'SimpleNamedExpression' || !to || kind(to) !== 'ToTypeOfClause') unsupported(op);
    if (squashTokens(to!) !== 'totypeof(string)') unsupported(to!);
    const [name, value] = nodes(named!);
    const target = firstToken(name!);
    return rows.flatMap((r) => {
      const v = this.scalar(value!, r);
      const items = Array.isArray(v) ? v : v === null ? [] : [v];
      return items.map((item) => ({ ...r, [target]: text(item) }));
    });
  }

  /** `join kind=inner (right) on column`: every pair of rows with equal keys; right columns also on the left get a 1. */
  private join(rows: Row[], op: SyntaxNode): Row[] {
    const [parameters, right, on] = nodes(op);
    const named = elements(parameters!).map((p) => squashTokens(p));
    if (named.join() !== 'kind=inner' || !on || kind(on) !== 'JoinOnClause') unsupported(op);
    const keys = elements(nodes(on!)[0]!).map((k) =>
      kind(k) === 'NameReference' ? firstToken(k) : unsupported(k),
    );
    const rightRows = this.tabular(right!);
    const keyOf = (r: Row): string => JSON.stringify(keys.map((k) => r[k] ?? null));
    const byKey = new Map<string, Row[]>();
    for (const r of rightRows) byKey.set(keyOf(r), [...(byKey.get(keyOf(r)) ?? []), r]);
    const out: Row[] = [];
    for (const l of rows) {
      if (keys.some((k) => (l[k] ?? null) === null)) continue;
      for (const r of byKey.get(keyOf(l)) ?? []) {
        const joined: Row = { ...l };
        for (const [c, v] of Object.entries(r)) joined[Object.hasOwn(l, c) ? `${c}1` : c] = v;
        out.push(joined);
      }
    }
    return out;
  }

  /** `order by e1 asc|desc, …` (default desc, as in Kusto; nulls first ascending, last descending). */
  private sort(rows: Row[], op: SyntaxNode): Row[] {
    const orders = elements(nodes(op).at(-1)!).map((o) => {
      const [e, clause] = nodes(o);
      const desc = clause === undefined || squashTokens(clause).startsWith('desc');
      return { e: e!, desc };
    });
    const keyed = rows.map((r) => ({ r, ks: orders.map((o) => this.scalar(o.e, r)) }));
    keyed.sort((a, b) => {
      for (let i = 0; i < orders.length; i++) {
        const x = a.ks[i]!;
        const y = b.ks[i]!;
        if (x === y) continue;
        const sign = orders[i]!.desc ? -1 : 1;
        if (x === null) return -sign;
        if (y === null) return sign;
        if (compare(x, y, (p, q) => p < q)) return -sign;
        if (compare(x, y, (p, q) => p > q)) return sign;
      }
      return 0;
    });
    return keyed.map((k) => k.r);
  }

  private summarize(rows: Row[], op: SyntaxNode): Row[] {
    const [parameters, aggregates, by] = nodes(op);
    if (elements(parameters!).length > 0 || !by || kind(by) !== 'SummarizeByClause') unsupported(op);
    const keys = elements(nodes(by!)[0]!).map((k) =>
      kind(k) === 'NameReference' ? firstToken(k) : unsupported(k),
    );
    const groups = new Map<string, Row[]>();
    for (const r of rows) {
      const key = JSON.stringify(keys.map((k) => r[k] ?? null));
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    return [...groups.values()].map((group) => {
      const out: Row = Object.fromEntries(keys.map((k) => [k, group[0]![k] ?? null]));
      for (const a of elements(aggregates!)) this.aggregate(a, group, keys, out);
      return out;
    });
  }

  /** One aggregate of `summarize` over a group, written into `out`. */
  private aggregate(a: SyntaxNode, group: Row[], keys: string[], out: Row): void {
    const named = kind(a) === 'SimpleNamedExpression';
    const call = named ? nodes(a)[1]! : a;
    if (kind(call) !== 'FunctionCallExpression') unsupported(call);
    const [fnName, argList] = nodes(call);
    const fn = firstToken(fnName!);
    const args = elements(nodes(argList!)[0]!);
    if (fn === 'arg_max') {
      if (named || args.length !== 2 || kind(args[1]!) !== 'StarExpression') unsupported(call);
      let best: Row | undefined;
      for (const r of group) {
        const v = this.scalar(args[0]!, r);
        if (v !== null && (best === undefined || compare(v, this.scalar(args[0]!, best), (x, y) => x > y))) {
          best = r;
        }
      }
      const { [INGESTED]: ingested, ...columns } = best ?? {};
      Object.assign(out, Object.fromEntries(Object.entries(columns).filter(([c]) => !keys.includes(c))));
      if (ingested !== undefined) out[INGESTED] = ingested;
      return;
    }
    if (!named) unsupported(call);
    const values = group
      .map((r) => (args.length > 0 ? this.scalar(args[0]!, r) : null))
      .filter((v) => v !== null);
    const pick = (better: (x: number | string, y: number | string) => boolean): KqlValue =>
      values.length > 0 ? values.reduce((m, v) => (compare(v, m, better) ? v : m)) : null;
    const name = firstToken(nodes(a)[0]!);
    if (fn === 'count') out[name] = group.length;
    else if (fn === 'min') out[name] = pick((x, y) => x < y);
    else if (fn === 'max') out[name] = pick((x, y) => x > y);
    else unsupported(call);
  }

  private scalar(n: SyntaxNode, row: Row): KqlValue {
    const [a, b] = nodes(n);
    switch (kind(n)) {
      case 'LongLiteralExpression':
      case 'RealLiteralExpression':
        return Number(firstToken(n));
      case 'BooleanLiteralExpression':
        return firstToken(n) === 'true';
      case 'StringLiteralExpression':
        return children(n)
          .filter((t) => t.IsToken)
          .map((t) => stringLiteral(t.Text))
          .join('');
      case 'TimespanLiteralExpression':
        return timespan(firstToken(n));
      case 'DateTimeLiteralExpression': {
        const m = /^datetime\((.*)\)$/.exec(firstToken(n));
        const ms = m ? Date.parse(m[1]!) : NaN;
        return Number.isNaN(ms) ? unsupported(n) : ms;
      }
      case 'PathExpression': {
        const base = this.scalar(a!, row);
        const member = firstToken(b!);
        return base !== null && typeof base === 'object' && !Array.isArray(base)
          ? (base[member] ?? null)
          : null;
      }
      case 'NameReference': {
        const name = firstToken(n);
        if (Object.hasOwn(row, name)) return row[name]!;
        if (this.lets.has(name)) return this.lets.get(name)!;
        throw new Error(`kqlEval: unknown name ${name}`);
      }
      case 'ParenthesizedExpression':
        return this.scalar(a!, row);
      case 'ElementExpression': {
        const base = this.scalar(a!, row);
        const index = this.scalar(nodes(b!)[0]!, row);
        if (Array.isArray(base) && typeof index === 'number') return base[index] ?? null;
        if (base !== null && typeof base === 'object' && !Array.isArray(base) && typeof index === 'string')
          return base[index] ?? null;
        return null;
      }
      case 'AndExpression':
        return this.scalar(a!, row) === true && this.scalar(b!, row) === true;
      case 'OrExpression':
        return this.scalar(a!, row) === true || this.scalar(b!, row) === true;
      case 'FunctionCallExpression': {
        const args = elements(nodes(b!)[0]!).map((arg) => () => this.scalar(arg, row));
        return this.call(firstToken(a!), args, row, n);
      }
      default:
        if (!(kind(n) in BINARY)) return unsupported(n);
        return BINARY[kind(n)]!(this.scalar(a!, row), this.scalar(b!, row));
    }
  }

  private call(fn: string, args: (() => KqlValue)[], row: Row, n: SyntaxNode): KqlValue {
    const v = (i: number): KqlValue => args[i]!();
    switch (fn) {
      case 'ago':
        return this.options.nowMs - num(v(0));
      case 'ingestion_time':
        return row[INGESTED] ?? null;
      case 'iff':
        return v(0) === true ? v(1) : v(2);
      case 'tostring':
        return text(v(0));
      case 'todynamic':
      case 'parse_json': {
        const x = v(0);
        return typeof x === 'string' ? parseDynamic(x) : x;
      }
      case 'coalesce':
        for (let i = 0; i < args.length; i++) {
          const x = v(i);
          if (x !== null && x !== '') return x;
        }
        return null;
      case 'strlen':
        return text(v(0)).length;
      case 'strcat':
        return args.map((_, i) => text(v(i))).join('');
      case 'substring': {
        const s = text(v(0));
        const start = Math.max(0, num(v(1)));
        return args.length > 2 ? s.slice(start, start + Math.max(0, num(v(2)))) : s.slice(start);
      }
      case 'replace_regex':
        return text(v(0)).replace(new RegExp(text(v(1)), 'gu'), text(v(2)));
      default:
        return unsupported(n);
    }
  }
}
