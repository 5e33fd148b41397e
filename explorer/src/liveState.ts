// The live state the views read, and how a frame from /ws changes it (pure, for the tests).
import type { Account, JournalEvent, SinceStart, Stats } from "./api";
import type { Frame, LiveState } from "./live";
import { mergeEvents } from "./merge";

/** Live events kept in memory for the live views. */
export const LIVE_EVENTS_MAX = 5000;

export type LiveData = {
  state: LiveState;
  sinceStart: SinceStart | null;
  accounts: Account[];
  events: JournalEvent[];
  frames: number;
  position: number;
};

/** One live frame folded into the live state. */
export function applyFrame(previous: LiveData, frame: Frame): LiveData {
  const next = { ...previous, frames: previous.frames + 1 };
  if (typeof frame.position === "number") next.position = frame.position;
  if (frame.since_start) next.sinceStart = frame.since_start as SinceStart;
  if (frame.type === "hello") {
    const stats = frame.stats as Stats | undefined;
    if (stats) next.sinceStart = stats.since_start;
  }
  if (Array.isArray(frame.accounts)) next.accounts = frame.accounts as Account[];
  if (Array.isArray(frame.sample)) next.events = mergeEvents(next.events, frame.sample as JournalEvent[], LIVE_EVENTS_MAX);
  return next;
}

