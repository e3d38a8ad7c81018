# -*- coding: utf-8 -*-
"""Install, configure and run one component on its host in one module call (the stack_component
module), and the rules that join the steps: what a changed file needs (change_action), whether a
config change switches a running service (config_switched) and the service step's arguments
(service_args). The controller's action and filters use these rules too: each lives here once.
"""
from __future__ import annotations

import fnmatch
import os

from ansible_collections.monstack.observability.plugins.module_utils import stack_config, stack_install, stack_remove, stack_service
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError

STEPS = ("install", "configure", "service")
# what a config step replaced, per service, until the service is ready on the new config
# (stack_config's backup_dir): a service that fails on it gets the old one back
PREVIOUS_DIR = "/var/lib/monstack/previous"
RESULT_KEYS = {"install": "install", "configure": "config", "service": "service"}
RANK = {"none": 0, "reload": 1, "restart": 2}

# the service step's arguments and what joins it to the config step
SERVICE_SPEC = dict(stack_service.ARGUMENT_SPEC,
                    changes=dict(type="dict"),
                    cluster_switch_files=dict(type="list", elements="path"))

ARGUMENT_SPEC = dict(
    steps=dict(type="list", elements="str", default=list(STEPS), choices=list(STEPS)),
    install=dict(type="dict", options=stack_install.ARGUMENT_SPEC),
    config=dict(type="dict", options=stack_config.ARGUMENT_SPEC),
    config_result=dict(type="dict"),
    service=dict(type="dict", options=SERVICE_SPEC),
    defer_switch=dict(type="bool", default=False),
    rollback=dict(type="dict"),
    record_dir=dict(type="path", default=stack_remove.RECORD_DIR),
)


def config_switched(result):
    """Whether a stack_config result changed what an installed service runs with: a file that
    was there before has new content, or one was removed. A first install (every file new), a
    skipped step or one that changed nothing is not a switch."""
    result = result or {}
    if not result.get("changed"):
        return False
    created = set(result.get("created") or [])
    return bool([path for path in result.get("content_changed") or [] if path not in created] or result.get("removed"))


def changed_paths(result):
    """The files a stack_config result changed or removed."""
    return list((result or {}).get("content_changed") or []) + list((result or {}).get("removed") or [])


def relative(path, root):
    """path relative to root when it lies below it, else as it is."""
    prefix = str(root).rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def change_action(result, root, changes):
    """What the files a stack_config run changed or removed need: 'restart', 'reload' or
    'none'. changes: [[glob, action], ...] from the registry, globs relative to root (or
    absolute), first match per file wins; the strongest action over all files is returned."""
    wanted = "none"
    for path in changed_paths(result):
        rel = relative(path, root)
        for pattern, action in changes or []:
            if action not in RANK:
                raise ValueError(f"change rule {pattern}: action must be reload, restart or none, got {action!r}")
            if fnmatch.fnmatchcase(rel, pattern):
                if RANK[action] > RANK[wanted]:
                    wanted = action
                break
    return wanted


def unit_files(name, paths):
    """The paths among paths that are the unit file of service name or one of its drop-ins."""
    return [path for path in paths
            if path.endswith(f"/{name}.service") or f"/{name}.service.d/" in path]


def needed_action(service, config_result, install_result=None):
    """(action, reason) that a config step's and an install step's results need of the service:
    'restart' for a changed unit file or a new release (what the real run's service step sees as
    systemd's NeedDaemonReload or a replaced binary, stated here so that check mode predicts it
    too), else what the registry's change rules say of the changed files, or ('none', None)."""
    changes = (service or {}).get("changes")
    changed = changed_paths(config_result)
    if (install_result or {}).get("switched_release"):
        return "restart", "new release"
    if unit_files(str((service or {}).get("name") or ""), changed):
        return "restart", "unit changed"
    action = change_action(config_result, changes["root"], changes["rules"]) if changes else "none"
    if action == "none":
        return "none", None
    return action, "config changed: " + ", ".join(sorted(relative(path, changes["root"]) for path in changed))


def service_args(service, config_result, install_result=None):
    """stack_service's arguments for a config step's result: restart or reload when the changed
    files need it (the service's changes: {root, rules}, the registry's rules for its config
    directory), its unit changed or a new release was linked, or the caller asks for it; no peer
    check while a file of cluster_switch_files changed. Arguments given as none are left out."""
    args = {k: v for k, v in dict(service).items() if v is not None}
    switch_files = set(args.pop("cluster_switch_files", None) or [])
    action, reason = needed_action(args, config_result, install_result)
    args.pop("changes", None)
    args["restart"] = bool(args.get("restart")) or action == "restart"
    args["reload"] = bool(args.get("reload")) or action == "reload"
    if reason and not args.get("reason"):
        args["reason"] = reason
    if switch_files & set(changed_paths(config_result)):
        args.pop("cluster_status_url", None)
    return args


