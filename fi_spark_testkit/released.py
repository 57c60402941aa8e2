"""Scripted stand-ins for the paper's three released models, each speaking its own contract (tests and the
GPU smoke script's --dry-run only; never a user's default).

- `Templatizer` (fineinstructions/query_templatizer): the bare query as the only user message -> one JSON
  object with `template` and `compatible_document_description` (fi_spark.prompting.fineinstructions).
- `Instantiator` (fineinstructions/template_instantiator): the JSON object {"instruction_template",
  "document"} -> `null` (the template does not fit) or {"instruction", "answer"} whose answer is one
  `<excerpt>first words<...>last words</excerpt>` marker naming the document's first sentence.
- `FlowJudge` (flowaicom/Flow-Judge-v0.1): Flow Judge's template -> `<feedback>...</feedback>` then
  `<score>N</score>` (fi_spark.judge.flow_judge).

What each answers is decided by `RecipeScript`, from words in the request, so a test knows every row that
results. Each server records the model name every completion request asked for (`models`), so a test can
see that each stage reached its own server with its own model.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fi_spark_testkit.fault_server import FaultServer, ServerSettings

TEMPLATIZER = "fineinstructions/query_templatizer"
INSTANTIATOR = "fineinstructions/template_instantiator"
FLOW_JUDGE = "flowaicom/Flow-Judge-v0.1"


@dataclass(frozen=True)
class RecipeScript:
    """The scripted answers: query -> templatizer JSON (a query not listed gets text that is not JSON); a
    document holding a `decline` word -> the instantiator's `null`; a judged document holding a `scores` word
    -> that score, one holding a `garble` word -> text without tags; any other -> `default_score`."""

    templates: dict[str, dict[str, str]] = field(default_factory=dict)
    decline: tuple[str, ...] = ()
    scores: dict[str, int] = field(default_factory=dict)
    garble: tuple[str, ...] = ()
    default_score: int = 5


class ReleasedModelServer(FaultServer):
    """The fault-injecting test server with one released model's scripted answers (`respond`)."""

    model = ""  # the released model it stands for (overrides FaultServer.model)

    def __init__(self, script: RecipeScript, settings: ServerSettings | None = None, port: int = 0) -> None:
        super().__init__(settings or ServerSettings(model=self.model), port)
        self.script = script
        self.models: Counter[str] = Counter()  # model name asked for -> completion requests

    def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
        out = super()._answer(chat, req, rid, bad)
        with self._lock:
            self.models[str(req.get("model"))] += 1
        if chat and not bad:
            text = self.respond(str((req.get("messages") or [{}])[-1].get("content", "")))
            out["choices"][0]["message"]["content"] = text
            out["usage"]["completion_tokens"] = max(1, len(text.split()))
            out["usage"]["total_tokens"] = out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
        return out

    def respond(self, user: str) -> str:
        raise NotImplementedError


class Templatizer(ReleasedModelServer):
    model = TEMPLATIZER

    def respond(self, user: str) -> str:
        found = self.script.templates.get(user.strip())
        return json.dumps(found) if found else "Sorry, I can not templatize that query."


class Instantiator(ReleasedModelServer):
    model = INSTANTIATOR

    def respond(self, user: str) -> str:
        given = json.loads(user)
        template, document = given["instruction_template"], given["document"]
        if any(word in document for word in self.script.decline):
            return "null"
        first = document.split(". ")[0].rstrip(".") + "."
        words = first.split()
        filler = " ".join(w.strip(".,").lower() for w in words[:2])
        instruction = re.sub(r"<fi>.*?</fi>", filler, template)
        answer = f"<excerpt>{' '.join(words[:4])}<...>{' '.join(words[-3:])}</excerpt>"
        return json.dumps({"instruction": instruction, "answer": answer})


class FlowJudge(ReleasedModelServer):
    model = FLOW_JUDGE

    def respond(self, user: str) -> str:
        document = user.split("<document>", 1)[-1].split("</document>", 1)[0]
        if any(word in document for word in self.script.garble):
            return "The pair looks fine to me overall."
        score = next((s for word, s in self.script.scores.items() if word in document), self.script.default_score)
        return f"<feedback>\nScripted feedback: score {score}.\n</feedback>\n<score>\n{score}\n</score>"


def start_servers(script: RecipeScript) -> dict[str, ReleasedModelServer]:
    """stage -> its started server (stop each with .stop())."""
    servers = {"genericize": Templatizer(script), "instantiate": Instantiator(script), "judge": FlowJudge(script)}
    for server in servers.values():
        server.start()
    return servers
