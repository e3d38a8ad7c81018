"""Filters that derive the wiring from the inventory and shape rules and receivers."""
import pathlib

import pytest

from conftest import HostVars
from conftest import role_filters as load_role_filters

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def test_alert_rules_drop_and_override_by_name():
    filters = load_role_filters("prometheus")
    files = {"stack-node": {"groups": [{"name": "node", "rules": [
        {"alert": "A", "expr": "x > 1", "for": "5m", "labels": {"severity": "warning"}},
        {"alert": "B", "expr": "y > 1"}]}]},
        "stack-other": {"groups": [{"name": "other", "rules": [{"alert": "C", "expr": "z"}]}]}}
    out = filters.alert_rules(files, ["B", "C"], {"A": {"for": "30m", "labels": {"team": "db"}}})
    assert out == {"stack-node": {"groups": [{"name": "node", "rules": [
        {"alert": "A", "expr": "x > 1", "for": "30m", "labels": {"severity": "warning", "team": "db"}}]}]}}


def test_alertmanager_inline_secrets_move_to_files():
    filters = load_role_filters("alertmanager")
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
def test_alertmanager_receivers_without_their_secret_are_reported(receivers, problem):
    problems = load_role_filters("alertmanager").alertmanager_problems({"receivers": receivers}, {}, "/etc/alertmanager/secrets")
    assert any(problem in p for p in problems), problems


def test_a_complete_receiver_set_has_no_problems():
    filters = load_role_filters("alertmanager")
    config = {"global": {"slack_api_url_file": "/etc/alertmanager/secrets/slack"},
              "receivers": [{"name": "s", "slack_configs": [{"channel": "#a"}]},
                            {"name": "p", "pagerduty_configs": [{"routing_key_file": "/etc/alertmanager/secrets/pd"}]},
                            {"name": "n"}]}
    assert filters.alertmanager_problems(config, {"slack": "x", "pd": "y"}, "/etc/alertmanager/secrets") == []


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


def test_otel_config_references_are_checked():
    from ansible.plugins.filter.core import combine

    filters = load_role_filters("jaeger")
    good = {"service": {"extensions": ["jaeger_storage", "jaeger_query"],
                        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                                 "exporters": ["jaeger_storage_exporter"]}}},
            "extensions": {"jaeger_storage": {"backends": {"main": {"badger": {"ephemeral": False,
                                                                                "directories": {"keys": "/k", "values": "/v"}}}}},
                           "jaeger_query": {"storage": {"traces": "main"}}},
            "receivers": {"otlp": {}}, "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "main"}}}
    assert filters.otel_problems(good) == []
    bad = combine(good, {"service": {"pipelines": {"traces": {"processors": ["batch", "memory_limiter"]}}},
                               "extensions": {"jaeger_query": {"storage": {"traces": "other"}},
                                              "jaeger_storage": {"backends": {"main": {"badger": {"directories": {"keys": "k"}}}}}}}, recursive=True)
    problems = filters.otel_problems(bad)
    assert "pipeline traces uses processor memory_limiter, which processors does not define" in problems
    assert "jaeger_query storage.traces names storage backend other, which jaeger_storage.backends does not define" in problems
    assert "badger backend main: directories.keys must be an absolute path, got k" in problems


def test_component_urls_follow_listen_addresses_and_schemes(filters, registry):
    hostvars = HostVars(a={"ansible_host": "10.0.0.1"}, b={"loki_listen_address": "10.9.9.9:3200"})
    assert filters.component_urls(["a", "b"], hostvars, registry["loki"], path="/loki/api/v1/push") == [
        "http://10.0.0.1:3100/loki/api/v1/push", "http://10.9.9.9:3200/loki/api/v1/push"]
    tls = HostVars(p={"prometheus_web_tls_cert": "PEM"}, q={})
    assert filters.component_urls(["p", "q"], tls, registry["prometheus"]) == ["https://p:9090", "http://q:9090"]
    assert filters.component_urls(["j"], HostVars(j={}), registry["jaeger"], port="otlp_http") == ["http://j:4318"]


