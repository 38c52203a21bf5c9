// The product's errors, one module: a class of its own only where some code catches it by type
// (http.ts answers an HttpError, produce.ts tells a SharedRequestError apart); the rest are ConfigError.

/** An error that maps to an HTTP answer: status, a machine-readable code, and optional headers. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A configuration mistake: an environment variable, a stored secret, a setting or a migration that
 * cannot work. Fails the cold start (or the start of a script or of the local stack), naming what to fix.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The failure of a produce request that carried several sends: each of them gets it. Its cause is
 * kafkajs' error. Apart, so a caller does not blame one send for what the request as a whole met
 * (a request too large for the brokers, say).
 */
export class SharedRequestError extends Error {
  override readonly name = 'SharedRequestError';
  constructor(cause: unknown, readonly sendsInRequest: number) {
    super(`a produce request of ${sendsInRequest} sends failed: ${String((cause as Error)?.message ?? cause)}`, { cause });
  }
}
