"""Benchmark: instantiate's accept-or-decline schema vs a plain boolean `compatible`, same prompts, same server.

On the real local vLLM server (port 8011), instantiate.v3 on the fixed 30 pairs of bench/excerpts_pairs.json,
sent twice per round: once with the schema as it was before (`compatible` a plain boolean, so a declined
answer still writes every field) and once with fi_spark.instantiate.prompts's union (`{"compatible": false}`
alone closes the answer). Two rounds, each with a fresh run tag per arm, so the prefix cache of one arm does
not serve the other. Requests are built, sent and checked by bench.harness.real_model's `instantiate_pairs`
(as bench/cost_per_pair.py's are).

    python -m bench.decline_stop     # about 2 minutes on 2 CPU cores

Last line: `decline_stop: G1 -> G2 generated tokens, S1 -> S2 server-s, decisions same|differ` (last round).
"""

from __future__ import annotations

import json
import uuid

from bench.harness.real_model import LOCAL_URL, PAIRS_FILE, instantiate_pairs, server_model
from fi_spark.config import load_config
from fi_spark.instantiate import prompts as inst

URL = LOCAL_URL


def main() -> None:
    cfg = load_config("local", [f"llm.endpoints=[{URL}]", "llm.concurrency=8"])
    model, pairs = server_model(URL), json.loads(PAIRS_FILE.read_text(encoding="utf-8"))
    union = inst._decline_or
    arms = (("boolean compatible (before)", lambda schema: schema), ("decline union (after)", union))
    try:
        for _ in range(2):
            phases = []
            for name, shape in arms:
                inst._decline_or = shape
                phase, _ = instantiate_pairs(cfg, model, pairs, "instantiate.v3", True, uuid.uuid4().hex[:8], name)
                phases.append(phase)
                reasons = json.dumps(phase.reasons, sort_keys=True)
                print(f"{name:<28} gen tok {phase.gen_tokens:>6} server-s {phase.server_s:>7.1f} "
                      f"wall-s {phase.wall_s:>6.1f} {reasons}", flush=True)  # fmt: skip
    finally:
        inst._decline_or = union
    before, after = phases
    same = "same" if before.reasons == after.reasons else "differ"
    print(f"decline_stop: {before.gen_tokens} -> {after.gen_tokens} generated tokens, {before.server_s:.0f} -> "
          f"{after.server_s:.0f} server-s, decisions {same}")  # fmt: skip


if __name__ == "__main__":
    main()
