"""Shared filters: unit quoting, flags, stable bcrypt hashes, local URLs."""
import bcrypt
import pytest


def test_bcrypt_hash_is_stable_and_verifies(filters):
    first = filters.bcrypt_hash("s3cret#;pass", "host1:prometheus")
    assert first == filters.bcrypt_hash("s3cret#;pass", "host1:prometheus")
    assert first != filters.bcrypt_hash("s3cret#;pass", "host2:prometheus")
    assert bcrypt.checkpw(b"s3cret#;pass", first.encode())
    assert not bcrypt.checkpw(b"other", first.encode())


def test_web_config_holds_hashes_only(filters):
    config = filters.web_config({"tls_cert_file": "/c", "tls_key_file": "/k", "basic_auth_users": {"u": "pw"}}, "h")
    assert config["tls_server_config"] == {"cert_file": "/c", "key_file": "/k"}
    assert config["basic_auth_users"]["u"].startswith("$2b$") and "pw" not in str(config)
    assert filters.web_config({"tls_cert_file": "", "basic_auth_users": {}}, "h") == {}


def test_flags(filters):
    assert filters.flags({"a": 1, "b": True, "c": False, "d": [1, 2], "e": None, "f": ""}) == [
        "--a=1", "--b", "--d=1", "--d=2", "--e", "--f="]


@pytest.mark.parametrize("arg, quoted", [
    ("--web.listen-address=0.0.0.0:9100", "--web.listen-address=0.0.0.0:9100"),
    ("--collector.filesystem.mount-points-exclude=^/(dev|proc)($|/)",
     '"--collector.filesystem.mount-points-exclude=^/(dev|proc)($$|/)"'),
    ("100%", "100%%"),
    ('say "hi"', '"say \\"hi\\""'),
])
def test_systemd_quote(filters, arg, quoted):
    assert filters.systemd_quote(arg) == quoted


@pytest.mark.parametrize("listen, url", [
    ("0.0.0.0:9100", "http://127.0.0.1:9100/metrics"),
    (":9100", "http://127.0.0.1:9100/metrics"),
    ("10.0.0.5:9100", "http://10.0.0.5:9100/metrics"),
    ("[::1]:9100", "http://[::1]:9100/metrics"),
])
def test_local_url(filters, listen, url):
    assert filters.local_url(listen, "http", "/metrics") == url


def test_web_files_are_the_web_config_and_its_certificate(filters):
    assert filters.web_files("", "", {}, "/etc/x", "x", "h") == []
    files = {f["dest"]: f for f in filters.web_files("CERT", "KEY", {"prometheus": "pw"}, "/etc/x", "x", "h")}
    assert set(files) == {"/etc/x/web.yml", "/etc/x/tls.crt", "/etc/x/tls.key"}
    assert files["/etc/x/web.yml"]["secret"] and files["/etc/x/tls.key"]["secret"] and "secret" not in files["/etc/x/tls.crt"]
    web = files["/etc/x/web.yml"]["content"]
    assert "cert_file: tls.crt" in web and "$2b$10$" in web and "pw" not in web, "paths relative to web.yml"
    only_auth = filters.web_files("", "", {"u": "pw"}, "/etc/x", "x", "h")
    assert [f["dest"] for f in only_auth] == ["/etc/x/web.yml"] and "tls_server_config" not in only_auth[0]["content"]


def test_collector_flags(filters):
    assert filters.collector_flags(["systemd"], ["mdadm"], {"textfile.directory": "/t"}) == {
        "collector.systemd": True, "no-collector.mdadm": True, "collector.textfile.directory": "/t"}


def test_user_globs_match_directories_too(filters, tmp_path):
    """The builtin fileglob lookup globs file names only; users' dashboard globs name folders."""
    for team in ("a", "b"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "board.json").write_text("{}")
    assert filters.expand_globs([f"{tmp_path}/*/*.json", f"{tmp_path}/missing/*.json"]) == [
        str(tmp_path / "a/board.json"), str(tmp_path / "b/board.json")]
