import { useCallback, useEffect, useMemo, useRef, useState, type RefObject } from "react";
import { eventsPath, get, type EventFilters, type EventsPage, type JournalEvent } from "../api";
import type { LiveData } from "../App";
import { matchesFilters, mergeEvents } from "../merge";

const ROW_HEIGHT = 28;
const VIEW_HEIGHT = 520;
const TYPES = ["", "PacketPrepared", "PacketFulfilled", "PacketRejected", "ClaimSent", "ClaimReceived", "SettlementTriggered", "PeerConnected", "PeerDisconnected"];

export function Packets({ live, searchRef, initialQuery }: { live: LiveData; searchRef: RefObject<HTMLInputElement | null>; initialQuery: string }) {
  const [mode, setMode] = useState<"live" | "history">("live");
  const [filters, setFilters] = useState<EventFilters>({});
  const [draft, setDraft] = useState<EventFilters>({});
  const [history, setHistory] = useState<JournalEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [total, setTotal] = useState<string>("");
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [search, setSearch] = useState(initialQuery);
  const [selected, setSelected] = useState<string | null>(initialQuery || null);
  const [paused, setPaused] = useState<JournalEvent[]>([]);

  // Live rows: the stream's sample, filtered as the server would.
  const liveRows = useMemo(() => live.events.filter((event) => matchesFilters(event, filters)), [live.events, filters]);

  const loadPage = useCallback(async (from: string | null, replace: boolean) => {
    setLoading(true);
    try {
      const page = await get<EventsPage>(eventsPath(filters, from));
      setHistory((previous) => (replace ? page.events : mergeEvents(previous, page.events, 1_000_000)));
      setCursor(page.next_cursor);
      setTotal(`${page.total_is_estimate ? "≈" : ""}${page.total}`);
      setError(null);
    } catch (e) {
      setError(String(e instanceof Error ? e.message : e));
    } finally {
      setLoading(false);
    }
  }, [filters]);

  useEffect(() => {
    if (mode === "history") loadPage(null, true);
  }, [mode, loadPage]);

  const switchToHistory = () => {
    setPaused(liveRows);
    setMode("history");
  };
  const jumpToLive = () => {
    setMode("live");
    setHistory([]);
    setCursor(null);
  };

  const rows = mode === "live" ? liveRows : history;
  const apply = (event: React.FormEvent) => {
    event.preventDefault();
    setFilters({ ...draft });
  };
  const open = (event: React.FormEvent) => {
    event.preventDefault();
    if (search.trim()) setSelected(search.trim());
  };

  return (
    <div className="packets">
      <div className="toolbar">
        <form onSubmit={open} className="search">
          <input ref={searchRef} placeholder="Packet id, condition or fulfillment  ( / )" value={search} onChange={(e) => setSearch(e.target.value)} data-testid="search" />
        </form>
        <div className="modes">
          <button className={mode === "live" ? "active" : ""} onClick={jumpToLive} data-testid="mode-live">Live</button>
          <button className={mode === "history" ? "active" : ""} onClick={switchToHistory} data-testid="mode-history">History</button>
          {mode === "history" && <button className="jump" onClick={jumpToLive} data-testid="jump-live">Jump to live ⟶</button>}
        </div>
      </div>
      <form className="filters" onSubmit={apply}>
        <select value={draft.types ?? ""} onChange={(e) => setDraft({ ...draft, types: e.target.value || undefined })} data-testid="filter-type">
          {TYPES.map((type) => <option key={type} value={type}>{type || "any type"}</option>)}
        </select>
        <input placeholder="peer" value={draft.peer ?? ""} onChange={(e) => setDraft({ ...draft, peer: e.target.value || undefined })} data-testid="filter-peer" />
        <input placeholder="code (F02,T04)" value={draft.code ?? ""} onChange={(e) => setDraft({ ...draft, code: e.target.value.toUpperCase() || undefined })} data-testid="filter-code" />
        <input placeholder="destination prefix" value={draft.destination ?? ""} onChange={(e) => setDraft({ ...draft, destination: e.target.value || undefined })} data-testid="filter-destination" />
        <input placeholder="packet id" value={draft.packet ?? ""} onChange={(e) => setDraft({ ...draft, packet: e.target.value || undefined })} data-testid="filter-packet" />
        <button type="submit" data-testid="filter-apply">Filter</button>
      </form>
      <div className="meta" data-testid="packets-meta" data-mode={mode}>
        {mode === "live" ? `live: ${rows.length} recent events (sampled)` : `history: ${rows.length} of ${total} events`}
        {mode === "history" && paused.length > 0 && <span className="muted"> · live paused at seq {paused[0]?.seq}</span>}
        {loading && " · loading…"}
        {error && <span className="error"> · {error}</span>}
      </div>
      <div className="split">
        <VirtualTable rows={rows} onSelect={(event) => setSelected(String(event.packet_id ?? ""))} selected={selected} onEnd={() => { if (mode === "history" && cursor && !loading) loadPage(cursor, false); }} />
        {selected && <PacketDetail id={selected} onClose={() => setSelected(null)} />}
      </div>
    </div>
  );
}

