import type { EventFilters, JournalEvent } from "./api";

/** Newest first, without duplicates, at most `cap` events: live events merged into a list. */
export function mergeEvents(existing: JournalEvent[], incoming: JournalEvent[], cap: number): JournalEvent[] {
  if (incoming.length === 0) return existing;
  const sorted = [...incoming].sort((a, b) => b.seq - a.seq);
  // Live frames: everything new is newer than all we hold (the common case, several times a
  // second): put it in front, without the set of seen seqs a merge needs.
  if (existing.length === 0 || sorted[sorted.length - 1].seq > existing[0].seq) {
    const merged = sorted.filter((event, i) => i === 0 || event.seq !== sorted[i - 1].seq);
    const room = cap - merged.length;
    if (room <= 0) return merged.slice(0, cap);
    return merged.concat(existing.length > room ? existing.slice(0, room) : existing);
  }
  const seen = new Set<number>();
  const merged: JournalEvent[] = [];
  let i = 0;
  let j = 0;
  while (merged.length < cap && (i < sorted.length || j < existing.length)) {
    const next = j >= existing.length || (i < sorted.length && sorted[i].seq > existing[j].seq) ? sorted[i++] : existing[j++];
    if (!seen.has(next.seq)) {
      seen.add(next.seq);
      merged.push(next);
    }
  }
  return merged;
}

/** Whether a live event passes the filters the history query would apply on the server. */
export function matchesFilters(event: JournalEvent, filters: EventFilters): boolean {
  if (filters.types && !filters.types.split(",").includes(event.type)) return false;
  if (filters.peer && event.from_peer !== filters.peer && event.to_peer !== filters.peer && event.peer !== filters.peer) return false;
  if (filters.code && !filters.code.split(",").includes(String(event.code ?? ""))) return false;
  if (filters.packet && String(event.packet_id) !== filters.packet) return false;
  if (filters.destination && !(typeof event.destination === "string" && event.destination.startsWith(filters.destination))) return false;
  return true;
}
