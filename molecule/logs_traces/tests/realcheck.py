"""Is the binary on a test host the real one or the offline stand-in?"""
import pytest


def require_real(host, binary, version_flag="-version"):
    """Skip, saying why, when the installed binary is the offline stand-in."""
    out = host.run(f"/usr/local/bin/{binary} {version_flag}")
    if "STAND-IN" in out.stdout + out.stderr:
        pytest.skip(f"{binary} on {host.backend.name} is the offline STAND-IN; this checks real behaviour and "
                    f"runs when the real upstream archive is in the artifact mirror (README, 'Offline')")


def is_standin(host, binary, version_flag="-version"):
    out = host.run(f"/usr/local/bin/{binary} {version_flag}")
    return "STAND-IN" in out.stdout + out.stderr
