#!/usr/bin/env python3
"""Build the local artifact mirror the tests install from.

The tree is laid out exactly like the upstream download sites (<host>/<path> of each
release URL), with upstream's archive names, inner layout and checksum-list formats.
Prometheus-family and VictoriaMetrics archives hold REAL binaries taken from Debian packages (current
releases from sid, older ones from trixie for upgrade tests). Grafana, Loki, Promtail, Alloy
and Jaeger exist in no reachable registry: their archives hold the stand-in from
standin.py, which only parses the config, binds the address and answers health (Alloy's
stand-in also converts Promtail's positions, as the real one does when it starts).

The mirror is rebuilt only when this recipe changes (a stamp file holds its hash).
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
GH = "github.com"

# component, suite, upstream tarball name pattern, release dir, {archive member: (package, path in .deb)}
PROM_FAMILY = [
    ("prometheus", "prometheus/prometheus", "prometheus-{v}.linux-{a}",
     {"prometheus": ("prometheus", "usr/bin/prometheus"), "promtool": ("promtool", "usr/bin/promtool")}),
    ("alertmanager", "prometheus/alertmanager", "alertmanager-{v}.linux-{a}",
     {"alertmanager": ("prometheus-alertmanager", "usr/bin/prometheus-alertmanager"),
      "amtool": ("prometheus-alertmanager", "usr/bin/amtool")}),
    ("node_exporter", "prometheus/node_exporter", "node_exporter-{v}.linux-{a}",
     {"node_exporter": ("prometheus-node-exporter", "usr/bin/prometheus-node-exporter")}),
    ("postgres_exporter", "prometheus-community/postgres_exporter", "postgres_exporter-{v}.linux-{a}",
     {"postgres_exporter": ("prometheus-postgres-exporter", "usr/bin/prometheus-postgres-exporter")}),
    ("redis_exporter", "oliver006/redis_exporter", "redis_exporter-v{v}.linux-{a}",
     {"redis_exporter": ("prometheus-redis-exporter", "usr/bin/prometheus-redis-exporter")}),
    ("blackbox_exporter", "prometheus/blackbox_exporter", "blackbox_exporter-{v}.linux-{a}",
     {"blackbox_exporter": ("prometheus-blackbox-exporter", "usr/bin/prometheus-blackbox-exporter")}),
]
SUITES = ["sid", "trixie"]
# VictoriaMetrics (single node): upstream's archive holds only victoria-metrics-prod, no top
# directory, and a <archive name>_checksums.txt beside it. Debian's build is the real program.
VM_REPO = "VictoriaMetrics/VictoriaMetrics"
VM_PACKAGE = "victoria-metrics"
VM_TOOLS = ("vmbackup", "vmrestore")
STANDIN_COMPONENTS = ("grafana", "loki", "promtail", "alloy", "jaeger")
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from artifact_source import catalog, role_default  # noqa: E402  pylint: disable=wrong-import-position


def standin_versions():
    """Stand-ins carry the roles' pinned versions, so the lab installs them unchanged."""
    versions = {c: role_default(c) for c in STANDIN_COMPONENTS}
    return versions, role_default("grafana", "build_ids")[versions["grafana"]]


class MirrorError(Exception):
    pass


def recipe_hash(real_dir=None):
    """This recipe, the stand-ins' versions and the supplied real archives (names and sizes)."""
    digest = hashlib.sha256()
    names = ["build_mirror.py", "standin.py"] + [os.path.join("contracts", n) for n in sorted(os.listdir(os.path.join(HERE, "contracts")))]
    for name in names:
        with open(os.path.join(HERE, name), "rb") as handle:
            digest.update(handle.read())
    digest.update(json.dumps(standin_versions(), sort_keys=True).encode())
    for rel, size in real_files(real_dir):
        digest.update(f"{rel}:{size}".encode())
    return digest.hexdigest()[:16]


