/**
 * The floor of a call's CPU: a Deno process that does nothing but the
 * upstream request Rune makes for one generate call (`POST /api/generate`
 * with `stream: true`, the body read to the end as a stream), over and
 * over. The benchmark reads this process's CPU time from /proc/PID/stat
 * around a batch of requests, as it does for the daemon around a batch of
 * calls: the difference per call is what Rune spends beyond fetching.
 *
 * Driven over stdin/stdout: each input line `N` runs N requests one after
 * another and answers `done N`; the end of input ends the process.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/fetch_floor.ts http://127.0.0.1:PORT
 * ```
 *
 * @module
 */

/** Most requests one input line may ask for. */
const MAX_BATCH = 1_000_000;

/** The body of Rune's upstream request for the benchmark's generate call. */
const BODY = JSON.stringify({ model: "llama3.2", prompt: "Say hi", stream: true });

/** One streamed request, read chunk by chunk to the end. */
async function streamedFetch(url: string, signal?: AbortSignal): Promise<number> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/x-ndjson, application/json",
    },
    body: BODY,
    ...(signal && { signal }),
  });
  if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
  let bytes = 0;
  for await (const chunk of response.body) bytes += chunk.byteLength;
  return bytes;
}

if (import.meta.main) {
  const base = Deno.args[0];
  if (base === undefined) {
    console.error("usage: fetch_floor.ts http://HOST:PORT");
    Deno.exit(2);
  }
  const url = `${base.replace(/\/+$/, "")}/api/generate`;
  const encoder = new TextEncoder();
  let partial = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    partial += chunk;
    let newline: number;
    while ((newline = partial.indexOf("\n")) >= 0) {
      const count = Math.min(MAX_BATCH, Number(partial.slice(0, newline)));
      partial = partial.slice(newline + 1);
      for (let i = 0; i < count; i++) await streamedFetch(url);
      await Deno.stdout.write(encoder.encode(`done ${count}\n`));
    }
  }
}
