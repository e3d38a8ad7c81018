"""Filters that derive the wiring from the inventory and shape rules and receivers."""
import pytest


class HostVars(dict):
    """Stands in for Ansible's hostvars: {host: {var: value}}."""


def test_scrape_targets_follow_groups_ports_and_schemes(filters):
    jobs = {
        "node": {"groups": ["node_exporter", "all"], "port": 9100, "listen_var": "node_exporter_listen_address",
                 "path_var": "node_exporter_telemetry_path", "tls_var": "node_exporter_web_tls_cert"},
        "redis": {"groups": ["redis_exporter"], "port": 9121, "listen_var": "redis_exporter_listen_address"},
    }
    groups = {"all": ["a", "b", "c"], "redis_exporter": ["b"]}
    hostvars = HostVars(
        a={"ansible_host": "10.0.0.1"},
        b={"stack_address": "b.internal", "ansible_host": "203.0.113.9",
           "node_exporter_listen_address": "0.0.0.0:9200", "redis_exporter_listen_address": "10.1.1.1:9999"},
        c={"node_exporter_web_tls_cert": "PEM", "node_exporter_telemetry_path": "/m",
           "stack_app_metrics": [{"name": "api", "port": 8000, "labels": {"team": "web"}},
                                 {"name": "celery", "port": 9808, "path": "/stats", "scheme": "https"}]},
    )
    out = filters.scrape_targets(jobs, groups, hostvars)
    assert out["node"] == [{"targets": ["10.0.0.1:9100"]}, {"targets": ["b.internal:9200"]},
                           {"targets": ["c:9100"], "labels": {"__metrics_path__": "/m", "__scheme__": "https"}}]
    assert out["redis"] == [{"targets": ["10.1.1.1:9999"]}], "a listen address bound to one IP is used as is"
    assert out["api"] == [{"targets": ["c:8000"], "labels": {"team": "web"}}]
    assert out["celery"] == [{"targets": ["c:9808"], "labels": {"__metrics_path__": "/stats", "__scheme__": "https"}}]


def test_a_missing_group_gives_an_empty_job_and_app_names_cannot_shadow_jobs(filters):
    jobs = {"loki": {"groups": ["loki"], "port": 3100}}
    assert filters.scrape_targets(jobs, {"all": ["a"]}, HostVars(a={})) == {"loki": []}
    with pytest.raises(Exception, match="reuses the name"):
        filters.scrape_targets(jobs, {"all": ["a"]}, HostVars(a={"stack_app_metrics": [{"name": "loki", "port": 1}]}))
    with pytest.raises(Exception, match="needs name and port"):
        filters.scrape_targets(jobs, {"all": ["a"]}, HostVars(a={"stack_app_metrics": [{"name": "x"}]}))


def test_alert_rules_drop_and_override_by_name(filters):
    files = {"stack-node": {"groups": [{"name": "node", "rules": [
        {"alert": "A", "expr": "x > 1", "for": "5m", "labels": {"severity": "warning"}},
        {"alert": "B", "expr": "y > 1"}]}]},
        "stack-other": {"groups": [{"name": "other", "rules": [{"alert": "C", "expr": "z"}]}]}}
    out = filters.alert_rules(files, ["B", "C"], {"A": {"for": "30m", "labels": {"team": "db"}}})
    assert out == {"stack-node": {"groups": [{"name": "node", "rules": [
        {"alert": "A", "expr": "x > 1", "for": "30m", "labels": {"severity": "warning", "team": "db"}}]}]}}


