# -*- coding: utf-8 -*-
"""Host side of the shared installer (plugins/action/stack_install.py), for the stack_install and
stack_component modules.

One call does the whole host-side job: the service's group and system user, its
directories, and the versioned install directory behind stable links.  Without
`archive` it only reports whether the requested release is already in place, so
that the controller pushes an archive only to hosts that need it.
"""
from __future__ import annotations

import grp
import hashlib
import json
import mmap
import os
import pwd
import shutil
import struct
import subprocess
import tarfile
import zipfile

from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError

ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MARKER = ".stack-release.json"


def host_arch():
    machine = os.uname().machine
    if machine not in ARCHES:
        raise ValueError(f"unsupported architecture {machine!r}: only x86_64 (amd64) and aarch64 (arm64) are supported")
    return ARCHES[machine]


def glibc_needed(path):
    """The newest GLIBC_x.y symbol version an ELF executable requires (its .gnu.version_r), as
    a tuple, or None for a file that is not a dynamically linked 64-bit little-endian ELF (a Go
    static binary, a script)."""
    # mapped, not read: binaries run to hundreds of MB and only their headers are looked at
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _glibc_needed(data)
    except (OSError, ValueError, struct.error):  # unreadable, empty (mmap refuses it) or truncated
        return None


def _glibc_needed(data):
    if data[:6] != b"\x7fELF\x02\x01":  # ELF, 64-bit, little-endian
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    newest = None
    for _, kind, _, _, offset, _, link, info, _, _ in sections:
        if kind != 0x6FFFFFFE:  # SHT_GNU_verneed
            continue
        strtab = sections[link][4]
        entry = offset
        for _ in range(info):
            _, count, _, aux, following = struct.unpack_from("<HHIII", data, entry)
            at = entry + aux
            for _ in range(count):
                _, _, _, name, after = struct.unpack_from("<IHHII", data, at)
                end = data.find(b"\0", strtab + name)
                text = data[strtab + name:end].decode("ascii", "replace")
                if text.startswith("GLIBC_") and text[6:].replace(".", "").isdigit():
                    version = tuple(int(x) for x in text[6:].split("."))
                    newest = max(newest or version, version)
                at += after
            entry += following
    return newest


def host_glibc():
    """This host's glibc version as a tuple, or None (musl, or not known)."""
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    except (ValueError, OSError, AttributeError):
        return None
    return tuple(int(x) for x in version.split(".") if x.isdigit()) if name == "glibc" else None


def unrunnable(staging, links, host=None):
    """The linked binaries of an unpacked release this host's glibc cannot load, as messages."""
    host = host or host_glibc()
    found = []
    for name, target in sorted(links.items()):
        needed = glibc_needed(os.path.join(staging, target))
        if needed and host and needed > host:
            found.append(f"{name} needs glibc {'.'.join(map(str, needed))} (GLIBC_{'.'.join(map(str, needed))} symbols) "
                         f"and this host has {'.'.join(map(str, host))}")
    return found


def release_problem(staging, p):
    """Why an unpacked release must not replace the installed one, or None: a linked binary
    missing, a file the release must hold besides them (requires: {path: why}) missing, or a
    binary this host's glibc cannot load."""
    missing = [t for t in p["links"].values() if not os.path.exists(os.path.join(staging, t))]
    if missing:
        return f"archive {p['source']} lacks {', '.join(missing)}"
    lacking = [f"{path} ({why})" for path, why in sorted((p.get("requires") or {}).items())
               if not os.path.exists(os.path.join(staging, path))]
    if lacking:
        return f"{p['component']} {p['version']}: archive {p['source']} lacks {'; '.join(lacking)}; the installed release stays"
    cannot = unrunnable(staging, p["links"])
    if cannot:
        return f"{p['component']} {p['version']} cannot run here: {'; '.join(cannot)}; the installed release stays"
    return None


def read_marker(path):
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def release_installed(path, expected_sha256, links):
    """A release counts as installed when its marker is there, names the expected
    archive hash (when one is pinned) and every linked file exists."""
    marker = read_marker(path)
    if not marker:
        return False
    if expected_sha256 and marker.get("sha256") != expected_sha256:
        return False
    return all(os.path.exists(os.path.join(path, target)) for target in links.values())


def _system(cmd, check_mode):
    """Run a command that changes the host, unless in check mode; True either way (a change)."""
    if not check_mode:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return True


