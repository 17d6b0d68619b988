"""Parse Bicep files with pycep-parser (the version checkov pins) and print them as one JSON object.

Run by the scanners' venv (``.venv-infra/bin/python tests/infra/bicep_json.py FILE...``): pycep
lives there, not in the project's venv. A file that does not parse is reported, not skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(paths: list[str]) -> int:
    parser = BicepParser()
    out: dict[str, object] = {}
    failed = 0
    for path in paths:
        try:
            out[path] = parser.parse(text=Path(path).read_text(encoding="utf-8"))
        except Exception as exc:  # lark raises several types; each is a parse failure
            out[path] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            failed += 1
    json.dump(out, sys.stdout, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
