import { describe, expect, it } from "vitest";
import { BACKOFF_MS, LiveSocket, type Frame, type LiveState, type SocketLike } from "./live";

class FakeSocket implements SocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closed = false;
  close() {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.({});
  }
  open() { this.onopen?.({}); }
  receive(data: unknown) { this.onmessage?.({ data }); }
  drop() { this.onclose?.({}); }
}

/** Timers run by hand. */
class ManualTimers {
  pending: { callback: () => void; ms: number; id: number }[] = [];
  next = 1;
  setTimeout = (callback: () => void, ms: number) => { const id = this.next++; this.pending.push({ callback, ms, id }); return id; };
  clearTimeout = (id: unknown) => { this.pending = this.pending.filter((timer) => timer.id !== id); };
  runAll() { const due = this.pending; this.pending = []; due.forEach((timer) => timer.callback()); return due.map((timer) => timer.ms); }
}

function setup() {
  const sockets: FakeSocket[] = [];
  const frames: Frame[] = [];
  const states: LiveState[] = [];
  const timers = new ManualTimers();
  const live = new LiveSocket(() => { const socket = new FakeSocket(); sockets.push(socket); return socket; }, (frame) => frames.push(frame), (state) => states.push(state), timers);
  return { live, sockets, frames, states, timers };
}

describe("LiveSocket", () => {
  it("hands over each frame and ignores what does not parse", () => {
    const { live, sockets, frames, states } = setup();
    live.start();
    sockets[0].open();
    sockets[0].receive('{"type":"hello","position":5}');
    sockets[0].receive("not json");
    sockets[0].receive('{"type":"frame","position":6}');
    expect(states).toEqual(["live"]);
    expect(frames.map((frame) => frame.position)).toEqual([5, 6]);
  });

  it("reconnects by itself after a drop, with growing then capped backoff", () => {
    const { live, sockets, states, timers } = setup();
    live.start();
    sockets[0].open();
    sockets[0].drop();
    expect(states).toEqual(["live", "reconnecting"]);
    const delays: number[] = [];
    for (let attempt = 0; attempt < BACKOFF_MS.length + 2; attempt++) {
      delays.push(...timers.runAll());
      sockets[sockets.length - 1].drop(); // the node is still down
    }
    expect(delays).toEqual([...BACKOFF_MS, BACKOFF_MS[BACKOFF_MS.length - 1], BACKOFF_MS[BACKOFF_MS.length - 1]]);
    timers.runAll();
    sockets[sockets.length - 1].open(); // the node is back
    expect(live.state).toBe("live");
    sockets[sockets.length - 1].drop();
    expect(timers.pending.map((timer) => timer.ms)).toEqual([BACKOFF_MS[0]]); // backoff starts over
  });

  it("stops for good: no reconnect after stop()", () => {
    const { live, sockets, timers } = setup();
    live.start();
    sockets[0].open();
    live.stop();
    expect(sockets[0].closed).toBe(true);
    expect(timers.pending).toEqual([]);
    expect(sockets.length).toBe(1);
  });
});
