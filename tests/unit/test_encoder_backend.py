"""The encoder's backends (fi_spark.embed.encoder, fi_spark.embed.onnx): selection, fallback, order, same vectors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fi_spark.config.embed import EmbedConfig  # noqa: E402
from fi_spark.embed import encoder as enc  # noqa: E402
from fi_spark.embed import onnx as onnx_backend  # noqa: E402
from fi_spark.embed.onnx import OnnxEncoder  # noqa: E402

SENTENCES = [
    "The French police system is very marvellous, said Poirot, looking after them.",
    "Stock markets fell sharply on Monday after the central bank raised interest rates.",
    "Preheat the oven to 200 degrees and butter a shallow dish.",
    "ok",
    "Which is a species of fish? Tope or Rope",
    "The committee will meet again next week to review the proposal in detail. " * 12,
]


@pytest.fixture(scope="session")
def onnx_cfg(tmp_path_factory: pytest.TempPathFactory) -> EmbedConfig:
    """An ONNX config whose export lands in one temporary folder for the whole session (exported once)."""
    return EmbedConfig(backend="onnx", cache_dir=str(tmp_path_factory.mktemp("onnx-cache")))


@pytest.fixture(scope="session")
def onnx_model(onnx_cfg: EmbedConfig) -> OnnxEncoder:
    model = enc.load_encoder(onnx_cfg)
    assert isinstance(model, OnnxEncoder), "the MiniLM export must load on ONNX Runtime"
    return model


def test_backend_openvino_is_the_default_and_torch_gives_sentence_transformers() -> None:
    """embed.backend defaults to openvino (3.1x torch fp32 on CPU, bench/encoder.py); torch loads
    sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    assert EmbedConfig().backend == "openvino"
    assert isinstance(enc.load_encoder(EmbedConfig(backend="torch")), SentenceTransformer)


def test_backend_onnx_exports_once_into_the_cache(onnx_cfg: EmbedConfig, onnx_model: OnnxEncoder) -> None:
    """embed.backend=onnx runs on ONNX Runtime from one cached export folder, keyed by model and options."""
    folders = [p for p in onnx_backend.cache_root(onnx_cfg).iterdir() if not p.name.startswith(".")]
    assert [p.name.split("-")[1] for p in folders] == ["none"]
    assert (folders[0] / onnx_backend.MODEL_FILE).is_file()
    assert enc.load_encoder(onnx_cfg) is onnx_model


def test_onnx_vectors_match_torch_on_real_sentences(onnx_model: OnnxEncoder) -> None:
    """The ONNX encoder gives torch's unit vectors (cosine >= 0.99, in practice 1.0) on real sentences."""
    torch_model = enc.load_encoder(EmbedConfig(backend="torch", precision="fp32"))  # ONNX is float32
    a = enc.encode(onnx_model, SENTENCES, 4)
    b = enc.encode(torch_model, SENTENCES, 4)
    assert a.shape == b.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() >= 0.99


def test_onnx_token_windows_match_torch(onnx_model: OnnxEncoder) -> None:
    """Token pooling reads the same token embeddings through ONNX as through torch (windows included)."""
    torch_model = enc.load_encoder(EmbedConfig(backend="torch", precision="fp32"))  # ONNX is float32
    a = enc.encode_windows(onnx_model, SENTENCES, 4, 8, 4096)
    b = enc.encode_windows(torch_model, SENTENCES, 4, 8, 4096)
    assert [n for n, _ in a] == [n for n, _ in b]
    for (_, wa), (_, wb) in zip(a, b, strict=True):
        assert [(s, e) for s, e, _ in wa] == [(s, e) for s, e, _ in wb]
        for (_, _, x), (_, _, y) in zip(wa, wb, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-3)


@pytest.fixture(scope="session")
def openvino_model(onnx_cfg: EmbedConfig, onnx_model: OnnxEncoder) -> OnnxEncoder:
    """The same export on OpenVINO in float32 (torch's vectors), throughput streams as shipped."""
    pytest.importorskip("openvino")
    model = enc.load_encoder(onnx_cfg.model_copy(update={"backend": "openvino", "precision": "fp32"}))
    assert isinstance(model, OnnxEncoder) and isinstance(model.session, onnx_backend.OpenVinoSession)
    return model


