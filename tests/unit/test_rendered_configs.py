"""The configs the roles render, checked against the upstream facts (../shared/reference/upstream.md):
required keys, schema, ports and wiring from the inventory. Rendered on the controller only."""
import json
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent / "render"


def render(tmp_path_factory, **extra):
    out = tmp_path_factory.mktemp("rendered")
    # the roles' own defaults: no lab/test artifact source (tests/harness/vars_plugins) in play
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_VARS_PLUGINS", "ANSIBLE_VARS_ENABLED")}
    env.update(ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(["ansible-playbook", "-i", str(HERE / "inventory.yml"), str(HERE / "render.yml"),
                           "-e", json.dumps({"render_dir": str(out), **extra})], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads((out / "rendered.json").read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render(tmp_path_factory)


def test_loki_is_single_binary_tsdb_v13_on_the_filesystem(rendered):
    loki = rendered["loki"]
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_port"] == 3100 and loki["server"]["grpc_listen_port"] == 9096
    period = loki["schema_config"]["configs"][0]
    assert period == {"from": "2024-04-01", "store": "tsdb", "object_store": "filesystem", "schema": "v13",
                      "index": {"prefix": "index_", "period": "24h"}}
    assert loki["common"]["storage"]["filesystem"]["chunks_directory"].startswith("/var/lib/loki/")
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory" and loki["common"]["replication_factor"] == 1
    assert set(loki["storage_config"]["tsdb_shipper"]) == {"active_index_directory", "cache_location"}


def test_loki_retention_has_its_delete_request_store(rendered):
    loki = rendered["loki"]
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    assert loki["limits_config"]["retention_period"] == "744h"


def test_loki_ruler_alerts_the_inventory_alertmanager(rendered):
    assert rendered["loki"]["ruler"]["alertmanager_url"] == "http://10.0.0.1:9093"
    assert rendered["loki"]["analytics"]["reporting_enabled"] is False


def test_promtail_ships_journal_and_var_log_to_the_inventory_loki(rendered):
    promtail = rendered["promtail"]
    assert promtail["clients"] == [{"url": "http://10.0.0.2:3100/loki/api/v1/push"}]
    assert promtail["server"]["http_listen_port"] == 9080 and promtail["server"]["grpc_listen_port"] == 0
    assert promtail["positions"]["filename"] == "/var/lib/promtail/positions.yaml"
    jobs = {job["job_name"]: job for job in promtail["scrape_configs"]}
    assert jobs["journal"]["journal"]["labels"] == {"host": "app1", "job": "systemd-journal"}
    assert jobs["varlogs"]["static_configs"][0]["labels"]["__path__"] == "/var/log/*.log"


def test_promtail_runs_unprivileged_with_log_read_groups(rendered):
    unit = rendered["promtail_unit"]
    assert unit["user"] == "promtail" and set(unit["supplementary_groups"]) == {"systemd-journal", "adm"}
    assert unit["read_write_paths"] == ["/var/lib/promtail"]


def test_jaeger_v2_keeps_spans_in_persistent_badger(rendered):
    jaeger = rendered["jaeger"]
    badger = jaeger["extensions"]["jaeger_storage"]["backends"]["main"]["badger"]
    assert badger["ephemeral"] is False
    assert all(path.startswith("/var/lib/jaeger/") for path in badger["directories"].values())
    assert badger["ttl"]["spans"] == "168h"
    assert jaeger["service"]["pipelines"]["traces"] == {
        "receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}
    assert jaeger["exporters"]["jaeger_storage_exporter"]["trace_storage"] == "main"
    assert jaeger["extensions"]["jaeger_query"]["storage"]["traces"] == "main"


def test_jaeger_ports_match_upstream(rendered):
    jaeger = rendered["jaeger"]
    protocols = jaeger["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317") and protocols["http"]["endpoint"].endswith(":4318")
    assert jaeger["extensions"]["jaeger_query"]["http"]["endpoint"].endswith(":16686")
    assert jaeger["extensions"]["healthcheckv2"] == {"use_v2": True, "http": {"endpoint": "127.0.0.1:13133"}}
    reader = jaeger["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert reader == {"host": "0.0.0.0", "port": 8888}
    assert "--config=file:/etc/jaeger/config.yaml" in rendered["jaeger_unit"]["exec_start"]


def flat_targets(rendered, job):
    """The file_sd entries of a job over all its hosts' files."""
    return [entry for _, entries in sorted(rendered["prometheus_targets"][job].items()) for entry in entries]


def test_prometheus_scrapes_logs_and_traces_hosts(rendered):
    assert flat_targets(rendered, "loki") == [{"targets": ["10.0.0.2:3100"]}]
    assert [t["targets"][0] for t in flat_targets(rendered, "promtail")] == ["10.0.0.2:9080"]
    assert [t["targets"][0] for t in flat_targets(rendered, "alloy")] == ["10.0.0.4:12345"]
    assert flat_targets(rendered, "jaeger") == [{"targets": ["10.0.0.3:8888"]}]
    assert flat_targets(rendered, "alertmanager") == [{"targets": ["10.0.0.1:9093"]}]


def test_prometheus_3_8_and_later_keep_retention_in_the_config_file(rendered):
    assert rendered["prometheus"]["storage"] == {"tsdb": {"retention": {"time": "15d"}}}
    assert not any(k.startswith("storage.tsdb.retention") for k in rendered["prometheus_flags"])
    assert rendered["prometheus"]["rule_files"] == ["rules/*.yml"]
    assert rendered["prometheus"]["alerting"]["alertmanagers"][0]["file_sd_configs"][0]["files"] == ["file_sd/alertmanagers/*.yml"]


def test_prometheus_before_3_8_keeps_retention_in_flags(tmp_path_factory):
    out = render(tmp_path_factory, prometheus_version="3.5.3", prometheus_retention_size="50GB")
    assert "storage" not in out["prometheus"]
    assert out["prometheus_flags"]["storage.tsdb.retention.time"] == "15d"
    assert out["prometheus_flags"]["storage.tsdb.retention.size"] == "50GB"


def test_prometheus_agent_mode_has_no_rules_alerting_or_tsdb(tmp_path_factory):
    out = render(tmp_path_factory, prometheus_agent_mode=True,
                 prometheus_config={"remote_write": [{"url": "https://mimir.example.org/api/v1/push"}]})
    assert out["prometheus_flags"]["agent"] is True and out["prometheus_flags"]["storage.agent.path"] == "/var/lib/prometheus"
    assert "storage.tsdb.path" not in out["prometheus_flags"]
    assert not {"rule_files", "alerting", "storage"} & set(out["prometheus"])
    assert "evaluation_interval" not in out["prometheus"]["global"]
    assert out["prometheus"]["remote_write"] == [{"url": "https://mimir.example.org/api/v1/push"}]


def test_prometheus_web_tls_and_basic_auth_use_a_web_config_file(tmp_path_factory):
    out = render(tmp_path_factory, prometheus_web_tls_cert="PEM", prometheus_web_tls_key="KEY",
                 prometheus_web_basic_auth_users={"ops": "secret"})
    assert out["prometheus_flags"]["web.config.file"] == "/etc/prometheus/web.yml"


def test_a_single_alertmanager_runs_with_clustering_off(rendered):
    assert rendered["alertmanager_flags"]["cluster.listen-address"] == ""
    assert "cluster.peer" not in rendered["alertmanager_flags"]


def test_a_short_scrape_interval_alone_makes_a_config_promtool_accepts(tmp_path_factory, promtool):
    # the config of the Prometheus whose promtool checks it (the mirror's)
    version = re.search(r"version (\d+\.\d+\.\d+)", subprocess.run([str(promtool), "--version"], capture_output=True,
                                                                 text=True).stdout).group(1)
    out = render(tmp_path_factory, prometheus_scrape_interval="5s", prometheus_version=version)
    assert out["prometheus"]["global"]["scrape_interval"] == "5s"
    assert "scrape_timeout" not in out["prometheus"]["global"], "left to Prometheus, which clamps it to the interval"
    config = tmp_path_factory.mktemp("promcheck") / "prometheus.yml"
    config.write_text(json.dumps(out["prometheus"]))
    check = subprocess.run([str(promtool), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_explicit_scrape_timeout_is_written(tmp_path_factory):
    out = render(tmp_path_factory, prometheus_scrape_interval="30s", prometheus_scrape_timeout="20s")
    assert out["prometheus"]["global"]["scrape_timeout"] == "20s"


def test_a_rule_file_named_with_its_suffix_is_not_written_twice_suffixed(tmp_path_factory):
    rules = {"groups": [{"name": "g", "rules": [{"record": "x", "expr": "1"}]}]}
    # shipped rules need the role's path, which a play without the role's tasks lacks
    out = render(tmp_path_factory, prometheus_alert_rules_shipped=False, render_rule_names=True,
                 prometheus_rule_files={"hidden.yml": rules, "other.yaml": rules, "plain": rules})
    names = out["prometheus_rule_names"]
    assert {"hidden", "other", "plain"} <= set(names), names
    assert not any(name.endswith((".yml", ".yaml")) for name in names), "rules/<name>.yml is written from these"


def test_prometheus_writes_to_the_inventory_store_as_one_replica_of_a_pair(rendered):
    prometheus = rendered["prometheus"]
    assert prometheus["global"]["external_labels"] == {"replica": "app1"}
    drop = [{"action": "labeldrop", "regex": "replica"}]
    assert prometheus["alerting"]["alert_relabel_configs"] == drop
    assert prometheus["remote_write"] == [{
        "name": "victoriametrics-vm1", "url": "http://10.0.0.5:8428/api/v1/write", "write_relabel_configs": drop,
        "queue_config": {"capacity": 20000, "max_samples_per_send": 10000, "max_shards": 30}}]
    assert flat_targets(rendered, "victoriametrics") == [{"targets": ["10.0.0.5:8428"]}]


def test_victoriametrics_deduplicates_at_the_scrape_interval_of_the_prometheus_group(rendered, tmp_path_factory):
    start = rendered["victoriametrics_unit"]["exec_start"]
    assert start[0] == "/usr/local/bin/victoria-metrics"
    assert {"-httpListenAddr=0.0.0.0:8428", "-storageDataPath=/var/lib/victoriametrics", "-retentionPeriod=1y",
            "-dedup.minScrapeInterval=15s"} <= set(start)
    assert not any(flag.startswith("-relabelConfig") for flag in start), "no rules, no flag"
    out = render(tmp_path_factory, victoriametrics_relabel_configs=[{"action": "drop", "regex": "x"}],
                 victoriametrics_dedup_min_scrape_interval="0s")
    start = out["victoriametrics_unit"]["exec_start"]
    assert "-relabelConfig=/etc/victoriametrics/relabel.yml" in start and "-dedup.minScrapeInterval=0s" in start


def test_a_sharded_config_is_one_promtool_accepts(tmp_path_factory, promtool):
    version = re.search(r"version (\d+\.\d+\.\d+)", subprocess.run([str(promtool), "--version"], capture_output=True,
                                                                   text=True).stdout).group(1)
    out = render(tmp_path_factory, prometheus_version=version, prometheus_shards=2, prometheus_shard=1)
    for job in out["prometheus"]["scrape_configs"]:
        assert job["relabel_configs"][-1] == {"source_labels": ["__tmp_shard"], "regex": "1", "action": "keep"}
    config = tmp_path_factory.mktemp("promcheck") / "prometheus.yml"
    config.write_text(json.dumps(out["prometheus"]))
    check = subprocess.run([str(promtool), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


APPS = [{"name": "shop", "port": 8000}, {"name": "legacy", "port": 8001, "fallback_scrape_protocol": "OpenMetricsText1.0.0"},
        {"name": "strict", "port": 8002, "fallback_scrape_protocol": ""}]


def test_prometheus_3_scrapes_applications_that_send_an_unknown_content_type(tmp_path_factory, promtool):
    version = re.search(r"version (\d+\.\d+\.\d+)", subprocess.run([str(promtool), "--version"], capture_output=True,
                                                                   text=True).stdout).group(1)
    assert version.startswith("3."), "the mirror's newest Prometheus is a 3.x"
    out = render(tmp_path_factory, prometheus_version=version, stack_app_metrics=APPS)
    jobs = {job["job_name"]: job for job in out["prometheus"]["scrape_configs"]}
    assert jobs["shop"]["fallback_scrape_protocol"] == "PrometheusText0.0.4"
    assert jobs["legacy"]["fallback_scrape_protocol"] == "OpenMetricsText1.0.0"
    assert "fallback_scrape_protocol" not in jobs["strict"]
    assert "fallback_scrape_protocol" not in jobs["node"], "exporters send a proper Content-Type"
    config = tmp_path_factory.mktemp("promcheck") / "prometheus.yml"
    config.write_text(json.dumps(out["prometheus"]))
    check = subprocess.run([str(promtool), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_2_gets_no_fallback_scrape_protocol_it_would_refuse(tmp_path_factory):
    out = render(tmp_path_factory, prometheus_version="2.53.3", stack_app_metrics=APPS)
    assert not [job for job in out["prometheus"]["scrape_configs"] if "fallback_scrape_protocol" in job]
