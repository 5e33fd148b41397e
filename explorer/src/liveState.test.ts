import { describe, expect, it } from "vitest";
import { applyFrame, LIVE_EVENTS_MAX, type LiveData } from "./liveState";

const empty: LiveData = { state: "connecting", sinceStart: null, accounts: [], events: [], frames: 0, position: 0 };
const sample = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ seq: from + i, timestamp: "2026-12-05T00:00:00.000Z", timestamp_ms: 0, type: "PacketPrepared" }));

describe("applyFrame", () => {
  it("takes totals and accounts from each frame and merges its sample, newest first", () => {
    const hello = { type: "hello", position: 10, stats: { since_start: { started_at_ms: 0, prepared: 1, fulfilled: 1, rejected: 0, reject_codes: {} } }, accounts: [] };
    let state = applyFrame(empty, hello);
    expect(state.sinceStart?.fulfilled).toBe(1);
    state = applyFrame(state, { type: "frame", position: 14, since_start: { started_at_ms: 0, prepared: 5, fulfilled: 4, rejected: 1, reject_codes: { F99: 1 } }, sample: sample(11, 4) });
    state = applyFrame(state, { type: "frame", position: 16, sample: sample(15, 2) });
    expect(state.position).toBe(16);
    expect(state.frames).toBe(3);
    expect(state.sinceStart?.rejected).toBe(1);
    expect(state.events.map((event) => event.seq)).toEqual([16, 15, 14, 13, 12, 11]);
  });

  it("keeps a bounded number of live events", () => {
    let state = empty;
    for (let frame = 0; frame < 200; frame++) state = applyFrame(state, { type: "frame", sample: sample(frame * 64, 64) });
    expect(state.events.length).toBe(LIVE_EVENTS_MAX);
    expect(state.events[0].seq).toBe(200 * 64 - 1);
  });

  it("ignores a skipped-frames notice except for counting it", () => {
    const state = applyFrame(empty, { type: "skipped", frames: 3 });
    expect(state.events).toEqual([]);
    expect(state.frames).toBe(1);
  });
});
