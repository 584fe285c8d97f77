import { access, open } from 'node:fs/promises';
import { pipeline, type Readable, type Transform } from 'node:stream';
import { constants as zlibConstants, createGunzip } from 'node:zlib';

import { type Options as CsvOptions, Parser as CsvParser } from 'csv-parse';
import JsonParser from 'stream-json/Parser.js';

import { INPUT_BUDGETS } from '../config/budgets.js';
import { displaySafe } from '../display.js';
import {
  deeperThan,
  isDict,
  normaliseActivityRow,
  normaliseDiagnosticRecord,
  type NormaliseResult,
  parseActivityTime,
} from './normalise.js';
import type { ActivityEvent, InputFormat, ReadStats, SkippedRecord, SkipReason } from './types.js';

export interface ReadOptions {
  /** Called for every skipped record (the stats keep only the first `maxSamples`). */
  onSkip?: (skipped: SkippedRecord) => void;
  /** How many skipped records to keep in `stats.skippedSamples`; default 20. */
  maxSamples?: number;
  /** Called for file-level oddities that are not record errors (e.g. a partial query result). */
  onWarning?: (message: string) => void;
}

export function newReadStats(): ReadStats {
  return { records: 0, events: 0, skipped: {}, skippedSamples: [], formats: {} };
}

type Dict = Record<string, unknown>;

/** Decompressed bytes examined to pick a format: enough for any sane first JSON Lines record. */
const SNIFF_LIMIT = 4 * 1024 * 1024;
/** A JSON Lines line longer than this is skipped unread so one corrupt line cannot exhaust memory. */
const MAX_LINE_BYTES = INPUT_BUDGETS.recordBytes;
/** A record nested deeper than this is skipped (Azure's are under 10 deep; each level costs memory). */
const MAX_DEPTH = INPUT_BUDGETS.jsonDepth;
/** Same bound for one CSV record (characters), e.g. an unbalanced quote swallowing the rest of a file. */
const MAX_CSV_RECORD_CHARS = INPUT_BUDGETS.recordBytes;
const READ_CHUNK = 256 * 1024;
/** Skipped-record ids and details are cut to this many characters. */
const MAX_SAMPLE_TEXT = 300;

/** Bookkeeping shared by the format readers for one file. */
class Sink {
  private readonly maxSamples: number;
  private readonly warned = new Set<string>();

  constructor(
    readonly source: string,
    private readonly stats: ReadStats,
    private readonly opts: ReadOptions,
  ) {
    this.maxSamples = opts.maxSamples ?? 20;
  }

  seen(format: InputFormat): void {
    this.stats.records++;
    this.stats.formats[format] = (this.stats.formats[format] ?? 0) + 1;
  }

  skip(reason: SkipReason, position: string, id?: string, detail?: string): void {
    this.stats.skipped[reason] = (this.stats.skipped[reason] ?? 0) + 1;
    const s: SkippedRecord = { source: this.source, position, reason };
    // Both come from the file (a parser's message quotes it): printed by the CLI, so made safe to show.
    if (id) s.id = displaySafe(id, MAX_SAMPLE_TEXT);
    if (detail) s.detail = displaySafe(detail, MAX_SAMPLE_TEXT);
    if (this.stats.skippedSamples.length < this.maxSamples) this.stats.skippedSamples.push(s);
    this.opts.onSkip?.(s);
  }

  /** Counts a skipped record that could not be attributed to a format (keeps records = events + skipped). */
  skipUnattributed(reason: SkipReason, position: string, detail: string): void {
    this.stats.records++;
    this.skip(reason, position, undefined, detail);
  }

  accept(result: NormaliseResult, position: string): ActivityEvent | undefined {
    if (result.ok) {
      this.stats.events++;
      return result.event;
    }
    this.skip(result.reason, position, result.id, result.detail);
    return undefined;
  }

  warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.opts.onWarning?.(`${this.source}: ${message}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Record classification shared by JSON Lines lines, JSON arrays and wrapper objects.

type RecordKind = 'row' | 'diagnostic' | 'unknown';

function recordKind(o: Dict): RecordKind {
  if ('TimeGenerated' in o || 'OperationNameValue' in o) return 'row';
  if ('time' in o || 'operationName' in o) return 'diagnostic';
  if ('EventDataId' in o || 'CorrelationId' in o || 'Caller' in o || 'CategoryValue' in o) return 'row';
  if ('resourceId' in o || 'correlationId' in o || 'identity' in o || 'resultType' in o) return 'diagnostic';
  return 'unknown';
}

/** `12` + `records[3]` → `12:records[3]`; a document's own positions have no prefix. */
function at(base: string, path: string): string {
  return base ? `${base}:${path}` : path;
}

function idOf(o: Dict): string | undefined {
  for (const k of ['EventDataId', 'CorrelationId', 'correlationId']) {
    const v = o[k];
    if (typeof v === 'string' && v) return v;
  }
  const p = o.properties;
  if (isDict(p) && typeof p.eventDataId === 'string' && p.eventDataId) return p.eventDataId;
  return undefined;
}

/**
 * One standalone record. `container` is the format of the surrounding structure: a classified
 * record is counted under its own format unless it sits inside a diagnostic `records` wrapper.
 */
function singleEvent(
  value: unknown,
  position: string,
  sink: Sink,
  container: InputFormat,
): ActivityEvent | undefined {
  if (!isDict(value)) {
    sink.seen(container);
    sink.skip('not-an-object', position, undefined, Array.isArray(value) ? 'array' : typeof value);
    return undefined;
  }
  const kind = recordKind(value);
  if (kind === 'unknown') {
    sink.seen(container);
    sink.skip(
      'unknown-format',
      position,
      idOf(value),
      'neither AzureActivity columns nor a diagnostic record',
    );
    return undefined;
  }
  const format: InputFormat =
    container === 'azure-activity-jsonl' && kind === 'diagnostic' ? 'diagnostic-records' : container;
  sink.seen(format);
  const result = kind === 'row' ? normaliseActivityRow(value) : normaliseDiagnosticRecord(value);
  return sink.accept(result, position);
}

function columnNames(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.map((c) => (isDict(c) && typeof c.name === 'string' ? c.name : ''));
}

function laRowEvent(
  columns: string[] | undefined,
  row: unknown,
  position: string,
  sink: Sink,
): ActivityEvent | undefined {
  sink.seen('log-analytics-response');
  if (!Array.isArray(row)) {
    sink.skip('not-an-object', position, undefined, 'a query result row must be an array');
    return undefined;
  }
  if (!columns) {
    sink.skip('unknown-format', position, undefined, 'rows before (or without) column definitions');
    return undefined;
  }
  const o: Dict = {};
  const n = Math.min(columns.length, row.length);
  for (let i = 0; i < n; i++) o[columns[i] ?? ''] = row[i];
  return sink.accept(normaliseActivityRow(o), position);
}

function warnPartialResult(doc: Dict, sink: Sink): void {
  if (doc.error === undefined || doc.error === null) return;
  const e = doc.error;
  const what = isDict(e)
    ? [e.code, e.message].filter((x) => typeof x === 'string').join(': ')
    : JSON.stringify(e);
  sink.warnOnce('la-error', `Log Analytics response carries an error (partial result?): ${what}`);
}

/** Events from an already-parsed JSON value (a JSON Lines line): record, `records` wrapper or query response. */
function* valueEvents(
  value: unknown,
  base: string,
  sink: Sink,
  container: InputFormat,
): Generator<ActivityEvent> {
  if (isDict(value) && Array.isArray(value.tables)) {
    warnPartialResult(value, sink);
    for (let t = 0; t < value.tables.length; t++) {
      const table: unknown = value.tables[t];
      if (!isDict(table) || !Array.isArray(table.rows)) continue;
      const columns = columnNames(table.columns);
      for (let i = 0; i < table.rows.length; i++) {
        const ev = laRowEvent(columns, table.rows[i], at(base, `tables[${t}].rows[${i}]`), sink);
        if (ev) yield ev;
      }
    }
    return;
  }
  if (isDict(value) && Array.isArray(value.records)) {
    for (let i = 0; i < value.records.length; i++) {
      const ev = singleEvent(value.records[i], at(base, `records[${i}]`), sink, 'diagnostic-records');
      if (ev) yield ev;
    }
    return;
  }
  const ev = singleEvent(value, base, sink, container);
  if (ev) yield ev;
}

// ---------------------------------------------------------------------------------------------------
// Driving third-party Transform streams synchronously.

/**
 * Runs a Transform's `_transform`/`_flush` hooks directly and collects what they push.
 * WHY: consuming a Transform through the stream machinery discards whatever it had already buffered
 * when it fails, so a document cut short would lose the good records just before the cut. Both
 * parsers used here (stream-json's Parser, csv-parse's Parser) process input and call back synchronously.
 */
class SyncTransform<T> {
  private out: T[] = [];
  private readonly t: Transform;

  /** `make` receives an `add` callback so parser hooks (csv-parse's `on_skip`) can interleave items in order. */
  constructor(make: (add: (item: T) => void) => Transform) {
    const add = (item: T): void => {
      this.out.push(item);
    };
    this.t = make(add);
    this.t.push = (chunk: unknown): boolean => {
      if (chunk !== null) add(chunk as T);
      return true;
    };
  }

  write(chunk: Buffer): { items: T[]; error?: Error } {
    let error: Error | undefined;
    this.t._transform(chunk, 'buffer' as BufferEncoding, (e?: Error | null) => {
      if (e) error = e;
    });
    return this.take(error);
  }

  end(): { items: T[]; error?: Error } {
    let error: Error | undefined;
    this.t._flush?.((e?: Error | null) => {
      if (e) error = e;
    });
    return this.take(error);
  }

  private take(error: Error | undefined): { items: T[]; error?: Error } {
    const items = this.out;
    this.out = [];
    return error ? { items, error } : { items };
  }
}

// ---------------------------------------------------------------------------------------------------
// JSON Lines

/**
 * False when `buf` holds at most `max` opening brackets and braces, so no JSON in it nests deeper than `max`: the
 * bytes are searched natively, and only a line with more brackets is scanned character by character (deeperThan).
 */
function mayNestDeeper(buf: Buffer, max: number): boolean {
  let n = 0;
  for (const open of [0x7b, 0x5b]) {
    for (let i = buf.indexOf(open); i >= 0; i = buf.indexOf(open, i + 1)) if (++n > max) return true;
  }
  return false;
}

async function* readJsonLines(chunks: AsyncIterable<Buffer>, sink: Sink): AsyncGenerator<ActivityEvent> {
  let lineNo = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overflow = false;

  function* line(buf: Buffer, no: number): Generator<ActivityEvent> {
    let s = buf.toString('utf8');
    if (s.endsWith('\r')) s = s.slice(0, -1);
    if (/^\s*$/.test(s)) return;
    let value: unknown;
    if (mayNestDeeper(buf, MAX_DEPTH) && deeperThan(s, MAX_DEPTH)) {
      sink.seen('azure-activity-jsonl');
      sink.skip('invalid-json', String(no), undefined, `nesting deeper than ${MAX_DEPTH}`);
      return;
    }
    try {
      value = JSON.parse(s);
    } catch (e) {
      if (/^\s*\{\s*"(?:records|tables)"\s*:\s*\[/.test(s)) {
        yield* salvageLine(buf, String(no), sink);
        return;
      }
      sink.seen('azure-activity-jsonl');
      const id = /"(?:EventDataId|eventDataId|CorrelationId|correlationId)"\s*:\s*"([^"]+)"/.exec(s)?.[1];
      sink.skip('invalid-json', String(no), id, (e as Error).message);
      return;
    }
    yield* valueEvents(value, String(no), sink, 'azure-activity-jsonl');
  }

  function* complete(tail: Buffer): Generator<ActivityEvent> {
    lineNo++;
    if (overflow) {
      sink.seen('azure-activity-jsonl');
      sink.skip('invalid-json', String(lineNo), undefined, `line longer than ${MAX_LINE_BYTES} bytes`);
    } else {
      yield* line(pendingBytes ? Buffer.concat([...pending, tail]) : tail, lineNo);
    }
    pending = [];
    pendingBytes = 0;
    overflow = false;
  }

  for await (const chunk of chunks) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      yield* complete(chunk.subarray(start, nl));
      start = nl + 1;
    }
    if (start < chunk.length && !overflow) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > MAX_LINE_BYTES) {
        overflow = true;
        pending = [];
      }
    }
  }
  if (pendingBytes || overflow) yield* complete(Buffer.alloc(0));
}

// ---------------------------------------------------------------------------------------------------
// JSON documents (query response, `{"records":[...]}`, arrays), streamed token by token.

interface Token {
  name: string;
  value?: string;
}

function scalar(t: Token): unknown {
  switch (t.name) {
    case 'stringValue':
      return t.value ?? '';
    case 'numberValue':
      return Number(t.value);
    case 'trueValue':
      return true;
    case 'falseValue':
      return false;
    default:
      return null;
  }
}

function setKey(o: Dict, key: string, v: unknown): void {
  // A plain assignment of "__proto__" would replace the prototype instead of adding data.
  if (key === '__proto__') Object.defineProperty(o, key, { value: v, enumerable: true, writable: true });
  else o[key] = v;
}

/**
 * Builds one JSON value from tokens (only the record being read is ever held in memory), within the record
 * budgets: `tooBig` says why the value is over them (then it is abandoned, never completed).
 */
class Assembler {
  private readonly stack: Array<unknown[] | Dict> = [];
  private readonly keys: string[] = [];
  private bytes = 0;
  value: unknown;
  tooBig: string | undefined;

  /** Containers open (the value's nesting so far). */
  get depth(): number {
    return this.stack.length;
  }

  /** Returns true once the value is complete. */
  consume(t: Token): boolean {
    // Token sizes approximate the record's JSON size (quotes, separators and escapes aside).
    this.bytes += (t.value?.length ?? 0) + 1;
    if (this.stack.length >= MAX_DEPTH && (t.name === 'startObject' || t.name === 'startArray')) {
      this.tooBig = `nesting deeper than ${MAX_DEPTH}`;
    } else if (this.bytes > MAX_LINE_BYTES) {
      this.tooBig = `record larger than ${MAX_LINE_BYTES} bytes`;
    }
    switch (t.name) {
      case 'startObject':
        this.stack.push({});
        this.keys.push('');
        return false;
      case 'startArray':
        this.stack.push([]);
        this.keys.push('');
        return false;
      case 'endObject':
      case 'endArray':
        this.keys.pop();
        return this.add(this.stack.pop());
      case 'keyValue':
        this.keys[this.keys.length - 1] = t.value ?? '';
        return false;
      default:
        return this.add(scalar(t));
    }
  }

  private add(v: unknown): boolean {
    const parent = this.stack[this.stack.length - 1];
    if (parent === undefined) {
      this.value = v;
      return true;
    }
    if (Array.isArray(parent)) parent.push(v);
    else setKey(parent, this.keys[this.keys.length - 1] ?? '', v);
    return false;
  }
}

interface TableFrame {
  kind: 'table';
  index: number;
  key: string | undefined;
  columns: string[] | undefined;
}

type Frame =
  | { kind: 'doc-object'; key: string | undefined; streamed: boolean; obj: Dict }
  | { kind: 'doc-array'; index: number }
  | { kind: 'tables'; index: number }
  | TableFrame
  | { kind: 'rows'; table: TableFrame; index: number }
  | { kind: 'records'; index: number };

const isStart = (t: Token): boolean => t.name === 'startObject' || t.name === 'startArray';
const isEnd = (t: Token): boolean => t.name === 'endObject' || t.name === 'endArray';

/**
 * Walks the token stream of one or more concatenated JSON documents. `tables[].rows[]` and
 * `records[]` are streamed element by element; any other top-level object is read whole as one record.
 */
class DocumentWalker {
  private readonly frames: Frame[] = [];
  private capture: { asm: Assembler; position: string; done: (v: unknown) => void } | undefined;
  private skipDepth = 0;
  private doc = 0;
  out: ActivityEvent[] = [];

  /** `base` prefixes positions: the line number when the document is one JSON Lines line. */
  constructor(
    private readonly sink: Sink,
    private readonly base: string,
  ) {}

  private path(p: string): string {
    return at(this.base, this.doc === 0 ? p : `doc${this.doc + 1}:${p}`);
  }

  /** Where the walker is, for reporting a parse error. */
  position(): string {
    if (this.capture) return this.capture.position;
    const f = this.frames[this.frames.length - 1];
    switch (f?.kind) {
      case undefined:
        return this.path('document');
      case 'doc-object':
        return this.path(f.key === undefined ? 'document' : f.key);
      case 'doc-array':
        return this.path(`[${f.index}]`);
      case 'tables':
        return this.path(`tables[${f.index}]`);
      case 'table':
        return this.path(`tables[${f.index}]${f.key === undefined ? '' : `.${f.key}`}`);
      case 'rows':
        return this.path(`tables[${f.table.index}].rows[${f.index}]`);
      case 'records':
        return this.path(`records[${f.index}]`);
    }
  }

  private value(t: Token, position: string, done: (v: unknown) => void): void {
    if (!isStart(t)) {
      done(scalar(t));
      return;
    }
    const asm = new Assembler();
    asm.consume(t);
    this.capture = { asm, position, done };
  }

  private ignore(t: Token): void {
    if (isStart(t)) this.skipDepth = 1;
  }

  private emit(ev: ActivityEvent | undefined): void {
    if (ev) this.out.push(ev);
  }

  /** Takes one token: into the value being captured, the value being skipped, or the innermost frame. */
  feed(t: Token): void {
    if (this.capture) {
      this.feedCapture(this.capture, t);
      return;
    }
    if (this.skipDepth > 0) {
      if (isStart(t)) this.skipDepth++;
      else if (isEnd(t)) this.skipDepth--;
      return;
    }
    const f = this.frames[this.frames.length - 1];
    if (!f) {
      this.startDocument(t);
      return;
    }
    switch (f.kind) {
      case 'doc-object':
        this.inDocumentObject(f, t);
        break;
      case 'doc-array':
        this.inDocumentArray(f, t);
        break;
      case 'tables':
        this.inTables(f, t);
        break;
      case 'table':
        this.inTable(f, t);
        break;
      case 'rows':
        this.inRows(f, t);
        break;
      case 'records':
        this.inRecords(f, t);
        break;
    }
  }

  /** One token of a value being assembled: done when it closes, dropped when over the record budgets. */
  private feedCapture(c: NonNullable<DocumentWalker['capture']>, t: Token): void {
    if (c.asm.consume(t)) {
      this.capture = undefined;
      c.done(c.asm.value);
    } else if (c.asm.tooBig !== undefined) {
      // Over the record budgets: dropped now (its memory with it), the rest of it skipped token by token.
      this.capture = undefined;
      this.skipDepth = c.asm.depth;
      this.sink.skipUnattributed('invalid-json', c.position, c.asm.tooBig);
    }
  }

  /** The first token of a document: an object or array opens a frame, a scalar is a (bad) record of its own. */
  private startDocument(t: Token): void {
    if (t.name === 'startObject')
      this.frames.push({ kind: 'doc-object', key: undefined, streamed: false, obj: {} });
    else if (t.name === 'startArray') this.frames.push({ kind: 'doc-array', index: 0 });
    else {
      this.emit(singleEvent(scalar(t), this.path('document'), this.sink, 'azure-activity-jsonl'));
      this.doc++;
    }
  }

  /** A top-level object: `tables` and `records` are streamed, any other key is read whole as one record. */
  private inDocumentObject(f: Extract<Frame, { kind: 'doc-object' }>, t: Token): void {
    if (t.name === 'keyValue') {
      f.key = t.value ?? '';
    } else if (t.name === 'endObject') {
      this.frames.pop();
      if (f.streamed) warnPartialResult(f.obj, this.sink);
      else
        for (const ev of valueEvents(f.obj, this.path('document'), this.sink, 'azure-activity-jsonl'))
          this.emit(ev);
      this.doc++;
    } else if ((f.key === 'tables' || f.key === 'records') && t.name === 'startArray') {
      f.streamed = true;
      this.frames.push({ kind: f.key, index: 0 });
    } else {
      const key = f.key ?? '';
      this.value(t, this.path(key), (v) => setKey(f.obj, key, v));
    }
  }

  /** A top-level array: each element is read whole as one record (or a list of them). */
  private inDocumentArray(f: Extract<Frame, { kind: 'doc-array' }>, t: Token): void {
    if (t.name === 'endArray') {
      this.frames.pop();
      this.doc++;
      return;
    }
    const position = this.path(`[${f.index++}]`);
    this.value(t, position, (v) => {
      for (const ev of valueEvents(v, position, this.sink, 'azure-activity-jsonl')) this.emit(ev);
    });
  }

  /** A Log Analytics response's `tables` array: each object opens a table, anything else is skipped. */
  private inTables(f: Extract<Frame, { kind: 'tables' }>, t: Token): void {
    if (t.name === 'endArray') this.frames.pop();
    else if (t.name === 'startObject')
      this.frames.push({ kind: 'table', index: f.index++, key: undefined, columns: undefined });
    else {
      f.index++;
      this.ignore(t);
    }
  }

  /** One table: its `columns` read whole, its `rows` streamed, the rest skipped. */
  private inTable(f: TableFrame, t: Token): void {
    if (t.name === 'keyValue') f.key = t.value;
    else if (t.name === 'endObject') this.frames.pop();
    else if (f.key === 'columns')
      this.value(t, this.path(`tables[${f.index}].columns`), (v) => (f.columns = columnNames(v)));
    else if (f.key === 'rows' && t.name === 'startArray')
      this.frames.push({ kind: 'rows', table: f, index: 0 });
    else this.ignore(t);
  }

  /** A table's rows: each read whole and mapped by the table's columns. */
  private inRows(f: Extract<Frame, { kind: 'rows' }>, t: Token): void {
    if (t.name === 'endArray') {
      this.frames.pop();
      return;
    }
    const position = this.path(`tables[${f.table.index}].rows[${f.index++}]`);
    this.value(t, position, (v) => this.emit(laRowEvent(f.table.columns, v, position, this.sink)));
  }

  /** A diagnostic setting's `records` array: each element read whole as one record. */
  private inRecords(f: Extract<Frame, { kind: 'records' }>, t: Token): void {
    if (t.name === 'endArray') {
      this.frames.pop();
      return;
    }
    const position = this.path(`records[${f.index++}]`);
    this.value(t, position, (v) => this.emit(singleEvent(v, position, this.sink, 'diagnostic-records')));
  }
}

/**
 * Absolute nesting the JSON parser is ever given: a record's budget (MAX_DEPTH) plus room for the wrappers
 * (`{"records":[`, `{"tables":[{"rows":[[`). The parser keeps a stack entry per level, so a 48 MB run of `[`
 * would cost it hundreds of MB before the walker could drop the record.
 */
const PARSER_DEPTH = MAX_DEPTH + 16;

/**
 * Cuts JSON text nested deeper than `max` before it reaches the parser: a value that would open level max+1 is
 * replaced by `0` and everything inside it is dropped. The text stays valid JSON, and the record holding it still
 * nests deeper than MAX_DEPTH, so the walker skips it as such. Streams: state carries across chunks; chunks with
 * nothing to cut are passed on as they are.
 */
export class DepthLimiter {
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Levels being dropped (0: copying). */
  private dropping = 0;

  constructor(private readonly max: number) {}

  filter(chunk: Buffer): Buffer {
    let out: Buffer | undefined; // allocated at the first byte changed (never longer than the input)
    let o = 0;
    // Inside strings (most of the bytes) jump to the next quote or backslash, found natively and remembered.
    let nextQuote = -1;
    let nextSlash = -1;
    const keep = (from: number, to: number): void => {
      if (out !== undefined && this.dropping === 0 && to > from) {
        chunk.copy(out, o, from, to);
        o += to - from;
      }
    };
    let i = 0;
    while (i < chunk.length) {
      if (this.dropping > 0 && out === undefined) {
        // Dropping (from here, or since an earlier chunk): the output differs from the input from here on.
        out = Buffer.allocUnsafe(chunk.length);
        chunk.copy(out, 0, 0, i);
        o = i;
      }
      if (this.inString && !this.escaped) {
        if (nextQuote < i) nextQuote = indexOrEnd(chunk, 0x22, i);
        if (nextSlash < i) nextSlash = indexOrEnd(chunk, 0x5c, i);
        const stop = Math.min(nextQuote, nextSlash);
        keep(i, Math.min(stop + 1, chunk.length));
        if (stop < chunk.length) {
          if (stop === nextQuote) this.inString = false;
          else this.escaped = true;
        }
        i = stop + 1;
        continue;
      }
      const c = chunk[i]!;
      let emit: number | undefined = this.dropping > 0 ? undefined : c;
      if (this.escaped) this.escaped = false;
      else if (c === 0x22) this.inString = true;
      else if (c === 0x5b || c === 0x7b) {
        if (this.dropping > 0) this.dropping++;
        else if (this.depth >= this.max) {
          this.dropping = 1;
          emit = 0x30; // '0' in place of the value
        } else this.depth++;
      } else if (c === 0x5d || c === 0x7d) {
        if (this.dropping > 0) this.dropping--;
        else this.depth = Math.max(0, this.depth - 1);
      }
      if (out === undefined && emit !== c) {
        out = Buffer.allocUnsafe(chunk.length);
        chunk.copy(out, 0, 0, i);
        o = i;
      }
      if (out !== undefined && emit !== undefined) out[o++] = emit;
      i++;
    }
    return out === undefined ? chunk : out.subarray(0, o);
  }
}

const indexOrEnd = (buf: Buffer, byte: number, from: number): number => {
  const at = buf.indexOf(byte, from);
  return at < 0 ? buf.length : at;
};

type Parsed = { items: Token[]; error?: Error };

function newJsonParser(): { write(chunk: Buffer): Parsed; end(): Parsed } {
  // jsonStreaming: several documents may follow each other (e.g. pretty-printed `{"records":…}` objects).
  // Packed values only: the walker never needs partial strings.
  const parser = new SyncTransform<Token>(
    () => new JsonParser({ jsonStreaming: true, packValues: true, streamValues: false }),
  );
  const limiter = new DepthLimiter(PARSER_DEPTH);
  return { write: (chunk) => parser.write(limiter.filter(chunk)), end: () => parser.end() };
}

/** Feeds parser output to the walker; false once the parser failed (reported as one bad record). */
function* walk(
  walker: DocumentWalker,
  r: { items: Token[]; error?: Error },
  sink: Sink,
): Generator<ActivityEvent, boolean> {
  for (const t of r.items) walker.feed(t);
  const out = walker.out;
  walker.out = [];
  yield* out;
  if (r.error) {
    // The parser cannot resynchronise inside a document: everything before the error has been
    // delivered, the rest is lost and counted as one bad record.
    sink.skipUnattributed('invalid-json', walker.position(), r.error.message);
    return false;
  }
  return true;
}

async function* readJsonDocuments(chunks: AsyncIterable<Buffer>, sink: Sink): AsyncGenerator<ActivityEvent> {
  const parser = newJsonParser();
  const walker = new DocumentWalker(sink, '');
  for await (const chunk of chunks) {
    if (!(yield* walk(walker, parser.write(chunk), sink))) return;
  }
  yield* walk(walker, parser.end(), sink);
}

/** Salvages the complete records of a torn wrapper line, e.g. an Event Hub capture cut mid-batch. */
function* salvageLine(line: Buffer, base: string, sink: Sink): Generator<ActivityEvent> {
  const parser = newJsonParser();
  const walker = new DocumentWalker(sink, base);
  // Fed in slices so a long line never turns into one huge token array.
  for (let i = 0; i < line.length; i += READ_CHUNK) {
    if (!(yield* walk(walker, parser.write(line.subarray(i, i + READ_CHUNK)), sink))) return;
  }
  yield* walk(walker, parser.end(), sink);
}

// ---------------------------------------------------------------------------------------------------
// CSV (portal export or hand-made)

type CsvItem = { fields: string[]; line: number } | { error: string; line: number };

/** `TimeGenerated [UTC]` → name and offset of the zone the portal rendered the times in. */
function csvHeader(raw: string, sink: Sink): { name: string; offsetMs: number } {
  const m = /^(.*?)\s*\[([^\]]*)\]\s*$/.exec(raw);
  if (!m) return { name: raw.trim(), offsetMs: 0 };
  const name = m[1] ?? '';
  const zone = (m[2] ?? '').trim();
  if (/^(?:UTC|GMT|Z)$/i.test(zone)) return { name, offsetMs: 0 };
  const z = /^(?:UTC|GMT)\s*([+-])(\d{1,2})(?::?(\d{2}))?$/i.exec(zone);
  if (z) {
    const sign = z[1] === '-' ? -1 : 1;
    return { name, offsetMs: sign * (Number(z[2]) * 60 + Number(z[3] ?? 0)) * 60_000 };
  }
  sink.warnOnce(`zone:${zone}`, `column "${raw}" has an unknown time zone; its times are read as UTC`);
  return { name, offsetMs: 0 };
}

async function* readCsv(chunks: AsyncIterable<Buffer>, sink: Sink): AsyncGenerator<ActivityEvent> {
  // Start line of each record = end line of the previous one + 1 + empty lines skipped in between.
  let lastEnd = 0;
  let lastEmpty = 0;
  const options: CsvOptions<CsvItem, string[]> = {
    relax_column_count: true, // wrong field counts are reported per record below, with their line
    relax_quotes: true, // a stray quote inside a field must not desynchronise the rest of the file
    skip_records_with_error: true,
    skip_empty_lines: true,
    bom: true,
    max_record_size: MAX_CSV_RECORD_CHARS,
    on_record: (record, ctx) => {
      const line = lastEnd + 1 + (ctx.empty_lines - lastEmpty);
      lastEnd = ctx.lines;
      lastEmpty = ctx.empty_lines;
      return { fields: record, line };
    },
  };
  const csv = new SyncTransform<CsvItem>(
    (add) =>
      // The constructor's declared options type fixes records to string[]; on_record maps them to CsvItem.
      new CsvParser({
        ...(options as unknown as CsvOptions),
        on_skip: (err): undefined => {
          add({ error: err?.message ?? 'unreadable CSV record', line: lastEnd + 1 });
          if (typeof err?.lines === 'number') lastEnd = err.lines;
          return undefined;
        },
      }),
  );

  let header: Array<{ name: string; offsetMs: number }> | undefined;
  let eventDataIdCol = -1;

  const handle = (item: CsvItem): ActivityEvent | undefined => {
    if ('error' in item) {
      sink.seen('portal-csv');
      sink.skip('invalid-csv', String(item.line), undefined, item.error);
      return undefined;
    }
    if (!header) {
      header = item.fields.map((h) => csvHeader(h, sink));
      eventDataIdCol = header.findIndex((h) => h.name === 'EventDataId');
      return undefined;
    }
    sink.seen('portal-csv');
    const { fields, line } = item;
    if (fields.length !== header.length) {
      sink.skip(
        'invalid-csv',
        String(line),
        (eventDataIdCol >= 0 ? fields[eventDataIdCol] : undefined) || undefined,
        `expected ${header.length} fields, found ${fields.length}`,
      );
      return undefined;
    }
    const row: Dict = {};
    for (let i = 0; i < header.length; i++) {
      const h = header[i];
      const v = fields[i] ?? '';
      if (!h) continue;
      if (h.offsetMs !== 0 && v !== '') {
        const ms = parseActivityTime(v);
        row[h.name] = Number.isNaN(ms) ? v : new Date(ms - h.offsetMs);
      } else {
        row[h.name] = v;
      }
    }
    return sink.accept(normaliseActivityRow(row), String(line));
  };

  function* run(r: { items: CsvItem[]; error?: Error }): Generator<ActivityEvent, boolean> {
    for (const item of r.items) {
      const ev = handle(item);
      if (ev) yield ev;
    }
    if (r.error) {
      sink.skipUnattributed('invalid-csv', String(lastEnd + 1), r.error.message);
      return false;
    }
    return true;
  }

  for await (const chunk of chunks) {
    if (!(yield* run(csv.write(chunk)))) return;
  }
  yield* run(csv.end());
}

// ---------------------------------------------------------------------------------------------------
// Opening, decompressing and sniffing

type Layout = 'jsonl' | 'json-document' | 'csv' | 'empty' | 'unknown';

const WS = new Set([0x20, 0x09, 0x0d, 0x0a]);

function firstContentIndex(buf: Buffer): number {
  let i = 0;
  while (i < buf.length && WS.has(buf[i] ?? 0)) i++;
  return i;
}

/**
 * Decides the layout from the first line. A JSON Lines line is a whole value, so it ends with `}`
 * (or mid-token when the line is torn); the first line of a pretty-printed or one-record-per-line
 * document is an opening fragment ending with `{`, `[` or `,`. A first line longer than the sniff
 * window can only be streamed, so it is a document if it starts like one.
 */
function detectLayout(head: Buffer, ended: boolean): Layout {
  const start = firstContentIndex(head);
  // Megabytes of leading blank lines are no reason to give up: the line reader copes with anything.
  if (start >= head.length) return ended ? 'empty' : 'jsonl';
  const nl = head.indexOf(10, start);
  const firstLine = head.toString('utf8', start, nl < 0 ? head.length : nl).trim();
  if (firstLine.startsWith('[')) return 'json-document';
  if (firstLine.startsWith('{')) {
    if (nl < 0 && !ended) return /^\{\s*"(?:tables|records)"/.test(firstLine) ? 'json-document' : 'jsonl';
    return /[{[,]$/.test(firstLine) ? 'json-document' : 'jsonl';
  }
  if (/OperationNameValue|\$table|TimeGenerated/.test(firstLine) && firstLine.includes(',')) return 'csv';
  return 'unknown';
}

async function openSource(path: string): Promise<Readable> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`Activity log file not found: ${path}`, { cause: e });
    throw new Error(`Cannot open activity log file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let gzip: boolean;
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await fh.read(magic, 0, 2, 0);
    // Magic bytes rather than the file name: archives are often renamed or served without `.gz`.
    gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } catch (e) {
    await fh.close();
    throw new Error(`Cannot read activity log file ${path}: ${(e as Error).message}`, { cause: e });
  }
  const raw = fh.createReadStream({ start: 0, highWaterMark: READ_CHUNK });
  if (!gzip) return raw;
  // Z_SYNC_FLUSH: a truncated archive yields everything up to the cut instead of failing outright;
  // the torn last record is then reported by the format reader like any other bad record.
  return pipeline(
    raw,
    createGunzip({ finishFlush: zlibConstants.Z_SYNC_FLUSH, chunkSize: READ_CHUNK }),
    () => {},
  );
}

function isZlibError(e: unknown): e is Error {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * Reads Activity Log events from one file in any supported format (optionally gzip-compressed),
 * streaming with bounded memory. Bad records are counted in `stats` and skipped; only an unreadable
 * file (missing, permission, I/O error) throws.
 */
export async function* readActivityFile(
  path: string,
  stats: ReadStats,
  opts: ReadOptions = {},
): AsyncGenerator<ActivityEvent> {
  const sink = new Sink(path, stats, opts);
  const stream = await openSource(path);
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let corrupt: Error | undefined;

  // Decompression failures end the data like a truncation would (the records read so far stay valid).
  const next = async (): Promise<IteratorResult<Buffer>> => {
    try {
      return await it.next();
    } catch (e) {
      if (!isZlibError(e))
        throw new Error(`Cannot read activity log file ${path}: ${(e as Error).message}`, { cause: e });
      corrupt = e;
      return { done: true, value: undefined };
    }
  };

  try {
    const head: Buffer[] = [];
    let headBytes = 0;
    let ended = false;
    let buf: Buffer = Buffer.alloc(0);
    for (;;) {
      const r = await next();
      if (r.done) {
        ended = true;
        break;
      }
      head.push(r.value);
      headBytes += r.value.length;
      buf = head.length === 1 ? r.value : Buffer.concat(head, headBytes);
      const start = firstContentIndex(buf);
      if (headBytes >= SNIFF_LIMIT || (start < buf.length && buf.indexOf(10, start) >= 0)) break;
    }
    // A UTF-8 byte order mark (common in CSV exports) is not content for any of the parsers.
    if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    const layout = detectLayout(buf, ended);

    const chunks = async function* (): AsyncGenerator<Buffer> {
      if (buf.length) yield buf;
      if (ended) return;
      for (;;) {
        const r = await next();
        if (r.done) return;
        yield r.value;
      }
    };

    switch (layout) {
      case 'empty':
        break;
      case 'jsonl':
        yield* readJsonLines(chunks(), sink);
        break;
      case 'json-document':
        yield* readJsonDocuments(chunks(), sink);
        break;
      case 'csv':
        yield* readCsv(chunks(), sink);
        break;
      case 'unknown': {
        const start = firstContentIndex(buf);
        const preview = buf.toString('utf8', start, Math.min(buf.length, start + 60)).split('\n')[0] ?? '';
        sink.skipUnattributed('unknown-format', '1', `unrecognised content: ${JSON.stringify(preview)}`);
        break;
      }
    }
    if (corrupt) {
      const reason: SkipReason = layout === 'csv' ? 'invalid-csv' : 'invalid-json';
      sink.skipUnattributed(reason, 'end', `decompression failed: ${corrupt.message}`);
    }
  } finally {
    // Also runs when the consumer stops early: release the file descriptor and zlib state.
    stream.destroy();
  }
}

/**
 * Reads several files one after the other into the same stats. Every path is checked before the
 * first event is produced so a typo fails fast instead of after minutes of reading.
 */
export async function* readActivityFiles(
  paths: readonly string[],
  stats: ReadStats,
  opts: ReadOptions = {},
): AsyncGenerator<ActivityEvent> {
  for (const p of paths) {
    try {
      await access(p);
    } catch (e) {
      throw new Error(`Activity log file not found or not readable: ${p}`, { cause: e });
    }
  }
  for (const p of paths) yield* readActivityFile(p, stats, opts);
}
