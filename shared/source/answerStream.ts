/**
 * The Log Analytics query answer, parsed as it arrives: every row of every table is handed to a handler as soon
 * as its bytes are in, so the answer never exists whole (as text, as parsed JSON and as the client's rows at
 * once: about 270 MB of heap for a 24 MB answer). Everything but the rows (table names, columns, a partial
 * error, statistics) is kept and given back to the client as a small answer of the same shape with empty rows,
 * so LogsQueryClient still decides success and partial failure, and its pipeline still authenticates, retries
 * and logs the request exactly as before (installAnswerStreaming).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

import { type Pipeline, type PipelinePolicy, RestError } from '@azure/core-rest-pipeline';

/** Receives the rows of one answer; `fields` are the table's members parsed so far (name, columns). */
export interface RowHandler {
  row(table: number, row: unknown, fields: Readonly<Record<string, unknown>>): void;
}

/** One answer's tables without their rows, and how many rows each had. */
export interface AnswerTables {
  tables: { fields: Record<string, unknown>; rows: number }[];
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;

/** Nesting the parser walks into instead of parsing whole: the answer, its tables, a table, a table's rows. */
type Level = 'answer' | 'tables' | 'table' | 'rows';
type State = 'keyOrEnd' | 'key' | 'colon' | 'value' | 'valueOrEnd' | 'commaOrEnd';
interface Frame {
  level: Level;
  state: State;
  key: string;
}

/** End (exclusive) of the string starting at `at` (a quote), or -1 when it is not all in `buf` yet. */
function stringEnd(buf: Uint8Array, at: number): number {
  for (let i = at + 1; i < buf.length; i++) {
    const b = buf[i];
    if (b === BACKSLASH) i++;
    else if (b === QUOTE) return i + 1;
  }
  return -1;
}

/** End (exclusive) of the JSON value starting at `at`, or -1 when it is not all in `buf` yet. */
function valueEnd(buf: Uint8Array, at: number, final: boolean): number {
  const first = buf[at];
  if (first === QUOTE) return stringEnd(buf, at);
  if (first === OPEN_OBJ || first === OPEN_ARR) {
    let depth = 0;
    for (let i = at; i < buf.length; i++) {
      const b = buf[i];
      if (b === QUOTE) {
        i = stringEnd(buf, i) - 1;
        if (i < 0) return -1;
      } else if (b === OPEN_OBJ || b === OPEN_ARR) depth++;
      else if ((b === CLOSE_OBJ || b === CLOSE_ARR) && --depth === 0) return i + 1;
    }
    return -1;
  }
  let i = at;
  while (i < buf.length) {
    const b = buf[i]!;
    if (b === COMMA || b === CLOSE_ARR || b === CLOSE_OBJ || WS.has(b)) return i;
    i++;
  }
  return final ? i : -1;
}

/** Which member or element is walked into rather than parsed whole, and the level it opens. */
function descend(frame: Frame | undefined): { level: Level; open: number } | undefined {
  if (frame === undefined) return { level: 'answer', open: OPEN_OBJ };
  if (frame.level === 'answer' && frame.key === 'tables') return { level: 'tables', open: OPEN_ARR };
  if (frame.level === 'tables') return { level: 'table', open: OPEN_OBJ };
  if (frame.level === 'table' && frame.key === 'rows') return { level: 'rows', open: OPEN_ARR };
  return undefined;
}

/**
 * A push parser of one answer: `write` each chunk, then `end`. Malformed JSON throws a SyntaxError. Rows are
 * JSON.parsed one by one from their own bytes; anything else is kept whole (`top`, `tables`).
 */
export class AnswerParser {
  readonly top: Record<string, unknown> = {};
  readonly tables: AnswerTables['tables'] = [];
  /** Whether `tables` was an array walked into (else it is in `top`, as sent). */
  tablesStreamed = false;
  bytes = 0;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly stack: Frame[] = [];
  private done = false;

  constructor(private readonly handler: RowHandler) {}

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    while (this.step(false));
  }

  end(): void {
    while (this.step(true));
    if (!this.done) throw new SyntaxError(`Unexpected end of JSON input after ${this.bytes} bytes`);
  }

  /** One token or value; false when the buffer holds no more whole ones. */
  private step(final: boolean): boolean {
    const buf = this.buf;
    while (this.pos < buf.length && WS.has(buf[this.pos]!)) this.pos++;
    if (this.pos >= buf.length) return false;
    const c = buf[this.pos]!;
    if (this.done) throw this.unexpected(c);
    const frame = this.stack.at(-1);
    if (frame === undefined) return this.value(frame, final);
    switch (frame.state) {
      case 'keyOrEnd':
      case 'key': {
        if (c === CLOSE_OBJ && frame.state === 'keyOrEnd') return this.close();
        if (c !== QUOTE) throw this.unexpected(c);
        const end = stringEnd(buf, this.pos);
        if (end < 0) return false;
        frame.key = JSON.parse(buf.toString('utf8', this.pos, end)) as string;
        this.pos = end;
        frame.state = 'colon';
        return true;
      }
      case 'colon':
        if (c !== COLON) throw this.unexpected(c);
        this.pos++;
        frame.state = 'value';
        return true;
      case 'valueOrEnd':
        if (c === CLOSE_ARR) return this.close();
        return this.value(frame, final);
      case 'value':
        return this.value(frame, final);
      case 'commaOrEnd':
        if (c === COMMA) {
          this.pos++;
          frame.state = frame.level === 'answer' || frame.level === 'table' ? 'key' : 'value';
          return true;
        }
        if (c === (frame.level === 'answer' || frame.level === 'table' ? CLOSE_OBJ : CLOSE_ARR))
          return this.close();
        throw this.unexpected(c);
    }
  }

