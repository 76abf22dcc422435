/**
 * Server-sent events as a {@linkcode StreamParser}: the seam the stream
 * reader (`stream.ts`) takes, as `ndjson.ts` is for NDJSON. Anthropic's
 * Messages API and OpenAI-compatible Chat Completions stream this way.
 *
 * Parsing is npm `eventsource-parser` (the WHATWG event-stream rules:
 * `event:`/`data:`/`id:` fields, multi-line data, comments, CR/LF/CRLF),
 * with its buffer bounded: an event that grows past `maxEventLength`
 * without ending is refused as an invalid response instead of growing the
 * daemon.
 *
 * @module
 */

import { createParser, type EventSourceMessage } from "eventsource-parser";
import { DEFAULT_MAX_LINE_LENGTH, LineTooLongError } from "./ndjson.ts";
import type { StreamParser } from "./stream.ts";

/** One server-sent event. */
export interface SseEvent {
  /** The `event:` field, when the server named the event. */
  event?: string;
  /** The `data:` lines, joined with newlines. */
  data: string;
  /** The `id:` field, if any. */
  id?: string;
}

/** Options of {@linkcode sseParser}. */
export interface SseOptions {
  /**
   * Longest event (all its lines together) in characters.
   * @default DEFAULT_MAX_LINE_LENGTH (16 MiB)
   */
  maxEventLength?: number;
}

/** Creates a parser that turns event-stream text into {@linkcode SseEvent}s. */
export function sseParser(options: SseOptions = {}): StreamParser<SseEvent> {
  const maxEventLength = options.maxEventLength ?? DEFAULT_MAX_LINE_LENGTH;
  let events: SseEvent[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    maxBufferSize: maxEventLength,
    onEvent(message: EventSourceMessage) {
      events.push({
        ...(message.event !== undefined && { event: message.event }),
        data: message.data,
        ...(message.id !== undefined && { id: message.id }),
      });
    },
    onError(error) {
      // Malformed fields are skipped as the event-stream rules say; only an overflow ends it.
      if (error.type === "max-buffer-size-exceeded") {
        failure = new LineTooLongError(
          `the server sent an event longer than ${maxEventLength} characters`,
          { cause: error },
        );
      }
    },
  });

  function take(): SseEvent[] {
    if (failure) throw failure;
    const out = events;
    events = [];
    return out;
  }

  return {
    push(text) {
      try {
        parser.feed(text);
      } catch (cause) {
        failure ??= new LineTooLongError("the event stream could not be parsed", { cause });
      }
      return take();
    },
    end() {
      // The event-stream rules drop an event the stream ends in the middle of; some servers
      // end the last event without its blank line, so it is completed instead.
      try {
        parser.feed("\n\n");
      } catch (cause) {
        failure ??= new LineTooLongError("the event stream could not be parsed", { cause });
      }
      return take();
    },
  };
}