@pytest.fixture(params=["onnx", "openvino"])
def exported_model(request: pytest.FixtureRequest) -> OnnxEncoder:
    return request.getfixturevalue(f"{request.param}_model")  # type: ignore[no-any-return]


def test_openvino_compiles_for_throughput_without_a_per_shape_cache(
    onnx_cfg: EmbedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Throughput streams, capped at embed.threads; and no per-shape kernel cache: batches by length bring a new
    input shape on most calls, and that cache grew the process with every one (bench/encoder_memory.py)."""
    ov = pytest.importorskip("openvino")
    seen: dict[str, object] = {}
    compile_model = ov.Core.compile_model

    def spy(core: object, model: object, device: str, config: dict[str, object]) -> object:
        seen.update(config)
        return compile_model(core, model, device, config)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    model = enc.load_encoder(onnx_cfg.model_copy(update={"backend": "openvino", "threads": 1}))
    assert seen["PERFORMANCE_HINT"] == "THROUGHPUT" and seen["INFERENCE_NUM_THREADS"] == 1
    assert seen["CPU_RUNTIME_CACHE_CAPACITY"] == onnx_backend.RUNTIME_CACHE_CAPACITY == 0
    assert int(model.session.compiled.get_property("NUM_STREAMS")) == 1  # one thread: one stream


def test_openvino_token_windows_come_back_in_order_with_torchs_embeddings(openvino_model: OnnxEncoder) -> None:
    """OpenVINO finishes batches in any order (one in flight per stream); each text still gets its windows in
    document order, with torch's token embeddings."""
    long_text = " ".join(f"Sentence number {i} of a long report on river ecology and fish." for i in range(60))
    texts = [long_text, *SENTENCES]
    torch_model = enc.load_encoder(EmbedConfig(backend="torch", precision="fp32"))
    a = enc.encode_windows(openvino_model, texts, 1, 8, 4096)  # one window per batch: many in flight
    b = enc.encode_windows(torch_model, texts, 1, 8, 4096)
    assert len(a[0][1]) >= 3, "the long text must span several windows"
    assert [n for n, _ in a] == [n for n, _ in b]
    for (_, wa), (_, wb) in zip(a, b, strict=True):
        assert [(s, e) for s, e, _ in wa] == [(s, e) for s, e, _ in wb]
        for (_, _, x), (_, _, y) in zip(wa, wb, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-3)


def test_openvino_runs_every_batch_once_and_recovers_from_a_failed_one(openvino_model: OnnxEncoder) -> None:
    """run_many yields each key once; a batch the runtime rejects raises to its caller, and neither that nor a
    reader that stops early leaves anything behind for the next call."""
    session = openvino_model.session
    ids = openvino_model.tokenizer(SENTENCES)["input_ids"]
    feeds = [openvino_model._feed(n, openvino_model.tokenizer.pad({"input_ids": [row]}, return_tensors="np"))
             for n, row in enumerate(ids)]  # fmt: skip
    assert sorted(n for (n, _), _ in session.run_many(feeds)) == list(range(len(ids)))
    broken = {name: np.ones((2, 3 + i), dtype=np.int64) for i, name in enumerate(session.names)}  # shapes disagree
    with pytest.raises(RuntimeError):
        list(session.run_many([feeds[0], (("broken", None), broken), feeds[1]]))
    reader = session.run_many(feeds)
    next(reader)
    reader.close()
    assert sorted(n for (n, _), _ in session.run_many(feeds)) == list(range(len(ids)))


def test_length_sorted_batches_return_vectors_in_input_order(exported_model: OnnxEncoder) -> None:
    """Texts are batched by length (on OpenVINO, finished in any order), but each vector comes back at its
    text's position, the same whatever the batch size."""
    onnx_model = exported_model
    rng = np.random.default_rng(0)
    order = rng.permutation(len(SENTENCES))
    shuffled = [SENTENCES[i] for i in order]
    whole = enc.encode(onnx_model, SENTENCES, 2)
    again = enc.encode(onnx_model, shuffled, 2)
    one_by_one = np.vstack([enc.encode(onnx_model, [t], 1) for t in SENTENCES])
    np.testing.assert_allclose(again, whole[order], atol=1e-5)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-4)