def test_alertmanager_inline_secrets_move_to_files(filters):
    config = {"global": {"smtp_auth_password": "mailpw", "smtp_smarthost": "mx:587"},
              "receivers": [{"name": "ops team", "slack_configs": [{"api_url": "https://hooks/x", "channel": "#a"}],
                             "pagerduty_configs": [{"routing_key": "rk"}],
                             "webhook_configs": [{"url": "http://h/", "http_config": {"basic_auth": {
                                 "username": "u", "password": "hookpw"}}}]}]}
    out = filters.alertmanager_secrets(config, "/etc/alertmanager/secrets")
    assert out["files"] == {"global-smtp_auth_password": "mailpw", "ops_team-slack-0-api_url": "https://hooks/x",
                            "ops_team-pagerduty-0-routing_key": "rk", "ops_team-webhook-0-basic_auth": "hookpw"}
    receiver = out["config"]["receivers"][0]
    assert receiver["slack_configs"][0] == {"api_url_file": "/etc/alertmanager/secrets/ops_team-slack-0-api_url",
                                            "channel": "#a"}
    assert receiver["webhook_configs"][0]["url"] == "http://h/"
    assert receiver["webhook_configs"][0]["http_config"]["basic_auth"] == {
        "username": "u", "password_file": "/etc/alertmanager/secrets/ops_team-webhook-0-basic_auth"}
    assert "mailpw" not in repr(out["config"]) and config["global"]["smtp_auth_password"] == "mailpw"


@pytest.mark.parametrize("receivers, problem", [
    ([{"name": "s", "slack_configs": [{"channel": "#a"}]}], "receiver s: Slack needs api_url"),
    ([{"name": "p", "pagerduty_configs": [{"routing_key": "a", "service_key": "b"}]}], "exactly one of routing_key"),
    ([{"name": "w", "webhook_configs": [{}]}], "receiver w: webhook needs url"),
    ([{"name": "m", "email_configs": [{"to": "a@b", "smarthost": "mx:25", "from": "x@y", "auth_username": "u"}]}],
     "email auth_username u has no password"),
    ([{"name": "d"}, {"name": "d"}], "receiver d is defined twice"),
    ([{"name": "s", "slack_configs": [{"api_url_file": "/etc/alertmanager/secrets/nope"}]}],
     "/etc/alertmanager/secrets/nope is referenced but not in alertmanager_secret_files"),
])
def test_alertmanager_receivers_without_their_secret_are_reported(filters, receivers, problem):
    problems = filters.alertmanager_problems({"receivers": receivers}, {}, "/etc/alertmanager/secrets")
    assert any(problem in p for p in problems), problems


def test_a_complete_receiver_set_has_no_problems(filters):
    config = {"global": {"slack_api_url_file": "/etc/alertmanager/secrets/slack"},
              "receivers": [{"name": "s", "slack_configs": [{"channel": "#a"}]},
                            {"name": "p", "pagerduty_configs": [{"routing_key_file": "/etc/alertmanager/secrets/pd"}]},
                            {"name": "n"}]}
    assert filters.alertmanager_problems(config, {"slack": "x", "pd": "y"}, "/etc/alertmanager/secrets") == []


def test_merge_is_deep_for_dicts_and_replaces_lists(filters):
    assert filters.merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2], "e": 3}}) == \
        {"a": {"b": 1, "c": [2], "e": 3}, "d": 1}


def test_probe_targets_are_their_own_instances(filters):
    jobs = {"postgres": {"groups": ["postgres_exporter"], "port": 9187, "local_var": "pg_local",
                         "probes_var": "pg_instances", "probe_path": "/probe", "probe_module_param": "auth_module"}}
    hostvars = HostVars(a={"pg_instances": [{"name": "replica", "target": "10.0.0.7:5432/postgres", "password": "x"}]},
                        b={"pg_local": False, "pg_instances": [{"name": "r2", "target": "r2:5432/app"}]})
    out = filters.scrape_targets(jobs, {"all": ["a", "b"], "postgres_exporter": ["a", "b"]}, hostvars)
    assert out["postgres"] == [
        {"targets": ["a:9187"]},
        {"targets": ["a:9187"], "labels": {"__metrics_path__": "/probe", "__param_target": "10.0.0.7:5432/postgres",
                                           "instance": "10.0.0.7:5432/postgres", "__param_auth_module": "replica"}},
        {"targets": ["b:9187"], "labels": {"__metrics_path__": "/probe", "__param_target": "r2:5432/app",
                                           "instance": "r2:5432/app", "__param_auth_module": "r2"}},
    ]
    assert "x" not in repr(out), "passwords never reach Prometheus"