def real_files(real_dir):
    if not real_dir:
        return []
    found = []
    for base, _, files in os.walk(real_dir):
        for name in files:
            path = os.path.join(base, name)
            found.append((os.path.relpath(path, real_dir), os.path.getsize(path)))
    return sorted(found)


def fetch(url, dest):
    if os.path.exists(dest):
        return dest
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
        shutil.copyfileobj(response, out)
    os.replace(tmp, dest)
    return dest


def packages_index(suite, arch, cache):
    path = fetch(f"{DEBIAN}/dists/{suite}/main/binary-{arch}/Packages.xz", os.path.join(cache, f"Packages-{suite}-{arch}.xz"))
    index = {}
    for stanza in lzma.open(path, "rt", encoding="utf-8").read().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            index[fields["Package"]] = fields
    return index


def upstream_version(debian_version):
    version = debian_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return version.split("+ds")[0].split("+dfsg")[0]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_file(tar, name, data=None, path=None, mode=0o644):
    if path:
        with open(path, "rb") as handle:
            data = handle.read()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def targz(path):
    """A tar.gz with no timestamp in its gzip header, so rebuilding gives the same bytes."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.GNU_FORMAT) as tar:
        yield tar


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 1700000000
    tar.addfile(info)


def write_sums(directory, names, style="promu"):
    lines = []
    for name in sorted(names):
        digest = sha256(os.path.join(directory, name))
        lines.append(f"{digest} *{name}" if style == "shasum" else f"{digest}  {name}")
    return "\n".join(lines) + "\n"


def build_prom_family(out, cache, arch, manifest):
    for suite in SUITES:
        index = packages_index(suite, arch, cache)
        # every package checked before anything is downloaded
        gone = sorted({pkg for _, _, _, members in PROM_FAMILY for pkg, _ in members.values()
                       if pkg not in index and not (pkg == "promtool" and "prometheus" in index)})
        if gone:
            raise MirrorError(f"Debian {suite} ({arch}) has no package {', '.join(gone)} any more: "
                              "the mirror cannot be built (see tests/mirror/build_mirror.py)")
        for component, repo, pattern, members in PROM_FAMILY:
            packages = {pkg for pkg, _ in members.values()}
            if any(pkg not in index for pkg in packages):
                # older suites ship promtool inside the prometheus package
                members = {m: ("prometheus" if pkg == "promtool" else pkg, p) for m, (pkg, p) in members.items()}
                packages = {pkg for pkg, _ in members.values()}
            main_pkg = next(iter(members.values()))[0]
            version = upstream_version(index[main_pkg]["Version"])
            release = os.path.join(out, GH, repo, "releases", "download", f"v{version}")
            top = pattern.format(v=version, a=arch)
            archive = os.path.join(release, f"{top}.tar.gz")
            manifest.setdefault(component, {})[version] = {"suite": suite, "debian": index[main_pkg]["Version"], "real": True}
            if os.path.exists(archive):
                continue
            os.makedirs(release, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                for pkg in packages:
                    deb = fetch(f"{DEBIAN}/{index[pkg]['Filename']}", os.path.join(cache, os.path.basename(index[pkg]["Filename"])))
                    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
                with targz(archive + ".part") as tar:
                    add_dir(tar, top)
                    for member, (pkg, path) in members.items():
                        add_file(tar, f"{top}/{member}", path=os.path.join(tmp, path), mode=0o755)
                    add_file(tar, f"{top}/LICENSE", path=os.path.join(tmp, "usr/share/doc", main_pkg, "copyright"))
                    add_file(tar, f"{top}/NOTICE", data=(
                        f"Binaries repacked from Debian {suite} package {main_pkg} {index[main_pkg]['Version']} "
                        "for offline tests; layout as upstream's release archive.\n").encode())
                os.replace(archive + ".part", archive)
                # Debian's Alertmanager reads its notification templates from disk (upstream's embeds
                # them): the tests' prepare step installs these, the archive stays upstream-shaped.
                templates = os.path.join(tmp, "usr/share/prometheus/alertmanager")
                if component == "alertmanager" and os.path.isdir(templates):
                    fixtures = os.path.join(out, "_fixtures")
                    os.makedirs(fixtures, exist_ok=True)
                    with tarfile.open(os.path.join(fixtures, f"alertmanager-{version}-templates.tar.gz"), "w:gz") as tar:
                        tar.add(templates, arcname="usr/share/prometheus/alertmanager")
            fixture = f"_fixtures/alertmanager-{version}-templates.tar.gz"
            if component == "alertmanager" and os.path.exists(os.path.join(out, fixture)):
                manifest[component][version]["templates"] = fixture
            names = [n for n in os.listdir(release) if n.endswith(".tar.gz")]
            with open(os.path.join(release, "sha256sums.txt"), "w", encoding="utf-8") as handle:
                handle.write(write_sums(release, names))


def build_victoriametrics(out, cache, arch, manifest):
    for suite in SUITES:
        index = packages_index(suite, arch, cache)
        if VM_PACKAGE not in index:
            raise MirrorError(f"Debian {suite} ({arch}) has no package {VM_PACKAGE} any more: "
                              "the mirror cannot be built (see tests/mirror/build_mirror.py)")
        version = upstream_version(index[VM_PACKAGE]["Version"])
        release = os.path.join(out, GH, VM_REPO, "releases", "download", f"v{version}")
        name = f"victoria-metrics-linux-{arch}-v{version}.tar.gz"
        tools = f"vmutils-linux-{arch}-v{version}.tar.gz"
        manifest.setdefault("victoriametrics", {})[version] = {
            "suite": suite, "debian": index[VM_PACKAGE]["Version"], "real": True}
        os.makedirs(release, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            deb = fetch(f"{DEBIAN}/{index[VM_PACKAGE]['Filename']}",
                        os.path.join(cache, os.path.basename(index[VM_PACKAGE]["Filename"])))
            subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
            with targz(os.path.join(release, name + ".part")) as tar:
                add_file(tar, "victoria-metrics-prod", path=os.path.join(tmp, "usr/bin/victoria-metrics"), mode=0o755)
            os.replace(os.path.join(release, name + ".part"), os.path.join(release, name))
            # the tools' archive (upstream's Makefile, release-vmutils-goos-goarch: <tool>-prod
            # members, no top directory); of its tools the stack uses vmbackup and vmrestore
            with targz(os.path.join(release, tools + ".part")) as tar:
                for tool in VM_TOOLS:
                    add_file(tar, f"{tool}-prod", path=os.path.join(tmp, "usr/bin", tool), mode=0o755)
            os.replace(os.path.join(release, tools + ".part"), os.path.join(release, tools))
        for archive in (name, tools):
            with open(os.path.join(release, archive.replace(".tar.gz", "_checksums.txt")), "w", encoding="utf-8") as handle:
                handle.write(write_sums(release, [archive]))


def standin_bytes(versions):
    """standin.py with the versions it claims to be (the roles' pinned defaults)."""
    with open(os.path.join(HERE, "standin.py"), encoding="utf-8") as handle:
        lines = handle.read().splitlines(keepends=True)
    contracts = {}
    for name in sorted(os.listdir(os.path.join(HERE, "contracts"))):
        with open(os.path.join(HERE, "contracts", name), encoding="utf-8") as handle:
            contracts[name.rsplit(".", 1)[0]] = yaml.safe_load(handle)
    fill = {"VERSIONS = ": f"VERSIONS = {json.dumps(versions, sort_keys=True)}\n",
            "CONTRACTS = ": f"CONTRACTS = {contracts!r}\n"}
    return "".join(next((text for prefix, text in fill.items() if line.startswith(prefix)), line) for line in lines).encode()


# grafana/grafana conf/defaults.ini: the paths (relative to the home path), the database and the
# first admin, as the real file sets them
GRAFANA_DEFAULTS_INI = b"""# stand-in: the real defaults.ini ships with Grafana; these are its values for what the stand-in reads
[paths]
data = data
logs = data/log
plugins = data/plugins
provisioning = conf/provisioning

[database]
type = sqlite3
path = grafana.db

[security]
admin_user = admin
admin_password = admin
"""


def build_standins(out, arch, manifest):
    versions, build_id = standin_versions()
    script = standin_bytes(versions)
    # Loki, Promtail and Alloy: flat zips named <name>-linux-<arch>.zip holding <name>-linux-<arch>,
    # listed in the release's SHA256SUMS
    for component, repo in (("loki", "grafana/loki"), ("promtail", "grafana/loki"), ("alloy", "grafana/alloy")):
        version = versions[component]
        release = os.path.join(out, GH, repo, "releases/download", f"v{version}")
        os.makedirs(release, exist_ok=True)
        name = f"{component}-linux-{arch}"
        with zipfile.ZipFile(os.path.join(release, f"{name}.zip"), "w", zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            zf.writestr(info, script)
        names = [n for n in os.listdir(release) if n.endswith(".zip")]
        with open(os.path.join(release, "SHA256SUMS"), "w", encoding="utf-8") as handle:
            handle.write(write_sums(release, names))
        manifest.setdefault(component, {})[version] = {"standin": True}
    # Jaeger: jaeger-<v>-linux-<arch>.tar.gz and a shasum -b list
    version = versions["jaeger"]
    release = os.path.join(out, GH, "jaegertracing/jaeger/releases/download", f"v{version}")
    os.makedirs(release, exist_ok=True)
    top = f"jaeger-{version}-linux-{arch}"
    with targz(os.path.join(release, f"{top}.tar.gz")) as tar:
        add_dir(tar, top)
        add_file(tar, f"{top}/jaeger", data=script, mode=0o755)
    with open(os.path.join(release, f"jaeger-{version}.sha256sum.txt"), "w", encoding="utf-8") as handle:
        handle.write(write_sums(release, [f"{top}.tar.gz"], style="shasum"))
    manifest.setdefault("jaeger", {})[version] = {"standin": True}
    # Grafana: dl.grafana.com/grafana/release/<v>/grafana_<v>_<build>_linux_<arch>.tar.gz (+ .sha256, bare hash)
    version = versions["grafana"]
    release = os.path.join(out, "dl.grafana.com/grafana/release", version)
    os.makedirs(release, exist_ok=True)
    name = f"grafana_{version}_{build_id}_linux_{arch}.tar.gz"
    top = f"grafana-{version}"
    with targz(os.path.join(release, name)) as tar:
        for directory in ("", "/bin", "/conf", "/public", "/data", "/data/plugins-bundled"):
            add_dir(tar, top + directory)
        add_file(tar, f"{top}/bin/grafana", data=script, mode=0o755)
        # the settings of the real conf/defaults.ini that the stand-in reads (paths, database, admin)
        add_file(tar, f"{top}/conf/defaults.ini", data=GRAFANA_DEFAULTS_INI)
        add_file(tar, f"{top}/public/STANDIN", data=b"stand-in: no frontend\n")
        # the datasources 13.2 ships as catalog plugins (scripts/catalog-plugins-defaults,
        # unpacked by scripts/download-catalog-plugins.sh into data/plugins-bundled/<id>)
        for plugin in ("prometheus", "loki", "jaeger"):
            add_dir(tar, f"{top}/data/plugins-bundled/{plugin}")
            add_file(tar, f"{top}/data/plugins-bundled/{plugin}/plugin.json",
                     data=json.dumps({"id": plugin, "type": "datasource", "info": {"version": "stand-in"}}).encode())
        add_file(tar, f"{top}/VERSION", data=f"{version}\n".encode())
    with open(os.path.join(release, name + ".sha256"), "w", encoding="utf-8") as handle:
        handle.write(sha256(os.path.join(release, name)) + "\n")
    manifest.setdefault("grafana", {})[version] = {"standin": True, "build_id": build_id}


# Real archives a user supplies (MONSTACK_REAL_ARTIFACTS) are recognised by the installer's own
# catalog URLs; a checksum list that is not supplied is made in the format upstream uses.
FIELD_PATTERNS = {"version": r"[^/_]+", "arch": "amd64|arm64", "build_id": r"\d+"}
SUMS_STYLE = {"grafana": "bare", "jaeger": "shasum"}  # others: promu (`<hex>  <file>`)


def catalog_pattern(template):
    """A catalog URL template -> a regex over its <host>/<path> with one named group per field."""
    pattern, seen = "", set()
    for literal, field, _, _ in string.Formatter().parse(template.split("://", 1)[1]):
        pattern += re.escape(literal)
        if field:
            pattern += f"(?P={field})" if field in seen else f"(?P<{field}>{FIELD_PATTERNS[field]})"
            seen.add(field)
    return re.compile(pattern + "$")


def overlay_real(out, real_dir, arch, manifest):
    """Copy supplied real archives over the tree (replacing stand-ins of the same name) and
    record them as real in the manifest. A checksum list missing beside an archive is made
    from the archive, and said so."""
    supplied = [rel.replace(os.sep, "/") for rel, _ in real_files(real_dir)]
    for rel in supplied:
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(real_dir, rel), dest)
    patterns = {c: catalog_pattern(catalog()[c]["url"]) for c in STANDIN_COMPONENTS}
    for rel in supplied:
        for component, pattern in patterns.items():
            match = pattern.match(rel)
            if not match or match["arch"] != arch:
                continue
            fields = match.groupdict()
            # the stand-in of the same version is gone: its archive was just replaced
            manifest.setdefault(component, {})[fields["version"]] = {
                "real": True, "supplied": True, **({"build_id": fields["build_id"]} if "build_id" in fields else {})}
            sums = catalog()[component]["checksums_url"].split("://", 1)[1].format(**fields)
            if sums not in supplied:
                release = os.path.dirname(os.path.join(out, rel))
                with open(os.path.join(out, sums), "w", encoding="utf-8") as handle:
                    if SUMS_STYLE.get(component) == "bare":
                        handle.write(sha256(os.path.join(out, rel)) + "\n")
                    else:
                        names = [n for n in os.listdir(release) if n.endswith((".zip", ".tar.gz"))]
                        handle.write(write_sums(release, names, style=SUMS_STYLE.get(component, "promu")))
                print(f"note: no {os.path.basename(sums)} supplied beside {os.path.basename(rel)}; made one from the archive")
            print(f"real {component} {fields['version']} from {real_dir}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="mirror directory")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/monitoring-stack/debs"))
    parser.add_argument("--arch", default="amd64", choices=["amd64", "arm64"])
    parser.add_argument("--real", help="directory of real upstream archives (upstream <host>/<path> layout) "
                                       "that replace the stand-ins")
    args = parser.parse_args()
    if args.real and not os.path.isdir(args.real):
        print(f"error: MONSTACK_REAL_ARTIFACTS={args.real} is not a directory", file=sys.stderr)
        return 1
    stamp = os.path.join(args.out, ".recipe")
    wanted = f"{recipe_hash(args.real)}-{args.arch}"
    if os.path.exists(stamp) and open(stamp, encoding="utf-8").read().strip() == wanted:
        print(f"mirror {args.out} is up to date")
        return 0
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    os.makedirs(args.cache, exist_ok=True)
    manifest = {}
    try:
        build_prom_family(args.out, args.cache, args.arch, manifest)
        build_victoriametrics(args.out, args.cache, args.arch, manifest)
    except MirrorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    build_standins(args.out, args.arch, manifest)
    if args.real:
        overlay_real(args.out, args.real, args.arch, manifest)
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(wanted)
    print(json.dumps(manifest, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
