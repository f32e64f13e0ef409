"""`make audit`: known vulnerabilities in the installed dependencies, by pip-audit, read so that a
check that could not be made never reads as a pass.

pip-audit prints "No known vulnerabilities found" and exits 0 even when no advisory source
answered: every package is then only listed as "could not be audited" (issue 13). Here the
report is read as JSON and the outcome said in one plain line:

  exit 0  every installed dependency was checked, none has a known vulnerability
  exit 1  known vulnerabilities (listed)
  exit 3  could not audit: some or all dependencies were not checked (the reason given)

Extra arguments go to pip-audit (e.g. `-s osv`). The project itself is installed editable and is
not on PyPI, hence --skip-editable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLEAN, VULNERABLE, NOT_AUDITED = 0, 1, 3


@dataclass(frozen=True)
class Verdict:
    status: int
    lines: list[str]


def judge(report: dict[str, Any]) -> Verdict:
    """The outcome of a pip-audit JSON report (`{"dependencies": [{name, version, vulns} or
    {name, skip_reason}], ...}`)."""
    # The project itself (installed editable, not on PyPI) is skipped on purpose.
    dependencies = [d for d in report.get("dependencies", []) if "editable" not in d.get("skip_reason", "")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    lines = []
    for dependency in vulnerable:
        ids = ", ".join(
            v["id"] + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
            for v in dependency["vulns"]
        )
        lines.append(f"  {dependency['name']} {dependency.get('version', '')}: {ids}")
    if vulnerable:
        count = sum(len(d["vulns"]) for d in vulnerable)
        lines.insert(0, f"audit: {count} known vulnerabilities in {len(vulnerable)} packages:")
    if skipped:
        reasons = Counter(_reason(d["skip_reason"]) for d in skipped)
        common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        names = ", ".join(d["name"] for d in skipped[:8]) + (", ..." if len(skipped) > 8 else "")
        lines.append(
            f"audit: could not audit {len(skipped)} of {len(dependencies)} installed packages "
            f"({names}): {common}. This is not a pass: no advisory source answered for them."
        )
    if vulnerable:
        return Verdict(VULNERABLE, lines)
    if skipped or not dependencies:
        if not dependencies:
            lines.append("audit: could not audit: pip-audit reported no dependencies at all.")
        return Verdict(NOT_AUDITED, lines)
    return Verdict(
        CLEAN, [f"audit: all {len(dependencies)} installed packages checked; no known vulnerabilities."]
    )


def _reason(skip_reason: str) -> str:
    # "Dependency not found on PyPI and could not be audited: aiohttp (3.14.5)" -> without the name
    return skip_reason.split(":")[0].strip()


def main(argv: list[str]) -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "-f", "json", *argv]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        error = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"audit: could not audit: pip-audit failed (exit {result.returncode}): {error}")
        return NOT_AUDITED
    verdict = judge(report)
    print("\n".join(verdict.lines))
    return verdict.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
