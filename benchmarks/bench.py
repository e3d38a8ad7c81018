"""Benchmark driver: see benchmarks/run. Prints a table of medians (min-max) and writes
benchmarks/results/<workload>-<transport>-n<sizes>-<date>.json."""
from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORK = "monstack-bench"
REPS = int(os.environ.get("REPS", "3"))
WORKLOAD = os.environ.get("WORKLOAD", "core")
FORKS = os.environ.get("FORKS", "5")
IMAGE = os.environ.get("BENCH_IMAGE", "localhost/monstack-debian12:latest")
# playbooks timed side by side, each on its own fresh containers in every repetition; the stack
# workload compares site.yml with the one-play-per-component baseline it replaced (issue 18)
PLAYBOOKS = os.environ.get("PLAYBOOKS", "site.yml benchmarks/site_per_component.yml" if WORKLOAD == "stack"
                           else "site.yml").split()
# how Ansible reaches the containers: "podman" (podman exec: no pipelining, about six podman calls
# per module run) or "ssh" (sshd in the containers, pipelining and ControlPersist from ansible.cfg:
# one ssh command per module run, as on real hosts)
TRANSPORT = os.environ.get("TRANSPORT", "podman")
SSH_DIR = Path(os.environ.get("MONSTACK_STATE", Path.home() / ".cache/monitoring-stack")) / "bench-ssh"
SSH_IMAGE = "localhost/monstack-bench-ssh"
# Where releases come from, as scripts/setup chose it (tests/harness/artifact_source.py): the
# local mirror's URL and the versions its build produced, or nothing (pinned upstream releases).
sys.path.insert(0, str(ROOT / "tests" / "harness"))
from artifact_source import load_source  # noqa: E402  pylint: disable=wrong-import-position

SOURCE = load_source()
SOURCE_VARS = {k: v for k, v in SOURCE.items() if not k.startswith("monstack_")}


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def hosts_for(n):
    return [f"bench{i:02d}" for i in range(1, n + 1)]