def test_port_conflicts_name_host_port_and_components(filters, registry):
    groups = {"all": ["a", "b"], "grafana": ["a"], "loki": ["a", "b"], "prometheus": ["b"]}
    hostvars = HostVars(a={"grafana_listen_address": "0.0.0.0:3100"}, b={})
    assert filters.port_conflicts(groups, hostvars, registry) == ["host a: port 3100 is wanted by grafana and loki"]
    assert filters.port_conflicts({"all": ["a"], "prometheus": ["a"], "alertmanager": ["a"]}, HostVars(a={}),
                                  registry) == []


def test_port_conflicts_read_the_alertmanager_cluster_port_from_its_variable(filters, registry):
    groups = {"all": ["a"], "alertmanager": ["a"], "loki": ["a"]}
    moved = HostVars(a={"alertmanager_cluster_port": 3100})
    assert filters.port_conflicts(groups, moved, registry) == ["host a: port 3100 is wanted by alertmanager and loki"]
    assert filters.port_conflicts({"all": ["a"], "alertmanager": ["a"], "jaeger": ["a"]},
                                  HostVars(a={"alertmanager_cluster_port": 9095}), registry) == []


def test_a_malformed_listen_address_is_named_instead_of_crashing(filters, registry):
    problems = filters.port_conflicts({"all": ["a"]}, HostVars(a={"node_exporter_listen_address": "nohost"}), registry)
    assert problems == ["host a: node_exporter_listen_address is 'nohost', not host:port or a port number"]


def test_registry_jobs_are_the_scrape_jobs_prometheus_had(filters, registry):
    jobs = filters.scrape_jobs(registry)
    assert sorted(jobs) == ["alertmanager", "alloy", "blackbox", "celery", "grafana", "jaeger", "loki", "node", "postgres",
                            "prometheus", "promtail", "rabbitmq", "redis", "victoriametrics"]
    # applications' own endpoints, scraped with no role: hosts of the group at the port of the host var
    assert jobs["rabbitmq"] == {"groups": ["rabbitmq"], "port": 15692, "listen_var": "rabbitmq_prometheus_port"}
    assert jobs["celery"] == {"groups": ["celery"], "port": 9808, "listen_var": "celery_exporter_listen_address"}
    assert jobs["blackbox"] == {"groups": ["blackbox_exporter"], "port": 9115, "listen_var": "blackbox_exporter_listen_address",
                                "probes_var": "stack_probes", "probes_kind": "blackbox", "probe_path": "/probe",
                                "probe_module_param": "module", "probe_source_label": "prober",
                                # stack_tls protects it (tls), its own certificate switches it alone (tls_var)
                                "tls": "web_config", "tls_var": "blackbox_exporter_web_tls_cert"}
    assert jobs["node"] == {"groups": ["node_exporter", "all"], "port": 9100, "listen_var": "node_exporter_listen_address",
                            "path_var": "node_exporter_telemetry_path", "tls_var": "node_exporter_web_tls_cert",
                            "tls": "web_config"}
    # stack_tls serves it over TLS through the jaeger role's relay
    assert jobs["jaeger"] == {"groups": ["jaeger"], "port": 8888, "listen_var": "jaeger_metrics_address", "tls": "config"}
    assert jobs["postgres"]["probes_var"] == "postgres_exporter_instances"
    assert jobs["postgres"]["probe_module_param"] == "auth_module"


