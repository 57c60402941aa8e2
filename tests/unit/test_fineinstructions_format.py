"""The released FineInstructions models' contracts, against a scripted OpenAI-compatible server.

The real weights are not reachable here, so a small aiohttp server answers in the released shapes
(excerpt markers, `null`, JSON) and the real client, adapter, prompt builders and checks are run against it.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

from fi_spark.config import LLMConfig, load_config, load_prompt
from fi_spark.genericize import check_genericize_prompt, genericize_schema, parse_answer, validate_template
from fi_spark.instantiate.prompts import (
    InstantiateRules,
    build_messages,
    check_prompt,
    evaluate_instantiation,
    response_schema,
)
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, Sampling
from fi_spark.prompting import fineinstructions as fi

DOC = (
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is 330 metres tall and was the "
    "tallest man-made structure in the world for 41 years."
)
# What the scripted instantiator answers, by template: markers with a JSON wrapper, headings, null, garbage.
SCRIPT = {
    "When was <fi>a landmark</fi> completed?": json.dumps(
        {
            "instruction": "When was the Eiffel Tower completed?",
            "answer": "<excerpt>The Eiffel Tower was<...>in Paris.</excerpt>",
        }
    ),  # fmt: skip
    "How tall is <fi>a structure</fi>?": (
        "Instruction: How tall is the Eiffel Tower?\nAnswer: <excerpt>It is 330<...>for 41 years.</excerpt>"
    ),
    "Who painted <fi>a painting</fi>?": "null",
    "Why is <fi>a landmark</fi> famous?": json.dumps(
        {"instruction": "Why is the Eiffel Tower famous?", "answer": "<excerpt>was<...>years.</excerpt>"}
    ),
    "What does <fi>a landmark</fi> look like?": "<excerpt>It is 330<...>tall</excerpt>",
}
TEMPLATIZER = {
    "How tall is the Eiffel Tower?": '```json\n{"template": "How tall is <fi>a landmark</fi>?", '
    '"compatible_document_description": "A document describing a landmark and giving its height."}\n```',
}


class ScriptedServer:
    """Answers /v1/chat/completions from SCRIPT / TEMPLATIZER; records every request body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.port = 0
        self._ready = threading.Event()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        user = body["messages"][-1]["content"]
        try:
            content = SCRIPT[json.loads(user)["instruction_template"]]
        except (ValueError, KeyError, TypeError):
            content = TEMPLATIZER.get(user, "I cannot help with that.")
        return web.json_response(
            {"id": "x", "object": "chat.completion", "model": body["model"],
             "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        )  # fmt: skip

    def __enter__(self) -> ScriptedServer:
        self._loop = asyncio.new_event_loop()

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        def run() -> None:
            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _send(port: int, schema: object, message_lists: list[list[dict[str, str]]]) -> list[str | None]:
    cfg = LLMConfig(endpoints=[f"http://127.0.0.1:{port}/v1"], max_attempts=1, schema_retries=0)
    adapter = Adapter(
        model="fineinstructions/template_instantiator", sampling=Sampling(max_tokens=64), response_schema=schema
    )

    async def go() -> list[str | None]:
        async with LLMClient(cfg, cfg.endpoints, adapter) as client:
            reqs = [LLMRequest(id=f"r{i}", messages=m, key=str(i)) for i, m in enumerate(message_lists)]
            results = sorted(await client.complete_all(reqs), key=lambda r: int(r.key or 0))
        assert all(r.error_reason is None for r in results), [r.error for r in results]
        return [r.parsed or r.content for r in results]

    return asyncio.run(go())


def test_instantiator_contract_end_to_end():
    """JSON input out; markers (JSON or headings) expand, `null` is incompatible, a bad marker is rejected."""
    spec = load_prompt("instantiate.fineinstructions")
    check_prompt(spec)
    assert response_schema(1, spec=spec) is None  # the released model gets no response schema
    rules = InstantiateRules.from_config(load_config("fineinstructions").instantiate, spec)
    templates = list(SCRIPT)
    with ScriptedServer() as server:
        answers = _send(server.port, None, [build_messages(spec, t, DOC, 3000) for t in templates])
        sent = [b["messages"] for b in server.bodies]
    assert all(len(m) == 1 and m[0]["role"] == "user" for m in sent)
    assert sorted(json.loads(m[0]["content"])["instruction_template"] for m in sent) == sorted(templates)
    assert all(json.loads(m[0]["content"])["document"] == DOC for m in sent)
    assert all("response_format" not in b for b in server.bodies)

    checks = [evaluate_instantiation(a, DOC, rules) for a in answers]
    assert [c.reason for c in checks] == [None, None, "incompatible", "excerpt_ambiguous", "unparseable"]
    assert [c.instruction for c in checks[:2]] == [
        "When was the Eiffel Tower completed?",
        "How tall is the Eiffel Tower?",
    ]
    assert checks[0].answer == "The Eiffel Tower was completed in 1889 for the World's Fair in Paris."
    assert (checks[0].excerpt_share, checks[0].grounding) == (1.0, 1.0)
    assert checks[1].answer == "It is 330 metres tall and was the tallest man-made structure in the world for 41 years."
    assert checks[3].detail == "2 spans match <excerpt>was<...>years.</excerpt>"
    assert checks[4].detail == (
        "expected an instruction, a blank line and an answer: '<excerpt>It is 330<...>tall</excerpt>'"
    )


def test_templatizer_contract_end_to_end():
    """The bare query is the only message; the fenced JSON answer parses and validates as a template."""
    spec = load_prompt("genericize.fineinstructions")
    check_genericize_prompt(spec)
    assert genericize_schema(spec) is None
    from fi_spark.prompting.messages import chat_messages

    query = "How tall is the Eiffel Tower?"
    messages = chat_messages(spec, {"query": query})
    assert messages == fi.templatizer_messages(query) == [{"role": "user", "content": query}]
    with ScriptedServer() as server:
        (content,) = _send(server.port, None, [messages])
    template, description, problem = parse_answer(content)
    assert (template, problem) == ("How tall is <fi>a landmark</fi>?", None)
    assert validate_template(template, description, load_config("fineinstructions").templates, query).ok


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("null", fi.ReleasedAnswer(declined=True)),
        ("  NULL ", fi.ReleasedAnswer(declined=True)),
        ('{"instruction": "Q?", "answer": "A."}', fi.ReleasedAnswer(instruction="Q?", answer="A.")),
        ('["Q?", "A."]', fi.ReleasedAnswer(instruction="Q?", answer="A.")),
        ("**Question:** Q?\n**Response:** A.", fi.ReleasedAnswer(instruction="Q?", answer="A.")),
        ("Q?\n\nA first.\n\nA second.", fi.ReleasedAnswer(instruction="Q?", answer="A first.\n\nA second.")),
        ("", fi.ReleasedAnswer(problem="empty output")),
        ('{"q": 1}', fi.ReleasedAnswer(problem="JSON object without instruction/answer: keys ['q']")),
    ],
)
def test_released_output_shapes(content, expected):
    """Each output shape the parser accepts, and the problems it names."""
    assert fi.parse_instantiator_output(content) == expected
