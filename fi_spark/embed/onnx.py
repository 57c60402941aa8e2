"""The encoder's transformer exported once per model to ONNX, cached on disk, run on CPU by OpenVINO (the default
backend) or ONNX Runtime.

Only the transformer (token ids -> token embeddings) is exported; the model's own sentence-transformers modules
after it (Pooling, Dense, Normalize ...) still run as loaded, on the ONNX output, so a model pools as its
authors intended on either backend, and token pooling (fi_spark.embed.encoder.encode_windows) reads the same
token embeddings. What makes it faster than sentence-transformers on PyTorch, measured by bench/encoder.py:
fused CPU kernels (OpenVINO's also fuse attention and element-wise work, and run bf16 matrix products where
the CPU multiplies bf16 natively), OpenVINO's throughput streams (a small batch in flight on each, rather than
every thread on one batch: threads wait less on each other between small kernels), texts tokenized once per
call and batched by token length (little padding; order restored), and no autograd machinery: 3.1x torch fp32
at the same best template on the 2-core dev machine. OpenVINO was chosen
over hand-tuning torch: a well-kept compiler for exactly this, reading the same export ONNX Runtime runs.

The export (torch.onnx.export with the dynamo exporter, dynamic batch and sequence axes; optionally int8
dynamic quantization of the weights) runs on first use in a process, never at import, into
`<cache_dir>/<key>/`, keyed by the model's folder or name, revision, the options and the exporter's versions.
It is written to a temporary folder beside and renamed into place, so processes exporting at once never see a
half-written model. Anything that stops it (the runtime missing, a read-only cache, an op the exporter cannot
translate) leaves the torch encoder in use, with one warning line; a device other than cpu runs torch (an info
line: both runtimes are CPU ones here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fi_spark.config.embed import EmbedConfig

log = logging.getLogger(__name__)

# OpenVINO's CPU plugin keeps compiled kernels per input shape (5,000 by default); texts batched by length bring
# a new (rows, tokens) shape on most batches, so the cache grew the process by ~0.3 GB per 9,000 chunks and kept
# growing. Off, memory stays flat at the same speed (bench/encoder_memory.py). None: OpenVINO's default.
RUNTIME_CACHE_CAPACITY: int | None = 0
EXPORT_FORMAT = 2  # bump when the exported graph changes, so old cache entries are not reused
MODEL_FILE = "model.onnx"


class OnnxEncoder:
    """A sentence-transformers model whose transformer runs on ONNX Runtime; the rest of its modules as loaded."""

    def __init__(self, session: Any, tokenizer: Any, tail: Any, max_seq_length: int, dim: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.tail = tail  # the model's modules after the transformer (torch, cheap: pooling, normalize)
        self.max_seq_length = max_seq_length
        self.dim = dim
        self.inputs = [i.name for i in session.get_inputs()]

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def hidden_batches(
        self, batches: Iterable[list[list[int]]]
    ) -> Iterator[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """(batch number, attention mask, token embeddings (rows, longest, d)) for each batch of token id lists,
        each padded to its longest, in the order they finish: OpenVINO keeps a batch in flight per stream."""
        feeds = (self._feed(n, self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="np"))
                 for n, ids in enumerate(batches))  # fmt: skip
        run_many = getattr(self.session, "run_many", None)
        if run_many is not None:
            finished = run_many(feeds)
        else:  # ONNX Runtime: one batch at a time, every thread on it
            finished = ((key, self.session.run(None, feed)[0]) for key, feed in feeds)
        for (n, mask), hidden in finished:
            yield n, mask, np.asarray(hidden, dtype=np.float32)

    def encode(self, texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
        """Unit-length sentence vectors (n, d) in the order of `texts`, computed in batches of similar length."""
        import torch

        enc = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length, verbose=False)
        ids = enc["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, mask, hidden in self.hidden_batches([ids[i] for i in rows] for rows in batches):
            with torch.inference_mode():
                pooled = self.tail({"token_embeddings": torch.from_numpy(hidden),
                                    "attention_mask": torch.from_numpy(mask)})["sentence_embedding"]  # fmt: skip
            out[batches[n]] = pooled.float().numpy()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def _feed(self, n: int, features: Any) -> tuple[tuple[int, npt.NDArray[np.int64]], dict[str, Any]]:
        """((batch number, attention mask), the runtime's inputs) of one padded batch."""
        mask = np.asarray(features["attention_mask"], dtype=np.int64)
        feed = {name: np.asarray(features[name], dtype=np.int64) if name in features else np.zeros_like(mask)
                for name in self.inputs}  # fmt: skip
        return (n, mask), feed


def onnx_or_torch(model: Any, cfg: EmbedConfig, ref: str, precision: str = "fp32") -> Any:
    """`model` (a loaded SentenceTransformer) with its transformer on ONNX Runtime or OpenVINO (embed.backend), or
    `model` itself, with one warning, where that cannot be had. A quantized export is never replaced by torch
    vectors: its identity (`+int8`) promises quantized ones, so a failure there raises."""
    if cfg.device != "cpu":  # expected, not a failure: the default backend is a CPU one, a GPU runs torch
        log.info("embed.backend=%s runs on cpu; on %s the encoder runs on torch", cfg.backend, cfg.device)
        return model
    try:
        return load_openvino(model, cfg, ref, precision) if cfg.backend == "openvino" else load_onnx(model, cfg, ref)
    except Exception as exc:  # anything: the torch encoder gives the same vectors
        if cfg.quantize != "none":
            raise
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    log.warning("embed.backend=%s unavailable (%s); encoding with torch", cfg.backend, why)
    return model


def exported(model: Any, cfg: EmbedConfig, ref: str) -> Path:
    """The cached ONNX export of `model`'s transformer for `cfg`, made on first use."""
    folder = cache_root(cfg) / export_key(ref, cfg)
    if not (folder / MODEL_FILE).is_file():
        export(model, folder, cfg.quantize)
    return folder / MODEL_FILE


def load_onnx(model: Any, cfg: EmbedConfig, ref: str) -> OnnxEncoder:
    import onnxruntime as ort

    path = exported(model, cfg, ref)
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads(cfg)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _with_tail(model, session)


class OpenVinoSession:
    """A model compiled by OpenVINO, answering as an ONNX Runtime session does (`get_inputs`), plus `run_many`,
    which keeps one batch in flight per stream. Throughput streams, each with threads of its own, beat every
    thread on one batch at a time: fewer threads wait on each other between the small kernels of a batch
    (bench/encoder.py). Its one caller at a time is the process's one encoder thread (fi_spark.embed.placement)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.names = [port.get_any_name() for port in compiled.inputs]
        self._fresh_queue()

    def get_inputs(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(name=name) for name in self.names]

    def run_many(self, feeds: Iterable[tuple[Any, dict[str, Any]]]) -> Iterator[tuple[Any, Any]]:
        """(key, first output) for each (key, inputs), in the order they finish. A failed batch raises here."""
        try:
            for key, feed in feeds:
                self.requests.start_async(feed, key)  # waits while every request is busy
                yield from self._drain()
            self.requests.wait_all()
            yield from self._drain()
        except BaseException:  # a failed request stays failed, and a reader may stop early: start the next clean
            self._settle()
            self._fresh_queue()
            raise

    def _fresh_queue(self) -> None:
        import openvino as ov

        finished: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        in_flight = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))  # one per stream
        requests = ov.AsyncInferQueue(self.compiled, in_flight)
        # on OpenVINO's thread: hand a copy over, into this queue's own box, nothing else
        requests.set_callback(lambda request, key: finished.put((key, request.get_output_tensor(0).data.copy())))
        self.requests, self.finished = requests, finished

    def _settle(self) -> None:
        """Wait for every request still running: a queue dropped with work in flight crashes the process."""
        for i in range(len(self.requests)):
            with contextlib.suppress(RuntimeError):  # the failure already raised to the caller
                self.requests[i].wait()

    def _drain(self) -> Iterator[tuple[Any, Any]]:
        while not self.finished.empty():
            yield self.finished.get()


def load_openvino(model: Any, cfg: EmbedConfig, ref: str, precision: str = "fp32") -> OnnxEncoder:
    """The same export, compiled by OpenVINO for this CPU: bf16 matrix products when `precision` (the encoder's
    resolve_precision) is bf16 (OpenVINO keeps normalizations in float32), float32 otherwise."""
    import openvino as ov

    settings = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": intra_op_threads(cfg),  # 0: every core
        "PERFORMANCE_HINT": "THROUGHPUT",  # streams share the threads; OpenVinoSession.run_many keeps them busy
    }
    if RUNTIME_CACHE_CAPACITY is not None:
        settings["CPU_RUNTIME_CACHE_CAPACITY"] = RUNTIME_CACHE_CAPACITY
    compiled = ov.Core().compile_model(str(exported(model, cfg, ref)), "CPU", settings)
    version = ov.__version__.split("-")[0]
    log.info("encoder %s on OpenVINO %s: %s matrix products (embed.precision=%s)", cfg.model, version, precision,
             cfg.precision)  # fmt: skip
    return _with_tail(model, OpenVinoSession(compiled))


def _with_tail(model: Any, session: Any) -> OnnxEncoder:
    import torch

    tail = torch.nn.Sequential(*list(model)[1:])
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return OnnxEncoder(session, model.tokenizer, tail, int(model.max_seq_length), int(dimension()))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's own chatter (warnings, "torchvision is not installed" log lines) kept off a user's screen: the
    export either works or fails with an exception, which onnx_or_torch reports in one line."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def intra_op_threads(cfg: EmbedConfig) -> int:
    """embed.threads, else OMP_NUM_THREADS (classic Spark sets it to spark.task.cpus in its Python workers, and
    torch reads it; ONNX Runtime does not), else 0: ONNX Runtime's default, one per physical core."""
    if cfg.threads:
        return cfg.threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 0


def cache_root(cfg: EmbedConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fi-spark" / "onnx"


def export_key(ref: str, cfg: EmbedConfig) -> str:
    """A folder name that changes with anything that changes the exported file: the model (for a local folder,
    its path and its weight files' sizes and times), revision, quantization, and the exporter's versions."""
    import onnxruntime
    import torch

    path = Path(ref)
    files = [p for p in path.glob("*") if p.suffix in {".safetensors", ".bin"}] if path.is_dir() else []
    weights = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files)
    fields = [EXPORT_FORMAT, ref, weights, cfg.revision, cfg.quantize, torch.__version__, onnxruntime.__version__]
    digest = hashlib.sha256(json.dumps(fields, default=str).encode()).hexdigest()[:16]
    return f"{path.name or 'model'}-{cfg.quantize}-{digest}"


def export(model: Any, folder: Path, quantize: str) -> None:
    """Export `model`'s transformer to `folder`/model.onnx (token embeddings out; batch and length dynamic)."""
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    transformer = model[0].auto_model.eval()
    tok = model.tokenizer
    sample = tok(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: Any) -> Any:
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        with torch.inference_mode(), _quiet_exporter():
            torch.onnx.export(
                Wrapped(),
                tuple(sample[n] for n in names),
                str(work / ("fp32.onnx" if quantize == "int8" else MODEL_FILE)),
                input_names=names,
                output_names=["token_embeddings"],
                dynamo=True,
                dynamic_shapes=(tuple({0: batch, 1: length} for _ in names),),  # one entry: the *inputs tuple
                verbose=False,
            )
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            fp32, out = str(work / "fp32.onnx"), str(work / MODEL_FILE)
            quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True)
            for extra in work.glob("fp32.onnx*"):
                extra.unlink()
        os.replace(work, folder)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
        if not (folder / MODEL_FILE).is_file():  # another process may have renamed its export into place first
            raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