def test_probe_check_urls(filters):
    check = filters.probe_check({"name": "s", "target": "redis://u@h:6379"}, "http://127.0.0.1:9121/scrape", None, "redis_up")
    assert check == {"name": "s (redis://u@h:6379)", "metric": "redis_up",
                     "url": "http://127.0.0.1:9121/scrape?target=redis%3A%2F%2Fu%40h%3A6379"}


def test_otel_config_references_are_checked(filters):
    good = {"service": {"extensions": ["jaeger_storage", "jaeger_query"],
                        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                                 "exporters": ["jaeger_storage_exporter"]}}},
            "extensions": {"jaeger_storage": {"backends": {"main": {"badger": {"ephemeral": False,
                                                                                "directories": {"keys": "/k", "values": "/v"}}}}},
                           "jaeger_query": {"storage": {"traces": "main"}}},
            "receivers": {"otlp": {}}, "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "main"}}}
    assert filters.otel_problems(good) == []
    bad = filters.merge(good, {"service": {"pipelines": {"traces": {"processors": ["batch", "memory_limiter"]}}},
                               "extensions": {"jaeger_query": {"storage": {"traces": "other"}},
                                              "jaeger_storage": {"backends": {"main": {"badger": {"directories": {"keys": "k"}}}}}}})
    problems = filters.otel_problems(bad)
    assert "pipeline traces uses processor memory_limiter, which processors does not define" in problems
    assert "jaeger_query storage.traces names storage backend other, which jaeger_storage.backends does not define" in problems
    assert "badger backend main: directories.keys must be an absolute path, got k" in problems


def test_service_urls_follow_listen_addresses(filters):
    hostvars = HostVars(a={"ansible_host": "10.0.0.1"}, b={"loki_listen_address": "10.9.9.9:3200"})
    assert filters.service_urls(["a", "b"], hostvars, "loki_listen_address", 3100, "http", "/loki/api/v1/push") == [
        "http://10.0.0.1:3100/loki/api/v1/push", "http://10.9.9.9:3200/loki/api/v1/push"]


def test_port_conflicts_name_host_port_and_components(filters):
    groups = {"all": ["a", "b"], "grafana": ["a"], "loki": ["a", "b"], "prometheus": ["b"]}
    hostvars = HostVars(a={"grafana_listen_address": "0.0.0.0:3100"}, b={})
    assert filters.port_conflicts(groups, hostvars) == ["host a: port 3100 is wanted by grafana and loki"]
    assert filters.port_conflicts({"all": ["a"], "prometheus": ["a"], "alertmanager": ["a"]}, HostVars(a={})) == []


def test_port_conflicts_read_the_alertmanager_cluster_port_from_its_variable(filters):
    groups = {"all": ["a"], "alertmanager": ["a"], "loki": ["a"]}
    moved = HostVars(a={"alertmanager_cluster_port": 3100})
    assert filters.port_conflicts(groups, moved) == ["host a: port 3100 is wanted by alertmanager and loki"]
    assert filters.port_conflicts({"all": ["a"], "alertmanager": ["a"], "jaeger": ["a"]},
                                  HostVars(a={"alertmanager_cluster_port": 9095})) == []


def test_a_malformed_listen_address_is_named_instead_of_crashing(filters):
    problems = filters.port_conflicts({"all": ["a"]}, HostVars(a={"node_exporter_listen_address": "nohost"}))
    assert problems == ["host a: node_exporter_listen_address is 'nohost', not host:port or a port number"]
