/**
 * bootstrapBaselines: HTTP (authLevel admin: the master key) front of the bootstrap (shared/ops/bootstrap.ts).
 *
 *   POST   /api/bootstrapBaselines[?days=N&replace=true&window=1d&by=WHO&reason=TEXT]  (or the same as a JSON body)
 *          starts the bootstrap — or resumes the unfinished one — in the background: 202 with the status and
 *          its URL (Location). 409 when it must not run (the message says why). 400 for a bad parameter.
 *   GET    /api/bootstrapBaselines   the status (200), or 404 when none was ever started.
 *   DELETE /api/bootstrapBaselines?by=WHO&reason=TEXT   cancels an unfinished bootstrap.
 *
 * The work outlives the response: it runs in this worker process, and if the process goes away (scale-in, a
 * deployment) the lease in the status row expires and the next timer run continues the bootstrap where it
 * stopped — the timer never detects while a bootstrap is unfinished.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';

import type { BaselineStore } from '../shared/baseline/store.js';
import { parseDuration } from '../shared/config/duration.js';
import { loadSettings, type Settings } from '../shared/config/settings.js';
import type { Geolocator, NetworkLocator } from '../shared/geo/types.js';
import { checkWhoAndWhy } from '../shared/ops/audit.js';
import {
  bootstrapJson,
  BootstrapRefusedError,
  cancelBootstrap,
  runBootstrap,
  startBootstrap,
} from '../shared/ops/bootstrap.js';
import { openAzureOps, type OpsClientOptions } from '../shared/ops/clients.js';
import { runStateOf } from '../shared/pipeline/runState.js';
import type { LogFn } from '../shared/pipeline/tick.js';
import type { EventSource } from '../shared/pipeline/types.js';

/** What the function needs, built once per process. */
export interface BootstrapFunctionDeps {
  settings: Settings;
  store: BaselineStore;
  source: EventSource;
  geo: { current(): Promise<{ geo: Geolocator; networks?: NetworkLocator }> };
}

export interface BootstrapHandlerOptions extends OpsClientOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Replaces the Azure clients entirely (unit tests). */
  deps?: () => Promise<BootstrapFunctionDeps>;
  clock?: () => number;
  /** Where background work logs (after the response, the invocation's context is gone). Default: console. */
  log?: LogFn;
}

export interface BootstrapHandler {
  (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit>;
  /** Resolves when the background work this handler started has stopped (tests, graceful shutdown). */
  idle(): Promise<void>;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit => ({
  status,
  jsonBody: body,
  headers: { 'Cache-Control': 'no-store', ...headers },
});

/** Parameters from the query string, overridden by a JSON body when there is one. */
async function parameters(request: HttpRequest): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of request.query.entries()) out[k] = v;
  const text = await request.text();
  if (text.trim() === '') return out;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BadRequest('the body must be JSON, e.g. {"days": 30}');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BadRequest('the body must be a JSON object, e.g. {"days": 30}');
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
  }
  return out;
}

class BadRequest extends Error {}

/** What the handler keeps across requests: its dependencies (built once) and the background work. */
interface HandlerState {
  options: BootstrapHandlerOptions;
  env: Readonly<Record<string, string | undefined>>;
  clock: () => number;
  background: LogFn;
  ready?: Promise<BootstrapFunctionDeps> | undefined;
  running?: Promise<void> | undefined;
}

/** One request as the stages that answer it see it. */
interface RequestScope {
  deps: BootstrapFunctionDeps;
  context: InvocationContext;
  statusUrl: string;
  state: HandlerState;
}

export function makeBootstrapHandler(options: BootstrapHandlerOptions = {}): BootstrapHandler {
  const state: HandlerState = {
    options,
    env: options.env ?? process.env,
    clock: options.clock ?? Date.now,
    background: options.log ?? ((level, message) => console[level === 'info' ? 'log' : level](message)),
  };
  const handler = async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const got = await dependencies(state, context);
    if ('failed' in got) return got.failed;
    const scope: RequestScope = { deps: got.deps, context, statusUrl: statusUrlOf(request), state };
    try {
      return await answer(request, scope);
    } catch (error) {
      if (error instanceof BadRequest) return json(400, { error: error.message });
      const message = error instanceof Error ? error.message : String(error);
      context.error(`bootstrapBaselines failed: ${message}`);
      return json(500, { error: message });
    }
  };
  return Object.assign(handler, {
    idle: async () => {
      while (state.running !== undefined) await state.running;
    },
  });
}

/** The dependencies, built on the first request (and again after a failure); a 500 when they cannot be. */
async function dependencies(
  state: HandlerState,
  context: InvocationContext,
): Promise<{ deps: BootstrapFunctionDeps } | { failed: HttpResponseInit }> {
  state.ready ??= (state.options.deps ?? (() => openDependencies(state)))();
  try {
    return { deps: await state.ready };
  } catch (error) {
    state.ready = undefined;
    const message = `bootstrapBaselines could not start: ${error instanceof Error ? error.message : String(error)}`;
    context.error(message);
    return { failed: json(500, { error: message }) };
  }
}

/** Settings from the environment and the Azure clients they name. */
async function openDependencies({ env, background, options }: HandlerState): Promise<BootstrapFunctionDeps> {
  const settings = loadSettings(env);
  const clients = await openAzureOps(settings, env, background, options);
  return { settings, ...clients };
}

/** The function's own URL, without the query: where the status is read. */
function statusUrlOf(request: HttpRequest): string {
  const u = new URL(request.url);
  return `${u.origin}${u.pathname}`;
}

