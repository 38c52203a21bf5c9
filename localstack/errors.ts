// The local stack's errors, one module (scripts/ and bench/ use it too). A class of its own only
// where some code tells it apart: start.ts prints a PortInUseError as one line, the event source
// reads a LambdaInvokeError's errorType. A configuration mistake is shared/errors.ts' ConfigError.

/**
 * The local stack cannot do what was asked (no Java, a jar that cannot be had, a data directory
 * in use, a server that did not come up); the message is one line that names the problem and the fix.
 */
export class LocalStackError extends Error {
  override readonly name = 'LocalStackError';
}

/** A port the stack needs is taken; the message is the one line to print. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
}

/** The function failed (or could not be invoked); `errorType` as Lambda reports it. */
export class LambdaInvokeError extends Error {
  override readonly name = 'LambdaInvokeError';
  constructor(
    message: string,
    readonly errorType: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}
