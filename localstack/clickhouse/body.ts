/** Request bodies of the embedded ClickHouse server: read whole, size-capped, Content-Encoding undone. */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { ClickHouseHttpError } from './protocol.ts';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotliDecompress = promisify(zlib.brotliDecompress);

/** Reads the whole body; past `max` bytes it keeps draining (so the client sees our answer) and fails. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        tooLarge = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (tooLarge) reject(tooLargeError(size, max));
      else resolvePromise(Buffer.concat(chunks, size));
    });
    req.on('error', reject);
    // A client that hangs up mid-body gets no answer; settle so nothing waits forever.
    req.on('close', () => {
      if (!req.complete) reject(new Error('client closed the connection before the body ended'));
    });
  });
}

function tooLargeError(size: number, max: number): ClickHouseHttpError {
  return new ClickHouseHttpError(229, `Request body is too large (${size} bytes, more than the embedded server's limit of ${max} bytes, --max-body-bytes)`, 'QUERY_IS_TOO_LARGE');
}

/** Undoes Content-Encoding; decompressed size is capped too (no zip bombs). */
export async function decodeBody(body: Buffer, encoding: string | undefined, max: number): Promise<Buffer> {
  const e = (encoding ?? '').trim().toLowerCase();
  if (e === '' || e === 'identity' || body.length === 0) return body;
  try {
    if (e === 'gzip' || e === 'x-gzip') return await gunzip(body, { maxOutputLength: max });
    if (e === 'deflate') return await inflate(body, { maxOutputLength: max });
    if (e === 'br') return await brotliDecompress(body, { maxOutputLength: max });
  } catch (err) {
    if (err instanceof RangeError) throw tooLargeError(max + 1, max);
    throw new ClickHouseHttpError(271, `Cannot decompress the ${e} request body: ${err instanceof Error ? err.message : String(err)}`, 'CANNOT_DECOMPRESS');
  }
  throw new ClickHouseHttpError(89, `Unknown or unsupported HTTP Content-Encoding: ${e} (the embedded server supports gzip, deflate, br)`, 'UNKNOWN_COMPRESSION_METHOD');
}