/** GET reads the status, DELETE cancels, POST starts or resumes; other methods get 405. */
async function answer(request: HttpRequest, scope: RequestScope): Promise<HttpResponseInit> {
  const method = request.method.toUpperCase();
  if (method === 'GET') return await statusResponse(scope);
  const p = await parameters(request);
  if (method === 'DELETE') return await cancelResponse(p, scope);
  if (method !== 'POST') return json(405, { error: 'GET, POST or DELETE' }, { Allow: 'GET, POST, DELETE' });
  return await startResponse(p, scope);
}

/** GET: the bootstrap's status, or 404 when none was ever started. */
async function statusResponse({ deps, statusUrl }: RequestScope): Promise<HttpResponseInit> {
  const st = await runStateOf(deps.store).bootstrap();
  return st
    ? json(200, { bootstrap: bootstrapJson(st), statusUrl })
    : json(404, { bootstrap: null, message: 'No bootstrap has been started: POST to start one.' });
}

/** DELETE: cancels the unfinished bootstrap (who and why to the audit table); 409 when there is none. */
async function cancelResponse(
  p: Record<string, string>,
  { deps, context, statusUrl, state }: RequestScope,
): Promise<HttpResponseInit> {
  const problem = checkWhoAndWhy(p.by, p.reason);
  if (problem !== undefined) throw new BadRequest(`cancel ${problem.replace(/--(\w+)/g, '$1')}`);
  const st = await cancelBootstrap(deps.store, { by: p.by!, reason: p.reason!, atMs: state.clock() });
  if (!st) return json(409, { error: 'No unfinished bootstrap to cancel.' });
  context.log(`bootstrapBaselines: cancelled by ${p.by}`);
  return json(200, { bootstrap: bootstrapJson(st), statusUrl });
}

/** Checks POST's days, window and replace (which needs who and why); a 400 names the bad one. */
function checkStartParameters(p: Record<string, string>, s: Settings): { days: number; windowMs: number } {
  const days = p.days === undefined ? s.UC_BOOTSTRAP_DAYS : Number(p.days);
  if (!Number.isInteger(days) || days < 1 || days > 730)
    throw new BadRequest(`days must be a whole number from 1 to 730, got ${JSON.stringify(p.days)}`);
  const windowMs = p.window === undefined ? 86_400_000 : parseDuration(p.window);
  if (windowMs === undefined || windowMs < 3_600_000 || windowMs % 3_600_000 !== 0)
    throw new BadRequest(`window must be whole hours such as 6h or 1d, got ${JSON.stringify(p.window)}`);
  if (p.replace !== undefined && !/^(true|false|1|0)$/i.test(p.replace))
    throw new BadRequest('replace must be true or false');
  if (/^(true|1)$/i.test(p.replace ?? '')) {
    // Destructive: who and why go to the audit table.
    const problem = checkWhoAndWhy(p.by, p.reason);
    if (problem !== undefined) throw new BadRequest(`replace ${problem.replace(/--(\w+)/g, '$1')}`);
  }
  return { days, windowMs };
}

/** POST: starts the bootstrap (or finds the unfinished one), counts in the background; 202, or 409 if refused. */
async function startResponse(p: Record<string, string>, scope: RequestScope): Promise<HttpResponseInit> {
  const { deps, context, statusUrl, state } = scope;
  const s = deps.settings;
  const { days, windowMs } = checkStartParameters(p, s);
  let started;
  try {
    started = await startBootstrap(deps.store, {
      days,
      windowMs,
      endMs: Math.floor(state.clock() / s.UC_TICK_INTERVAL) * s.UC_TICK_INTERVAL,
      replace: /^(true|1)$/i.test(p.replace ?? ''),
      source: 'log-analytics',
      requestedBy: p.by ?? 'bootstrapBaselines (HTTP)',
      reason: p.reason ?? '',
      clock: state.clock,
    });
  } catch (error) {
    if (error instanceof BootstrapRefusedError) {
      const current = await runStateOf(deps.store).bootstrap();
      return json(409, { error: error.message, bootstrap: current ? bootstrapJson(current) : null });
    }
    throw error;
  }
  countInBackground(scope, `http:${context.invocationId}`);
  context.log(
    `bootstrapBaselines: ${started.created ? 'started' : 'resumed'} ${days} day(s) ` +
      `(${new Date(started.status.startMs).toISOString()} to ${new Date(started.status.endMs).toISOString()})`,
  );
  return json(
    202,
    { bootstrap: bootstrapJson(started.status), created: started.created, statusUrl },
    { Location: statusUrl },
  );
}

/** Counts the history after the response, unless this worker already does; a failure is logged, not thrown. */
function countInBackground({ deps, state }: RequestScope, owner: string): void {
  if (state.running !== undefined) return;
  const { background, clock } = state;
  const s = deps.settings;
  state.running = (async () => {
    const { geo, networks } = await deps.geo.current();
    const known = s.UC_NETWORKS === 'on' ? networks : undefined;
    const r = await runBootstrap(
      {
        settings: s,
        store: deps.store,
        source: deps.source,
        geo,
        ...(known ? { networks: known } : {}),
        log: background,
        clock,
      },
      { owner },
    );
    background('info', `bootstrapBaselines: background work ended: ${r.outcome}`);
  })()
    .catch((error: unknown) => {
      background(
        'error',
        `bootstrapBaselines: ${error instanceof Error ? error.message : String(error)}; ` +
          'the next timer run (or POST) continues from the last counted window',
      );
    })
    .finally(() => {
      state.running = undefined;
    });
}

export const bootstrapBaselines = makeBootstrapHandler();

app.http('bootstrapBaselines', {
  methods: ['GET', 'POST', 'DELETE'],
  authLevel: 'admin',
  handler: (request: HttpRequest, context: InvocationContext) => bootstrapBaselines(request, context),
});
