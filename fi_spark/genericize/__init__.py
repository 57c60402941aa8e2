"""Instruction templates: `<fi>` slot parsing, validation, near-duplicate merging, genericize prompts.

Pure Python (no pyspark): the genericize and build_index stages call these inside Spark UDFs.
"""

from fi_spark.genericize.merge import representative_order, template_id, template_key
from fi_spark.genericize.prompts import GenericizeAnswer, check_genericize_prompt, genericize_schema, parse_answer
from fi_spark.genericize.validate import REASONS, Verdict, leftover_specifics, query_specifics, validate_template
from fi_spark.text.tags import ParsedTemplate, Slot, TagProblem, parse_template

__all__ = [
    "REASONS",
    "GenericizeAnswer",
    "ParsedTemplate",
    "Slot",
    "TagProblem",
    "Verdict",
    "check_genericize_prompt",
    "genericize_schema",
    "leftover_specifics",
    "parse_answer",
    "parse_template",
    "query_specifics",
    "representative_order",
    "template_id",
    "template_key",
    "validate_template",
]