def ensure_group(name, check_mode=False):
    try:
        grp.getgrnam(name)
        return False
    except KeyError:
        return _system(["groupadd", "--system", name], check_mode)


def ensure_user(name, group, home, groups, check_mode=False):
    changed = ensure_group(group, check_mode)
    wanted = set(g for g in groups if _group_exists(g))
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/sbin/nologin"
        cmd = ["useradd", "--system", "--gid", group, "--no-create-home", "--home-dir", home, "--shell", shell]
        if wanted:
            cmd += ["--groups", ",".join(sorted(wanted))]
        return _system(cmd + [name], check_mode)
    have = {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
    missing = wanted - have
    if missing:
        changed = _system(["usermod", "--append", "--groups", ",".join(sorted(missing)), name], check_mode)
    if not _group_exists(group) or grp.getgrgid(entry.pw_gid).gr_name != group:
        changed = _system(["usermod", "--gid", group, name], check_mode)
    return changed


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def ensure_directory(spec, check_mode=False):
    """The directory with its owner, group and mode; True when it changed (or would, in check
    mode, which writes nothing)."""
    path = spec["path"]
    mode = int(str(spec.get("mode", "0755")), 8)
    try:
        uid = pwd.getpwnam(spec.get("owner", "root")).pw_uid
        gid = grp.getgrnam(spec.get("group", "root")).gr_gid
    except KeyError:
        if check_mode:
            return True  # an owner this run's install step would create first
        raise
    changed = not os.path.isdir(path)
    if changed:
        if check_mode:
            return True
        os.makedirs(path, exist_ok=True)
    st = os.stat(path)
    if (st.st_uid, st.st_gid) != (uid, gid):
        if not check_mode:
            os.chown(path, uid, gid)
        changed = True
    if st.st_mode & 0o7777 != mode:
        if not check_mode:
            os.chmod(path, mode)
        changed = True
    return changed


def _safe_member(name, strip):
    """Return the relative destination of an archive member, or None to skip it."""
    name = name.lstrip("./") if name.startswith("./") else name
    if strip:
        prefix = strip.rstrip("/") + "/"
        if not name.startswith(prefix):
            return None
        name = name[len(prefix):]
    name = name.strip("/")
    if not name or os.path.isabs(name) or ".." in name.split("/"):
        return None
    return name


def _members(archive, fmt):
    """Yield (name, kind, open, mode, linkname) for each dir, file or symlink of a zip or tar.gz."""
    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield (info.filename, "dir" if info.is_dir() else "file", lambda i=info: zf.open(i),
                       ((info.external_attr >> 16) & 0o777) or 0o755, None)
        return
    with tarfile.open(archive, "r:*") as tf:
        for member in tf.getmembers():
            kind = "dir" if member.isdir() else "file" if member.isfile() else "link" if member.issym() else None
            if kind:
                yield (member.name, kind, lambda m=member: tf.extractfile(m),
                       (member.mode & 0o755) or 0o644, member.linkname)


def unpack(archive, fmt, strip, rename, dest):
    """Unpack into dest, stripping the top directory and renaming members.
    Members and links that would land outside dest are refused."""
    for name, kind, opener, mode, linkname in _members(archive, fmt):
        rel = _safe_member(name, strip)
        if rel is None:
            continue
        target = os.path.join(dest, rename.get(rel, rel))
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if kind == "link":
            if not os.path.isabs(linkname) and ".." not in linkname.split("/"):
                os.symlink(linkname, target)
            continue
        with opener() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(target, mode)


def point_link(link, target):
    """Atomically point link at target; True when it changed."""
    if os.path.islink(link) and os.readlink(link) == target:
        return False
    tmp = f"{link}.stack-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return True


def prune_releases(component_dir, keep, current, previous=None):
    """Drop old releases, newest kept by install time; never the current one, nor the one
    current pointed at before this run (what a rollback needs)."""
    releases = []
    for name in os.listdir(component_dir):
        path = os.path.join(component_dir, name)
        if name == "current" or os.path.islink(path) or not os.path.isdir(path) or name.startswith("."):
            continue
        marker = read_marker(path) or {}
        releases.append((marker.get("installed_at", 0), path))
    releases.sort(reverse=True)
    removed = []
    for _, path in releases[keep:]:
        if os.path.realpath(path) != os.path.realpath(current) and os.path.basename(path) != previous:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def relink(root, component, release):
    """Point <root>/<component>/current back at release (a directory name in it): a rollback."""
    return point_link(os.path.join(root, component, "current"), release)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(p, check_mode=False):
    """The whole host-side job for parameters p (ARGUMENT_SPEC); raises StepError."""
    arch = host_arch()
    result = {"changed": False, "arch": arch, "needs_archive": False}
    expected = (p["sha256"] or {}).get(arch) or None

    if p["user"]:
        result["changed"] |= ensure_user(p["user"], p["group"] or p["user"], p["home"], p["groups"], check_mode)
    for spec in p["directories"]:
        result["changed"] |= ensure_directory(spec, check_mode)

    component_dir = os.path.join(p["root"], p["component"])
    release = os.path.join(component_dir, f"{p['version']}-linux-{arch}")
    result["path"] = release

    if not release_installed(release, expected, p["links"]):
        if not p["archive"]:
            result.update(needs_archive=True, switched_release=True)
            return result
        actual = sha256_file(p["archive"])
        if actual != p["archive_sha256"] or (expected and actual != expected):
            raise StepError(f"pushed archive hash {actual} differs from the verified {p['archive_sha256']}", result)
        if check_mode:
            result.update(changed=True, switched_release=True)
            return result
        os.makedirs(component_dir, exist_ok=True)
        staging = release + ".partial"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        unpack(p["archive"], p["format"], p["strip"], p["rename"], staging)
        problem = release_problem(staging, p)
        if problem:
            shutil.rmtree(staging, ignore_errors=True)
            raise StepError(problem, result)
        with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as handle:
            json.dump({"component": p["component"], "version": p["version"], "arch": arch,
                       "sha256": actual, "source": p["source"],
                       "installed_at": int(os.path.getmtime(staging) * 1000)}, handle)
        os.chmod(staging, 0o755)
        shutil.rmtree(release, ignore_errors=True)
        os.rename(staging, release)
        result["changed"] = True
        result["installed"] = True

    current = os.path.join(component_dir, "current")
    # the release the service runs changes: the service step restarts it (binary changed)
    result["switched_release"] = not (os.path.islink(current) and os.readlink(current) == os.path.basename(release))
    before = os.readlink(current) if os.path.islink(current) else None
    if result["switched_release"] and before and os.path.isdir(os.path.join(component_dir, before)):
        # what a rollback goes back to (stack_component), kept by the pruning below
        result["previous_release"] = before
    if check_mode:
        result["changed"] |= result["switched_release"]
        return result
    result["changed"] |= point_link(current, os.path.basename(release))
    os.makedirs(p["bin_dir"], exist_ok=True)
    for name, target in p["links"].items():
        result["changed"] |= point_link(os.path.join(p["bin_dir"], name), os.path.join(component_dir, "current", target))
    result["removed"] = prune_releases(component_dir, max(p["keep"], 1), release, result.get("previous_release"))
    result["changed"] |= bool(result["removed"])
    return result


ARGUMENT_SPEC = dict(
    component=dict(type="str", required=True),
    version=dict(type="str", required=True),
    sha256=dict(type="dict", default={}),
    archive=dict(type="path"),
    archive_sha256=dict(type="str"),
    source=dict(type="str", default=""),
    format=dict(type="str", default="tar.gz", choices=["tar.gz", "zip"]),
    strip=dict(type="str", default=""),
    rename=dict(type="dict", default={}),
    links=dict(type="dict", default={}),
    requires=dict(type="dict", default={}),
    root=dict(type="path", default="/opt/monitoring"),
    bin_dir=dict(type="path", default="/usr/local/bin"),
    keep=dict(type="int", default=2),
    user=dict(type="str"),
    group=dict(type="str"),
    home=dict(type="path", default="/nonexistent"),
    groups=dict(type="list", elements="str", default=[]),
    directories=dict(type="list", elements="dict", default=[]),
)


def step(p, check_mode=False):
    """run(), with the errors of the system calls it makes as a StepError naming the component."""
    try:
        return run(p, check_mode)
    except (OSError, ValueError, subprocess.CalledProcessError, tarfile.TarError, zipfile.BadZipFile) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise StepError(f"{p['component']}: {exc} {detail}".strip()) from exc
