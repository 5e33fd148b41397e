import { useEffect, useState } from "react";
import { get } from "../api";

type Route = { prefix: string; peer: string; source: string };

export function Routes() {
  const [routes, setRoutes] = useState<Route[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<{ routes: Route[] }>("/api/routes").then((body) => setRoutes(body.routes), (e) => setError(String(e)));
  }, []);
  return (
    <section className="panel">
      <h2>Routes</h2>
      {error && <p className="error">{error}</p>}
      <table data-testid="routes-table">
        <thead><tr><th>Prefix</th><th>Next hop</th><th>Source</th></tr></thead>
        <tbody>
          {routes.map((route) => (
            <tr key={`${route.prefix}-${route.peer}`}><td>{route.prefix || "(default route)"}</td><td>{route.peer}</td><td>{route.source}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
