/**
 * A file helper the store, its key file and its lock share.
 *
 * @module
 */

/** Writes all of `bytes` to `file` (one write may accept fewer). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}
