#!/usr/bin/env python3
"""Writes the Grafana dashboards (JSON, schema 39) for the M2M Connector into this directory.

Run it after changing a panel; scripts/monitoring.sh checks that the committed JSON is what it
writes (`generate.py --check`), and tests/it/monitoring.rs that every metric a panel names
exists on a real node. Each dashboard has a Prometheus data source variable and an `instance`
variable (the connector pods).
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
SEL = 'instance=~"$instance"'


def panel(title, targets, unit="short", kind="timeseries", width=12, height=8, description=""):
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, (expr, legend) in enumerate(targets)
        ],
        "gridPos": {"w": width, "h": height},
    }


def dashboard(uid, title, description, panels):
    x = y = 0
    row_height = 0
    for index, item in enumerate(panels):
        item["id"] = index + 1
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        item["gridPos"].update({"x": x, "y": y})
        x += w
        row_height = max(row_height, h)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["m2m-connector"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
                {
                    "name": "instance",
                    "label": "Connector",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {"query": "label_values(connector_info, instance)", "refId": "instance"},
                    "definition": "label_values(connector_info, instance)",
                    "includeAll": True,
                    "multi": True,
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


DASHBOARDS = {
    "traffic.json": dashboard(
        "m2m-traffic",
        "M2M Connector: traffic",
        "Prepares per second, outcomes, reject codes and peers.",
        [
            panel("Prepares per second", [
                (f'sum by (instance) (rate(ilp_packets_processed_total{{type="prepare",{SEL}}}[1m]))', "{{instance}}"),
            ], unit="reqps"),
            panel("Success rate", [
                (f'sum by (instance) (rate(ilp_packets_processed_total{{type="prepare",status="fulfilled",{SEL}}}[5m])) '
                 f'/ sum by (instance) (rate(ilp_packets_processed_total{{type="prepare",{SEL}}}[5m]))', "{{instance}}"),
            ], unit="percentunit"),
            panel("Rejects by code and origin", [
                (f'sum by (code, origin) (rate(ilp_rejects_total{{{SEL}}}[5m])) > 0', "{{code}} {{origin}}"),
            ], unit="reqps"),
            panel("Fulfills checked (invalid: the fulfillment did not hash to the condition)", [
                (f'sum by (type, status) (rate(ilp_packets_processed_total{{type=~"fulfill|reject",{SEL}}}[5m]))', "{{type}} {{status}}"),
            ], unit="reqps"),
            panel("Packets in per peer", [
                (f'sum by (peer_id) (rate(packets_in_total{{{SEL}}}[1m]))', "{{peer_id}}"),
            ], unit="reqps"),
            panel("Packets out per peer", [
                (f'sum by (peer_id) (rate(packets_out_total{{{SEL}}}[1m]))', "{{peer_id}}"),
            ], unit="reqps"),
            panel("BTP sessions per peer", [
                (f'sum by (peer_id) (btp_connections{{{SEL}}})', "{{peer_id}}"),
            ]),
            panel("BTP reconnects, auth failures, dropped frames", [
                (f'sum by (peer_id) (increase(btp_reconnects_total{{{SEL}}}[5m]))', "reconnects {{peer_id}}"),
                (f'sum(increase(btp_auth_failures_total{{{SEL}}}[5m]))', "auth failures"),
                (f'sum by (reason) (increase(btp_frames_dropped_total{{{SEL}}}[5m]))', "dropped: {{reason}}"),
            ]),
            panel("Errors by type", [
                (f'sum by (type, severity) (increase(connector_errors_total{{{SEL}}}[5m])) > 0', "{{type}} ({{severity}})"),
            ], width=24),
        ],
    ),
    "latency.json": dashboard(
        "m2m-latency",
        "M2M Connector: latency and pipeline",
        "From Prepare in to Fulfill or Reject out, and where packets wait.",
        [
            panel("Fulfill latency p50 / p99 / p99.9", [
                (f'histogram_quantile(0.5, sum by (le) (rate(ilp_packet_latency_seconds_bucket{{type="fulfill",{SEL}}}[5m])))', "p50"),
                (f'histogram_quantile(0.99, sum by (le) (rate(ilp_packet_latency_seconds_bucket{{type="fulfill",{SEL}}}[5m])))', "p99"),
                (f'histogram_quantile(0.999, sum by (le) (rate(ilp_packet_latency_seconds_bucket{{type="fulfill",{SEL}}}[5m])))', "p99.9"),
            ], unit="s"),
            panel("Reject latency p50 / p99", [
                (f'histogram_quantile(0.5, sum by (le) (rate(ilp_packet_latency_seconds_bucket{{type="reject",{SEL}}}[5m])))', "p50"),
                (f'histogram_quantile(0.99, sum by (le) (rate(ilp_packet_latency_seconds_bucket{{type="reject",{SEL}}}[5m])))', "p99"),
            ], unit="s"),
            panel("Packets in flight", [
                (f'sum by (instance) (ilp_packets_in_flight{{{SEL}}})', "{{instance}}"),
            ]),
            panel("Pipeline queue depth by stage", [
                (f'max by (stage) (pipeline_queue_depth{{{SEL}}})', "{{stage}}"),
            ]),
            panel("Mean batch size by stage", [
                (f'sum by (stage) (rate(pipeline_batch_size_sum{{{SEL}}}[5m])) / sum by (stage) (rate(pipeline_batch_size_count{{{SEL}}}[5m]))', "{{stage}}"),
            ]),
            panel("Busy rejects (T03: queue full)", [
                (f'sum by (instance) (rate(pipeline_busy_rejects_total{{{SEL}}}[5m]))', "{{instance}}"),
            ], unit="reqps"),
        ],
    ),
    "accounts-settlement.json": dashboard(
        "m2m-accounts",
        "M2M Connector: accounts and settlement",
        "Positions against credit limits, settlements, channels and claims.",
        [
            panel("Position per peer (what it owes us minus what we owe it)", [
                (f'sum by (peer_id, token_id) (account_balance_units{{{SEL}}})', "{{peer_id}} ({{token_id}})"),
            ]),
            panel("Position as a share of the credit limit", [
                (f'sum by (peer_id) (account_balance_units{{{SEL}}}) / sum by (peer_id) (account_credit_limit_units{{{SEL}}} > 0)', "{{peer_id}}"),
            ], unit="percentunit"),
            panel("Settlements executed", [
                (f'sum by (method, status) (increase(settlements_executed_total{{{SEL}}}[15m]))', "{{method}} {{status}}"),
            ]),
            panel("Settlement failures by stage", [
                (f'sum by (method, stage) (increase(settlement_failures_total{{{SEL}}}[15m])) > 0', "{{method}} {{stage}}"),
            ]),
            panel("Settlement latency p50 / p99", [
                (f'histogram_quantile(0.5, sum by (le) (rate(settlement_latency_seconds_bucket{{{SEL}}}[30m])))', "p50"),
                (f'histogram_quantile(0.99, sum by (le) (rate(settlement_latency_seconds_bucket{{{SEL}}}[30m])))', "p99"),
            ], unit="s"),
            panel("Amount settled", [
                (f'sum by (method) (increase(settlement_amount_total{{{SEL}}}[1h]))', "{{method}}"),
            ]),
            panel("Payment channels: active, funded, closed, disputed", [
                (f'sum(payment_channels_active{{{SEL}}})', "active"),
                (f'sum(increase(payment_channels_funded_total{{{SEL}}}[1h]))', "funded (1 h)"),
                (f'sum(increase(payment_channels_closed_total{{{SEL}}}[1h]))', "closed (1 h)"),
                (f'sum(increase(payment_channels_disputes_total{{{SEL}}}[1h]))', "disputed (1 h)"),
            ]),
            panel("Claims sent, received, refused", [
                (f'sum(rate(claims_sent_total{{{SEL}}}[5m]))', "sent"),
                (f'sum(rate(claims_received_total{{{SEL}}}[5m]))', "received"),
                (f'sum by (reason) (rate(claim_verification_failures_total{{{SEL}}}[5m])) > 0', "refused: {{reason}}"),
            ], unit="reqps"),
        ],
    ),
    "journal.json": dashboard(
        "m2m-journal",
        "M2M Connector: journal",
        "The event journal: durability, group commits, frames and projections.",
        [
            panel("Journal component (0 ok, 1 degraded, 2 failed) and fsync", [
                (f'max by (instance) (connector_component_status{{component="journal",{SEL}}})', "status {{instance}}"),
                (f'min by (instance) (journal_fsync_enabled{{{SEL}}})', "fsync enabled {{instance}}"),
            ]),
            panel("Events per second made durable", [
                (f'sum by (instance) (deriv(journal_durable_seq{{{SEL}}}[1m]))', "{{instance}}"),
            ], unit="ops"),
            panel("Appended but not yet durable (events)", [
                (f'sum by (instance) (journal_head_seq{{{SEL}}} - journal_durable_seq{{{SEL}}})', "{{instance}}"),
            ]),
            panel("Group commit (write + fdatasync) p50 / p99", [
                (f'histogram_quantile(0.5, sum by (le) (rate(journal_flush_seconds_bucket{{{SEL}}}[5m])))', "p50"),
                (f'histogram_quantile(0.99, sum by (le) (rate(journal_flush_seconds_bucket{{{SEL}}}[5m])))', "p99"),
            ], unit="s"),
            panel("Events per frame (mean)", [
                (f'sum(rate(journal_frame_events_sum{{{SEL}}}[5m])) / sum(rate(journal_frame_events_count{{{SEL}}}[5m]))', "events"),
            ]),
            panel("Frame size (mean)", [
                (f'sum(rate(journal_frame_size_bytes_sum{{{SEL}}}[5m])) / sum(rate(journal_frame_size_bytes_count{{{SEL}}}[5m]))', "bytes"),
            ], unit="bytes"),
            panel("Projection lag (events behind the journal)", [
                (f'max by (projection) (projection_lag_events{{{SEL}}})', "{{projection}}"),
            ]),
            panel("Commit log restarts", [
                (f'sum(increase(journal_commit_log_restarts_total{{{SEL}}}[1h]))', "restarts (1 h)"),
            ]),
        ],
    ),
    "tigerbeetle.json": dashboard(
        "m2m-tigerbeetle",
        "M2M Connector: TigerBeetle",
        "The TigerBeetle ledger as the connector sees it: reachability, lag and alerts.",
        [
            panel("TigerBeetle component (0 ok, 1 degraded: unreachable, behind or ledger alerts)", [
                (f'max by (instance) (connector_component_status{{component="tigerbeetle",{SEL}}})', "{{instance}}"),
            ]),
            panel("Events behind the journal", [
                (f'max by (instance) (projection_lag_events{{projection="tigerbeetle",{SEL}}})', "{{instance}}"),
            ]),
            panel("Ledger errors (a transfer or account that disagrees with the journal)", [
                (f'sum by (instance) (increase(connector_errors_total{{type="ledger",{SEL}}}[5m]))', "{{instance}}"),
            ]),
            panel("Events mirrored per second", [
                (f'sum by (instance) (deriv(journal_durable_seq{{{SEL}}}[1m])) - sum by (instance) (deriv(projection_lag_events{{projection="tigerbeetle",{SEL}}}[1m]))', "{{instance}}"),
            ], unit="ops"),
        ],
    ),
}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, board in DASHBOARDS.items():
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"monitoring/dashboards: {', '.join(stale)} differ from generate.py's output; run python3 monitoring/dashboards/generate.py")


if __name__ == "__main__":
    main()
