/**
 * Test helpers that speak HTTP and WebSocket over a raw TCP connection, for
 * what `fetch` and `WebSocket` will not do: send a foreign `Host` header,
 * or open a WebSocket and then never read from it.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads from `conn` until the end of the HTTP response head; returns status and head. */
export async function readHead(conn: Deno.Conn): Promise<{ status: number; head: string }> {
  let head = "";
  const buffer = new Uint8Array(1);
  // Byte by byte so that nothing after the head is consumed.
  while (!head.endsWith("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    head += decoder.decode(buffer.subarray(0, n));
  }
  return { status: Number(head.split(" ")[1]), head };
}

/** Sends one raw HTTP/1.1 request and returns the response status (connection closed after). */
export async function rawRequest(
  port: number,
  lines: string[],
  body = "",
): Promise<{ status: number; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = [...lines, `Content-Length: ${encoder.encode(body).length}`, "Connection: close"];
    await writeAll(conn, encoder.encode(head.join("\r\n") + "\r\n\r\n" + body));
    return await readHead(conn);
  } finally {
    conn.close();
  }
}

/** Writes all of `bytes` (a single `write` may take only part). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) written += await conn.write(bytes.subarray(written));
}

/** Encodes a masked client text frame (RFC 6455 §5.2). */
export function maskedTextFrame(text: string): Uint8Array {
  const payload = encoder.encode(text);
  const length = payload.length;
  const header: number[] = [0x81];
  if (length < 126) header.push(0x80 | length);
  else if (length < 65536) header.push(0x80 | 126, length >> 8, length & 0xff);
  else {
    header.push(0x80 | 127, 0, 0, 0, 0);
    header.push(
      (length >>> 24) & 0xff,
      (length >>> 16) & 0xff,
      (length >>> 8) & 0xff,
      length & 0xff,
    );
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(header.length + 4 + length);
  frame.set(header, 0);
  frame.set(mask, header.length);
  for (let i = 0; i < length; i++) frame[header.length + 4 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

/** Opens a WebSocket to `/ws` by hand; resolves to the connection after the 101 head. */
export async function rawWebSocket(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await writeAll(
    conn,
    encoder.encode(
      [
        "GET /ws HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`,
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: mcp",
      ].join("\r\n") + "\r\n\r\n",
    ),
  );
  const { status, head } = await readHead(conn);
  if (status !== 101) {
    conn.close();
    throw new Error(`WebSocket upgrade failed: ${head}`);
  }
  return conn;
}

/**
 * A process's resident set size in bytes. Uses `ps` (procps) because Deno
 * asks for every permission to read another process's `/proc` files.
 */
export async function rssBytes(pid: number): Promise<number> {
  const output = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  const kb = Number(new TextDecoder().decode(output.stdout).trim());
  if (!output.success || !Number.isFinite(kb)) throw new Error(`cannot read the RSS of ${pid}`);
  return kb * 1024;
}
