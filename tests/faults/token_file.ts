/**
 * Test helper: a `--token-file` with several tokens, one per line (the
 * format `rune serve` reads, comment line included).
 *
 * @module
 */

/** Writes a token file holding `tokens`; the caller removes it. */
export async function tokenFile(tokens: string[]): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "rune-tokens-" });
  await Deno.writeTextFile(path, `# test tokens\n${tokens.join("\n")}\n`);
  return path;
}
