import { useEffect, useState } from "react";
import { get } from "../api";

type Peer = { peer: string; relation: string; asset_code: string; asset_scale: number; address: string | null; sessions: number; connected: boolean; routes: { prefix: string; source: string }[]; credit_limit: number };

export function Peers() {
  const [peers, setPeers] = useState<Peer[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const load = () => get<{ peers: Peer[] }>("/api/peers").then((body) => { setPeers(body.peers); setError(null); }, (e) => setError(String(e)));
    load();
    const timer = setInterval(load, 2000);
    return () => clearInterval(timer);
  }, []);
  return (
    <section className="panel">
      <h2>Peers</h2>
      {error && <p className="error">{error}</p>}
      <table data-testid="peers-table">
        <thead><tr><th>Peer</th><th>Relation</th><th>Asset</th><th>Address</th><th>Sessions</th><th>Routes</th><th>Credit limit</th></tr></thead>
        <tbody>
          {peers.map((peer) => (
            <tr key={peer.peer}>
              <td>{peer.peer}</td>
              <td>{peer.relation}</td>
              <td>{peer.asset_code} (scale {peer.asset_scale})</td>
              <td>{peer.address ?? "–"}</td>
              <td className={peer.connected ? "ok" : "bad"}>{peer.sessions}</td>
              <td>{peer.routes.map((route) => `${route.prefix || "(default)"} [${route.source}]`).join(", ") || "–"}</td>
              <td>{peer.credit_limit}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
