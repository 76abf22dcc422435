/**
 * A WebSocket client written on a raw TCP connection that completes the
 * handshake, sends a few MCP messages, and then never reads again: the
 * "client that stops reading" of the memory benchmark.
 *
 * @module
 */

/** A connected client that does not read. */
export interface StalledClient {
  /** Sends one JSON-RPC message as a masked text frame. */
  send(message: unknown): Promise<void>;
  /** Closes the TCP connection. */
  close(): void;
}

const encoder = new TextEncoder();

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Encodes one masked client text frame (RFC 6455 §5.2). */
export function textFrame(text: string): Uint8Array {
  const payload = encoder.encode(text);
  const length = payload.byteLength;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(headerLength + 4 + length);
  frame[0] = 0x81; // FIN + text.
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65536) {
    frame[1] = 0x80 | 126;
    new DataView(frame.buffer).setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, headerLength);
  const offset = headerLength + 4;
  for (let i = 0; i < length; i++) frame[offset + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** Opens `ws://127.0.0.1:port/ws` (subprotocol `mcp`) and reads only the 101 response. */
export async function connectStalled(port: number): Promise<StalledClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
  const request = [
    "GET /ws HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: mcp",
    "",
    "",
  ].join("\r\n");
  await writeAll(conn, encoder.encode(request));
  // Read byte by byte up to the end of the headers, so no frame is consumed.
  const head: number[] = [];
  const one = new Uint8Array(1);
  while (!endsWithBlankLine(head)) {
    const n = await conn.read(one);
    if (n === null) throw new Error("connection closed during the WebSocket handshake");
    head.push(one[0]);
    if (head.length > 8192) throw new Error("WebSocket handshake response too long");
  }
  const status = new TextDecoder().decode(new Uint8Array(head)).split("\r\n")[0];
  if (!status.includes(" 101 ")) {
    conn.close();
    throw new Error(`WebSocket handshake failed: ${status}`);
  }
  let closed = false;
  return {
    async send(message) {
      await writeAll(conn, textFrame(JSON.stringify(message)));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}

function endsWithBlankLine(bytes: number[]): boolean {
  const n = bytes.length;
  return n >= 4 && bytes[n - 4] === 13 && bytes[n - 3] === 10 && bytes[n - 2] === 13 &&
    bytes[n - 1] === 10;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.byteLength) written += await conn.write(data.subarray(written));
}
