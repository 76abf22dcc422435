/**
 * Getting `rune` on PATH: `deno task install` (run here into a temporary
 * root) and `deno task compile`, which needs the `denort` runtime and so
 * runs only where `DENORT_BIN` points at one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function taskCommand(name: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const task = config.tasks[name] as string;
  assert.ok(task.startsWith("deno "), `task ${name} runs deno`);
  assert.ok(!/\s-A\b|--allow-all/.test(task), `task ${name} uses explicit permissions`);
  return task.split(/\s+/).slice(1);
}

async function run(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, env }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("deno task install puts a working rune on PATH", async () => {
  const root = await Deno.makeTempDir();
  try {
    const installed = await run([...taskCommand("install"), "--root", root]);
    assert.equal(installed.code, 0, installed.stderr);
    const shim = `${root}/bin/rune`;
    const output = await new Deno.Command(shim, { args: ["--version"] }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout), `rune ${VERSION}\n`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
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
      const args = taskCommand("compile");
      const at = args.indexOf("--output");
      args[at + 1] = `${out}/rune`;
      const compiled = await run(args, { DENORT_BIN: denort! });
      assert.equal(compiled.code, 0, compiled.stderr);
      const output = await new Deno.Command(`${out}/rune`, { args: ["--version"] }).output();
      assert.equal(new TextDecoder().decode(output.stdout), `rune ${VERSION}\n`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
