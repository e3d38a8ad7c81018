#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Bring a systemd service to its wanted state and prove it is ready.

Restarts only when something the running process depends on changed: the unit file
(systemd's NeedDaemonReload, or the file or a drop-in newer than the process), the binary
(the running executable is not the linked one) or an explicit request; reloads when only its config changed.  After any start,
restart or reload it waits for the readiness endpoint and checks that the unit did not
restart meanwhile; a unit that never gets ready or crash-loops fails the task with its
last journal lines instead of leaving the play green.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_service
short_description: Enable, start, restart or reload a systemd service and wait until it is ready
description:
  - Restarts only for a new unit, a new binary or an explicit request, reloads for a changed
    config, then waits for the readiness endpoint; a unit that does not get ready fails with its
    last journal lines.
options:
  name: {type: str, required: true, description: Unit name without .service.}
  enabled: {type: bool, default: true, description: Start at boot.}
  restart: {type: bool, default: false, description: Restart even if nothing else asks for it.}
  reload: {type: bool, default: false, description: Reload (ExecReload) when running; start when stopped.}
  binary: {type: path, description: Linked executable; a running process on another file is restarted.}
  ready_url: {type: str, description: URL that answers 2xx when the service is ready.}
  ready_accept:
    type: list
    elements: dict
    default: []
    description: >-
      Answers of I(ready_url) other than 2xx that still mean the service runs, each
      {status, body (a text the answer contains), means (the warning given)}; e.g. Promtail's
      500 "Unable to find any logs to tail" while no file it watches exists yet.
  ready_client_cert:
    type: list
    elements: path
    default: []
    description: The certificate and key files (in that order) I(ready_url) is called with, for a service that requires client certificates.
  ready_port: {type: int, description: TCP port on 127.0.0.1 to wait for when there is no URL.}
  ready_timeout: {type: int, default: 60, description: Seconds to wait.}
  url_username: {type: str, description: Basic auth user for I(ready_url).}
  url_password: {type: str, description: Basic auth password for I(ready_url).}
  journal_lines: {type: int, default: 30, description: Journal lines shown on failure.}
  checks:
    type: list
    elements: dict
    default: []
    description: >-
      After the service is ready (also when nothing changed), fetch each {name, url, metric, expect=1}
      and compare the metric's value, e.g. an exporter's pg_up for each database it watches.
      Mismatches become warnings naming the check, or a failure with I(checks_fatal).
  checks_fatal: {type: bool, default: false, description: Fail instead of warning when a check does not hold.}
  reload_urls:
    type: list
    elements: str
    default: []
    description: A reload POSTs to these URLs (with the basic auth above) instead of running ExecReload.
  defer_restart:
    type: bool
    default: false
    description: >-
      When a restart is due, change nothing and return C(deferred) (its reason) instead: the
      action plugin then takes a rolling slot and calls again (see I(rolling_batch) there).
  reason:
    type: str
    description: >-
      Why I(restart) or I(reload) is asked (a new release, a changed unit or config file), shown
      in C(restart_reason) or C(reload_reason). A reload or restart an earlier run left pending on
      the host (C(/var/lib/monstack/pending/<name>.json)) is done as well, and cleared once done.
  cluster_status_url:
    type: str
    description: >-
      Alertmanager-style status URL (JSON with cluster.peers): before a restart the peers this
      member sees are counted, after it the module waits until it sees as many again, so a
      rolling restart never takes two members out of the cluster.
  silence:
    type: dict
    description:
      - >-
        A maintenance silence for a restart (stack_maintenance_silences) C({urls, matchers, comment, username,
        ca_file, grace}). Before the restart the alerts matching I(matchers) (Alertmanager API v2 matchers,
        C({name, value, isRegex})) are silenced on the first Alertmanager of I(urls) that takes it (its
        certificate checked against I(ca_file), logging in as I(username)); once the service is ready
        again, or its restart failed, the silence ends I(grace) seconds later (the next scrapes see the
        service first). An Alertmanager that cannot be reached is a warning: the restart goes on.
  silence_password:
    type: str
    description: The password of I(silence)'s username (never logged).
author: monitoring-stack
"""

EXAMPLES = r"""
- name: Reload Prometheus for its new config and wait until it is ready
  monstack.observability.stack_service:
    name: prometheus
    binary: /usr/local/bin/prometheus
    reload: true
    reason: "config changed: prometheus.yml"
    ready_url: http://127.0.0.1:9090/-/ready
"""

RETURN = r"""
actions:
  description: 'What was done (or would be, in check mode): daemon-reload, enable, start, restart, reload.'
  returned: always
  type: list
  elements: str
restart_reason:
  description: 'Why it restarted: new release, unit changed, binary changed, config changed, pending since
    an earlier run.'
  returned: on a restart
  type: str
silence:
  description: The maintenance silence made for the restart C({id, url, starts}).
  returned: when one was made
  type: dict
reload_reason:
  description: Why it reloaded.
  returned: on a reload
  type: str
ready:
  description: What the readiness probe answered.
  returned: after a start, restart or reload
  type: str
window:
  description: When the service went down and when it was ready again (epoch seconds).
  returned: after a start or restart
  type: list
checks_failed:
  description: The I(checks) that did not hold.
  returned: with checks
  type: list
  elements: str
deferred:
  description: The restart's reason, when I(defer_restart) held it back.
  returned: when deferred
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_service import ARGUMENT_SPEC, run
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode, module.warn))
    except StepError as exc:
        module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
