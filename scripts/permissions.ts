/**
 * The Deno permissions Rune runs with, in one place: the development tasks
 * (`deno task serve`, `deno task rune`) reach loopback only, while the
 * installed and compiled `rune` may reach any host, because its job is to
 * reach the hosts its user configures (a remote Ollama, a cloud provider,
 * a non-loopback `--host`). Rune itself only ever connects to the provider
 * addresses it is configured with and binds the address it is told; no
 * MCP client can make it fetch a URL. Environment and file access stay
 * narrow in both: the variables below, and reads (for `--image`,
 * `--token-file`, the configuration and the credential store).
 *
 * The credential store (`rune auth`) adds two things. Writes: the
 * development tasks may write only the default store directory,
 * `$HOME/.config/rune` (deno task expands `$HOME`); the installed and
 * compiled `rune` may write anywhere, because `RUNE_HOME` is chosen when
 * Rune runs and a compiled permission cannot follow it (Rune itself writes
 * only inside `$RUNE_HOME`). Subprocesses: the keyring tools and the
 * browser openers at their usual absolute paths (`secret-tool`, macOS
 * `security`, `xdg-open`, macOS `open`), nothing else; absolute paths, so
 * a system without one of them starts without a warning.
 *
 * `deno.json`'s tasks spell the development flags out (a task is a plain
 * string); `tests/cli/install_test.ts` checks that they match this module.
 *
 * @module
 */

/** Every environment variable Rune reads (providers and configuration included). */
export const RUNE_ENV: readonly string[] = [
  "OLLAMA_HOST",
  "RUNE_TOKEN",
  "RUNE_MODEL",
  "NO_COLOR",
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_BASE_URL",
  "OPENAI_API_KEY",
  "OPENAI_BASE_URL",
  "RUNE_CONFIG",
  "RUNE_HOME",
  "RUNE_PASSPHRASE",
  // Where the configuration file is by default (~/.config/rune/config.json).
  "HOME",
  "XDG_CONFIG_HOME",
  // Key variables of common OpenAI-compatible services, for config entries' api_key_env;
  // any other variable must be allowed by hand (the error says which).
  "OPENROUTER_API_KEY",
  "GROQ_API_KEY",
  "TOGETHER_API_KEY",
  "DEEPSEEK_API_KEY",
  "MISTRAL_API_KEY",
  "AZURE_OPENAI_API_KEY",
];

/** The loopback names the development tasks may connect to and bind. */
export const LOOPBACK: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

/** Programs Rune may run: the keyring tools and the browser openers of `rune auth login`. */
export const RUNE_RUN: readonly string[] = [
  "/usr/bin/secret-tool",
  "/usr/bin/security",
  "/usr/bin/xdg-open",
  "/usr/bin/open",
];

/** Where the development tasks may write: the default credential store directory. */
export const DEV_WRITE = "$HOME/.config/rune";

/** Flags of `deno task serve` and `deno task rune`: loopback only, never a prompt. */
export const DEV_PERMISSIONS: readonly string[] = [
  `--allow-net=${LOOPBACK.join(",")}`,
  `--allow-env=${RUNE_ENV.join(",")}`,
  "--allow-read",
  `--allow-write=${DEV_WRITE}`,
  `--allow-run=${RUNE_RUN.join(",")}`,
  "--no-prompt",
];

/**
 * Flags of the installed and the compiled `rune`: any host; writes are
 * added per build with {@linkcode storeWriteFlag} (the store directory only).
 */
export const INSTALLED_PERMISSIONS: readonly string[] = [
  "--allow-net",
  `--allow-env=${RUNE_ENV.join(",")}`,
  "--allow-read",
  `--allow-run=${RUNE_RUN.join(",")}`,
  "--no-prompt",
];

/**
 * The installed shim's write permission, as shell text expanded at every
 * start: the credential store directory, `$RUNE_HOME` or `~/.config/rune`.
 */
export const SHIM_WRITE_FLAG = '--allow-write="${RUNE_HOME:-$HOME/.config/rune}"';

/** The write permission of a build for the store directory `dir` (the compiled binary). */
export function storeWriteFlag(dir: string): string {
  return `--allow-write=${dir}`;
}

/**
 * Environment the launchers give the Deno that runs Rune (`deno task serve`
 * and `deno task rune` spell it before `deno run`; the installed shim
 * exports it). `DENO_USR2_MEMORY_TRIM` makes Deno return freed memory to
 * the system on SIGUSR2, which the daemon sends itself once a load peak is
 * over (`src/transports/memory_release.ts`). A compiled `rune` cannot carry
 * it: set it where the binary is started.
 */
export const LAUNCH_ENV: Readonly<Record<string, string>> = { DENO_USR2_MEMORY_TRIM: "1" };