def test_failed_export_falls_back_to_torch_with_one_warning(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An export that fails leaves the torch encoder in use and says so in one warning line, never a crash."""
    from sentence_transformers import SentenceTransformer

    def broken(*_args: object, **_kw: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(onnx_backend, "export", broken)
    cfg = EmbedConfig(backend="onnx", cache_dir=str(tmp_path / "ro"))  # its own cache_dir: its own encoder
    with caplog.at_level(logging.WARNING, logger=onnx_backend.__name__):
        model = enc.load_encoder(cfg)
    assert isinstance(model, SentenceTransformer)
    warnings = [r for r in caplog.records if r.name == onnx_backend.__name__]
    assert len(warnings) == 1 and "read-only file system" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


def test_quantized_export_failure_raises(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With quantize=int8 the identity promises quantized vectors, so a failed export raises instead."""

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("no quantizer")

    monkeypatch.setattr(onnx_backend, "export", broken)
    cfg = EmbedConfig(backend="onnx", quantize="int8", cache_dir=str(tmp_path))
    assert cfg.identity() == "minilm+int8"
    with pytest.raises(RuntimeError, match="no quantizer"):
        enc.load_encoder(cfg)


def test_onnx_on_a_gpu_device_falls_back_without_exporting(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime runs on cpu here: another device keeps the torch model and never starts an export."""

    def must_not_run(*_args: object, **_kw: object) -> None:
        raise AssertionError("exported for a gpu device")

    monkeypatch.setattr(onnx_backend, "load_onnx", must_not_run)
    sentinel = object()
    assert onnx_backend.onnx_or_torch(sentinel, EmbedConfig(backend="onnx", device="cuda"), "ref") is sentinel


def test_intra_op_threads_follow_the_setting_then_omp(monkeypatch: pytest.MonkeyPatch) -> None:
    """embed.threads wins; else OMP_NUM_THREADS (spark.task.cpus on classic workers); else 0 (all cores)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert onnx_backend.intra_op_threads(EmbedConfig(threads=2)) == 2
    assert onnx_backend.intra_op_threads(EmbedConfig()) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert onnx_backend.intra_op_threads(EmbedConfig()) == 0


def test_openvino_compiles_the_same_export_and_keeps_the_vectors(onnx_cfg: EmbedConfig) -> None:
    """The default backend: the ONNX export compiled by OpenVINO. fp32 gives torch's vectors; bf16 (where `auto`
    picks it) stays within the cosine that lets either search one index."""
    pytest.importorskip("openvino")
    torch_vecs = enc.encode(enc.load_encoder(EmbedConfig(backend="torch", precision="fp32")), SENTENCES, 4)
    for precision, floor in (("fp32", 0.9999), ("bf16", 0.999)):
        cfg = onnx_cfg.model_copy(update={"backend": "openvino", "precision": precision})
        model = enc.load_encoder(cfg)
        assert isinstance(model.session, onnx_backend.OpenVinoSession)
        vecs = enc.encode(model, SENTENCES, 4)
        assert vecs.shape == torch_vecs.shape and vecs.dtype == np.float32
        assert float((vecs * torch_vecs).sum(axis=1).min()) >= floor, precision


def test_openvino_on_a_gpu_device_hands_over_to_torch_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def must_not_run(*_args: object, **_kw: object) -> None:
        raise AssertionError("compiled for a gpu device")

    monkeypatch.setattr(onnx_backend, "load_openvino", must_not_run)
    sentinel = object()
    with caplog.at_level(logging.INFO, logger=onnx_backend.__name__):
        assert onnx_backend.onnx_or_torch(sentinel, EmbedConfig(device="cuda"), "ref") is sentinel
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_missing_openvino_falls_back_to_torch_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing(*_args: object, **_kw: object) -> None:
        raise ImportError("No module named 'openvino'")

    monkeypatch.setattr(onnx_backend, "load_openvino", missing)
    sentinel = object()
    with caplog.at_level(logging.WARNING, logger=onnx_backend.__name__):
        assert onnx_backend.onnx_or_torch(sentinel, EmbedConfig(backend="openvino"), "ref") is sentinel
    assert "embed.backend=openvino unavailable (ImportError" in caplog.text
