import { useEffect, useMemo, useState } from "react";
import { eventsPath, get, type Account, type EventsPage, type JournalEvent } from "../api";
import { Chart } from "../Chart";

const SETTLEMENT_TYPES = "SettlementTriggered,ClaimSent,ClaimReceived,SettlementCompleted,SettlementFailed,ChannelObserved,SettlementCorrected,ChannelCloseRequested,CooperativeSettleAgreed";

export function Accounts({ accounts }: { accounts: Account[] }) {
  return (
    <div className="accounts" data-testid="accounts">
      {accounts.length === 0 && <p className="muted">No accounts yet.</p>}
      {accounts.map((account) => <AccountCard key={account.peer} account={account} />)}
    </div>
  );
}

function AccountCard({ account }: { account: Account }) {
  const data = useMemo(() => {
    const xs = account.history.map(([ms]) => ms / 1000);
    const ys = account.history.map(([, position]) => Number(position));
    const limit = xs.map(() => account.credit_limit);
    const threshold = xs.map(() => (account.settlement_threshold == null ? null : -account.settlement_threshold));
    return [xs, ys, limit, threshold];
  }, [account]);
  const [timeline, setTimeline] = useState<JournalEvent[]>([]);
  useEffect(() => {
    if (!account.settlement.configured) return;
    get<EventsPage>(eventsPath({ peer: account.peer, types: SETTLEMENT_TYPES }, null, 50)).then((page) => setTimeline(page.events), () => undefined);
  }, [account.peer, account.settlement.configured, account.position]);
  return (
    <section className="panel account" data-testid={`account-${account.peer}`}>
      <h2>{account.peer} <span className="muted">{account.relation} · {account.asset_code}</span></h2>
      <div className="cards">
        <div className="card"><div className="label">Position</div><div className="value" data-testid="position">{account.position}</div></div>
        <div className="card"><div className="label">In flight</div><div className="value">{account.in_flight_amount}</div></div>
        {account.undelivered_amount !== "0" && (
          <div className="card" title="Fulfills paid to the next hop that did not reach this peer in time: not charged to it, the connector's loss">
            <div className="label">Undelivered</div><div className="value" data-testid="undelivered">{account.undelivered_amount}</div>
          </div>
        )}
        <div className="card"><div className="label">Credit limit</div><div className="value">{account.credit_limit ?? "–"}</div></div>
        <div className="card"><div className="label">Settle at / to</div><div className="value">{account.settlement_threshold ?? "–"} / {account.settle_to ?? "–"}</div></div>
      </div>
      <Chart data={data} series={[{ label: "position", color: "#58a6ff" }, { label: "credit limit", color: "#f85149", dash: [6, 4] }, { label: "−settlement threshold", color: "#d29922", dash: [2, 4] }]} height={160} />
      {account.settlement.configured && (
        <>
          <h3>Settlement</h3>
          <pre className="channel">{JSON.stringify(account.settlement.channel, null, 1)}</pre>
          <ol className="timeline" data-testid="settlement-timeline">
            {timeline.map((event) => (
              <li key={event.seq}><span className="time">{event.timestamp.slice(0, 19).replace("T", " ")}</span> {event.type} {String(event.amount ?? "")}</li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
