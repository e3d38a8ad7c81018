"""Scale-out wiring: remote writes from the inventory, the replica label of HA pairs,
hashmod sharding and Grafana's default datasource (plugins/filter/{stack,prometheus,grafana}.py)."""
import pytest

from conftest import HostVars
from conftest import role_filters as load_role_filters

prometheus = load_role_filters("prometheus")
grafana = load_role_filters("grafana")


BASE = {"global": {"scrape_interval": "15s"}, "alerting": {"alertmanagers": []},
        "scrape_configs": [{"job_name": "node", "file_sd_configs": [{"files": ["file_sd/node.yml"]}]},
                           {"job_name": "mine", "relabel_configs": [{"action": "labeldrop", "regex": "tmp"}]}]}
QUEUE = {"capacity": 20000, "max_samples_per_send": 10000, "max_shards": 30}


def test_every_victoriametrics_host_is_a_remote_write_target(filters, registry):
    groups = {"all": ["p", "v1", "v2"], "prometheus": ["p"], "victoriametrics": ["v1", "v2"]}
    hostvars = HostVars(p={}, v1={"ansible_host": "10.0.0.5"}, v2={"victoriametrics_listen_address": "10.0.0.6:9428"})
    assert filters.remote_write_urls(registry, groups, hostvars) == [
        {"name": "victoriametrics-v1", "url": "http://10.0.0.5:8428/api/v1/write", "component": "victoriametrics"},
        {"name": "victoriametrics-v2", "url": "http://10.0.0.6:9428/api/v1/write", "component": "victoriametrics"}]
    assert filters.remote_write_urls(registry, {"all": ["p"], "prometheus": ["p"]}, hostvars) == []


def test_a_pair_carries_its_replica_label_but_sends_neither_alerts_nor_samples_with_it():
    stores = [{"name": "victoriametrics-v1", "url": "http://v1:8428/api/v1/write"},
              {"name": "mimir", "write_url": "https://mimir/api/v1/push", "keep_replica_label": True,
               "remote_write": {"headers": {"X-Scope-OrgID": "ops"}, "queue_config": {"max_shards": 10}}}]
    out = prometheus.scaled_config(BASE, stores, QUEUE, "replica", "prom1",
                                   extra_writes=[{"url": "https://other/write", "queue_config": {"capacity": 5}}])
    assert out["global"]["external_labels"] == {"replica": "prom1"}
    drop = {"action": "labeldrop", "regex": "replica"}
    assert out["alerting"]["alert_relabel_configs"] == [drop]
    vm, mimir, other = out["remote_write"]
    assert vm == {"name": "victoriametrics-v1", "url": "http://v1:8428/api/v1/write", "queue_config": QUEUE,
                  "write_relabel_configs": [drop]}
    # a store that deduplicates by the label itself keeps it; its settings win over the queue defaults
    assert "write_relabel_configs" not in mimir and mimir["headers"] == {"X-Scope-OrgID": "ops"}
    assert mimir["queue_config"] == dict(QUEUE, max_shards=10) and mimir["url"] == "https://mimir/api/v1/push"
    assert other == {"url": "https://other/write", "queue_config": dict(QUEUE, capacity=5)}
    assert BASE["global"] == {"scrape_interval": "15s"}, "the input is not changed"


def test_a_user_replica_label_wins_and_an_empty_label_name_adds_nothing():
    config = dict(BASE, **{"global": {"external_labels": {"replica": "a"}}})
    assert prometheus.scaled_config(config, [], QUEUE, "replica", "prom1")["global"]["external_labels"] == {"replica": "a"}
    plain = prometheus.scaled_config(BASE, [{"name": "s", "url": "http://s/w"}], QUEUE, "", "prom1")
    assert "external_labels" not in plain["global"] and "alert_relabel_configs" not in plain["alerting"]
    assert "write_relabel_configs" not in plain["remote_write"][0]
    assert "remote_write" not in prometheus.scaled_config(BASE, [], QUEUE, "", "p")


def test_shards_keep_only_their_targets_in_every_job():
    out = prometheus.scaled_config(BASE, [], QUEUE, "replica", "p", shard_count=3, shard=2)
    for job in out["scrape_configs"]:
        assert job["relabel_configs"][-2:] == [
            {"source_labels": ["__address__"], "modulus": 3, "target_label": "__tmp_shard", "action": "hashmod"},
            {"source_labels": ["__tmp_shard"], "regex": "2", "action": "keep"}]
    assert out["scrape_configs"][1]["relabel_configs"][0] == {"action": "labeldrop", "regex": "tmp"}, "the job's own come first"
    assert "relabel_configs" not in prometheus.scaled_config(BASE, [], QUEUE, "", "p")["scrape_configs"][0]


