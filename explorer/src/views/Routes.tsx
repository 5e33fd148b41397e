import { useEffect, useState } from "react";
import { get } from "../api";

type Route = { prefix: string; peer: string; source: string; path: string[]; age_ms: number | null };
type PeerRouting = { peer: string; send_routes: boolean; receive_routes: boolean; sending: string; sent_epoch: number; received_epoch: number; routes_learned: number };
type Table = { routing_table_id: string; epoch: number; routes: Route[]; peers: PeerRouting[] };

/** "12 s", "3 min", "2 h": how long a route has been the one in use. */
export function age(ms: number | null): string {
  if (ms === null) return "since start";
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

export function Routes() {
  const [table, setTable] = useState<Table | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    // Learned routes come and go: read the table again every 5 s.
    const load = () => get<Table>("/api/routes").then((body) => { setTable(body); setError(null); }, (e) => setError(String(e)));
    load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, []);
  const routes = table?.routes ?? [];
  return (
    <section className="panel">
      <h2>Routes</h2>
      {error && <p className="error">{error}</p>}
      {table && <p className="muted">Routing table {table.routing_table_id}, epoch {table.epoch}</p>}
      <table data-testid="routes-table">
        <thead><tr><th>Prefix</th><th>Next hop</th><th>Source</th><th>Path</th><th>Age</th></tr></thead>
        <tbody>
          {routes.map((route) => (
            <tr key={`${route.prefix}-${route.peer}`}>
              <td>{route.prefix || "(default route)"}</td><td>{route.peer}</td><td>{route.source}</td>
              <td>{route.path.length ? route.path.join(" → ") : "–"}</td><td>{age(route.age_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {table && table.peers.some((peer) => peer.send_routes || peer.receive_routes) && (
        <>
          <h3>Route exchange</h3>
          <table data-testid="route-exchange-table">
            <thead><tr><th>Peer</th><th>We send</th><th>We receive</th><th>Epoch sent</th><th>Epoch received</th><th>Routes learned</th></tr></thead>
            <tbody>
              {table.peers.filter((peer) => peer.send_routes || peer.receive_routes).map((peer) => (
                <tr key={peer.peer}>
                  <td>{peer.peer}</td><td>{peer.send_routes ? peer.sending : "off"}</td><td>{peer.receive_routes ? "on" : "off"}</td>
                  <td>{peer.sent_epoch}</td><td>{peer.received_epoch}</td><td>{peer.routes_learned}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
