import { useMemo } from "react";
import type { Stats } from "../api";
import type { LiveData } from "../App";
import { Chart } from "../Chart";

export function Dashboard({ live, stats, health, onPacket }: { live: LiveData; stats: Stats | null; health: Record<string, unknown> | null; onPacket: (id: string) => void }) {
  const since = live.sinceStart ?? stats?.since_start ?? null;
  const minute = stats?.windows.find((window) => window.seconds === 60) ?? null;
  const tenSeconds = stats?.windows.find((window) => window.seconds === 10) ?? null;
  const rows = stats?.series.rows ?? [];
  const throughput = useMemo(() => [rows.map((row) => row[0]), rows.map((row) => row[1]), rows.map((row) => row[2])], [rows]);
  const latency = useMemo(() => [rows.map((row) => row[0]), rows.map((row) => row[3]), rows.map((row) => row[4])], [rows]);
  const codes = Object.entries(minute?.reject_codes ?? {}).sort((a, b) => b[1] - a[1]);
  const codeMax = Math.max(1, ...codes.map(([, count]) => count));
  const ended = since ? since.fulfilled + since.rejected : 0;
  return (
    <div className="dashboard">
      <section className="cards">
        <Card label="Prepared since start" value={since?.prepared} testId="total-prepared" />
        <Card label="Fulfilled since start" value={since?.fulfilled} testId="total-fulfilled" />
        <Card label="Rejected since start" value={since?.rejected} testId="total-rejected" />
        <Card label="Success rate" value={ended ? `${((100 * (since?.fulfilled ?? 0)) / ended).toFixed(1)} %` : "–"} testId="success-rate" />
        <Card label="Packets/s (10 s)" value={tenSeconds ? tenSeconds.packets_per_second.toFixed(1) : "–"} testId="packets-per-second" />
        <Card label="Latency p50 / p99 (60 s)" value={minute?.latency_ms.p50 != null ? `${minute.latency_ms.p50} / ${minute.latency_ms.p99} ms` : "–"} testId="latency" />
      </section>
      <section className="panel">
        <h2>Throughput (per second)</h2>
        <Chart data={throughput} series={[{ label: "fulfilled", color: "#3fb950" }, { label: "rejected", color: "#f85149" }]} testId="chart-throughput" />
      </section>
      <section className="panel">
        <h2>Latency (ms)</h2>
        <Chart data={latency} series={[{ label: "p50", color: "#58a6ff" }, { label: "p99", color: "#d29922" }]} testId="chart-latency" />
      </section>
      <section className="panel">
        <h2>Reject codes (60 s)</h2>
        {codes.length === 0 && <p className="muted">none</p>}
        <ul className="bars" data-testid="reject-codes">
          {codes.map(([code, count]) => (
            <li key={code}>
              <span className="code">{code}</span>
              <span className="bar" style={{ width: `${(100 * count) / codeMax}%` }} />
              <span className="count">{count}</span>
            </li>
          ))}
        </ul>
      </section>
      <section className="panel">
        <h2>Live flow</h2>
        <ul className="flow" data-testid="live-flow">
          {live.events.slice(0, 20).map((event) => (
            <li key={event.seq} className={event.type} onClick={() => event.packet_id !== undefined && onPacket(String(event.packet_id))}>
              <span className="time">{event.timestamp.slice(11, 23)}</span>
              <span className="type">{event.type}</span>
              <span>{event.from_peer ?? ""}{event.to_peer ? ` → ${event.to_peer}` : ""}</span>
              <span>{event.code ?? ""}</span>
            </li>
          ))}
        </ul>
      </section>
      <section className="panel">
        <h2>Node</h2>
        <pre className="health" data-testid="health">{health ? JSON.stringify(health, null, 1) : "…"}</pre>
      </section>
    </div>
  );
}

function Card({ label, value, testId }: { label: string; value: number | string | undefined | null; testId: string }) {
  return (
    <div className="card">
      <div className="label">{label}</div>
      <div className="value" data-testid={testId}>{value ?? "–"}</div>
    </div>
  );
}
