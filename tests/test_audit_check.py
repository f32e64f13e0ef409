"""`make audit` (infra/dependency_audit.py) says "could not audit" and fails when no advisory source answered,
rather than pip-audit's "No known vulnerabilities found" (issue 13)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("audit_tool", ROOT / "infra" / "dependency_audit.py")
assert spec and spec.loader
audit = importlib.util.module_from_spec(spec)
sys.modules["audit_tool"] = audit  # dataclasses look their module up
spec.loader.exec_module(audit)

EDITABLE = {"name": "billing-service", "skip_reason": "distribution marked as editable"}


def checked(name: str, *vulns: dict) -> dict:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def not_found(name: str) -> dict:
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def test_no_advisory_source_is_not_a_pass() -> None:
    verdict = audit.judge({"dependencies": [not_found("httpx"), not_found("ray"), EDITABLE], "fixes": []})
    assert verdict.status == audit.NOT_AUDITED
    assert verdict.lines[0].startswith("audit: could not audit 2 of 2 installed packages (httpx, ray)")


def test_one_package_not_checked_is_not_a_pass_either() -> None:
    verdict = audit.judge({"dependencies": [checked("httpx"), not_found("ray")]})
    assert verdict.status == audit.NOT_AUDITED
    assert "could not audit 1 of 2" in verdict.lines[0]


def test_vulnerabilities_are_listed_and_fail() -> None:
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["1.1"], "aliases": []}
    verdict = audit.judge({"dependencies": [checked("httpx", vuln), checked("ray"), not_found("x")]})
    assert verdict.status == audit.VULNERABLE
    assert verdict.lines[:2] == [
        "audit: 1 known vulnerabilities in 1 packages:",
        "  httpx 1.0: PYSEC-2099-1 (fixed in 1.1)",
    ]


def test_every_package_checked_and_clean_passes() -> None:
    verdict = audit.judge({"dependencies": [checked("httpx"), checked("ray"), EDITABLE]})
    assert verdict == audit.Verdict(
        audit.CLEAN, ["audit: all 2 installed packages checked; no known vulnerabilities."]
    )


def test_the_real_audit_says_plainly_what_it_did() -> None:
    if shutil.which("pip-audit", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("pip-audit is not installed (dev extra)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "dependency_audit.py")],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "No known vulnerabilities found" not in result.stdout
    first = result.stdout.splitlines()[0]
    expected = {0: "audit: all ", 1: "audit: ", 3: "audit: could not audit"}
    assert result.returncode in expected, result.stdout + result.stderr
    assert first.startswith(expected[result.returncode]), result.stdout
