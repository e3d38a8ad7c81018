# -*- coding: utf-8 -*-
"""Controller side of the shared installer.

Asks the host (module stack_install) whether the release is already there; only when
it is not, makes sure the archive sits verified in the controller cache and pushes it.
The cache is keyed by component, version and architecture and guarded by a file lock,
so forks serving many hosts download each archive once and mixed amd64/arm64 hosts
never share a file.  Sources, first match wins:

  staged_dir   a pre-staged directory laid out like the download sites
               (<dir>/<host>/<path>); no network call is ever made
  mirror       a base URL laid out the same way (<mirror>/<host>/<path>)
  upstream     the release URL itself
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import time
import urllib.parse

from ansible.errors import AnsibleActionFail
from ansible.module_utils.urls import open_url
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

OFFLINE_HINT = (
    "Without internet access, set stack_artifact_mirror to an internal mirror laid out as "
    "<mirror>/<host>/<path>, or pre-stage the files (scripts/stage-artifacts) and set "
    "stack_artifact_dir for a fully offline install.")
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class ArtifactError(Exception):
    pass


def expand(template, version, arch, extra=None):
    values = {"version": version, "arch": arch}
    values.update(extra or {})
    return template.format(**values)


def relocate(url, mirror=None, staged_dir=None):
    """Map an upstream URL onto a mirror base URL or a staged directory laid out as <host>/<path>."""
    parts = urllib.parse.urlsplit(url)
    rel = parts.netloc + parts.path
    if staged_dir:
        return os.path.join(staged_dir, *rel.split("/"))
    if mirror:
        return mirror.rstrip("/") + "/" + rel
    return url


def parse_checksums(text, filename):
    """Find filename's sha256 in a checksum list.

    Understands the sha256sum/promu form (`<hex>  <file>`), shasum -b (`<hex> *<file>`)
    and a bare hash (Grafana's per-file .sha256)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and HEX64.match(lines[0]):
        return lines[0].lower()
    for line in lines:
        match = re.match(r"^([0-9a-fA-F]{64})\s+\*?(.+)$", line)
        if match and os.path.basename(match.group(2).strip()) == filename:
            return match.group(1).lower()
    return None


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(source, dest, timeout=60, attempts=3):
    """Copy a staged file or download a URL to dest (atomically)."""
    part = dest + ".part"
    if "://" not in source:
        if not os.path.isfile(source):
            raise ArtifactError(f"{source} is not in the pre-staged directory")
        shutil.copyfile(source, part)
        os.replace(part, dest)
        return
    last = None
    for attempt in range(attempts):
        try:
            response = open_url(source, timeout=timeout, follow_redirects="all")
            with open(part, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            os.replace(part, dest)
            return
        except Exception as exc:  # urllib raises a zoo of types; all mean "not fetched"
            last = exc
            code = getattr(exc, "code", None)
            if code is not None and 400 <= code < 500:
                break
            time.sleep(min(2 ** attempt, 5))
    if os.path.exists(part):
        os.unlink(part)
    raise ArtifactError(f"cannot download {source}: {last}. {OFFLINE_HINT}")


def read_source(source, timeout=60):
    if "://" not in source:
        if not os.path.isfile(source):
            raise ArtifactError(f"{source} is not in the pre-staged directory")
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    try:
        return open_url(source, timeout=timeout, follow_redirects="all").read().decode("utf-8")
    except Exception as exc:
        raise ArtifactError(f"cannot download checksum list {source}: {exc}. {OFFLINE_HINT}") from exc


def ensure_cached(spec, arch, cache_dir, mirror=None, staged_dir=None):
    """Return (path, sha256, source) of the verified archive for arch, fetching it once."""
    version = spec["version"]
    url = expand(spec["url"], version, arch, spec.get("vars"))
    filename = os.path.basename(urllib.parse.urlsplit(url).path)
    source = relocate(url, mirror, staged_dir)
    expected = ((spec.get("sha256") or {}).get(version) or {}).get(arch)
    directory = os.path.join(cache_dir, spec["component"], version, f"linux-{arch}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, filename)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        verified = path + ".sha256"
        known = None
        if os.path.exists(path) and os.path.exists(verified):
            with open(verified, encoding="utf-8") as handle:
                known = handle.read().strip()
        if not expected:
            # no pinned hash: the release's checksum list says what the archive is, also for one
            # already cached (a cached archive of the same name from another source is replaced)
            sums_url = expand(spec["checksums_url"], version, arch, spec.get("vars"))
            sums_source = relocate(sums_url, mirror, staged_dir)
            try:
                expected = parse_checksums(read_source(sums_source), filename)
            except ArtifactError as exc:
                if not known:
                    raise
                display.warning(f"{filename}: using the cached archive verified earlier ({known}): {exc}")
                expected = known
            if not expected:
                raise ArtifactError(f"{sums_source} lists no sha256 for {filename}")
        if known == expected and sha256_file(path) == known:
            return path, known, source
        fetch(source, path)
        actual = sha256_file(path)
        if actual != expected:
            os.unlink(path)
            raise ArtifactError(
                f"checksum mismatch for {filename} from {source}: expected sha256 {expected}, got {actual}. "
                "Nothing was installed.")
        with open(verified, "w", encoding="utf-8") as handle:
            handle.write(actual)
        return path, actual, source


# the shared settings every install task passes (stack_install_settings in roles/stack/vars)
SETTINGS = ("install_root", "bin_dir", "keep_releases", "artifact_cache", "artifact_mirror", "artifact_dir")


def install_target(args):
    """(spec, target, settings) of stack_install's arguments: what the controller fetches (spec:
    component, version, url, checksums_url, sha256, vars) and the module's arguments (target)."""
    component = args["component"]
    # everything it uses comes in as arguments: the catalog entry and the shared settings
    catalog, settings = args.get("catalog"), args.get("settings") or {}
    if not isinstance(catalog, dict) or not catalog.get("url"):
        raise AnsibleActionFail(f"stack_install needs catalog: the stack_catalog entry of {component}")
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise AnsibleActionFail(f"stack_install needs settings ({{{{ stack_install_settings }}}}), missing: "
                                f"{', '.join(missing)}")
    version = str(args["version"])
    sha256 = {}
    for table in (catalog.get("sha256") or {}, args.get("sha256") or {}):
        for ver, hashes in table.items():
            sha256.setdefault(str(ver), {}).update({a: h for a, h in (hashes or {}).items() if h})
    spec = {
        "component": component,
        "version": version,
        "url": args.get("url") or catalog["url"],
        "checksums_url": args.get("checksums_url") or catalog.get("checksums_url"),
        "sha256": sha256,
        "vars": dict(catalog.get("vars") or {}, **(args.get("vars") or {})),
        "strip": catalog.get("strip") or "",
        "rename": catalog.get("rename") or {},
    }
    target = {
        "component": component,
        "version": version,
        "format": "zip" if spec["url"].endswith(".zip") else "tar.gz",
        "links": catalog.get("links") or {},
        "requires": required_files(catalog.get("requires"), version),
        "sha256": sha256.get(version) or {},
        "root": settings["install_root"],
        "bin_dir": settings["bin_dir"],
        "keep": int(settings["keep_releases"]),
    }
    target.update({k: args[k] for k in ("user", "group", "home", "groups", "directories") if args.get(k) is not None})
    return spec, target, settings


def version_key(version):
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.+-]", str(version))[:3])


def required_files(requires, version):
    """The catalog's `requires` for this version: {path: why}; an entry {why, since} counts from
    release `since` on."""
    out = {}
    for path, rule in (requires or {}).items():
        rule = rule if isinstance(rule, dict) else {"why": rule}
        if not rule.get("since") or version_key(version) >= version_key(rule["since"]):
            out[path] = str(rule.get("why") or "")
    return out


def cached_archive(spec, settings, arch):
    """ensure_cached for the host's architecture, with the shared settings; its errors as the
    task's failure naming the component, version and architecture."""
    try:
        return ensure_cached(spec, arch, os.path.expanduser(settings["artifact_cache"] or "~/.cache/monitoring-stack"),
                             mirror=settings["artifact_mirror"] or None, staged_dir=settings["artifact_dir"] or None)
    except (ArtifactError, OSError) as exc:
        raise AnsibleActionFail(f"{spec['component']} {spec['version']} ({arch}): {exc}") from exc


def push_archive(action, spec, target, settings, arch):
    """Verify the archive in the controller cache (fetching it once), copy it to the host and
    return (the module's arguments to install it, the host's temporary directory to remove)."""
    path, digest, source = cached_archive(spec, settings, arch)
    tmpdir = action._connection._shell.tmpdir or action._make_tmp_path()
    remote = action._connection._shell.join_path(tmpdir, os.path.basename(path))
    action._transfer_file(path, remote)
    action._fixup_perms2((tmpdir, remote))
    return dict(target, archive=remote, archive_sha256=digest, source=source,
                strip=expand(spec["strip"], spec["version"], arch, spec["vars"]),
                rename={expand(k, spec["version"], arch, spec["vars"]): v for k, v in spec["rename"].items()}), tmpdir


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        # a notice the role wants every run to show (identical warnings are shown once)
        notice = args.pop("warn", None)
        if notice:
            display.warning(str(notice))
        spec, target, settings = install_target(args)
        probe = self._execute_module("monstack.observability.stack_install", module_args=target, task_vars=task_vars)
        if probe.get("failed") or not probe.get("needs_archive"):
            result.update(probe)
            return result
        if self._task.check_mode:
            _, _, source = cached_archive(spec, settings, probe["arch"])
            result.update(probe, changed=True, source=source)
            return result
        installing, tmpdir = push_archive(self, spec, target, settings, probe["arch"])
        installed = self._execute_module("monstack.observability.stack_install", module_args=installing, task_vars=task_vars)
        self._remove_tmp_path(tmpdir)
        result.update(installed, source=installing["source"])
        return result