function VirtualTable({ rows, onSelect, selected, onEnd }: { rows: JournalEvent[]; onSelect: (event: JournalEvent) => void; selected: string | null; onEnd: () => void }) {
  const [top, setTop] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 5);
  const count = Math.ceil(VIEW_HEIGHT / ROW_HEIGHT) + 10;
  const visible = rows.slice(first, first + count);
  useEffect(() => {
    if (rows.length * ROW_HEIGHT - top < VIEW_HEIGHT * 2) onEnd();
  }, [top, rows.length, onEnd]);
  return (
    <div className="vtable" ref={box} style={{ height: VIEW_HEIGHT }} onScroll={(e) => setTop(e.currentTarget.scrollTop)} data-testid="packet-table">
      <div className="vhead"><span>seq</span><span>time</span><span>type</span><span>packet</span><span>from → to</span><span>amount</span><span>code</span><span>destination</span></div>
      <div style={{ height: rows.length * ROW_HEIGHT, position: "relative" }}>
        {visible.map((event, index) => (
          <div
            key={event.seq}
            className={`vrow ${event.type} ${selected !== null && String(event.packet_id) === selected ? "selected" : ""}`}
            style={{ top: (first + index) * ROW_HEIGHT, height: ROW_HEIGHT }}
            onClick={() => onSelect(event)}
            data-testid="packet-row"
            data-type={event.type}
            data-code={event.code ?? ""}
            data-packet={event.packet_id ?? ""}
          >
            <span>{event.seq}</span>
            <span>{event.timestamp.slice(11, 23)}</span>
            <span>{event.type.replace("Packet", "")}</span>
            <span>{event.packet_id ?? ""}</span>
            <span>{event.from_peer ?? String(event.peer ?? "")}{event.to_peer ? ` → ${event.to_peer}` : ""}</span>
            <span>{event.amount_in ?? String(event.amount ?? "")}</span>
            <span>{event.code ?? ""}</span>
            <span className="dest">{event.destination ?? ""}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

type Story = {
  packet_id: number;
  prepared: Record<string, unknown> | null;
  decision: Record<string, unknown> | null;
  outcome: { type: string; fulfillment?: string; code?: string; message?: string; triggered_by?: string; stage?: string; timestamp_ms?: number; undelivered?: { reason: string; amount_in: number } };
  durations: { total_ms: number | null; left_before_expiry_ms: number | null };
  events: JournalEvent[];
};

function PacketDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const [story, setStory] = useState<Story | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    setStory(null);
    setError(null);
    get<Story>(`/api/packets/${encodeURIComponent(id)}`).then(setStory, (e) => setError(String(e instanceof Error ? e.message : e)));
  }, [id]);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const expiry = story?.prepared?.expires_at_in_ms as number | undefined;
  const countdown = expiry === undefined ? "–" : story?.outcome.type !== "pending"
    ? `ended ${story?.durations.left_before_expiry_ms ?? "?"} ms before its expiry`
    : expiry > now ? `expires in ${((expiry - now) / 1000).toFixed(0)} s` : "expired";
  return (
    <aside className="detail" data-testid="packet-detail">
      <button className="close" onClick={onClose}>×</button>
      <h2>Packet {story?.packet_id ?? id}</h2>
      {error && <p className="error" data-testid="detail-error">{error}</p>}
      {story && (
        <>
          <dl>
            <dt>Outcome</dt><dd data-testid="detail-outcome">{story.outcome.type}{story.outcome.code ? ` ${story.outcome.code}` : ""}</dd>
            {story.outcome.fulfillment && (<><dt>Fulfillment</dt><dd className="hex" data-testid="detail-fulfillment">{story.outcome.fulfillment}</dd></>)}
            {story.outcome.undelivered && (<><dt>Not delivered</dt><dd data-testid="detail-undelivered">{story.outcome.undelivered.reason}: the sender was not charged {story.outcome.undelivered.amount_in}</dd></>)}
            {story.outcome.message !== undefined && (<><dt>Message</dt><dd>{story.outcome.message} (by {story.outcome.triggered_by}, {story.outcome.stage})</dd></>)}
            <dt>Condition</dt><dd className="hex" data-testid="detail-condition">{String(story.prepared?.condition ?? "–")}</dd>
            <dt>From → to</dt><dd>{String(story.prepared?.from_peer ?? "?")} → {String(story.prepared?.to_peer ?? "–")}</dd>
            <dt>Amount in / out</dt><dd>{String(story.prepared?.amount_in ?? "–")} / {String(story.prepared?.amount_out ?? "–")}</dd>
            {rateOf(story.prepared) && (<><dt>Exchange rate</dt><dd data-testid="detail-rate">{rateOf(story.prepared)}</dd></>)}
            <dt>Destination</dt><dd>{String(story.prepared?.destination ?? "–")}</dd>
            <dt>Expiry in / out</dt><dd>{String(story.prepared?.expires_at_in ?? "–")} / {String(story.prepared?.expires_at_out ?? "–")}</dd>
            <dt>Expiry</dt><dd data-testid="expiry-countdown">{countdown}</dd>
            <dt>Decision</dt><dd>{JSON.stringify(story.decision)}</dd>
            <dt>Duration</dt><dd>{story.durations.total_ms ?? "–"} ms</dd>
          </dl>
          <h3>Events</h3>
          <ol className="related">
            {story.events.map((event) => <li key={event.seq}>#{event.seq} {event.timestamp.slice(11, 23)} {event.type}</li>)}
          </ol>
        </>
      )}
    </aside>
  );
}

/** The exchange rate a packet was converted at ("numerator / denominator"), if it changed assets. */
function rateOf(prepared: Record<string, unknown> | null): string | null {
  const rate = prepared?.rate as { numerator: string; denominator: string } | null | undefined;
  return rate ? `${rate.numerator} / ${rate.denominator}` : null;
}
