#!/usr/bin/env python3
"""Writes the dashboards the grafana role ships (roles/grafana/files/dashboards/*.json).

The JSON files are generated so every panel has the same shape and every query sits in one
readable place; edit this file and run `python3 tools/build_dashboards.py`. A unit test
checks the committed files match, that every PromQL expression parses with the real promtool,
and that every datasource a panel uses is one the role provisions.
"""
import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "roles/grafana/files/dashboards"


def _blocks():
    """The building blocks live with the grafana role's filters, which also generate the
    applications' dashboards from the same pieces."""
    spec = importlib.util.spec_from_file_location("grafana_filters", ROOT / "plugins/filter/grafana.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_G = _blocks()
LOKI, R = _G.LOKI, _G.R
ts, stat, logs, var, dashboard = _G.ts, _G.stat, _G.logs, _G.var, _G.dashboard

I = 'instance=~"$instance"'
DASHBOARDS = [
    dashboard("stack-overview", "Stack overview", [
        stat("Targets up", 'sum(up)', legend="up"),
        stat("Targets down", 'count(up == 0) or vector(0)'),
        stat("Alerts firing", 'count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or vector(0)'),
        stat("Hosts", 'count(up{job="node"})'),
        ts("Health of every service (1 = up)", ('min by (job) (up)', "{{job}}"), w=24),
        ts("Request rate", (f'sum by (job) (rate(prometheus_http_requests_total[{R}]))', "prometheus"),
           (f'sum(rate(loki_request_duration_seconds_count[{R}]))', "loki"),
           (f'sum(rate(grafana_http_request_duration_seconds_count[{R}]))', "grafana"),
           (f'sum(rate({{__name__=~"otelcol_receiver_accepted_spans(_total)?"}}[{R}]))', "jaeger spans"), unit="reqps"),
        ts("p95 latency", (f'histogram_quantile(0.95, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[{R}])))', "prometheus"),
           (f'histogram_quantile(0.95, sum by (le) (rate(loki_request_duration_seconds_bucket[{R}])))', "loki"),
           (f'histogram_quantile(0.95, sum by (le) (rate(grafana_http_request_duration_seconds_bucket[{R}])))', "grafana"), unit="s"),
        ts("Error rates", (f'sum(rate(prometheus_http_requests_total{{code=~"5.."}}[{R}]))', "prometheus 5xx"),
           (f'sum(rate(loki_request_duration_seconds_count{{status_code=~"5.."}}[{R}]))', "loki 5xx"),
           (f'sum by (integration) (rate(alertmanager_notifications_failed_total[{R}]))', "alertmanager {{integration}}"),
           (f'sum(rate(prometheus_rule_evaluation_failures_total[{R}]))', "rule failures"), unit="reqps"),
        ts("Queue depths", ('sum(prometheus_remote_storage_samples_pending) or vector(0)', "remote write pending"),
           ('sum(prometheus_notifications_queue_length)', "alert queue"),
           ('sum(otelcol_exporter_queue_size) or vector(0)', "jaeger exporter queue")),
        ts("CPU used per host", (f'100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{R}])))', "{{instance}}"), unit="percent"),
        ts("Memory used per host", ('100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)', "{{instance}}"), unit="percent"),
        ts("Database connections", ('sum by (instance) (pg_stat_activity_count)', "postgres {{instance}}"),
           ('redis_connected_clients', "redis {{instance}}")),
        ts("Log lines received", (f'sum(rate(loki_distributor_lines_received_total[{R}]))', "lines/s")),
    ], tags=["overview"]),
    dashboard("node-overview", "Node overview", [
        stat("Uptime", f'time() - node_boot_time_seconds{{{I}}}', unit="s"),
        stat("CPUs", f'count by (instance) (node_cpu_seconds_total{{mode="idle", {I}}})'),
        stat("Memory", f'node_memory_MemTotal_bytes{{{I}}}', unit="bytes"),
        stat("Root filesystem used", f'100 * (1 - node_filesystem_avail_bytes{{mountpoint="/", {I}}} / node_filesystem_size_bytes{{mountpoint="/", {I}}})', unit="percent"),
        ts("CPU by mode", (f'sum by (mode) (rate(node_cpu_seconds_total{{mode!="idle", {I}}}[{R}]))', "{{mode}}")),
        ts("Load", (f'node_load1{{{I}}}', "1m {{instance}}"), (f'node_load15{{{I}}}', "15m {{instance}}")),
        ts("Memory", (f'node_memory_MemTotal_bytes{{{I}}} - node_memory_MemAvailable_bytes{{{I}}}', "used {{instance}}"),
           (f'node_memory_MemAvailable_bytes{{{I}}}', "available {{instance}}"), unit="bytes"),
        ts("Filesystem used", (f'100 * (1 - node_filesystem_avail_bytes{{fstype!~"tmpfs|overlay|squashfs", {I}}} / node_filesystem_size_bytes{{fstype!~"tmpfs|overlay|squashfs", {I}}})', "{{instance}} {{mountpoint}}"), unit="percent"),
        ts("Disk I/O", (f'sum by (instance) (rate(node_disk_read_bytes_total{{{I}}}[{R}]))', "read {{instance}}"),
           (f'sum by (instance) (rate(node_disk_written_bytes_total{{{I}}}[{R}]))', "written {{instance}}"), unit="Bps"),
        ts("Network", (f'sum by (instance) (rate(node_network_receive_bytes_total{{device!="lo", {I}}}[{R}]))', "in {{instance}}"),
           (f'sum by (instance) (rate(node_network_transmit_bytes_total{{device!="lo", {I}}}[{R}]))', "out {{instance}}"), unit="Bps"),
        logs("Journal of the selected hosts", '{job="systemd-journal", host=~"$host"}'),
    ], variables=[var("instance", 'label_values(up{job="node"}, instance)'),
                  {"name": "host", "label": "host (logs)", "type": "query", "datasource": LOKI,
                   "query": "label_values(host)", "definition": "label_values(host)", "refresh": 2,
                   "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}}],
        tags=["node"]),
    dashboard("prometheus", "Prometheus", [
        stat("Active series", 'sum(prometheus_tsdb_head_series)'),
        stat("Targets down", 'count(up == 0) or vector(0)'),
        stat("Config reload ok", 'min(prometheus_config_last_reload_successful)'),
        stat("Rule failures (1h)", 'sum(increase(prometheus_rule_evaluation_failures_total[1h]))'),
        ts("Samples ingested", (f'sum by (instance) (rate(prometheus_tsdb_head_samples_appended_total[{R}]))', "{{instance}}"), unit="short"),
        ts("Scrape duration p95 by job", ('quantile by (job) (0.95, scrape_duration_seconds)', "{{job}}"), unit="s"),
        ts("Rule group duration", ('max by (rule_group) (prometheus_rule_group_last_duration_seconds)', "{{rule_group}}"), unit="s"),
        ts("Query p95", (f'histogram_quantile(0.95, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket{{handler=~"/api/v1/query.*"}}[{R}])))', "query"), unit="s"),
        ts("TSDB size", ('prometheus_tsdb_storage_blocks_bytes + prometheus_tsdb_wal_storage_size_bytes', "{{instance}}"), unit="bytes"),
        ts("Notifications sent and dropped", (f'sum(rate(prometheus_notifications_sent_total[{R}]))', "sent"),
           (f'sum(rate(prometheus_notifications_dropped_total[{R}]))', "dropped")),
    ], tags=["prometheus"]),
    dashboard("alertmanager", "Alertmanager", [
        stat("Alerts", 'sum(alertmanager_alerts{state="active"})'),
        stat("Suppressed", 'sum(alertmanager_alerts{state="suppressed"})'),
        stat("Silences", 'max(alertmanager_silences{state="active"})'),
        stat("Cluster members", 'max(alertmanager_cluster_members)'),
        ts("Notifications by integration", (f'sum by (integration) (rate(alertmanager_notifications_total[{R}]))', "{{integration}}")),
        ts("Failed notifications", (f'sum by (integration) (rate(alertmanager_notifications_failed_total[{R}]))', "{{integration}}")),
        ts("Notification latency p95", (f'histogram_quantile(0.95, sum by (le, integration) (rate(alertmanager_notification_latency_seconds_bucket[{R}])))', "{{integration}}"), unit="s"),
        ts("Alerts received", (f'sum by (instance) (rate(alertmanager_alerts_received_total[{R}]))', "{{instance}}")),
    ], tags=["alertmanager"]),
    dashboard("postgresql", "PostgreSQL", [
        stat("Up", f'min(pg_up{{{I}}})'),
        stat("Connections", f'sum(pg_stat_activity_count{{{I}}})'),
        stat("Max connections", f'max(pg_settings_max_connections{{{I}}})'),
        stat("Deadlocks (1h)", f'sum(increase(pg_stat_database_deadlocks{{{I}}}[1h]))'),
        ts("Connections by state", (f'sum by (instance, state) (pg_stat_activity_count{{{I}}})', "{{instance}} {{state}}")),
        ts("Transactions", (f'sum by (instance) (rate(pg_stat_database_xact_commit{{{I}}}[{R}]))', "commit {{instance}}"),
           (f'sum by (instance) (rate(pg_stat_database_xact_rollback{{{I}}}[{R}]))', "rollback {{instance}}"), unit="ops"),
        ts("Cache hit ratio", (f'sum by (instance) (rate(pg_stat_database_blks_hit{{{I}}}[{R}])) / (sum by (instance) (rate(pg_stat_database_blks_hit{{{I}}}[{R}])) + sum by (instance) (rate(pg_stat_database_blks_read{{{I}}}[{R}])))', "{{instance}}"), unit="percentunit"),
        ts("Rows changed", (f'sum by (instance) (rate(pg_stat_database_tup_inserted{{{I}}}[{R}]) + rate(pg_stat_database_tup_updated{{{I}}}[{R}]) + rate(pg_stat_database_tup_deleted{{{I}}}[{R}]))', "{{instance}}"), unit="ops"),
        ts("Database size", (f'pg_database_size_bytes{{{I}}}', "{{instance}} {{datname}}"), unit="bytes"),
    ], variables=[var("instance", 'label_values(pg_up, instance)')], tags=["postgresql"]),
    dashboard("redis", "Redis", [
        stat("Up", f'min(redis_up{{{I}}})'),
        stat("Clients", f'sum(redis_connected_clients{{{I}}})'),
        stat("Memory used", f'sum(redis_memory_used_bytes{{{I}}})', unit="bytes"),
        stat("Rejected connections (1h)", f'sum(increase(redis_rejected_connections_total{{{I}}}[1h]))'),
        ts("Commands", (f'sum by (instance) (rate(redis_commands_processed_total{{{I}}}[{R}]))', "{{instance}}"), unit="ops"),
        ts("Hit ratio", (f'sum by (instance) (rate(redis_keyspace_hits_total{{{I}}}[{R}])) / (sum by (instance) (rate(redis_keyspace_hits_total{{{I}}}[{R}])) + sum by (instance) (rate(redis_keyspace_misses_total{{{I}}}[{R}])))', "{{instance}}"), unit="percentunit"),
        ts("Memory", (f'redis_memory_used_bytes{{{I}}}', "used {{instance}}"), (f'redis_memory_max_bytes{{{I}}}', "max {{instance}}"), unit="bytes"),
        ts("Evicted and expired keys", (f'sum by (instance) (rate(redis_evicted_keys_total{{{I}}}[{R}]))', "evicted {{instance}}"),
           (f'sum by (instance) (rate(redis_expired_keys_total{{{I}}}[{R}]))', "expired {{instance}}")),
    ], variables=[var("instance", 'label_values(redis_up, instance)')], tags=["redis"]),
    dashboard("loki-promtail", "Loki and Promtail", [
        stat("Loki up", 'min(up{job="loki"})'),
        stat("Promtails up", 'sum(up{job="promtail"})'),
        stat("Lines/s received", f'sum(rate(loki_distributor_lines_received_total[{R}]))'),
        stat("Bytes/s received", f'sum(rate(loki_distributor_bytes_received_total[{R}]))', unit="Bps"),
        ts("Loki requests by route", (f'sum by (route) (rate(loki_request_duration_seconds_count[{R}]))', "{{route}}"), unit="reqps"),
        ts("Loki p95 latency by route", (f'histogram_quantile(0.95, sum by (le, route) (rate(loki_request_duration_seconds_bucket[{R}])))', "{{route}}"), unit="s"),
        ts("Promtail entries sent", (f'sum by (instance) (rate(promtail_sent_entries_total[{R}]))', "{{instance}}")),
        ts("Promtail entries dropped", (f'sum by (instance) (rate(promtail_dropped_entries_total[{R}]))', "{{instance}}")),
        logs("Errors in every journal", '{job="systemd-journal"} |~ "(?i)error|fail"'),
    ], tags=["loki", "promtail"]),
    dashboard("probes", "Probes", [
        stat("Probes", f'count(probe_success{{{I}}})'),
        stat("Failing", f'count(probe_success{{{I}}} == 0) or vector(0)',
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        stat("Soonest certificate expiry", f'min((probe_ssl_earliest_cert_expiry{{{I}}} - time()) / 86400)', unit="d",
             thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 14}, {"color": "green", "value": 30}]),
        stat("Slowest probe", f'max(probe_duration_seconds{{{I}}})', unit="s"),
        ts("Success (1 = up)", (f'probe_success{{{I}}}', "{{instance}} from {{prober}}"), w=24),
        ts("Probe duration", (f'probe_duration_seconds{{{I}}}', "{{instance}} from {{prober}}"), unit="s"),
        ts("HTTP status", (f'probe_http_status_code{{{I}}}', "{{instance}}")),
        ts("Days until the certificate expires", (f'(probe_ssl_earliest_cert_expiry{{{I}}} - time()) / 86400', "{{instance}}"),
           unit="d"),
        ts("Time per phase (HTTP)", (f'sum by (phase) (probe_http_duration_seconds{{{I}}})', "{{phase}}"), unit="s"),
    ], variables=[var("instance", 'label_values(probe_success, instance)')], tags=["probes", "blackbox"]),
    dashboard("rabbitmq", "RabbitMQ", [
        stat("Messages ready", f'sum(rabbitmq_queue_messages_ready{{{I}}})'),
        stat("Unacknowledged", f'sum(rabbitmq_queue_messages_unacked{{{I}}})'),
        stat("Consumers", f'sum(rabbitmq_queue_consumers{{{I}}})'),
        stat("Resource alarms", f'sum(rabbitmq_alarms_memory_used_watermark{{{I}}} + rabbitmq_alarms_free_disk_space_watermark{{{I}}} + rabbitmq_alarms_file_descriptor_limit{{{I}}})',
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        ts("Queue depth", (f'sum by (instance) (rabbitmq_queue_messages_ready{{{I}}})', "ready {{instance}}"),
           (f'sum by (instance) (rabbitmq_queue_messages_unacked{{{I}}})', "unacked {{instance}}")),
        ts("Published and delivered", (f'sum by (instance) (rate(rabbitmq_global_messages_received_total{{{I}}}[{R}]))', "published {{instance}}"),
           (f'sum by (instance) (rate(rabbitmq_global_messages_delivered_total{{{I}}}[{R}]))', "delivered {{instance}}"),
           (f'sum by (instance) (rate(rabbitmq_global_messages_acknowledged_total{{{I}}}[{R}]))', "acknowledged {{instance}}"), unit="ops"),
        ts("Dead-lettered", (f'sum by (instance) (rate({{__name__=~"rabbitmq_global_messages_dead_lettered_(delivery_limit|expired|maxlen|rejected)_total", {I}}}[{R}]))', "{{instance}}"), unit="ops"),
        ts("Unroutable", (f'sum by (instance) (rate(rabbitmq_global_messages_unroutable_dropped_total{{{I}}}[{R}]) + rate(rabbitmq_global_messages_unroutable_returned_total{{{I}}}[{R}]))', "{{instance}}"), unit="ops"),
        ts("Consumers and connections", (f'sum by (instance) (rabbitmq_queue_consumers{{{I}}})', "consumers {{instance}}"),
           (f'sum by (instance) (rabbitmq_connections{{{I}}})', "connections {{instance}}"),
           (f'sum by (instance) (rabbitmq_channels{{{I}}})', "channels {{instance}}")),
        ts("Queues", (f'sum by (instance) (rabbitmq_queues{{{I}}})', "{{instance}}")),
    ], variables=[var("instance", 'label_values(rabbitmq_identity_info, instance)')], tags=["rabbitmq", "queues"]),
    dashboard("celery", "Celery", [
        stat("Workers up", f'sum(celery_worker_up{{{I}}})'),
        stat("Tasks waiting", f'sum(celery_queue_length{{{I}}})'),
        stat("Tasks running", f'sum(celery_worker_tasks_active{{{I}}})'),
        stat("Failure ratio", f'sum(rate(celery_task_failed_total{{{I}}}[{R}])) / (sum(rate(celery_task_succeeded_total{{{I}}}[{R}])) + sum(rate(celery_task_failed_total{{{I}}}[{R}])))',
             unit="percentunit", thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.05}]),
        ts("Queue length", (f'max by (queue_name) (celery_queue_length{{{I}}})', "{{queue_name}}")),
        ts("Workers per queue", (f'max by (queue_name) (celery_active_worker_count{{{I}}})', "{{queue_name}}")),
        ts("Tasks succeeded by task", (f'sum by (name) (rate(celery_task_succeeded_total{{{I}}}[{R}]))', "{{name}}"), unit="ops"),
        ts("Tasks failed by task", (f'sum by (name, exception) (rate(celery_task_failed_total{{{I}}}[{R}]))', "{{name}} {{exception}}"), unit="ops"),
        ts("Task runtime p95 by task", (f'histogram_quantile(0.95, sum by (le, name) (rate(celery_task_runtime_bucket{{{I}}}[{R}])))', "{{name}}"), unit="s"),
        ts("Retried and rejected", (f'sum(rate(celery_task_retried_total{{{I}}}[{R}]))', "retried"),
           (f'sum(rate(celery_task_rejected_total{{{I}}}[{R}]))', "rejected"), unit="ops"),
    ], variables=[var("instance", 'label_values(up{job="celery"}, instance)')], tags=["celery", "queues"]),
    dashboard("jaeger", "Jaeger", [
        stat("Jaeger up", 'min(up{job="jaeger"})'),
        stat("Spans/s accepted", f'sum(rate({{__name__=~"otelcol_receiver_accepted_spans(_total)?"}}[{R}]))'),
        stat("Spans/s refused", f'sum(rate({{__name__=~"otelcol_receiver_refused_spans(_total)?"}}[{R}]))'),
        stat("Export queue", 'sum(otelcol_exporter_queue_size) or vector(0)'),
        ts("Spans received by transport", (f'sum by (transport) (rate({{__name__=~"otelcol_receiver_accepted_spans(_total)?"}}[{R}]))', "{{transport}}")),
        ts("Spans stored and failed", (f'sum(rate({{__name__=~"otelcol_exporter_sent_spans(_total)?"}}[{R}]))', "stored"),
           (f'sum(rate({{__name__=~"otelcol_exporter_send_failed_spans(_total)?"}}[{R}]))', "failed")),
        ts("Batch sizes", (f'histogram_quantile(0.95, sum by (le) (rate(otelcol_processor_batch_batch_send_size_bucket[{R}])))', "p95")),
        ts("Process memory", ('{__name__=~"otelcol_process_memory_rss(_bytes)?"}', "{{instance}}"), unit="bytes"),
    ], tags=["jaeger"]),
]

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for board in DASHBOARDS:
        (OUT / f"{board['uid']}.json").write_text(json.dumps(board, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
