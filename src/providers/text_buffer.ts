/**
 * Collects a streamed reply's text for its final result.
 *
 * `text += delta` per token builds a rope: every delta stays its own heap
 * string and each `+=` adds a cons cell, about 50 bytes of live heap per
 * 18-character token until the stream ends, all of it promoted to the old
 * generation. A fast stream to a client that stopped reading (kernel
 * socket buffers absorb ~200,000 tokens before backpressure stops the
 * upstream read) held ~10 MiB that way. Here deltas are joined into flat
 * blocks every {@linkcode FOLD_PARTS} parts: about one byte per character.
 *
 * @module
 */

/** Deltas kept apart before they are joined into one flat block. */
export const FOLD_PARTS = 512;

/** Appends deltas; {@linkcode TextBuffer.text} is their concatenation. */
export class TextBuffer {
  #blocks: string[] = [];
  #parts: string[] = [];

  /** Appends `delta`. */
  add(delta: string): void {
    if (delta === "") return;
    this.#parts.push(delta);
    if (this.#parts.length >= FOLD_PARTS) {
      this.#blocks.push(this.#parts.join(""));
      this.#parts = [];
    }
  }

  /** Everything added so far, as one string. */
  get text(): string {
    return this.#blocks.join("") + this.#parts.join("");
  }

  /** True when nothing was added. */
  get empty(): boolean {
    return this.#blocks.length === 0 && this.#parts.length === 0;
  }
}