def ssh_image():
    """The test image plus openssh-server (from Debian's archive), built once per base image."""
    base = sh("podman", "image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    have = sh("podman", "image", "inspect", "-f", "{{index .Labels \"monstack.base\"}}", SSH_IMAGE, check=False)
    if have.returncode == 0 and have.stdout.strip() == base:
        return SSH_IMAGE
    print(f"building {SSH_IMAGE} (openssh-server from Debian's archive) ...", flush=True)
    sh("podman", "rm", "-f", "monstack-bench-build", check=False)
    sh("podman", "run", "-d", "--name", "monstack-bench-build", "--network", NETWORK, IMAGE, "sleep", "infinity")
    try:
        sh("podman", "exec", "monstack-bench-build", "sh", "-c",
           "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
           "openssh-server >/dev/null && rm -rf /var/lib/apt/lists/*")
        sh("podman", "commit", "-q", "--change", 'CMD ["/sbin/init"]', "--change", f"LABEL monstack.base={base}",
           "monstack-bench-build", SSH_IMAGE)
    finally:
        sh("podman", "rm", "-f", "monstack-bench-build", check=False)
    return SSH_IMAGE


def ssh_key():
    key = SSH_DIR / "id_ed25519"
    if not key.exists():
        SSH_DIR.mkdir(parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "monstack-bench", "-f", str(key))
    return key


ADDRESSES = {}


def create(names):
    if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
        sh("podman", "network", "create", NETWORK)
    image = ssh_image() if TRANSPORT == "ssh" else IMAGE
    for name in names:
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--cap-add", "SYS_ADMIN",
           "--systemd", "always", "--label", "monstack=bench", image, "/sbin/init")
    # the mirror's Alertmanager is Debian's build, which reads its templates from disk
    fixture = SOURCE.get("monstack_alertmanager_templates")
    for name in names:
        sh("podman", "exec", name, "systemctl", "is-system-running", "--wait", check=False)
        if fixture:
            with open(fixture, "rb") as data:
                subprocess.run(["podman", "exec", "-i", name, "tar", "-xzf", "-", "-C", "/"], stdin=data, check=True)
        if TRANSPORT == "ssh":
            public = ssh_key().with_suffix(".pub").read_bytes()
            subprocess.run(["podman", "exec", "-i", name, "sh", "-c", "mkdir -p -m 700 /root/.ssh && "
                            "cat > /root/.ssh/authorized_keys && systemctl restart ssh"], input=public, check=True)
            ADDRESSES[name] = sh("podman", "inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}",
                                 name).stdout.strip()


def destroy(names):
    # --ignore: without it podman stops at the first missing name and leaves the others, e.g. the
    # five containers of an earlier 5-host run before a 20-host one
    sh("podman", "rm", "-f", "--ignore", *names, check=False)


def inventory(names, directory):
    """core: node_exporter everywhere, Prometheus and Alertmanager on the first host.
    stack: every component, laid out like the lab (monitoring, logs + long-term store, traces, app hosts)."""
    mon = names[0]
    groups = {"prometheus": {"hosts": {mon: None}}, "alertmanager": {"hosts": {mon: None}}}
    extra = {}
    if WORKLOAD == "stack":
        logs, traces = names[1 % len(names)], names[2 % len(names)]
        apps = names[3:] or [names[-1]]
        groups.update({"grafana": {"hosts": {mon: None}}, "loki": {"hosts": {logs: None}},
                       "victoriametrics": {"hosts": {logs: None}},
                       "jaeger": {"hosts": {traces: None}}, "promtail": {"hosts": {n: None for n in names}},
                       "postgres_exporter": {"hosts": {n: None for n in apps}},
                       "redis_exporter": {"hosts": {n: None for n in apps}}})
        # no database servers in the benchmark containers: the exporters run and report them down
        extra = {"grafana_admin_password": "benchmark-password-1", "postgres_exporter_create_db_user": False}
    if TRANSPORT == "ssh":
        connection = {"ansible_connection": "ssh", "ansible_user": "root", "ansible_ssh_private_key_file": str(ssh_key()),
                      "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
        hosts = {n: {"ansible_host": ADDRESSES[n]} for n in names}
    else:
        connection = {"ansible_connection": "containers.podman.podman"}
        hosts = {n: None for n in names}
    inv = {"all": {"vars": {**connection, "ansible_become": False,
                            "ansible_python_interpreter": "/usr/bin/python3", **SOURCE_VARS,
                            "stack_artifact_cache": str(directory / "cache"),
                            "alertmanager_receivers": [{"name": "blackhole"}], **extra},
                   "hosts": hosts, "children": groups}}
    path = directory / "hosts.json"
    path.write_text(json.dumps(inv))
    return path


def checkout_of(playbook):
    """The checkout a playbook runs from (its ansible.cfg, roles and collection link): this one, or
    another clone given by absolute path, e.g. PLAYBOOKS="/tmp/before/site.yml site.yml"."""
    path = (ROOT / playbook).resolve()
    for parent in path.parents:
        if (parent / "ansible.cfg").is_file():
            return parent
    return ROOT


def deploy(inv, directory, label, playbook):
    counts = directory / f"{label}-counts.json"
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="bench_counter",
               ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "benchmarks/callback_plugins"),
               BENCH_COUNTER_OUT=str(counts), ANSIBLE_FORKS=FORKS)
    # Python writes bytecode on users' machines: the collection's plugins compile once there. A
    # machine that forbids it (PYTHONDONTWRITEBYTECODE, set on these test machines) would have
    # every task's worker compile the filter and action plugins it uses again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(inv), playbook], cwd=checkout_of(playbook), env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{playbook}: {label} run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
             for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M)}
    return {"wall": wall, "recap": recap, "tasks": json.loads(counts.read_text())}


