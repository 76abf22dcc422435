/**
 * Writes `schema/config.schema.json`, the JSON Schema of the configuration
 * file, from its zod schema (`src/config/schema.ts`). Run with
 * `deno task schema` after changing the schema; a test fails while the
 * published file is out of date.
 *
 * @module
 */

import { configJsonSchema } from "../src/config/schema.ts";

/** Where the schema is published, relative to the repository root. */
export const SCHEMA_PATH = new URL("../schema/config.schema.json", import.meta.url);

/** The schema file's text. */
export function schemaText(): string {
  return JSON.stringify(configJsonSchema(), null, 2) + "\n";
}

if (import.meta.main) {
  await Deno.writeTextFile(SCHEMA_PATH, schemaText());
  console.error(`wrote ${SCHEMA_PATH.pathname}`);
}
