/**
 * Getting `rune` onto a machine: `deno task install` (run here into a
 * temporary root), what its command depends on and that it follows a
 * `git pull`; `deno task compile`, whose failure without the `denort`
 * runtime explains itself (the real compile runs only where `DENORT_BIN`
 * points at one); and the permissions of the tasks.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VERSION } from "../../src/version.ts";
import { compile, CompileError, denortUrl } from "../../scripts/compile.ts";
import { shimText } from "../../scripts/install.ts";
import { DEV_PERMISSIONS, INSTALLED_PERMISSIONS, LAUNCH_ENV } from "../../scripts/permissions.ts";
import { splitLines } from "../../src/providers/ndjson.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const decoder = new TextDecoder();

function tasks(checkout = ROOT): Record<string, string> {
  return JSON.parse(Deno.readTextFileSync(`${checkout}deno.json`)).tasks;
}

async function run(command: string, args: string[], options: Deno.CommandOptions = {}) {
  const output = await new Deno.Command(command, { args, cwd: ROOT, ...options }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `deno task -q install --root ROOT` in `checkout`; resolves to the shim's path. */
async function installInto(root: string, checkout = ROOT): Promise<string> {
  const installed = await run(Deno.execPath(), ["task", "-q", "install", "--root", root], {
    cwd: checkout,
  });
  assert.equal(installed.code, 0, installed.stderr);
  const shim = `${root}/bin/rune`;
  assert.ok(installed.stdout.startsWith(`Installed ${shim}\n`), installed.stdout);
  return shim;
}

Deno.test("every task runs with explicit permissions, the dev tasks with the shared loopback set", () => {
  for (const [name, task] of Object.entries(tasks())) {
    assert.ok(!/(^|\s)(-A|--allow-all)(\s|$)/.test(task), `task ${name} never uses -A`);
  }
  for (const name of ["serve", "rune"]) {
    const env = Object.entries(LAUNCH_ENV).map(([variable, value]) => `${variable}=${value}`);
    const words = tasks()[name].split(" ");
    assert.deepEqual(words.slice(0, env.length + 2), [...env, "deno", "run"], `task ${name}`);
    assert.deepEqual(
      words.slice(env.length + 2, env.length + 2 + DEV_PERMISSIONS.length),
      [...DEV_PERMISSIONS],
      `task ${name}`,
    );
  }
});

