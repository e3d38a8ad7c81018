"""Load the roles' plugins and modules as plain Python modules for unit tests."""
import importlib.util
import os
import pathlib
import sys
import tarfile

import pytest

COMMON = pathlib.Path(__file__).resolve().parents[2] / "plugins"
# plugins import the collection's module_utils as Ansible does, through the repository's link
sys.path.insert(0, str(COMMON.parent / ".collections"))


@pytest.fixture(autouse=True)
def pending_dir(tmp_path, monkeypatch):
    """The pending reloads and restarts the steps leave on a host, and the records of what they
    installed, go to a test's own directory, never to this machine's /var/lib/monstack."""
    from ansible_collections.monstack.observability.plugins.module_utils import stack_remove, stack_service
    monkeypatch.setattr(stack_remove, "RECORD_DIR", str(tmp_path / "components"))
    path = tmp_path / "pending"
    monkeypatch.setattr(stack_service, "PENDING_DIR", str(path))
    loaded = sys.modules.get("stack_service_utils")
    if loaded is not None:
        monkeypatch.setattr(loaded, "PENDING_DIR", str(path))
    return path


def load(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, COMMON / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def artifacts():
    return load("action/stack_install.py", "stack_install_action")


@pytest.fixture(scope="session")
def installer():
    return load("module_utils/stack_install.py", "stack_install_utils")


@pytest.fixture(scope="session")
def config_writer():
    return load("module_utils/stack_config.py", "stack_config_utils")


@pytest.fixture(scope="session")
def service():
    return load("module_utils/stack_service.py", "stack_service_utils")


@pytest.fixture(scope="session")
def filters():
    return load("filter/stack.py", "stack_filters")


MIRROR = (pathlib.Path(os.environ.get("MONSTACK_MIRROR_DIR") or pathlib.Path.home() / ".cache/monitoring-stack/mirror")
          / "github.com/prometheus/prometheus/releases/download")


@pytest.fixture(scope="session")
def promtool(tmp_path_factory):
    """promtool of the newest real Prometheus archive in the local mirror (scripts/setup builds it)."""
    archives = sorted(MIRROR.glob("v*/prometheus-*.linux-amd64.tar.gz"),
                      key=lambda p: tuple(int(x) for x in p.parent.name[1:].split(".")))
    assert archives, f"no Prometheus archive under {MIRROR}: run scripts/setup"
    out = tmp_path_factory.mktemp("promtool")
    with tarfile.open(archives[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/promtool"))
        member.name = "promtool"
        tar.extract(member, out, filter="data")
    return out / "promtool"


class HostVars(dict):
    """Stands in for Ansible's hostvars: {host: {var: value}}."""


def role_filters(role: str):
    """plugins/filter/<role>.py: a role's own filters."""
    return load(f"filter/{role}.py", f"{role}_filters")


@pytest.fixture(scope="session")
def registry():
    """The component registry (stack_components) as the roles see it."""
    import yaml  # pylint: disable=import-outside-toplevel

    return yaml.safe_load((COMMON.parent / "roles/stack/vars/main.yml").read_text())["stack_components"]
