/**
 * Signed thinking blocks the provider has seen, so an assistant turn a
 * client sends back with its `thinking` text can be given back to
 * Anthropic as the original blocks.
 *
 * Anthropic accepts earlier thinking only with the signature it issued
 * for exactly that text, and requires it when thinking is on and the last
 * assistant turn called tools ("a final `assistant` message must start
 * with a thinking block"). The provider-neutral `Message` carries the
 * thinking text only (MCP clients echo it back, they never saw a
 * signature), so the provider remembers the blocks of its recent replies
 * keyed by the text they add up to. The memory is bounded by entries and
 * by bytes; a turn whose blocks were forgotten (or never came from this
 * process) is sent without its thinking.
 *
 * @module
 */

/** A thinking block as Anthropic wants it back. */
export type ThinkingBlock =
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string };

/** Bounds of a {@linkcode SignatureMemory}. */
export interface SignatureMemoryOptions {
  /**
   * Most assistant turns remembered.
   * @default 256
   */
  maxEntries?: number;
  /**
   * Most bytes (UTF-16 code units of texts, signatures and redacted data) remembered.
   * @default 8 MiB
   */
  maxChars?: number;
}

/** Remembers the signed thinking blocks of recent replies, least recently used out first. */
export class SignatureMemory {
  #entries = new Map<string, { blocks: ThinkingBlock[]; size: number }>();
  #size = 0;
  #maxEntries: number;
  #maxChars: number;

  /** An empty memory with the given bounds. */
  constructor(options: SignatureMemoryOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 256;
    this.#maxChars = options.maxChars ?? 8 * 1024 * 1024;
  }

  /** Turns remembered now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Remembers the blocks of one reply under the thinking text they add up to. */
  remember(thinking: string, blocks: ThinkingBlock[]): void {
    if (thinking === "" || blocks.length === 0) return;
    const size = thinking.length + blocks.reduce((sum, block) => sum + blockSize(block), 0);
    // Larger than the whole memory: keeping it would evict everything else.
    if (size > this.#maxChars) return;
    this.#drop(thinking);
    this.#entries.set(thinking, { blocks, size });
    this.#size += size;
    while (this.#entries.size > this.#maxEntries || this.#size > this.#maxChars) {
      this.#drop(this.#entries.keys().next().value!);
    }
  }

  /** The blocks that add up to `thinking`, or undefined when they are not known. */
  recall(thinking: string): ThinkingBlock[] | undefined {
    const entry = this.#entries.get(thinking);
    if (!entry) return undefined;
    // Most recently used goes last.
    this.#entries.delete(thinking);
    this.#entries.set(thinking, entry);
    return entry.blocks;
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#size -= entry.size;
  }
}

function blockSize(block: ThinkingBlock): number {
  return block.type === "thinking"
    ? block.thinking.length + block.signature.length
    : block.data.length;
}
