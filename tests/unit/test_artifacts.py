"""Controller side of the installer: sources, checksum lists, cache and verification."""
import hashlib
import io
import os
import tarfile

import pytest

NAME = "node_exporter-1.2.3.linux-amd64.tar.gz"
URL = "https://github.com/prometheus/node_exporter/releases/download/v{version}/node_exporter-{version}.linux-{arch}.tar.gz"
SUMS = "https://github.com/prometheus/node_exporter/releases/download/v{version}/sha256sums.txt"


def make_staged(root, payload=b"binary", sums=True):
    release = root / "github.com/prometheus/node_exporter/releases/download/v1.2.3"
    release.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("node_exporter-1.2.3.linux-amd64/node_exporter")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (release / NAME).write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    if sums:
        (release / "sha256sums.txt").write_text(f"{'1' * 64}  other.tar.gz\n{digest}  {NAME}\n")
    return digest


def spec(**overrides):
    base = {"component": "node_exporter", "version": "1.2.3", "url": URL, "checksums_url": SUMS, "sha256": {}, "vars": {}}
    base.update(overrides)
    return base


@pytest.mark.parametrize("text, expected", [
    (f"{'a' * 64}  {NAME}\n{'b' * 64}  x.tar.gz\n", "a" * 64),        # promu / sha256sum
    (f"{'c' * 64} *{NAME}\n", "c" * 64),                             # shasum -b (Jaeger)
    (f"{'D' * 64}\n", "d" * 64),                                     # bare hash (Grafana .sha256)
    (f"{'e' * 64}  ./dist/{NAME}\n", "e" * 64),                      # path prefix
    (f"{'f' * 64}  x.tar.gz\n", None),
])
def test_checksum_list_formats(artifacts, text, expected):
    assert artifacts.parse_checksums(text, NAME) == expected


def test_sources_keep_upstream_layout(artifacts):
    url = "https://github.com/prometheus/node_exporter/releases/download/v1/x.tar.gz"
    assert artifacts.relocate(url) == url
    assert artifacts.relocate(url, mirror="http://m.example/base/") == \
        "http://m.example/base/github.com/prometheus/node_exporter/releases/download/v1/x.tar.gz"
    assert artifacts.relocate(url, mirror="http://m", staged_dir="/srv/stage") == \
        "/srv/stage/github.com/prometheus/node_exporter/releases/download/v1/x.tar.gz"


def test_staged_directory_makes_no_network_call(artifacts, tmp_path, monkeypatch):
    digest = make_staged(tmp_path / "stage")

    def no_network(*args, **kwargs):
        raise AssertionError(f"network call {args}")
    monkeypatch.setattr(artifacts, "open_url", no_network)
    path, got, source = artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"),
                                                mirror="http://127.0.0.1:9", staged_dir=str(tmp_path / "stage"))
    assert got == digest and source.startswith(str(tmp_path / "stage"))
    assert path == str(tmp_path / "cache/node_exporter/1.2.3/linux-amd64" / NAME)
    # a second call is served from the verified cache
    os.unlink(source)
    assert artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(tmp_path / "stage"))[1] == digest


def test_pinned_hash_wins_over_checksum_list(artifacts, tmp_path):
    make_staged(tmp_path / "stage", sums=False)
    pinned = spec(sha256={"1.2.3": {"amd64": "0" * 64}})
    with pytest.raises(artifacts.ArtifactError) as err:
        artifacts.ensure_cached(pinned, "amd64", str(tmp_path / "cache"), staged_dir=str(tmp_path / "stage"))
    message = str(err.value)
    assert "expected sha256 " + "0" * 64 in message and ", got " in message and "Nothing was installed" in message
    assert not list((tmp_path / "cache").rglob(NAME)), "a rejected archive must not stay in the cache"


def test_missing_checksum_list_is_explained(artifacts, tmp_path):
    make_staged(tmp_path / "stage", sums=False)
    with pytest.raises(artifacts.ArtifactError, match="sha256sums.txt is not in the pre-staged directory"):
        artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(tmp_path / "stage"))


def test_unreachable_mirror_names_url_and_offline_options(artifacts, tmp_path):
    with pytest.raises(artifacts.ArtifactError) as err:
        artifacts.ensure_cached(spec(sha256={"1.2.3": {"amd64": "0" * 64}}), "amd64", str(tmp_path / "cache"),
                                mirror="http://127.0.0.1:9")
    text = str(err.value)
    assert "http://127.0.0.1:9/github.com/prometheus/node_exporter/releases/download/v1.2.3/" + NAME in text
    assert "stack_artifact_mirror" in text and "stack_artifact_dir" in text


def test_architectures_never_share_a_cache_entry(artifacts, tmp_path):
    make_staged(tmp_path / "stage")
    amd = artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(tmp_path / "stage"))[0]
    with pytest.raises(artifacts.ArtifactError):   # no arm64 archive was staged
        artifacts.ensure_cached(spec(), "arm64", str(tmp_path / "cache"), staged_dir=str(tmp_path / "stage"))
    assert "/linux-amd64/" in amd


def test_a_cached_archive_must_match_the_checksum_list_it_would_be_downloaded_against(artifacts, tmp_path):
    """Issue 36 (9): the cache held a stand-in of the same name and version, the source now has
    the real archive (MONSTACK_REAL_ARTIFACTS): with no pinned hash the release's checksum list
    decides, so the cached archive is replaced instead of trusted by its own recorded hash."""
    stage = tmp_path / "stage"
    first = make_staged(stage, payload=b"stand-in")
    assert artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(stage))[1] == first
    import shutil
    shutil.rmtree(stage)
    second = make_staged(stage, payload=b"the real program")
    path, got, _ = artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(stage))
    assert got == second != first and hashlib.sha256(open(path, "rb").read()).hexdigest() == second


def test_a_cached_archive_serves_when_its_checksum_list_cannot_be_read(artifacts, tmp_path):
    stage = tmp_path / "stage"
    digest = make_staged(stage)
    artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(stage))
    (stage / "github.com/prometheus/node_exporter/releases/download/v1.2.3/sha256sums.txt").unlink()
    assert artifacts.ensure_cached(spec(), "amd64", str(tmp_path / "cache"), staged_dir=str(stage))[1] == digest
