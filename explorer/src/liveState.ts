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
  return applyFrames(previous, [frame]);
}

/**
 * Frames gathered since the last render folded in at once: the same result as applying them one
 * by one, with one merge of their samples into the live events instead of one per frame.
 */
export function applyFrames(previous: LiveData, frames: Frame[]): LiveData {
  if (frames.length === 0) return previous;
  const next = { ...previous };
  const samples: JournalEvent[] = [];
  for (const frame of frames) {
    applyScalars(next, frame);
    if (Array.isArray(frame.sample)) for (const event of frame.sample as JournalEvent[]) samples.push(event);
  }
  next.events = mergeEvents(next.events, samples, LIVE_EVENTS_MAX);
  return next;
}

/** What a frame sets besides its sample. */
function applyScalars(next: LiveData, frame: Frame): void {
  next.frames += 1;
  if (typeof frame.position === "number") next.position = frame.position;
  if (frame.since_start) next.sinceStart = frame.since_start as SinceStart;
  if (frame.type === "hello") {
    const stats = frame.stats as Stats | undefined;
    if (stats) next.sinceStart = stats.since_start;
  }
  if (Array.isArray(frame.accounts)) next.accounts = frame.accounts as Account[];
}

