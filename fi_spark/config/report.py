"""Settings of the HTML run report (fi_spark.report) and of the cost estimate it, the card and MLflow show."""

from __future__ import annotations

from pydantic import Field

from fi_spark.cost import GpuRates
from fi_spark.section import Section


class ReportConfig(Section):
    """report: HTML run report with PNG plots, built from small aggregations of the tables (fi_spark.report)."""

    location: str | None = Field(default=None, description="default: <output>/report")
    top_templates: int = Field(default=20, ge=1, description="templates named in the usage plot")
    sample_pairs: int = Field(default=5, ge=0, description="example pairs shown in the report")
    bins: int = Field(default=30, ge=5, description="histogram bins")
    usd_per_gpu_hour: float = Field(
        default=GpuRates.usd_per_gpu_hour, ge=0.0, description="cost estimate (report, card, MLflow): $ per GPU-hour"
    )
    gen_tokens_per_s: float = Field(
        default=GpuRates.gen_tokens_per_s, gt=0.0, description="cost estimate: generated tokens per s per GPU"
    )
    prefill_tokens_per_s: float = Field(
        default=GpuRates.prefill_tokens_per_s, gt=0.0, description="cost estimate: uncached prompt tokens/s per GPU"
    )

    def rates(self) -> GpuRates:
        """The cost estimate's price and throughputs (fi_spark.cost)."""
        return GpuRates(self.usd_per_gpu_hour, self.gen_tokens_per_s, self.prefill_tokens_per_s)

    def where(self, output: str) -> str:
        """Where report.html and its plots go: `location`, else <output>/report."""
        from fi_spark import storage

        return self.location or storage.join(output, "report")
