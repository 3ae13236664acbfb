/**
 * Authenticated, retried GETs against one repository of one registry endpoint
 * (`${base}/v2/${repository}/...`); the callers decide what a 404 means.
 */
import { RegistryError } from '../../errors';
import { Authenticator } from './auth';
import type { Endpoint } from './endpoint';
import { DEFAULT_RETRY, errorText, get, retryAfterMs, withRetries, type RetryPolicy } from './http';

export interface ClientOptions {
  retry?: RetryPolicy;
  signal?: AbortSignal;
}

export class RepositoryClient {
  private readonly auth: Authenticator;
  private readonly retry: RetryPolicy;

  constructor(
    readonly endpoint: Endpoint,
    /** The repository's path in the registry: `library/busybox`. */
    readonly repository: string,
    private readonly options: ClientOptions = {},
  ) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.auth = new Authenticator(endpoint, `repository:${repository}:pull`, this.retry, options.signal);
  }

  /** `host/repository` as the user would write it, for messages. */
  get name(): string {
    return `${new URL(this.endpoint.base).host}/${this.repository}`;
  }

  /**
   * GET `/v2/REPOSITORY/${suffix}`. Resolves to any answer but 401, 429 and 5xx, which become
   * errors once authentication and retries have had their go.
   */
  async get(suffix: string, headers: Record<string, string>, what: string, signal = this.options.signal): Promise<Response> {
    const url = `${this.endpoint.base}/v2/${this.repository}/${suffix}`;
    for (let refusals = 0; ; refusals++) {
      const res = await withRetries(this.retry, what, signal, async () => {
        const authorization = await this.auth.header();
        return get(url, authorization ? { ...headers, authorization } : headers, signal);
      });
      if (res.status === 401) {
        await this.auth.unauthorized(res, refusals > 0);
        continue;
      }
      if (res.status === 429) throw await this.rateLimited(res);
      if (res.status >= 500) throw new RegistryError(`${what} failed after ${this.retry.attempts} tries: ${await errorText(res)}`);
      return res;
    }
  }

  private async rateLimited(res: Response): Promise<RegistryError> {
    const wait = retryAfterMs(res);
    const when = wait === undefined ? 'later' : `in ${Math.ceil(wait / 1000)} s`;
    const remaining = res.headers.get('ratelimit-remaining');
    return new RegistryError(
      `${this.endpoint.credentialsHost} is rate-limiting pulls (429 Too Many Requests${remaining ? `, ratelimit-remaining ${remaining}` : ''}: ${await errorText(res)}): try again ${when}, or log in with docker login for a higher limit`,
    );
  }
}
