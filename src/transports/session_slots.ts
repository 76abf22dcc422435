/**
 * The daemon-wide cap on network sessions (WebSocket connections, legacy
 * Streamable HTTP sessions) and stateless 2026-07-28 requests in flight.
 *
 * A slot is reserved synchronously, before any await (token checks, loading
 * the SDK, building a server), and given back exactly once when the session
 * ends or its setup fails: a burst of concurrent openings can never exceed
 * the cap, however the awaits interleave.
 *
 * @module
 */

/** A counting semaphore without waiting: a reservation succeeds or is refused at once. */
export interface SessionSlots {
  /** The cap. */
  readonly limit: number;
  /** Slots taken now. */
  readonly used: number;
  /** Slots taken since the start (sessions and requests opened). */
  readonly opened: number;
  /** Slots given back since the start (sessions and requests ended). */
  readonly ended: number;
  /** Takes a slot if one is free. */
  tryReserve(): boolean;
  /** Gives a slot back. */
  release(): void;
}

/** Creates a cap of `limit` slots. */
export function createSessionSlots(limit: number): SessionSlots {
  let used = 0;
  let opened = 0;
  let ended = 0;
  return {
    limit,
    get used() {
      return used;
    },
    get opened() {
      return opened;
    },
    get ended() {
      return ended;
    },
    tryReserve() {
      if (used >= limit) return false;
      used++;
      opened++;
      return true;
    },
    release() {
      if (used > 0) {
        used--;
        ended++;
      }
    },
  };
}
