"""`python -m tests.compat.record_wire`: record `wire_bytes.json` from the code checked out here.

Run it in the checkout whose behaviour is the reference (the code before a refactor); the
recorded fixture is then copied next to `test_wire_bytes.py`. `--check-stable` runs every case
twice first and fails if the normalised bytes differ between the runs (something random or
time-dependent that the normaliser does not cover yet). `--out` writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.compat.wire_cases import CASES, FIXTURE, WireServer, describe_difference


def _revision(directory: Path) -> str:
    try:
        found = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip()


def record(check_stable: bool) -> dict[str, list[dict[str, Any]]]:
    server = WireServer()
    server.start()
    try:
        cases = {case.name: server.run(case) for case in CASES}
        if check_stable:
            unstable = []
            for case in CASES:
                again = server.run(case)
                if again != cases[case.name]:
                    unstable.append(case.name)
                    print(describe_difference(cases[case.name], again), file=sys.stderr)
            if unstable:
                raise SystemExit(f"not reproducible: {', '.join(unstable)}")
    finally:
        server.stop()
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--check-stable", action="store_true")
    args = parser.parse_args()
    cases = record(args.check_stable)
    fixture = {
        "about": (
            "Normalised wire bytes of tests/compat/wire_cases.py's requests; "
            "regenerate with `python -m tests.compat.record_wire` on the reference code."
        ),
        "recorded_from": _revision(Path(__file__).resolve().parent),
        "cases": cases,
    }
    args.out.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    exchanges = sum(len(v) for v in cases.values())
    print(f"{len(cases)} cases, {exchanges} exchanges -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
