"""embed.precision (fi_spark.embed.encoder): which arithmetic a torch encoder gets, and that bf16 keeps the vectors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("sentence_transformers")

import torch  # noqa: E402

from fi_spark.config.embed import EmbedConfig  # noqa: E402
from fi_spark.embed import encoder as enc  # noqa: E402

SENTENCES = [
    "The French police system is very marvellous, said Poirot, looking after them.",
    "Stock markets fell sharply on Monday after the central bank raised interest rates.",
    "Preheat the oven to 200 degrees and butter a shallow dish.",
    "ok",
    "The committee will meet again next week to review the proposal in detail. " * 12,
]


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """auto: bf16 where the CPU multiplies bf16 natively, fp32 on older CPUs (emulated bf16 is slower) and on GPUs
    (not measured here); an explicit setting wins; ONNX Runtime is float32."""
    monkeypatch.setattr(enc, "cpu_has_native_bf16", lambda: native)
    assert enc.resolve_precision(EmbedConfig()) == ("bf16" if native else "fp32")
    assert enc.resolve_precision(EmbedConfig(device="cuda")) == "fp32"
    assert enc.resolve_precision(EmbedConfig(precision="fp32")) == "fp32"
    assert enc.resolve_precision(EmbedConfig(precision="bf16", device="cuda")) == "bf16"
    assert enc.resolve_precision(EmbedConfig(backend="onnx")) == "fp32"


def test_bf16_on_the_onnx_backend_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="precision=bf16 runs on torch or openvino"):
        EmbedConfig(backend="onnx", precision="bf16")


def test_cpu_flags_read_from_cpuinfo(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbugs\t\t: none\n", encoding="utf-8")
    assert {"avx2", "avx512_bf16"} <= enc.cpu_flags(str(info))
    assert enc.cpu_flags(str(tmp_path / "missing")) == set()


def test_native_bf16_falls_back_to_cpuinfo_without_torch_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch without the (private) CPU probes: /proc/cpuinfo's avx512_bf16 / amx_bf16 flags decide."""
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(enc, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert enc.cpu_has_native_bf16()
    monkeypatch.setattr(enc, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not enc.cpu_has_native_bf16()


def test_bf16_vectors_stay_at_cosine_0999_of_fp32_on_real_sentences() -> None:
    """bf16 is really in effect (the vectors differ from fp32's in the last digits) and keeps them: unit length,
    cosine >= 0.999 (bench/encoder.py measures >= 0.9999 on 1,000 real chunks), token embeddings alike too."""
    bf16 = enc.load_encoder(EmbedConfig(backend="torch", precision="bf16"))
    fp32 = enc.load_encoder(EmbedConfig(backend="torch", precision="fp32"))
    assert bf16 is not fp32 and getattr(bf16, enc.AUTOCAST) == torch.bfloat16
    assert getattr(fp32, enc.AUTOCAST, None) is None
    a, b = enc.encode(bf16, SENTENCES, 4), enc.encode(fp32, SENTENCES, 4)
    assert a.dtype == np.float32 and a.shape == b.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(a, b)
    assert (a * b).sum(axis=1).min() >= 0.999
    wa, wb = enc.encode_windows(bf16, SENTENCES, 4, 8, 4096), enc.encode_windows(fp32, SENTENCES, 4, 8, 4096)
    for (_, xs), (_, ys) in zip(wa, wb, strict=True):
        for (_, _, x), (_, _, y) in zip(xs, ys, strict=True):
            assert x.dtype == np.float32
            cos = (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
            assert cos.min() >= 0.99