def test_a_made_up_component_gets_its_scrape_job_port_check_and_grafana_url(filters, registry):
    """Adding a component is an entry in the registry: nothing in another role changes."""
    grafana = load_role_filters("grafana")
    made_up = dict(registry, tsdb={
        "group": "tsdb", "ports": {"http": {"var": "tsdb_listen_address", "port": 8428}},
        "metrics": {"job": "tsdb"}, "datasource": {"type": "prometheus-compatible"}})
    groups = {"all": ["a", "b"], "tsdb": ["b"], "prometheus": ["a"]}
    hostvars = HostVars(a={"ansible_host": "10.0.0.1"}, b={"ansible_host": "10.0.0.2", "grafana_listen_address": ":8428"})
    targets = filters.scrape_targets(filters.scrape_jobs(made_up), groups, hostvars)
    assert targets["tsdb"] == [{"targets": ["10.0.0.2:8428"]}]
    assert filters.port_conflicts(dict(groups, grafana=["b"]), hostvars, made_up) == [
        "host b: port 8428 is wanted by grafana and tsdb"]
    sources = filters.datasource_urls(made_up, groups, hostvars)
    assert sources["tsdb"] == {"type": "prometheus-compatible", "urls": ["http://10.0.0.2:8428"], "default": False}
    provisioned = {d["uid"]: d for d in grafana.inventory_datasources(sources)}
    assert provisioned["tsdb"]["url"] == "http://10.0.0.2:8428" and provisioned["tsdb"]["name"] == "Tsdb"
    assert provisioned["prometheus"]["url"] == "http://10.0.0.1:9090"
    # a second component of the same type (a long-term store speaking PromQL) is a datasource of its own
    same_type = dict(made_up, tsdb=dict(made_up["tsdb"], datasource={"type": "prometheus"}))
    provisioned = {d["uid"]: d for d in grafana.inventory_datasources(filters.datasource_urls(same_type, groups, hostvars))}
    assert provisioned["prometheus"]["url"] == "http://10.0.0.1:9090" and provisioned["prometheus"]["isDefault"]
    assert provisioned["tsdb"] == {"name": "Tsdb", "type": "prometheus", "uid": "tsdb", "access": "proxy",
                                   "url": "http://10.0.0.2:8428", "editable": False}


@pytest.mark.parametrize("changed, action", [
    ([], "none"),
    (["/etc/prometheus/file_sd/node.yml", "/etc/prometheus/secrets/x"], "none"),
    (["/etc/prometheus/rules/stack-hosts.yml"], "reload"),
    (["/etc/prometheus/prometheus.yml", "/etc/prometheus/web.yml"], "reload"),
])
def test_prometheus_changes_reload_only_for_its_config_and_rules(filters, registry, changed, action):
    result = {"content_changed": changed, "removed": []}
    assert filters.change_action(result, "/etc/prometheus", registry["prometheus"]["changes"]) == action


def test_change_rules_first_match_wins_and_restart_is_strongest(filters, registry):
    rules = registry["postgres_exporter"]["changes"]
    assert filters.change_action({"content_changed": ["/etc/postgres_exporter/web.yml"]}, "/etc/postgres_exporter",
                                 rules) == "none"
    assert filters.change_action({"content_changed": ["/etc/postgres_exporter/auth.yml"]}, "/etc/postgres_exporter",
                                 rules) == "restart"
    grafana = registry["grafana"]["changes"]
    assert filters.change_action({"content_changed": ["/etc/grafana/provisioning/datasources/stack.yml"],
                                  "removed": ["/etc/grafana/secrets/x"]}, "/etc/grafana", grafana) == "restart"
    assert filters.change_action({"removed": ["/etc/grafana/provisioning/datasources/old.yml"]}, "/etc/grafana",
                                 grafana) == "reload"
    with pytest.raises(Exception, match="reload, restart or none"):
        filters.change_action({"content_changed": ["/x/a"]}, "/x", [["a", "bounce"]])


