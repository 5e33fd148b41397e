import { describe, expect, it } from "vitest";
import { applyFrame, applyFrames, LIVE_EVENTS_MAX, type LiveData } from "./liveState";

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

  it("folds a second's frames at once into what applying them one by one gives", () => {
    const frames = [
      { type: "hello", position: 3, stats: { since_start: { started_at_ms: 0, prepared: 3, fulfilled: 2, rejected: 0, reject_codes: {} } }, accounts: [] },
      { type: "frame", position: 40, sample: sample(5, 30), accounts: [{ peer: "alice" }] },
      { type: "skipped", frames: 2 },
      { type: "frame", position: 90, since_start: { started_at_ms: 0, prepared: 9, fulfilled: 8, rejected: 1, reject_codes: { F99: 1 } }, sample: sample(41, 50) },
      { type: "frame", position: 95, sample: sample(88, 8) }, // overlaps the previous sample
    ];
    let oneByOne = { ...empty, events: sample(1, 3).reverse() };
    const start = oneByOne;
    for (const frame of frames) oneByOne = applyFrame(oneByOne, frame);
    expect(applyFrames(start, frames)).toEqual(oneByOne);
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => to - i);
    expect(oneByOne.events.map((event) => event.seq)).toEqual([...seqs(41, 95), ...seqs(5, 34), ...seqs(1, 3)]);
    expect(applyFrames(start, [])).toBe(start);
  });
});
