#!/usr/bin/env python3
"""Totals every JUnit XML file in a folder and prints exactly 'N passed, N failed'.

A suite that could not produce results (a failed build, a crashed runner) counts as one
failure each, passed in as the second argument. Exit status is non-zero on any failure.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(path: Path) -> tuple[int, int]:
    passed = failed = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            continue
        else:
            passed += 1
    return passed, failed


def main() -> int:
    folder = Path(sys.argv[1])
    extra_failures = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    passed = failed = 0
    for xml in sorted(folder.glob("*.xml")):
        try:
            p, f = count(xml)
        except ET.ParseError:
            p, f = 0, 1
        passed += p
        failed += f
    # A suite that failed yet left a results file already counted its failures; only add the
    # suites whose failure left no failed test case behind (build, setup, crashed runner).
    if extra_failures and failed == 0:
        failed = extra_failures
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
