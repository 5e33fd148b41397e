import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { get, setToken, Unauthorized, websocketUrl, type Stats } from "./api";
import { LiveSocket, type Frame } from "./live";

export type { LiveData } from "./liveState";
import { applyFrames, type LiveData } from "./liveState";
import { Dashboard } from "./views/Dashboard";
import { Packets } from "./views/Packets";
import { Accounts } from "./views/Accounts";
import { Peers } from "./views/Peers";
import { Routes } from "./views/Routes";

const VIEWS = ["Dashboard", "Packets", "Accounts", "Peers", "Routes"] as const;
type View = (typeof VIEWS)[number];

/**
 * How often the page renders what arrived: once a second, live frames and the polled stats and
 * health together. Each render costs the browser layout, paint and compositing; at 4 a second two
 * headless dashboards took a fifth of a core under load (BENCHMARKS.md, "What the Explorer costs").
 */
const RENDER_INTERVAL_MS = 1000;

export function App() {
  const [view, setView] = useState<View>(() => viewFromPath());
  const [needToken, setNeedToken] = useState(false);
  const [live, setLive] = useState<LiveData>({ state: "connecting", sinceStart: null, accounts: [], events: [], frames: 0, position: 0 });
  const [stats, setStats] = useState<Stats | null>(null);
  const [health, setHealth] = useState<Record<string, unknown> | null>(null);
  const searchRef = useRef<HTMLInputElement>(null);
  const [packetQuery, setPacketQuery] = useState<string>("");

  const go = useCallback((next: View) => {
    setView(next);
    history.replaceState(null, "", next === "Dashboard" ? "/" : `/${next.toLowerCase()}`);
  }, []);

  // The live stream, and the stats and health polled beside it, reach the page together once a
  // second: frames (at most 10 a second) are queued and folded in when the poll answers, so the
  // page renders once a second, not once per frame and again per poll. A poll still running at
  // the next tick does not hold the live view back: the queued frames go in without it.
  useEffect(() => {
    if (needToken) return;
    let queued: Frame[] = [];
    let cancelled = false;
    let polling = false;
    const flush = () => {
      if (queued.length === 0) return;
      const frames = queued;
      queued = [];
      setLive((previous) => applyFrames(previous, frames));
    };
    const tick = async () => {
      if (polling) {
        flush();
        return;
      }
      polling = true;
      try {
        const [nextStats, nextHealth] = await Promise.all([get<Stats>("/api/stats"), get<Record<string, unknown>>("/api/health")]);
        if (!cancelled) {
          setStats(nextStats);
          setHealth(nextHealth);
        }
      } catch (error) {
        if (!cancelled && error instanceof Unauthorized) setNeedToken(true);
      } finally {
        polling = false;
        if (!cancelled) flush();
      }
    };
    const socket = new LiveSocket(
      () => new WebSocket(websocketUrl()),
      (frame) => queued.push(frame),
      (state) => {
        flush();
        setLive((previous) => ({ ...previous, state }));
      },
    );
    socket.start();
    tick();
    const timer = setInterval(tick, RENDER_INTERVAL_MS);
    return () => {
      cancelled = true;
      clearInterval(timer);
      socket.stop();
    };
  }, [needToken]);

  // Keyboard: 1-5 switch views, "/" focuses the packet search.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
      if (typing || event.metaKey || event.ctrlKey || event.altKey) return;
      const index = Number(event.key) - 1;
      if (index >= 0 && index < VIEWS.length) {
        go(VIEWS[index]);
        event.preventDefault();
      } else if (event.key === "/") {
        event.preventDefault();
        go("Packets");
        setTimeout(() => searchRef.current?.focus(), 0);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [go]);

  const openPacket = useCallback((id: string) => {
    setPacketQuery(id);
    go("Packets");
  }, [go]);

  const status = useMemo(() => (health?.node_health as { status?: string } | undefined)?.status ?? "unknown", [health]);

  if (needToken) return <TokenPrompt onToken={(value) => { setToken(value); setNeedToken(false); }} />;

  return (
    <div className="app">
      <header>
        <h1>M2M Explorer</h1>
        <nav>
          {VIEWS.map((name, index) => (
            <button key={name} className={name === view ? "active" : ""} onClick={() => go(name)} data-testid={`nav-${name.toLowerCase()}`}>
              <kbd>{index + 1}</kbd> {name}
            </button>
          ))}
        </nav>
        <div className="status">
          <span className={`dot ${live.state}`} data-testid="ws-status" data-state={live.state}>{live.state}</span>
          <span className={`health ${status}`} data-testid="node-status">{String(health?.node ?? "")} {status}</span>
        </div>
      </header>
      <main>
        {view === "Dashboard" && <Dashboard live={live} stats={stats} health={health} onPacket={openPacket} />}
        {view === "Packets" && <Packets live={live} searchRef={searchRef} initialQuery={packetQuery} />}
        {view === "Accounts" && <Accounts accounts={live.accounts} />}
        {view === "Peers" && <Peers />}
        {view === "Routes" && <Routes />}
      </main>
    </div>
  );
}

function viewFromPath(): View {
  const name = location.pathname.replace(/^\//, "");
  return VIEWS.find((view) => view.toLowerCase() === name) ?? "Dashboard";
}

function TokenPrompt({ onToken }: { onToken: (token: string) => void }) {
  const [value, setValue] = useState("");
  return (
    <form className="token" onSubmit={(event) => { event.preventDefault(); onToken(value); }}>
      <h1>M2M Explorer</h1>
      <p>This node's Explorer needs its token (EXPLORER_TOKEN).</p>
      <input type="password" value={value} onChange={(event) => setValue(event.target.value)} data-testid="token-input" autoFocus />
      <button type="submit">Open</button>
    </form>
  );
}
