/**
 * HTTP client for the Juno state API, shared by the JupyterLab panel and the
 * standalone dashboard page. The transport is injected so the lab can route
 * requests through `ServerConnection.makeRequest` (Jupyter auth, XSRF) and the
 * page through plain same-origin `fetch` (cookie auth).
 */

import type {
  ActorsPayload,
  ConnectionInfo,
  LogsPayload,
  NodesPayload,
  PlacementGroupsPayload,
  Summary,
  TasksPayload,
  WorkersPayload
} from './types';

/** The subset of `Response` the client reads. */
export interface ResponseLike {
  ok: boolean;
  status: number;
  statusText?: string;
  text(): Promise<string>;
}

export type Fetcher = (url: string, init: RequestInit) => Promise<ResponseLike>;

export type Query = Record<string, string | number | boolean | null | undefined>;

/** An API failure with the HTTP status (0 when the server could not be reached). */
export class JunoApiError extends Error {
  readonly status: number;
  readonly url: string;

  constructor(status: number, message: string, url: string) {
    super(message);
    this.name = 'JunoApiError';
    this.status = status;
    this.url = url;
  }
}

/**
 * Join a base URL (absolute or a path, with or without a trailing slash), an
 * API prefix and a route, and append the query (null/undefined values dropped).
 */
export function buildUrl(base: string, prefix: string, route: string, query: Query = {}): string {
  const parts = [base.replace(/\/+$/, ''), prefix.replace(/^\/+|\/+$/g, ''), route.replace(/^\/+/, '')];
  let url = parts.filter((p, i) => i === 0 || p !== '').join('/');
  if (!/^[a-z]+:\/\//i.test(url) && !url.startsWith('/')) {
    url = '/' + url;
  }
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined) {
      params.append(key, String(value));
    }
  }
  const qs = params.toString();
  return qs ? `${url}?${qs}` : url;
}

/** Turn a websocket base (`ws://h/base/`) or an http(s) URL into a ws(s) events URL. */
export function buildEventsUrl(wsBase: string, prefix: string, query: Query = {}): string {
  const url = buildUrl(wsBase, prefix, 'events', query);
  return url.replace(/^http(s?):\/\//i, 'ws$1://');
}

/** Read the server's `{"error": ...}` message, or describe the bare status. */
export async function errorFromResponse(response: ResponseLike, url: string): Promise<JunoApiError> {
  let body = '';
  try {
    body = await response.text();
  } catch {
    body = '';
  }
  let message = '';
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed.error === 'string') {
      message = parsed.error;
    } else if (parsed && typeof parsed.message === 'string') {
      message = parsed.message;
    }
  } catch {
    message = '';
  }
  if (!message) {
    const status = `HTTP ${response.status}${response.statusText ? ' ' + response.statusText : ''}`;
    const snippet = body
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 200);
    message = snippet ? `${status} from ${url}: ${snippet}` : `${status} from ${url}`;
    if (response.status === 401 || response.status === 403) {
      message += ' (not authorised: open the page with ?token=<cluster token>; `juno token` prints it)';
    }
  }
  return new JunoApiError(response.status, message, url);
}

export interface ApiOptions {
  /** Server base: `PageConfig`'s base URL in lab, the page's directory standalone. */
  baseUrl: string;
  /** `juno/api` in the Jupyter mount, `api` standalone. */
  prefix: string;
  fetcher: Fetcher;
  /** Cluster address sent as `?address=` (Jupyter mount only); null: the server's choice. */
  address?: string | null;
}

export class JunoApi {
  readonly baseUrl: string;
  readonly prefix: string;
  address: string | null;
  private readonly fetcher: Fetcher;

  constructor(options: ApiOptions) {
    this.baseUrl = options.baseUrl;
    this.prefix = options.prefix;
    this.fetcher = options.fetcher;
    this.address = options.address ?? null;
  }

  /** URL of a cluster route; carries `?address=` when one is chosen. */
  url(route: string, query: Query = {}): string {
    return buildUrl(this.baseUrl, this.prefix, route, { ...query, address: this.address });
  }

  /** Send a request and parse the JSON answer; throws JunoApiError on any failure. */
  async request<T>(method: string, url: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: ResponseLike;
    try {
      response = await this.fetcher(url, init);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new JunoApiError(0, `Could not reach ${url}: ${reason}. Is the server running?`, url);
    }
    if (!response.ok) {
      throw await errorFromResponse(response, url);
    }
    const text = await response.text();
    if (!text) {
      return {} as T;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new JunoApiError(response.status, `Invalid JSON from ${url}: ${text.slice(0, 200)}`, url);
    }
  }

  summary(): Promise<Summary> {
    return this.request('GET', this.url('summary'));
  }

  nodes(): Promise<NodesPayload> {
    return this.request('GET', this.url('nodes'));
  }

  tasks(limit = 100): Promise<TasksPayload> {
    return this.request('GET', this.url('tasks', { limit }));
  }

  actors(): Promise<ActorsPayload> {
    return this.request('GET', this.url('actors'));
  }

  placementGroups(): Promise<PlacementGroupsPayload> {
    return this.request('GET', this.url('placement_groups'));
  }

  workers(): Promise<WorkersPayload> {
    return this.request('GET', this.url('workers'));
  }

  logs(source: { kind: 'actor' | 'worker'; id: string }, tail = 200): Promise<LogsPayload> {
    const key = source.kind === 'actor' ? 'actor_id' : 'worker_id';
    return this.request('GET', this.url('logs', { [key]: source.id, tail }));
  }

  killActor(actorId: string, noRestart = true): Promise<{ ok: boolean }> {
    const route = `actors/${encodeURIComponent(actorId)}/kill`;
    return this.request('POST', this.url(route), { no_restart: noRestart });
  }

  /** Jupyter mount only: the connection the extension would use for this kernel. */
  getConnection(kernelId?: string | null): Promise<ConnectionInfo> {
    const url = buildUrl(this.baseUrl, this.prefix, 'connection', { kernel_id: kernelId || null });
    return this.request('GET', url);
  }

  /** Jupyter mount only: choose an address (null: back to auto-detection). */
  setConnection(address: string | null): Promise<ConnectionInfo> {
    return this.request('PUT', buildUrl(this.baseUrl, this.prefix, 'connection'), { address });
  }

  /** Jupyter mount only: `juno start --head` a local cluster and connect to it. */
  startLocalCluster(numCpus?: number): Promise<ConnectionInfo> {
    const body = numCpus === undefined ? {} : { num_cpus: numCpus };
    return this.request('POST', buildUrl(this.baseUrl, this.prefix, 'clusters'), body);
  }
}
