// The node's live stream (/ws): a `hello`, then frames at most 10 a second. Reconnects by itself
// with capped backoff; whoever uses it hears each frame and each change of state.

export type LiveState = "connecting" | "live" | "reconnecting";

export type Frame = { type: string; [field: string]: unknown };

export interface SocketLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- DOM and test sockets differ in event types
  onopen: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((event: any) => void) | null;
  close(): void;
}

export type Timers = {
  setTimeout: (callback: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
};

export const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

export class LiveSocket {
  private socket: SocketLike | null = null;
  private attempt = 0;
  private retry: unknown = null;
  private stopped = false;
  state: LiveState = "connecting";
  /** Connections made so far (a reconnect adds one). */
  connections = 0;

  constructor(
    private readonly connect: () => SocketLike,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onState: (state: LiveState) => void,
    private readonly timers: Timers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as number) },
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry !== null) this.timers.clearTimeout(this.retry);
    this.retry = null;
    this.socket?.close();
    this.socket = null;
  }

  private setState(state: LiveState): void {
    if (this.state !== state) {
      this.state = state;
      this.onState(state);
    }
  }

  private open(): void {
    const socket = this.connect();
    this.socket = socket;
    this.connections += 1;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState("live");
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      try {
        this.onFrame(JSON.parse(event.data) as Frame);
      } catch {
        // A frame that does not parse is skipped; the next one carries totals again.
      }
    };
    socket.onerror = () => socket.close();
    socket.onclose = () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.setState("reconnecting");
      const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt += 1;
      this.retry = this.timers.setTimeout(() => {
        this.retry = null;
        if (!this.stopped) this.open();
      }, delay);
    };
  }
}