Deno.test("deno task install writes a rune that runs this checkout with an absolute Deno", async () => {
  const root = await Deno.makeTempDir();
  try {
    const shim = await installInto(root);
    const text = await Deno.readTextFile(shim);
    assert.equal(text, shimText(ROOT, Deno.execPath()));
    // Writes go to the credential store directory only, expanded when the shim runs.
    assert.ok(text.includes(' --allow-write="${RUNE_HOME:-$HOME/.config/rune}" '), text);
    assert.equal(/--allow-write(?!=)/.test(text), false, "no unlimited write permission");
    assert.equal((await Deno.stat(shim)).mode! & 0o777, 0o755);
    // Claude Desktop and editors may start it with a bare environment: no Deno on PATH, no HOME.
    const version = await run(shim, ["--version"], { clearEnv: true, env: { PATH: root } });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `rune ${VERSION}\n`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the installed rune follows a git pull that changes code and dependencies", async () => {
  const checkout = await Deno.makeTempDir();
  const root = await Deno.makeTempDir();
  try {
    for (const entry of ["src", "scripts"]) {
      const copied = await run("cp", ["-R", `${ROOT}${entry}`, `${checkout}/${entry}`]);
      assert.equal(copied.code, 0, copied.stderr);
    }
    await Deno.copyFile(`${ROOT}deno.json`, `${checkout}/deno.json`);
    await Deno.copyFile(`${ROOT}deno.lock`, `${checkout}/deno.lock`);
    const shim = await installInto(root, `${checkout}/`);

    // "git pull": a new import in deno.json and code that needs it.
    const config = JSON.parse(await Deno.readTextFile(`${checkout}/deno.json`));
    config.imports["@rune/pulled"] = "./src/pulled.ts";
    await Deno.writeTextFile(`${checkout}/deno.json`, JSON.stringify(config, null, 2));
    await Deno.writeTextFile(
      `${checkout}/src/pulled.ts`,
      'export const VERSION = "9.9.9-pulled";\n',
    );
    await Deno.writeTextFile(
      `${checkout}/src/version.ts`,
      'export { VERSION } from "@rune/pulled";\n',
    );

    const version = await run(shim, ["--version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, "rune 9.9.9-pulled\n");
  } finally {
    await Deno.remove(checkout, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the installed rune may listen on an address the dev tasks refuse", async () => {
  const root = await Deno.makeTempDir();
  try {
    const shim = await installInto(root);
    // 127.0.0.2 is loopback but outside the dev tasks' --allow-net list.
    const refused = await run(Deno.execPath(), [
      "run",
      ...DEV_PERMISSIONS,
      `${ROOT}src/main.ts`,
      "serve",
      "--host",
      "127.0.0.2",
      "--port",
      "0",
    ], { env: { RUNE_TOKEN: "a-token", NO_COLOR: "1" } });
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^error: Deno's permissions do not let Rune listen on 127\.0\.0\.2:/,
    );

    const child = new Deno.Command(shim, {
      args: ["serve", "--host", "127.0.0.2", "--port", "0", "--ollama-host", "127.0.0.1:9"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { RUNE_TOKEN: "a-token", NO_COLOR: "1" },
    }).spawn();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
    const seen: string[] = [];
    for await (const line of lines) {
      seen.push(line);
      if (line.includes("listening on")) {
        assert.match(line, /^rune info: listening on http:\/\/127\.0\.0\.2:\d+ /);
        child.kill("SIGTERM");
      }
    }
    const status = await child.status;
    assert.equal(status.code, 0, seen.join("\n"));
    assert.ok(seen.some((line) => line.includes("listening on")), seen.join("\n"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A stand-in for `deno compile` that creates the output folder, then fails like Deno does offline. */
function offlineCompile(output: string) {
  return async (args: string[]) => {
    assert.ok(args.includes(`--output=${output}`));
    for (const flag of INSTALLED_PERMISSIONS) assert.ok(args.includes(flag), flag);
    await Deno.mkdir(output.slice(0, output.lastIndexOf("/")), { recursive: true });
    return {
      code: 1,
      stderr: "error: Writing deno compile executable to temporary file\n\nCaused by:\n" +
        "    0: Setting up base binary.\n    1: error sending request for url " +
        `(${denortUrl()}): client error (Connect): dns error: failed to lookup address ` +
        "information: Name or service not known\n",
    };
  };
}

Deno.test("deno task compile without its runtime says how to get one and leaves no empty folder", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const output = `${tmp}/dist/rune`;
    const error = await compile({ output, run: offlineCompile(output) }).then(
      () => assert.fail("compile succeeded"),
      (e) => e,
    );
    assert.ok(error instanceof CompileError);
    assert.equal(
      error.message,
      `deno compile could not download the Deno runtime it embeds (${denortUrl()}). It ` +
        "downloads it once and keeps it in Deno's cache; this time the download failed (see " +
        "above: no network?). To compile offline, fetch that zip on a machine with network, " +
        "unzip it here and run: DENORT_BIN=/path/to/denort deno task compile",
    );
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "the dist folder it created is gone");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("deno task compile with a DENORT_BIN that is not a file says so", async () => {
  const compiled = await run(Deno.execPath(), ["task", "-q", "compile"], {
    env: { DENORT_BIN: "/nonexistent/denort" },
  });
  assert.equal(compiled.code, 1);
  assert.equal(
    compiled.stderr,
    'error: DENORT_BIN is "/nonexistent/denort", which is not a file: point it at the denort ' +
      `binary unzipped from ${denortUrl()}.\n`,
  );
});

const denort = Deno.env.get("DENORT_BIN");

Deno.test({
  name: denort
    ? "deno task compile builds a standalone rune binary"
    : "deno task compile builds a standalone rune binary (skipped: DENORT_BIN is not set, and " +
      "deno compile cannot download its runtime here)",
  ignore: !denort,
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const compiled = await run(Deno.execPath(), [
        "task",
        "-q",
        "compile",
        "--output",
        `${out}/rune`,
      ], { env: { DENORT_BIN: denort! } });
      assert.equal(compiled.code, 0, compiled.stderr);
      const output = await new Deno.Command(`${out}/rune`, { args: ["--version"] }).output();
      assert.equal(decoder.decode(output.stdout), `rune ${VERSION}\n`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("deno task double listens where rune looks and prints the OLLAMA_HOST to export", async () => {
  assert.match(tasks().double, / tests\/ollama_double\.ts --port 11434$/);
  // Port 11434 may be taken on a developer's machine; a later --port wins, as for users.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "double", "--port", "0"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
  const printed: string[] = [];
  for await (const line of lines) {
    printed.push(line);
    if (printed.length === 2) child.kill("SIGTERM");
  }
  await child.status;
  const port = /^listening http:\/\/127\.0\.0\.1:(\d+)$/.exec(printed[0])?.[1];
  assert.ok(port, printed.join("\n"));
  assert.deepEqual(printed, [
    `listening http://127.0.0.1:${port}`,
    `export OLLAMA_HOST=127.0.0.1:${port}`,
  ]);
});