  /** A value in `frame`: walked into (answer, tables, a table, rows) or parsed whole and kept or handed over. */
  private value(frame: Frame | undefined, final: boolean): boolean {
    const buf = this.buf;
    const into = descend(frame);
    if (into !== undefined && buf[this.pos] === into.open) {
      if (frame) frame.state = 'commaOrEnd';
      this.pos++;
      if (into.level === 'tables') this.tablesStreamed = true;
      if (into.level === 'table') this.tables.push({ fields: {}, rows: 0 });
      const isObject = into.open === OPEN_OBJ;
      this.stack.push({ level: into.level, state: isObject ? 'keyOrEnd' : 'valueOrEnd', key: '' });
      return true;
    }
    if (frame === undefined) throw this.unexpected(buf[this.pos]!);
    const end = valueEnd(buf, this.pos, final);
    if (end < 0) return false;
    const text = buf.toString('utf8', this.pos, end);
    this.pos = end;
    frame.state = 'commaOrEnd';
    const value: unknown = JSON.parse(text);
    const table = this.tables.at(-1);
    if (frame.level === 'rows' && table) {
      table.rows += 1;
      this.handler.row(this.tables.length - 1, value, table.fields);
    } else if (frame.level === 'table' && table) table.fields[frame.key] = value;
    else if (frame.level === 'answer') this.top[frame.key] = value;
    else throw new SyntaxError('a table of the answer is not an object');
    return true;
  }

  private close(): boolean {
    this.pos++;
    this.stack.pop();
    if (this.stack.length === 0) this.done = true;
    return true;
  }

  private unexpected(c: number): SyntaxError {
    return new SyntaxError(
      `Unexpected ${JSON.stringify(String.fromCharCode(c))} in JSON at byte ${this.bytes - this.buf.length + this.pos}`,
    );
  }

  /** The answer as the client would have parsed it, with every table's rows left out. */
  skeleton(): string {
    const tables = this.tablesStreamed ? { tables: this.tables.map((t) => ({ rows: [], ...t.fields })) } : {};
    return JSON.stringify({ ...this.top, ...tables });
  }
}

/** A query whose answer is to be streamed: each HTTP answer gets a fresh handler; the last one is the answer. */
export interface StreamedQuery {
  begin(): RowHandler;
  /** Set when the answer was streamed: its tables without rows. */
  answer?: AnswerParser;
}

const current = new AsyncLocalStorage<StreamedQuery>();
const POLICY_NAME = 'unusualCityStreamedAnswer';

/** Runs `send` (one LogsQueryClient call) with its 200 answer streamed to `query` instead of buffered. */
export function withStreamedAnswer<T>(query: StreamedQuery, send: () => Promise<T>): Promise<T> {
  return current.run(query, send);
}

/**
 * Adds the streaming policy to a client's pipeline (once). It acts only inside withStreamedAnswer: the 200
 * answer is read as a stream into the query's handler and replaced by its skeleton; any other answer, and any
 * request outside withStreamedAnswer, passes through untouched. A failure while reading the body is the error
 * the client's HTTP layer gives for it (RestError PARSE_ERROR; an abort stays an abort).
 */
export function installAnswerStreaming(pipeline: Pipeline): void {
  if (pipeline.getOrderedPolicies().some((p) => p.name === POLICY_NAME)) return;
  const policy: PipelinePolicy = {
    name: POLICY_NAME,
    sendRequest: async (request, next) => {
      const query = current.getStore();
      if (query === undefined) return next(request);
      const before = request.streamResponseStatusCodes;
      request.streamResponseStatusCodes = new Set([200]);
      const response = await next(request).finally(() => {
        request.streamResponseStatusCodes = before;
      });
      const body = response.readableStreamBody;
      if (body === undefined) return response;
      const parser = new AnswerParser(query.begin());
      try {
        for await (const chunk of body) parser.write(chunk as Buffer);
        parser.end();
      } catch (e) {
        body.resume();
        if (e instanceof Error && e.name === 'AbortError') throw e;
        const read = !(e instanceof SyntaxError);
        throw new RestError(
          read
            ? `Error reading response as text: ${e instanceof Error ? e.message : String(e)}`
            : `Error "${String(e)}" occurred while parsing the response body.`,
          {
            code: RestError.PARSE_ERROR,
            ...(read ? {} : { statusCode: response.status, request, response }),
          },
        );
      }
      query.answer = parser;
      return {
        ...response,
        readableStreamBody: undefined,
        bodyAsText: parser.bytes === 0 ? '' : parser.skeleton(),
      };
    },
  };
  pipeline.addPolicy(policy, { afterPhase: 'Sign' });
}
