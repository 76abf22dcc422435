/**
 * Runs the official MCP conformance suite (`@modelcontextprotocol/conformance`,
 * pinned in deno.json and deno.lock) against the daemon's `/mcp` endpoint.
 *
 * The test starts the Ollama double and a real `rune serve --port 0`, then
 * runs each product-agnostic server scenario as a subprocess:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-env --allow-read --allow-write=DIR \
 *   @modelcontextprotocol/conformance server --url URL --scenario NAME -o DIR
 * ```
 *
 * The suite exits 1 when a check fails and writes the checks to
 * `DIR/server-NAME-TIMESTAMP/checks.json`; both are asserted. `--allow-env`
 * is whole because the suite's `debug` dependency enumerates the environment.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startOllamaDouble } from "../ollama_double.ts";

/** The product-agnostic server scenarios the daemon must pass, in both protocol eras. */
const SCENARIOS = [
  "server-stateless",
  "http-header-validation",
  "caching",
  "tools-list",
  "dns-rebinding-protection",
  "server-sse-multiple-streams",
  "server-initialize",
  "server-session-lifecycle",
  "ping",
  "logging-set-level",
] as const;

/** Why a check of the suite does not apply to Rune, and how the suite reports it. */
interface NotApplicable {
  /** The status the suite gives the check. */
  status: "FAILURE" | "SKIPPED";
  /** What the suite's message must say (so a real failure is never hidden behind a skip). */
  message: RegExp;
  /** Why it does not apply. */
  reason: string;
}

const FIXTURE_TOOL: NotApplicable = {
  status: "FAILURE",
  message: /^Not testable: server does not list the diagnostic tool/,
  reason: "needs the suite's own fixture tool, which a product server does not list",
};
const NO_PROMPTS_OR_RESOURCES: NotApplicable = {
  status: "FAILURE",
  message: /-32601: Method not found/,
  reason: "only the tools/list part applies: Rune serves no prompts and no resources",
};
const NO_RESOURCES_TO_READ: NotApplicable = {
  status: "SKIPPED",
  message: /^resources\/read was not exercised/,
  reason: "Rune serves no resources, so there is nothing to read",
};
const STATIC_TOOLS: NotApplicable = {
  status: "SKIPPED",
  message: /^$/,
  reason: "Rune's tool list never changes while it runs (tools.listChanged is false)",
};

/** Checks that cannot run against Rune; every other check must succeed. */
const NOT_APPLICABLE: Record<string, Record<string, NotApplicable>> = {
  "server-stateless": {
    "sep-2575-server-rejects-undeclared-capability": FIXTURE_TOOL,
    "sep-2575-missing-capability-http-400": FIXTURE_TOOL,
    "sep-2575-http-server-no-independent-requests-on-stream": FIXTURE_TOOL,
    "sep-2575-server-no-log-without-loglevel": FIXTURE_TOOL,
    "sep-2575-server-sends-prompts-list-changed-on-subscription": STATIC_TOOLS,
    "sep-2575-server-sends-tools-list-changed-on-subscription": STATIC_TOOLS,
  },
  caching: {
    "sep-2549-prompts-list-caching-hints": NO_PROMPTS_OR_RESOURCES,
    "sep-2549-resources-list-caching-hints": NO_PROMPTS_OR_RESOURCES,
    "sep-2549-resources-templates-list-caching-hints": NO_PROMPTS_OR_RESOURCES,
    "sep-2549-resources-read-caching-hints": NO_RESOURCES_TO_READ,
  },
};

/** One check from the suite's `checks.json`. */
interface ConformanceCheck {
  /** Check id, e.g. `localhost-host-rebinding-rejected`. */
  id: string;
  /** `SUCCESS`, `FAILURE`, `WARNING` or `INFO`. */
  status: string;
  /** What the check verifies. */
  description: string;
  /** Why it failed, when it did. */
  errorMessage?: string;
  /** Scenario-specific evidence (status codes, bodies). */
  details?: Record<string, unknown>;
}

/** The outcome of one scenario run. */
interface ScenarioResult {
  /** The suite's exit code: 0 when no check failed. */
  code: number;
  /** The suite's stdout and stderr, without ANSI colours. */
  output: string;
  /** The checks it recorded; empty when it wrote none. */
  checks: ConformanceCheck[];
}

