/**
 * HTTP for registries on Node's fetch: redirects followed by hand so that Authorization never
 * reaches another origin (blob downloads redirect to CDNs), and retries with exponential backoff
 * on network errors, 5xx and 429, honouring Retry-After.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { RegistryError } from '../../errors';
import { log } from '../../log';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  /** The longest wait between tries; a Retry-After beyond it fails the request at once. */
  maxDelayMs: number;
}

/** The registry could not be reached, or the connection broke, through every try. */
export class ConnectionError extends RegistryError {}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 60_000 };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** A GET that follows redirects, dropping Authorization when one leaves the origin. */
export async function get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  const sent = { ...headers };
  for (let hops = 0; ; hops++) {
    const res = await fetch(url, { headers: sent, redirect: 'manual', signal });
    if (!REDIRECTS.has(res.status)) return res;
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location || hops >= MAX_REDIRECTS) throw new RegistryError(`${url} redirected ${location ? 'too many times' : 'without a Location'}`);
    const next = new URL(location, url);
    if (next.origin !== new URL(url).origin) delete sent.authorization;
    url = next.href;
  }
}

/** Statuses worth another try: the registry or a proxy is overloaded or briefly down. */
function retryable(status: number): boolean {
  return status === 429 || status === 408 || status >= 500;
}

/** What went wrong on the wire, from fetch's nested causes: `ECONNREFUSED 127.0.0.1:5000`. */
export function describeNetworkError(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as (Error & { code?: string; cause?: unknown }) | undefined; e; e = e.cause as typeof e) {
    if (e.message && e.message !== 'fetch failed') parts.push(e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message);
  }
  return parts.join(': ') || String(err);
}

/** The wait a Retry-After header asks for (seconds or an HTTP date), in ms. */
export function retryAfterMs(res: Response): number | undefined {
  const value = res.headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The registry's own explanation (`{"errors":[{"code","message"}]}`), or the status text. */
export async function errorText(res: Response): Promise<string> {
  const body = await res.text().catch(() => '');
  try {
    const errors = (JSON.parse(body) as { errors?: { code?: string; message?: string }[] }).errors;
    if (Array.isArray(errors) && errors.length) return errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
  } catch {
    // not the registry's JSON: a proxy's page, say
  }
  return `${res.status} ${res.statusText}`.trim();
}

/**
 * Calls `attempt` until it gives a response that is not worth retrying, or the tries run out:
 * then the last retryable response is returned (the caller words the error) or the last network
 * error thrown as a RegistryError.
 */
export async function withRetries(policy: RetryPolicy, what: string, signal: AbortSignal | undefined, attempt: () => Promise<Response>): Promise<Response> {
  for (let n = 1; ; n++) {
    let res: Response | undefined;
    let failure: unknown;
    try {
      res = await attempt();
    } catch (err) {
      if (signal?.aborted || err instanceof RegistryError) throw err;
      failure = err;
    }
    if (res && !retryable(res.status)) return res;
    const asked = res ? retryAfterMs(res) : undefined;
    const delay = asked ?? Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1) * (0.75 + Math.random() / 2));
    if (n >= policy.attempts || delay > policy.maxDelayMs) {
      if (res) return res;
      throw new ConnectionError(`${what} failed: ${describeNetworkError(failure)}`, { cause: failure });
    }
    log.info({ what, status: res?.status, error: failure && describeNetworkError(failure), delay }, 'registry request failed; retrying');
    await res?.body?.cancel();
    await sleep(delay, undefined, { signal });
  }
}