def remember(service, config_result, check_mode, directory=None):
    """Keep on the host the reload or restart a changed config needs, until the service step has
    done it (stack_service clears it): whatever stops this run before then, the next one does it."""
    if check_mode or not service or not (config_result or {}).get("changed"):
        return
    try:
        action, reason = needed_action(service, config_result)
    except ValueError:
        return  # a broken rule fails the service step, naming it
    if action != "none":
        stack_service.write_pending(service["name"], action, reason, directory)


def summary(result):
    """What a component's task did, in words a person reads at default verbosity, or '' when it
    changed nothing: installed <version>, config changed: <files>, reloaded or restarted (why)."""
    result = result or {}
    parts = []
    install = result.get("install") or {}
    if install.get("installed") or (install.get("changed") and install.get("needs_archive")):
        version = str(install.get("path") or "").rsplit("/", 1)[-1].split("-linux-")[0]
        parts.append(f"installed {version}" if version else "installed")
    elif install.get("switched_release"):
        parts.append("switched to " + str(install.get("path") or "").rsplit("/", 1)[-1].split("-linux-")[0])
    config = result.get("config") or {}
    files = list(config.get("content_changed") or []) + [f"{p} (removed)" for p in config.get("removed") or []]
    if files:
        names = [f.rsplit("/", 1)[-1] for f in files]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        parts.append(f"config changed: {shown}")
    elif config.get("changed"):
        parts.append("config file owners or modes set")
    service = result.get("service") or {}
    actions = list(service.get("actions") or [])
    for action, word, key in (("restart", "restarted", "restart_reason"), ("reload", "reloaded", "reload_reason")):
        if action in actions:
            reason = service.get(key)
            parts.append(f"{word} ({reason})" if reason else word)
    if "start" in actions:
        parts.append("started")
    if "enable" in actions and "start" not in actions:
        parts.append("enabled")
    if result.get("switched"):
        parts.append("switch waits for every Prometheus of this run")
    return "; ".join(parts)


def roll_back(p, install_result, config_result, failure, result, runners=None, warn=None):
    """After the service failed on a new release, unit or config: put back the config the config
    step replaced (its backup) and the release current pointed at before, restart on them and
    wait until ready. Raises StepError naming what was rolled back, the failure's cause first;
    returns (nothing rolled back) when there was nothing to go back to."""
    runners = runners or RUNNERS
    name = (p.get("service") or {}).get("name") or "the service"
    if failure.result.get("checks_failed") or failure.result.get("cluster"):
        return  # it runs and is ready: what failed is a check of what it watches, or of its cluster
    if unit_files(name, (config_result or {}).get("created") or []):
        return  # a first deploy: there is nothing to go back to
    back = []
    try:
        restored = stack_config.restore((config_result or {}).get("backup") or "")
        previous = (install_result or {}).get("previous_release")
        if previous and p.get("install"):
            stack_install.relink(p["install"].get("root") or "/opt/monitoring", p["install"]["component"], previous)
            back.append(f"release {previous.split('-linux-')[0]}")
    except OSError as exc:
        raise StepError(f"service: {failure.msg}\nthe rollback failed too: {exc}", result) from exc
    if restored:
        back.append("config (" + ", ".join(sorted(os.path.basename(path) for path in restored)) + ")")
    if not back:
        return
    cause, _, detail = failure.msg.partition("\n")
    args = with_defaults(stack_service.ARGUMENT_SPEC, dict(service_args(p["service"], None), restart=True,
                                                           defer_restart=False, reason="rollback"))
    # no peer count to come back to: the member was down already
    args["cluster_status_url"] = None
    result["rolled_back"] = back
    try:
        result["service"] = runners["service"](args, False, False, warn)
    except StepError as again:
        raise StepError(f"service: {cause}\nRolled back to the previous {' and '.join(back)}, but {name} did not come "
                        f"back on them either: {again.msg}\n{detail}", result) from again
    raise StepError(f"service: {cause}\nRolled back to the previous {' and '.join(back)}: {name} is ready again "
                    f"on them. {'What the failed start logged:' if detail else ''}\n{detail}".rstrip(), result)


