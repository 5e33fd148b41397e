// The node's Explorer API (see ARCHITECTURE.md, "Explorer API"). Same origin as the page.

export type JournalEvent = {
  seq: number;
  timestamp: string;
  timestamp_ms: number;
  type: string;
  packet_id?: number;
  from_peer?: string;
  to_peer?: string;
  code?: string;
  destination?: string;
  amount_in?: number;
  amount_out?: number;
  message?: string;
  [field: string]: unknown;
};

export type EventsPage = {
  events: JournalEvent[];
  next_cursor: string | null;
  total: number;
  total_is_estimate: boolean;
  partial: boolean;
};

export type Window = {
  seconds: number;
  packets_per_second: number;
  prepared: number;
  fulfilled: number;
  rejected: number;
  success_rate: number | null;
  reject_codes: Record<string, number>;
  latency_ms: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
};

export type SinceStart = {
  started_at_ms: number;
  prepared: number;
  fulfilled: number;
  rejected: number;
  reject_codes: Record<string, number>;
};

export type Stats = {
  now_ms: number;
  windows: Window[];
  since_start: SinceStart;
  series: { columns: string[]; rows: [number, number, number, number | null, number | null][] };
  index_position: number;
  last_event_ms: number;
};

export type Account = {
  peer: string;
  relation: string | null;
  asset_code: string | null;
  asset_scale: number | null;
  position: string;
  in_flight_amount: string;
  /** Fulfills paid to the next hop that did not reach this peer: not charged to it, the connector's loss. */
  undelivered_amount: string;
  credit_limit: number | null;
  settlement_threshold: number | null;
  settle_to: number | null;
  totals: Record<string, number>;
  settlement: { configured: boolean; channel: Record<string, unknown> | null; in_progress: string | null };
  history: [number, string][];
};

const TOKEN_KEY = "m2m-explorer-token";

export function token(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(value: string): void {
  localStorage.setItem(TOKEN_KEY, value);
}

export class Unauthorized extends Error {}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = {};
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { headers, signal });
  if (response.status === 401) throw new Unauthorized("token needed");
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error ?? `${response.status}`);
  return body as T;
}

export type EventFilters = {
  types?: string;
  peer?: string;
  code?: string;
  packet?: string;
  destination?: string;
};

export function eventsPath(filters: EventFilters, cursor?: string | null, limit = 200): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) {
    if (value) params.set(key, value);
  }
  if (cursor) params.set("cursor", cursor);
  params.set("limit", String(limit));
  return `/api/events?${params}`;
}

/** The live stream at a frame a second (`every=1s`): the page renders once a second. */
export function websocketUrl(): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const bearer = token();
  return `${scheme}://${location.host}/ws?every=1s${bearer ? `&token=${encodeURIComponent(bearer)}` : ""}`;
}
