/**
 * Byte helpers shared by the transports, the credential store and the CLI.
 *
 * @module
 */

/** Anything that writes bytes and says how many it took: a file or a connection. */
export interface ByteWriter {
  /** Writes some of `bytes` (possibly fewer than all); resolves to how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes all of `bytes` to `writer` (one write may accept fewer). */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await writer.write(bytes.subarray(offset));
}

/** `parts` joined into one new array. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.byteLength;
  }
  return all;
}