def one_rep(n, playbook):
    names = hosts_for(n)
    destroy(names)
    create(names)
    try:
        with tempfile.TemporaryDirectory(prefix="monstack-bench-") as tmp:
            directory = Path(tmp)
            inv = inventory(names, directory)
            first = deploy(inv, directory, "first", playbook)
            second = deploy(inv, directory, "noop", playbook)
            changed = {h: r.get("changed", 0) for h, r in second["recap"].items()}
            if any(changed.values()):
                sys.exit(f"{playbook}: the second run changed something: {changed}")
            return {"first": first, "noop": second, "monitoring_host": names[0], "extra_host": names[-1] if n > 1 else None}
    finally:
        destroy(names)


def spread(values):
    return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"


def marginal(summary, key):
    """Seconds each extra host adds, between consecutive sizes (medians)."""
    sizes = sorted(summary)
    return ", ".join(f"{(statistics.median(summary[b][key]) - statistics.median(summary[a][key])) / (b - a):.2f} s "
                     f"({a} → {b})" for a, b in zip(sizes, sizes[1:])) or "-"


def print_profile(by_size, top=int(os.environ.get("PROFILE_TOP", "12"))):
    """The tasks a no-op run spent most host-seconds on (largest size, first repetition)."""
    n = max(by_size)
    totals = {}
    for counts in by_size[n][0]["noop"]["tasks"].values():
        for task, seconds in counts.get("seconds", {}).items():
            totals[task] = totals.get(task, 0.0) + seconds
    print(f"\nno-op, {n} hosts: host-seconds per task (sum over hosts), top {top} of {len(totals)}, "
          f"{sum(totals.values()):.1f} s in all\n")
    for task, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {seconds:6.1f} s  {task}")


def main(args):
    sizes = [int(a) for a in args] or ([5, 10, 20] if WORKLOAD == "stack" else [1, 5, 10])
    results = {playbook: {} for playbook in PLAYBOOKS}
    for n in sizes:
        for rep in range(REPS):
            # the playbooks alternate within a repetition, so load on the machine hits them alike
            for playbook in PLAYBOOKS:
                print(f"N={n} repetition {rep + 1}/{REPS}: {playbook} ...", flush=True)
                results[playbook].setdefault(n, []).append(one_rep(n, playbook))
    print(f"\nworkload: {WORKLOAD}, transport: {TRANSPORT}, forks={FORKS}, {REPS} repetitions, median (min-max)")
    report = {}
    for playbook, by_size in results.items():
        print(f"\n{playbook}\n")
        print("| hosts | first run | no-op re-run | tasks on the monitoring host (first / no-op) | tasks on an app host (first / no-op) |")
        print("|---|---|---|---|---|")
        summary = {}
        for n, reps in by_size.items():
            mon, extra = reps[0]["monitoring_host"], reps[0]["extra_host"]
            first = [r["first"]["wall"] for r in reps]
            noop = [r["noop"]["wall"] for r in reps]
            t_mon = (reps[0]["first"]["tasks"][mon]["executed"], reps[0]["noop"]["tasks"][mon]["executed"])
            t_extra = ((reps[0]["first"]["tasks"][extra]["executed"], reps[0]["noop"]["tasks"][extra]["executed"])
                       if extra else None)
            print(f"| {n} | {spread(first)} | {spread(noop)} | {t_mon[0]} / {t_mon[1]} | "
                  f"{f'{t_extra[0]} / {t_extra[1]}' if t_extra else '-'} |")
            summary[n] = {"first": first, "noop": noop, "tasks_monitoring": t_mon, "tasks_extra": t_extra,
                          "recap_noop": reps[0]["noop"]["recap"]}
        print(f"\nper extra host: first run {marginal(summary, 'first')}; no-op {marginal(summary, 'noop')}")
        print_profile(by_size)
        report[playbook] = summary
    out = ROOT / "benchmarks/results" / f"{WORKLOAD}-{TRANSPORT}-n{'-'.join(map(str, sizes))}-{datetime.datetime.now():%Y-%m-%dT%H%M}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"forks": FORKS, "reps": REPS, "transport": TRANSPORT, "playbooks": report}, indent=1))
    print(f"\nraw figures: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
