import { describe, expect, it } from "vitest";
import type { JournalEvent } from "./api";
import { matchesFilters, mergeEvents } from "./merge";

const event = (seq: number, extra: Partial<JournalEvent> = {}): JournalEvent => ({
  seq,
  timestamp: "2026-12-05T00:00:00.000Z",
  timestamp_ms: 0,
  type: "PacketFulfilled",
  ...extra,
});

describe("mergeEvents", () => {
  it("puts live events before history, newest first, without duplicates", () => {
    const history = [event(10), event(9), event(8)];
    const live = [event(11), event(12), event(10)];
    expect(mergeEvents(history, live, 100).map((e) => e.seq)).toEqual([12, 11, 10, 9, 8]);
  });

  it("keeps at most cap events, dropping the oldest", () => {
    const merged = mergeEvents([event(3), event(2), event(1)], [event(5), event(4)], 3);
    expect(merged.map((e) => e.seq)).toEqual([5, 4, 3]);
  });

  it("returns the same list when nothing arrives (no re-render)", () => {
    const history = [event(1)];
    expect(mergeEvents(history, [], 10)).toBe(history);
  });

  it("puts newer live events in front at once, dropping repeats among them and the oldest past cap", () => {
    const held = [event(5), event(4), event(3)];
    expect(mergeEvents(held, [event(7), event(6), event(7)], 4).map((e) => e.seq)).toEqual([7, 6, 5, 4]);
    expect(mergeEvents([], [event(2), event(1)], 10).map((e) => e.seq)).toEqual([2, 1]);
    expect(mergeEvents(held, [event(9), event(8), event(7), event(6)], 3).map((e) => e.seq)).toEqual([9, 8, 7]);
  });

  it("fills a gap: an older page merged into a live list lands in order", () => {
    const live = [event(100), event(99)];
    const page = [event(98), event(97), event(99)];
    expect(mergeEvents(live, page, 10).map((e) => e.seq)).toEqual([100, 99, 98, 97]);
  });
});

describe("matchesFilters", () => {
  it("applies type, peer, code, packet and destination as the server does", () => {
    const rejected = event(1, { type: "PacketRejected", code: "F02", from_peer: "alice", packet_id: 7, destination: "test.m2m.bob.x" });
    expect(matchesFilters(rejected, {})).toBe(true);
    expect(matchesFilters(rejected, { code: "F02" })).toBe(true);
    expect(matchesFilters(rejected, { code: "T04,F02" })).toBe(true);
    expect(matchesFilters(rejected, { code: "T04" })).toBe(false);
    expect(matchesFilters(rejected, { types: "PacketFulfilled" })).toBe(false);
    expect(matchesFilters(rejected, { peer: "alice" })).toBe(true);
    expect(matchesFilters(rejected, { peer: "bob" })).toBe(false);
    expect(matchesFilters(rejected, { packet: "7" })).toBe(true);
    expect(matchesFilters(rejected, { destination: "test.m2m.bob" })).toBe(true);
    expect(matchesFilters(rejected, { destination: "test.m2m.carol" })).toBe(false);
  });
});
