"""Zip fi_spark (with its profiles and prompts) for `spark-submit --py-files`.

    python deploy/make_pyfiles.py            # -> dist/fi_spark-<version>.zip
    spark-submit --py-files dist/fi_spark-0.1.0.zip jobs/pipeline.py --output s3://bucket/run1

The zip holds the `fi_spark` package exactly as the wheel does (conf/ as fi_spark/conf), so executors
import it from the zip, never from a driver's site-packages. Third-party dependencies are not in it: the
cluster's Python environment provides them (a packed virtualenv via --archives, or cluster libraries).
The driver reads profiles and prompts from ./conf, $FI_SPARK_CONF_DIR or an installed wheel.
"""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def version() -> str:
    match = re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text(encoding="utf-8"))
    if not match:
        raise SystemExit("setup.py: no version=")
    return match.group(1)


def package_files() -> list[tuple[Path, str]]:
    """(file, name in the zip) for every file of the package and of conf/, sorted, no caches."""
    out = []
    for folder, prefix in ((REPO / "fi_spark", "fi_spark"), (REPO / "conf", "fi_spark/conf")):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                out.append((path, f"{prefix}/{path.relative_to(folder).as_posix()}"))
    return out


def make_zip(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in package_files():
            zf.write(path, name)
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "dist" / f"fi_spark-{version()}.zip")
    args = ap.parse_args(argv)
    print(make_zip(args.out))


if __name__ == "__main__":
    main()
