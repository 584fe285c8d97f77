/**
 * Reads Azure Resource Manager (GET only), for doctor: the Azure SDK's own HTTP pipeline (@azure/core-rest-pipeline:
 * a bearer token for the ARM audience from the process's credential, retries on 429/5xx honouring Retry-After,
 * request ids), and no management SDK package (four of them for four GETs).
 */
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createPipelineFromOptions,
  createPipelineRequest,
  type HttpClient,
  type Pipeline,
} from '@azure/core-rest-pipeline';
import type { TokenCredential } from '@azure/identity';

/** An ARM error answer: its HTTP status and ARM's `error.code` / `error.message`. */
export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'ArmError';
  }
}

/** The token scope of an ARM endpoint: its origin (https://management.azure.com/.default in the public cloud). */
export const armScope = (endpoint: string): string => `${new URL(endpoint).origin}/.default`;

/** Single quotes doubled: a value inside an OData string literal ('…'). */
export const odataString = (value: string): string => `'${value.replace(/'/g, "''")}'`;

export class ArmReader {
  private readonly pipeline: Pipeline;
  private readonly http: HttpClient = createDefaultHttpClient();
  private readonly base: URL;

  constructor(endpoint: string, credential: TokenCredential, options: { tlsCa?: string } = {}) {
    this.base = new URL(endpoint);
    this.pipeline = createPipelineFromOptions({
      retryOptions: { maxRetries: 2 },
      ...(options.tlsCa !== undefined ? { tlsOptions: { ca: options.tlsCa } } : {}),
    });
    this.pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: armScope(endpoint) }));
  }

  /** GET {endpoint}{resourceId}?api-version=…; the JSON body of a 200, else an ArmError. */
  async get<T>(resourceId: string, apiVersion: string): Promise<T> {
    return this.send<T>(this.url(resourceId, apiVersion));
  }

  /** Every `value` item of a list under `resourceId`, following nextLink (on the same endpoint only). */
  async list<T>(resourceId: string, apiVersion: string, filter?: string): Promise<T[]> {
    const items: T[] = [];
    let url: string | undefined = this.url(resourceId, apiVersion, filter);
    for (let page = 0; url !== undefined; page++) {
      if (page >= 100) throw new ArmError(0, 'TooManyPages', `more than 100 pages under ${resourceId}`);
      const body: { value?: T[]; nextLink?: string } = await this.send(url);
      items.push(...(body.value ?? []));
      url = body.nextLink ? this.sameOrigin(body.nextLink) : undefined;
    }
    return items;
  }

  private url(resourceId: string, apiVersion: string, filter?: string): string {
    // resourceId is validated at start-up (shared/config/settings.ts: names of [A-Za-z0-9._()-] only).
    const url = new URL(`${this.base.pathname.replace(/\/+$/, '')}${resourceId}`, this.base);
    url.searchParams.set('api-version', apiVersion);
    if (filter !== undefined) url.searchParams.set('$filter', filter);
    return url.toString();
  }

  /** A nextLink is followed only on the endpoint the token is for. */
  private sameOrigin(link: string): string {
    const url = new URL(link, this.base);
    if (url.origin !== this.base.origin)
      throw new ArmError(0, 'ForeignNextLink', `nextLink leaves ${this.base.origin}: ${url.origin}`);
    return url.toString();
  }

  private async send<T>(url: string): Promise<T> {
    const request = createPipelineRequest({ url, method: 'GET' });
    request.headers.set('Accept', 'application/json');
    const response = await this.pipeline.sendRequest(this.http, request);
    const text = response.bodyAsText ?? '';
    if (response.status === 200) return JSON.parse(text) as T;
    let error: { code?: unknown; message?: unknown } = {};
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
    } catch {
      // not JSON: the status says it
    }
    const code = typeof error.code === 'string' ? error.code : 'Error';
    const message = typeof error.message === 'string' ? error.message.split('\n')[0]! : text.slice(0, 200);
    throw new ArmError(response.status, code, message);
  }
}
