/**
 * Registry authentication (distribution's token.md and oauth.md): a 401's WWW-Authenticate says
 * Basic (send the credentials) or Bearer (get a token from its realm for our scope, anonymously or
 * with the credentials, and send that). Tokens are cached per process until they expire, and the
 * scheme per registry, so that later requests go authenticated at the first try.
 */
import { RegistryError } from '../../errors';
import { sha256 } from '../digest';
import { credentialsFor, dockerConfigPath, type Credentials } from './credentials';
import type { Endpoint } from './endpoint';
import { errorText, get, withRetries, type RetryPolicy } from './http';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Tokens are renewed this long before they expire, so that none expires in flight. */
const EXPIRY_MARGIN_MS = 10_000;
/** distribution's token.md: a token without expires_in lasts 60 s. */
const DEFAULT_TOKEN_SECONDS = 60;

const schemes = new Map<string, Challenge>();
const tokens = new Map<string, Promise<{ token: string; expiresAt: number }>>();

/** The challenges of a WWW-Authenticate header: `Bearer realm="...",service="..."`. */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const item = /\s*([A-Za-z][\w.-]*)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*,?/y;
  let match: RegExpExecArray | null;
  while (item.lastIndex < header.length && (match = item.exec(header))) {
    const [, key, value] = match;
    if (value === undefined) challenges.push({ scheme: key.toLowerCase(), params: {} });
    else if (challenges.length) challenges[challenges.length - 1].params[key.toLowerCase()] = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
  }
  return challenges;
}

export class Authenticator {
  private credentials?: Promise<Credentials | undefined>;

  constructor(
    private readonly endpoint: Endpoint,
    /** `repository:NAME:pull`. */
    private readonly scope: string,
    private readonly retry: RetryPolicy,
    private readonly signal?: AbortSignal,
  ) {}

  /** The Authorization header for the next request, once the registry's scheme is known. */
  async header(): Promise<string | undefined> {
    const challenge = schemes.get(this.endpoint.base);
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = await this.creds();
      if (!creds) throw this.loginNeeded();
      return 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    }
    return `Bearer ${await this.token(challenge)}`;
  }

  /**
   * Learns from a 401. Returns when the request is worth repeating (a scheme we did not know, or a
   * cached token to renew on the first refusal); otherwise throws the error that explains it.
   */
  async unauthorized(res: Response, refusedBefore: boolean): Promise<void> {
    const challenges = parseChallenges(res.headers.get('www-authenticate') ?? '');
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    const known = schemes.get(this.endpoint.base);
    const why = await errorText(res);
    if (!challenge) throw new RegistryError(`${this.host()} refused the request (${why}) without saying how to authenticate`);
    if (known?.scheme !== challenge.scheme) {
      schemes.set(this.endpoint.base, challenge);
      return;
    }
    const creds = await this.creds();
    if (challenge.scheme === 'basic') throw creds ? this.rejected(creds, why) : this.loginNeeded();
    tokens.delete(this.tokenKey(challenge, creds));
    if (!refusedBefore) return;
    if (challenge.params.error === 'insufficient_scope' || creds) throw this.accessDenied(why);
    throw this.loginNeeded();
  }

  private host(): string {
    return this.endpoint.credentialsHost;
  }

  private creds(): Promise<Credentials | undefined> {
    this.credentials ??= credentialsFor(this.endpoint.credentialsHost);
    return this.credentials;
  }

  private tokenKey(challenge: Challenge, creds: Credentials | undefined): string {
    // The secret is part of the key: a token got with other credentials is not ours to reuse.
    const who = creds ? sha256(JSON.stringify(creds)) : '';
    return [challenge.params.realm, challenge.params.service, this.scope, who].join('\n');
  }

  private async token(challenge: Challenge): Promise<string> {
    const creds = await this.creds();
    const key = this.tokenKey(challenge, creds);
    const cached = tokens.get(key);
    if (cached) {
      const { token, expiresAt } = await cached.catch(() => ({ token: '', expiresAt: 0 }));
      if (Date.now() < expiresAt) return token;
      if (tokens.get(key) === cached) tokens.delete(key);
      return this.token(challenge);
    }
    const fetching = this.fetchToken(challenge, creds);
    tokens.set(key, fetching);
    fetching.catch(() => tokens.get(key) === fetching && tokens.delete(key));
    return (await fetching).token;
  }

  private async fetchToken(challenge: Challenge, creds: Credentials | undefined): Promise<{ token: string; expiresAt: number }> {
    const { realm, service } = challenge.params;
    if (!realm) throw new RegistryError(`${this.host()} asked for a bearer token without naming a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${this.host()} named a token realm that is not a URL: ${realm}`);
    }
    const what = `getting a token for ${this.scope} from ${url.origin}`;
    const res = await withRetries(this.retry, what, this.signal, () => {
      if (creds?.identityToken) {
        // oauth.md: a stored refresh token is exchanged by POST, never sent as a password.
        const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'vmrun', scope: this.scope });
        if (service) body.set('service', service);
        return fetch(url, { method: 'POST', body, signal: this.signal });
      }
      if (service) url.searchParams.set('service', service);
      url.searchParams.set('scope', this.scope);
      const headers: Record<string, string> = {};
      if (creds) headers.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
      return get(url.href, headers, this.signal);
    });
    if (res.status === 401 || res.status === 403) {
      const why = await errorText(res);
      throw creds ? this.rejected(creds, why) : this.accessDenied(why);
    }
    if (!res.ok) throw new RegistryError(`${what} failed: ${await errorText(res)}`);
    const reply = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number };
    const token = reply.token || reply.access_token;
    if (!token) throw new RegistryError(`${what}: the answer holds no token`);
    const seconds = Number(reply.expires_in) > 0 ? Number(reply.expires_in) : DEFAULT_TOKEN_SECONDS;
    return { token, expiresAt: Date.now() + seconds * 1000 - EXPIRY_MARGIN_MS };
  }

  private loginNeeded(): RegistryError {
    return new RegistryError(`${this.host()} requires authentication: log in with docker login ${this.host()} (vmrun reads ${dockerConfigPath()})`);
  }

  private rejected(creds: Credentials, why: string): RegistryError {
    const who = creds.identityToken ? 'the identity token' : `the credentials of ${creds.username || 'the stored user'}`;
    return new RegistryError(`${this.host()} rejected ${who} (${why}): log in again with docker login ${this.host()}`);
  }

  private accessDenied(why: string): RegistryError {
    const repository = this.scope.split(':')[1];
    return new RegistryError(`pull access denied for ${this.host()}/${repository} (${why}): the repository does not exist or needs docker login`);
  }
}
