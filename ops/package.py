"""Build the function app's zip package: ``python -m ops.package [--out dist/function-app.zip]``.

The files Azure's remote build needs (function_app.py, host.json, requirements.txt and the
code they import), minus what ``.funcignore`` lists, as Core Tools' publish does; ``az
functionapp deployment source config-zip`` uploads the zip as it is, so the filtering happens here.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_ROOT / "dist" / "function-app.zip"
REQUIRED = ("function_app.py", "host.json", "requirements.txt")


def read_ignore(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def ignored(rel: str, patterns: Sequence[str], is_dir: bool) -> bool:
    """gitignore-style enough for .funcignore: ``dir/`` matches a directory, other patterns a name or path."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if is_dir and (fnmatch.fnmatch(name, pattern[:-1]) or fnmatch.fnmatch(rel, pattern[:-1])):
                return True
        elif fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(rel, pattern):
            return True
    return False


def package_files(root: Path = PROJECT_ROOT) -> Iterator[str]:
    """Paths (relative, POSIX) that go into the package, in a stable order."""
    patterns = read_ignore(root / ".funcignore")
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        dirnames[:] = sorted(d for d in dirnames if not ignored(prefix + d, patterns, is_dir=True))
        for name in sorted(filenames):
            if not ignored(prefix + name, patterns, is_dir=False):
                yield prefix + name


def build(out: Path, root: Path = PROJECT_ROOT) -> list[str]:
    files = list(package_files(root))
    missing = [f for f in REQUIRED if f not in files]
    if missing:
        raise SystemExit(f"ops.package: {', '.join(missing)} missing from the package (check .funcignore)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            zf.write(root / rel, rel)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.package", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="zip to write (default dist/function-app.zip)")
    args = parser.parse_args(argv)
    files = build(args.out)
    print(f"{args.out}: {len(files)} files, {args.out.stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
