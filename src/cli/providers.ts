/**
 * `rune ai providers` (and `rune providers`): each configured provider, its
 * type and address, whether a key is set and where it comes from (never
 * the key), and whether it answers right now.
 *
 * @module
 */

import type { Command } from "./ai.ts";
import { style } from "./output.ts";

/** How long each provider gets to answer the reachability check. */
export const PROBE_TIMEOUT_MS = 5_000;

/** One provider as the command reports it. */
export interface ProviderStatus {
  /** Provider id. */
  id: string;
  /** Registry type. */
  type: string;
  /** Address (never with credentials). */
  address: string;
  /** Where the key comes from, or `none`. */
  key: string;
  /** Whether it answered. */
  reachable: boolean;
  /** What it answered (a version), or why not. */
  detail: string;
}

/** Prints each provider's status; exit 0 even when some are unreachable (it is a report). */
export async function providersCommand(
  { providers, values, io, signal }: Command,
): Promise<number> {
  const statuses = await Promise.all(providers.map(async (provider): Promise<ProviderStatus> => {
    const base = {
      id: provider.id,
      type: provider.type,
      address: provider.address,
      key: provider.credentialSource ?? "none",
    };
    try {
      const version = await provider.ping({
        signal: AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]),
      });
      return { ...base, reachable: true, detail: version };
    } catch (error) {
      return { ...base, reachable: false, detail: (error as Error).message };
    }
  }));
  if (values.json) {
    await io.out(JSON.stringify({ providers: statuses }, null, 2) + "\n");
    return 0;
  }
  for (const s of statuses) {
    const state = s.reachable ? style(io, "green", "reachable") : style(io, "red", "unreachable");
    await io.out(`${s.id}  ${s.type}  ${s.address}  key: ${s.key}  ${state}\n`);
    await io.out(`  ${s.detail}\n`);
  }
  return 0;
}
