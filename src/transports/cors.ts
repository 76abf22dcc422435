/**
 * CORS for `/mcp`, so a browser app on an allowed origin (a localhost page,
 * or one named with `--allow-origin`) can use Streamable HTTP as well as
 * WebSocket. Foreign origins are refused before this runs (see
 * `security.ts`), so these headers only ever name an allowed origin.
 *
 * @module
 */

/** Request headers an MCP client sends (SEP-2243 standard headers included). */
export const MCP_REQUEST_HEADERS = [
  "Content-Type",
  "Authorization",
  "Mcp-Session-Id",
  "Mcp-Protocol-Version",
  "Mcp-Method",
  "Mcp-Name",
  "Last-Event-ID",
];

/** Response headers a browser script may read. */
export const MCP_EXPOSED_HEADERS = ["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"];

/** Methods `/mcp` answers. */
const MCP_METHODS = "GET, POST, DELETE, OPTIONS";

/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE = 600;

const ALLOWED_LOWER = new Set(MCP_REQUEST_HEADERS.map((h) => h.toLowerCase()));

/**
 * Answers a preflight (`OPTIONS`) from an allowed `origin`. Requested headers
 * outside the MCP set (other than the tool-argument mirrors `Mcp-Param-*`)
 * are not granted, so the browser refuses the real request.
 */
export function preflight(request: Request, origin: string): Response {
  const requested = (request.headers.get("access-control-request-headers") ?? "")
    .split(",").map((h) => h.trim()).filter(Boolean);
  const granted = [
    ...MCP_REQUEST_HEADERS,
    ...requested.filter((h) => {
      const lower = h.toLowerCase();
      return !ALLOWED_LOWER.has(lower) && lower.startsWith("mcp-param-");
    }),
  ];
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": MCP_METHODS,
      "access-control-allow-headers": granted.join(", "),
      "access-control-max-age": String(PREFLIGHT_MAX_AGE),
      vary: "Origin, Access-Control-Request-Headers",
    },
  });
}

/** Adds the CORS response headers for an allowed `origin` to `response`. */
export function withCors(response: Response, origin: string | null): Response {
  if (origin === null) return response;
  try {
    response.headers.set("access-control-allow-origin", origin);
    response.headers.set("access-control-expose-headers", MCP_EXPOSED_HEADERS.join(", "));
    response.headers.append("vary", "Origin");
    return response;
  } catch {
    // Immutable headers (a Response built elsewhere): copy it.
    const copy = new Response(response.body, response);
    return withCors(copy, origin);
  }
}
