"""Settings of the HTML run report (fi_spark.report)."""

from __future__ import annotations

from pydantic import Field

from fi_spark.section import Section


class ReportConfig(Section):
    """report: HTML run report with PNG plots, built from small aggregations of the tables (fi_spark.report)."""

    location: str | None = Field(default=None, description="default: <output>/report")
    top_templates: int = Field(default=20, ge=1, description="templates named in the usage plot")
    sample_pairs: int = Field(default=5, ge=0, description="example pairs shown in the report")
    bins: int = Field(default=30, ge=5, description="histogram bins")
