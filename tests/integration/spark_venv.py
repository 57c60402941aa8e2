"""A second virtualenv with another pyspark, for running the classic path on each supported Spark version.

Only pyspark and its py4j are installed in it; everything else (pandas, pyarrow, faiss, fi_spark's other
dependencies) comes from the test interpreter's own site-packages, appended *after* the new virtualenv's by a
``.pth`` file, so the new pyspark shadows the main one and nothing else is downloaded. Built once per
(pyspark version, test interpreter) under ``~/.cache/fi-spark/`` and reused; a half-built folder is never used
(built beside, then renamed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("FI_SPARK_CACHE", Path.home() / ".cache" / "fi-spark"))
READY = "fi-spark-venv-ready"  # written last: the folder is complete


def spark_venv(version: str) -> Path:
    """The bin folder of a virtualenv with pyspark==`version` layered over this interpreter's packages."""
    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
    home = CACHE / f"pyspark-{version}-py{sys.version_info[0]}{sys.version_info[1]}-{key}"
    if not (home / READY).is_file():
        _build(home, version)
    return home / "bin"


def _build(home: Path, version: str) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir=home.parent))
    try:
        started = time.monotonic()
        # No pip of its own: this interpreter's pip installs into it (`pip --python`), before the .pth exists,
        # so pip sees an empty environment and cannot touch (or count on) the main one's packages.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python"), "install"]
            + ["--disable-pip-version-check", "--no-warn-script-location", f"pyspark=={version}"],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            raise RuntimeError(f"pip install pyspark=={version} failed:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}")
        purelib = _purelib(tmp)
        installed = sorted(p.name.split("-")[0].lower() for p in purelib.glob("*.dist-info"))
        if installed != ["py4j", "pyspark"]:
            raise RuntimeError(f"expected only pyspark and py4j in {tmp}, pip installed {installed}")
        parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (purelib / "zz_fi_spark_parent_site.pth").write_text(
            "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n", encoding="utf-8"
        )
        (tmp / READY).write_text(f"pyspark {version}, built in {time.monotonic() - started:.0f} s\n", encoding="utf-8")
        if home.exists():  # another session finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(home)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _purelib(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
