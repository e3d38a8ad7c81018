"""The shipped alert rules: valid for the real promtool, and every alert unit-tested."""
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "roles/prometheus/files/rules").glob("*.yml"))
TESTS = sorted((ROOT / "tests/rules").glob("*_test.yml"))


def shipped_alerts():
    return {rule["alert"]: path.name for path in RULES
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule}


def test_rule_files_pass_promtool_check(promtool):
    proc = subprocess.run([promtool, "check", "rules", *RULES], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.stem)
def test_promtool_unit_tests_pass(promtool, test_file):
    proc = subprocess.run([promtool, "test", "rules", test_file.name], cwd=test_file.parent,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_alert_has_a_unit_test():
    tested = {case["alertname"] for path in TESTS for test in yaml.safe_load(path.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert set(shipped_alerts()) - tested == set()


def test_every_rule_carries_severity_summary_and_description():
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["severity"] in ("critical", "warning", "info", "none"), rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