def test_hosts_take_their_shard_by_position_unless_they_name_one():
    hostvars = HostVars(a={}, b={}, c={}, d={"prometheus_shard": "0"})
    assert prometheus.shards(["a", "b", "c", "d"], hostvars, 2) == {"a": 0, "b": 1, "c": 0, "d": 0}
    assert prometheus.shard_problems(["a", "b", "c", "d"], hostvars, 2) == []


@pytest.mark.parametrize("members, hostvars, count, problem", [
    (["a"], {"a": {}}, 2, "shard 1 has no host in the prometheus group (1 hosts)"),
    (["a", "b"], {"a": {}, "b": {"prometheus_shard": 5}}, 2, "host b: prometheus_shard is 5, not a number from 0 to 1"),
    (["a", "b"], {"a": {"prometheus_shards": 3}, "b": {}}, 2, "prometheus_shards differs between the hosts"),
    (["a"], {"a": {}}, 0, "prometheus_shards must be a whole number of 1 or more"),
])
def test_shardings_that_would_leave_targets_unscraped_are_refused(members, hostvars, count, problem):
    problems = prometheus.shard_problems(members, HostVars(hostvars), count)
    assert any(problem in p for p in problems), problems


def test_the_long_term_store_is_grafanas_default_and_prometheus_is_not(filters, registry):
    groups = {"all": ["p", "v"], "prometheus": ["p"], "victoriametrics": ["v"]}
    sources = filters.datasource_urls(registry, groups, HostVars(p={}, v={}))
    provisioned = {d["uid"]: d for d in grafana.inventory_datasources(sources, "5s")}
    assert provisioned["victoriametrics"]["isDefault"] and provisioned["victoriametrics"]["name"] == "VictoriaMetrics"
    assert provisioned["victoriametrics"]["url"] == "http://v:8428"
    assert provisioned["victoriametrics"]["jsonData"]["timeInterval"] == "5s"
    assert provisioned["prometheus"]["isDefault"] is False
    assert grafana.datasource_problems(list(provisioned.values())) == []
    # without a store Prometheus stays the default
    alone = {d["uid"]: d for d in grafana.inventory_datasources(
        filters.datasource_urls(registry, {"all": ["p"], "prometheus": ["p"]}, HostVars(p={})))}
    assert alone["prometheus"]["isDefault"] and "victoriametrics" not in alone


def test_a_store_outside_the_inventory_is_a_datasource_default_only_without_one_inside(filters, registry):
    outside = [{"name": "mimir", "write_url": "https://mimir/api/v1/push", "query_url": "https://mimir/prometheus",
                "datasource": {"jsonData": {"httpHeaderName1": "X-Scope-OrgID"}}}]
    groups = {"all": ["p"], "prometheus": ["p"]}
    provisioned = {d["uid"]: d for d in grafana.inventory_datasources(
        filters.datasource_urls(registry, groups, HostVars(p={}), outside))}
    assert provisioned["mimir"]["isDefault"] and provisioned["mimir"]["url"] == "https://mimir/prometheus"
    assert provisioned["mimir"]["jsonData"] == {"httpMethod": "POST", "timeInterval": "15s", "httpHeaderName1": "X-Scope-OrgID"}
    inside = {d["uid"]: d for d in grafana.inventory_datasources(filters.datasource_urls(
        registry, dict(groups, victoriametrics=["p"]), HostVars(p={}), outside))}
    assert inside["victoriametrics"]["isDefault"] and "isDefault" not in inside["mimir"]


def test_two_defaults_are_refused_before_grafana_would_refuse_to_start():
    problems = grafana.datasource_problems([{"name": "a", "type": "prometheus", "isDefault": True},
                                            {"name": "b", "type": "prometheus", "isDefault": True}])
    assert problems == ["datasources a, b are all marked isDefault: Grafana allows one"]


@pytest.mark.parametrize("stores, problem", [
    ([{"write_url": "http://x"}], "entry 1 needs a name"),
    ([{"name": "x", "write_url": "x.example.org/write"}], "x: write_url must be an http(s) URL"),
    ([{"name": "x", "write_url": "http://x/w", "query_url": "x/q"}], "x: query_url must be an http(s) URL"),
    ([{"name": "x", "write_url": "http://x/w", "auth": {}}], "x: unknown keys auth"),
    ([{"name": "x", "write_url": "http://x/w", "remote_write": "basic"}], "x: remote_write must be a dict"),
    ([{"name": "x", "write_url": "http://x/w"}, {"name": "x", "write_url": "http://y/w"}], "names must be unique"),
])
def test_remote_stores_are_checked_naming_the_entry(filters, stores, problem):
    assert any(problem in p for p in filters.remote_storage_problems(stores)), filters.remote_storage_problems(stores)