def test_every_registry_variable_is_a_role_variable_with_the_registry_default(registry):
    """A mistyped listen variable would silently fall back to the default port: the registry
    names only variables its role declares, and their defaults agree with it."""
    import yaml

    def declared(role):
        specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
        # the stack role's one entry is `settings` (its argument_specs.yml says why)
        return yaml.safe_load((role / "defaults/main.yml").read_text()), (specs.get("main") or specs["settings"])["options"]

    shared = declared(ROOT / "roles/stack")
    for component, entry in registry.items():
        if entry.get("external"):  # no role: its variable is a host var of the user's (docs/operations.md)
            continue
        role = ROOT / "roles" / component
        defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
        spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
        for name, port in entry["ports"].items():
            assert port["var"] in defaults and port["var"] in spec, f"{component}.ports.{name}: {port['var']}"
            assert str(defaults[port["var"]]).rpartition(":")[2] == str(port["port"]), f"{component}.ports.{name}"
        named = [entry.get("scheme_var")] + [entry.get("metrics", {}).get(k) for k in ("path_var", "local_var", "probes_var")]
        for var in filter(None, named):
            # stack_* variables (stack_probes) are the stack role's, shared by the roles that read them
            owner_defaults, owner_spec = shared if var.startswith("stack_") else (defaults, spec)
            assert var in owner_defaults and var in owner_spec, f"{component}: {var}"
        assert (role / "tasks/main.yml").exists() and entry["group"] == component or component == "node_exporter"


@pytest.mark.parametrize("tags, runs", [
    (["all"], {"prometheus/install", "prometheus/configure", "prometheus/service", "grafana/install",
               "grafana/configure", "grafana/service"}),
    (["prometheus", "configure"], {"prometheus/configure", "prometheus/service"}),
    (["prometheus"], {"prometheus/install", "prometheus/configure", "prometheus/service"}),
    (["configure"], {"prometheus/configure", "prometheus/service", "grafana/configure", "grafana/service"}),
    (["grafana", "prometheus", "install"], {"prometheus/install", "prometheus/service", "grafana/install",
                                            "grafana/service"}),
])
def test_tags_select_components_and_phases_together(filters, registry, tags, runs):
    chosen = {f"{c}/{p or 'service'}" for c in ("prometheus", "grafana") for p in ("install", "configure", None)
              if filters.selected(c, p, tags, registry)}
    assert chosen == runs


class TemplatedDict(dict):
    """Stands for Ansible 2.19's lazy templated dict: deep-copying one copies every variable it
    was templated with (seconds on a large inventory)."""

    def __deepcopy__(self, memo):
        raise AssertionError("a filter deep-copied templated data")


def test_config_filters_copy_their_input_without_deep_copying_templated_data():
    prometheus, alertmanager = load_role_filters("prometheus"), load_role_filters("alertmanager")
    config = TemplatedDict({"global": TemplatedDict({"scrape_interval": "15s"}), "alerting": TemplatedDict(),
                            "scrape_configs": [TemplatedDict({"job_name": "node"})]})
    out = prometheus.scaled_config(config, [], {}, "replica", "p1", shard_count=2, shard=1)
    assert out["global"]["external_labels"] == {"replica": "p1"}
    assert len(out["scrape_configs"][0]["relabel_configs"]) == 2
    # the input is left as it was
    assert config["global"] == {"scrape_interval": "15s"} and config["scrape_configs"] == [{"job_name": "node"}]
    am = TemplatedDict({"global": TemplatedDict({"smtp_auth_password": "pw"}),
                        "receivers": [TemplatedDict({"name": "r", "webhook_configs": [TemplatedDict({"url": "https://h/"})]})]})
    assert alertmanager.alertmanager_secrets(am, "/s")["files"] == {"global-smtp_auth_password": "pw"}
    hooked = alertmanager.webhook_ca(am, "/ca.crt")
    assert hooked["receivers"][0]["webhook_configs"][0]["http_config"] == {"tls_config": {"ca_file": "/ca.crt"}}
    assert am["global"] == {"smtp_auth_password": "pw"} and am["receivers"][0]["webhook_configs"] == [{"url": "https://h/"}]