/** A running daemon. */
interface Daemon {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Everything the daemon wrote to stderr so far. */
  stderr: () => string;
  /** Sends SIGTERM and waits for the exit. */
  stop: () => Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;
const START_TIMEOUT_MS = 30_000;
const SCENARIO_TIMEOUT_MS = 120_000;

/** Removes ANSI escape sequences (the suite colours its output unconditionally). */
function strip_ansi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Starts `rune serve --port 0` against the given Ollama address. */
async function start_daemon(ollama_host: string): Promise<Daemon> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1,localhost,[::1]",
      "--allow-env=OLLAMA_HOST,RUNE_TOKEN,RUNE_MODEL,NO_COLOR",
      "--allow-read",
      "src/main.ts",
      "serve",
      "--port",
      "0",
      "--ollama-host",
      ollama_host,
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let on_text = () => {};
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      on_text();
    }
    on_text();
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    await drained;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`daemon did not start:\n${text}`)),
        START_TIMEOUT_MS,
      );
      child.status.then((status) => {
        reject(new Error(`daemon exited with ${status.code} before listening:\n${text}`));
      });
      on_text = () => {
        const match = LISTENING.exec(text);
        if (match) resolve(match[1]);
      };
      on_text();
    });
    return { url, stderr: () => text, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the `checks.json` the suite wrote somewhere under `dir`. */
async function read_checks(dir: string): Promise<ConformanceCheck[]> {
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory) continue;
    try {
      return JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}/checks.json`));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return [];
}

/** Runs one server scenario of the conformance suite against `mcp_url`. */
async function run_scenario(mcp_url: string, scenario: string): Promise<ScenarioResult> {
  const dir = await Deno.makeTempDir({ prefix: "rune-conformance-" });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), SCENARIO_TIMEOUT_MS);
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-env",
        // The suite reads its own requirement files from the npm cache.
        "--allow-read",
        `--allow-write=${dir}`,
        "@modelcontextprotocol/conformance",
        "server",
        "--url",
        mcp_url,
        "--scenario",
        scenario,
        "--output-dir",
        dir,
      ],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).output();
    const decoder = new TextDecoder();
    const output = strip_ansi(decoder.decode(stdout) + decoder.decode(stderr));
    return { code, output, checks: await read_checks(dir) };
  } finally {
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Asserts that the scenario passed: checks recorded, every one succeeded
 * apart from the named not-applicable ones, reported for their stated reason.
 */
function assert_passed(scenario: string, result: ScenarioResult, daemon: Daemon): void {
  const context = `\n--- conformance output ---\n${result.output}` +
    `\n--- daemon stderr ---\n${daemon.stderr()}`;
  assert.ok(result.checks.length > 0, `${scenario}: the suite recorded no checks${context}`);
  const skips = NOT_APPLICABLE[scenario] ?? {};
  const unexplained = result.checks.filter((c) => {
    if (c.status === "SUCCESS" || c.status === "INFO") return false;
    const skip = skips[c.id];
    return !(skip && skip.status === c.status && skip.message.test(c.errorMessage ?? ""));
  });
  assert.deepEqual(
    unexplained.map((c) => `${c.id}: ${c.status} ${c.errorMessage ?? c.description}`),
    [],
    `${scenario}: checks did not pass${context}`,
  );
  const failed = result.checks.some((c) => c.status === "FAILURE");
  // The suite exits 1 exactly when a check failed.
  assert.equal(result.code, failed ? 1 : 0, `${scenario}: exit code ${result.code}${context}`);
}

Deno.test("conformance: the MCP conformance suite passes against /mcp", async (t) => {
  const double = await startOllamaDouble();
  let daemon: Daemon | undefined;
  try {
    daemon = await start_daemon(double.host);
    const mcp_url = `${daemon.url}/mcp`;
    for (const scenario of SCENARIOS) {
      await t.step(`conformance: ${scenario} passes against /mcp`, async () => {
        const result = await run_scenario(mcp_url, scenario);
        assert_passed(scenario, result, daemon!);
        if (scenario !== "dns-rebinding-protection") return;
        // The suite accepts any 4xx, a 404 included; the refusal must be rune's own 403.
        const rejected = result.checks.find((c) => c.id === "localhost-host-rebinding-rejected");
        assert.equal(rejected?.details?.statusCode, 403, result.output);
        const accepted = result.checks.find((c) => c.id === "localhost-host-valid-accepted");
        assert.equal(accepted?.status, "SUCCESS", result.output);
      });
    }
  } finally {
    await daemon?.stop();
    await double.close();
  }
});