def with_defaults(spec, args):
    """args with the defaults of spec for what they leave out (as the module's own call would)."""
    return dict({name: option.get("default") for name, option in spec.items()}, **args)


# the host-side job of each step: (parameters, check_mode, diff, warn) -> result, or StepError
RUNNERS = {
    "install": lambda p, check, diff, warn: stack_install.step(p, check),
    "configure": lambda p, check, diff, warn: stack_config.run(p, check, diff),
    "service": lambda p, check, diff, warn: stack_service.run(p, check, warn),
}


def run(p, check_mode=False, diff=False, warn=None, runners=None):
    """The steps of p (ARGUMENT_SPEC) in order, each as its own module would run it.

    Stops early, with `pending` naming the step, where the controller has to act first: the
    release is not installed and its archive has to be pushed (install; not in check mode, where
    the other steps still report what they would do), or a restart waits for a rolling slot
    (service, asked with defer_restart). Stops with `switched` before the service step when
    defer_switch is set and the config step changed what the running service runs with (site.yml's
    one pass switches it once every Prometheus is ready). Raises StepError naming the step."""
    runners = runners or RUNNERS
    if p.get("rollback") and not check_mode:
        # a restart in a rolling slot (the controller's stack_service) failed: roll back here
        back = p["rollback"]
        failure = StepError(str(back.get("failure") or "the service failed"), back.get("failure_result") or {})
        result = {"changed": True, "switched": False}
        roll_back(p, back.get("install"), back.get("config"), failure, result, runners, warn)
        raise StepError(f"service: {failure.msg}", result)
    steps = list(p.get("steps") or [])
    for step in steps:
        if not isinstance(p.get(RESULT_KEYS[step]), dict):
            raise StepError(f"step {step} needs its arguments ({RESULT_KEYS[step]})")
    result = {"changed": False, "switched": False}
    config_result = p.get("config_result")
    install_result = None
    for step in STEPS:
        if step not in steps:
            continue
        if step == "service":
            if p.get("defer_switch") and config_switched(config_result):
                result["switched"] = True
                break
            try:
                args = service_args(p["service"], config_result, install_result)
            except ValueError as exc:
                raise StepError(f"service: {exc}", result) from exc
            args = with_defaults(stack_service.ARGUMENT_SPEC, args)
        else:
            args = p[RESULT_KEYS[step]]
            if step == "configure" and not check_mode and (p.get("service") or {}).get("name"):
                args = dict(args, backup_dir=os.path.join(PREVIOUS_DIR, p["service"]["name"]))
        unvalidated = (step == "configure" and check_mode and args.get("validate")
                       and (install_result or {}).get("switched_release"))
        if unvalidated:
            # the validator on the host is not the release this run would install (or none yet)
            args = dict(args, validate=None)
        try:
            outcome = runners[step](args, check_mode, diff, warn)
        except StepError as exc:
            result[RESULT_KEYS[step]] = exc.result
            if step == "service" and not check_mode:
                roll_back(p, install_result, config_result, exc, result, runners, warn)
            raise StepError(f"{step}: {exc.msg}", result) from exc
        if unvalidated and outcome.get("changed"):
            outcome = dict(outcome, validation="not validated in check mode: the release this run would install "
                                               "is not on the host yet")
        result[RESULT_KEYS[step]] = outcome
        result["changed"] = result["changed"] or bool(outcome.get("changed"))
        if step == "install":
            install_result = outcome
        if step == "configure":
            config_result = outcome
            if outcome.get("diff"):
                result["diff"] = outcome["diff"]
            remember(p.get("service"), outcome, check_mode)
        if step == "install" and outcome.get("needs_archive") and not check_mode:
            result["pending"] = "install"
            break
        if step == "service" and outcome.get("deferred"):
            result["pending"] = "service"
        elif step == "service":
            # ready on the new config: what it replaced is no longer needed
            stack_config.drop_backup((config_result or {}).get("backup"))
    if not check_mode and "pending" not in result:
        # what this component put on the host, for its removal (stack_remove): bookkeeping, like
        # the pending marker, not a change of the service
        try:
            ran = {RESULT_KEYS[step] for step in steps} | ({"service"} if "configure" in steps else set())
            stack_remove.write_record(stack_remove.record({key: p.get(key) for key in ran}), p.get("record_dir"))
        except OSError as exc:
            if warn:
                warn(f"could not keep the record of what was installed: {exc}")
    return result
