"""DataTrove, the peer tool of bench/dedup.py and bench/llm_client.py, in a virtualenv of its own.

`ensure_datatrove(cache)` returns the python of `<cache>/datatrove-venv`, created on first use and topped up when
DATATROVE_REQUIREMENTS changed since (the installed list is kept in the venv as requirements.txt); pip must
reach PyPI then. The benches run DataTrove through bench.harness.peers.run_peer, with a deadline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "fi-spark" / "bench"
DATATROVE_REQUIREMENTS = [
    "datatrove==0.10.1",
    "spacy==3.8.18",
    "regex==2026.11.19",
    "orjson==3.13.0",
    "tokenizers==0.23.3",
    "xxhash==3.8.2",  # xxhash 4.x breaks datatrove's signature step
    # InferenceRunner (bench/llm_client.py): the parts of datatrove[inference] that its "endpoint" server
    # type imports -- not the extra itself, which pulls vLLM and SGLang
    "httpx==0.28.1",
    "aiofiles==25.1.0",
    "aiosqlite==0.22.1",
]


def datatrove_installed(cache: Path = DEFAULT_CACHE) -> bool:
    return (cache / "datatrove-venv" / "bin" / "python").exists()


def ensure_datatrove(cache: Path = DEFAULT_CACHE) -> Path:
    """The python of DataTrove's own virtualenv under `cache` (created or topped up here)."""
    venv = cache / "datatrove-venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(DATATROVE_REQUIREMENTS) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        print(f"creating {venv} (datatrove and spaCy from PyPI; a few minutes, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != wanted:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE_REQUIREMENTS], check=True)
        stamp.write_text(wanted, encoding="utf-8")
    return python


def datatrove_or_reason(cache: Path = DEFAULT_CACHE) -> tuple[Path | None, str]:
    """(DataTrove's python, "") or (None, why it cannot run here): a peer that cannot be installed is a result."""
    try:
        return ensure_datatrove(cache), ""
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"datatrove: not installed ({type(exc).__name__}: {exc}) (no figure)"
