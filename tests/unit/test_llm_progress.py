"""Progress lines of the LLM send step and the stage heartbeat (fi_spark.llm.progress, fi_spark.heartbeat)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fi_spark.heartbeat import Heartbeat
from fi_spark.llm.progress import JournalCounter, format_duration, format_progress


def test_progress_line_has_counts_rates_and_eta():
    """120 of 400 done in 60 s: 2 requests/s, tokens/s over the same time, and 280 left at 2/s = 2m20s."""
    line = format_progress("genericize", 120, 400, 3, 51_000, 60.0)
    assert line == (
        "llm genericize: 120/400 requests done (30%), 3 failed, 2.00 requests/s, 850 tokens/s, 1m00s elapsed, ETA 2m20s"
    )


def test_progress_line_before_the_first_answer_and_at_the_end():
    """Nothing finished yet: no made-up ETA; all finished: `done` (no division by zero anywhere)."""
    assert format_progress("judge", 0, 10, 0, 0, 15.0).endswith("0.00 requests/s, 0 tokens/s, 15s elapsed, "
                                                                "ETA unknown (nothing finished yet)")  # fmt: skip
    assert format_progress("judge", 10, 10, 0, 100, 0.0).endswith("done")


def test_durations_read_short():
    """Seconds, minutes with padded seconds, hours with padded minutes."""
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 7620)] == ["0s", "59s", "1m01s", "59m59s", "2h07m"]


def test_journal_counter_reads_only_new_complete_lines(tmp_path: Path):
    """Lines are counted once across scans; a torn last line waits for its newline; failures and tokens counted."""
    part = tmp_path / "run1" / "p00000"
    part.mkdir(parents=True)
    journal = part / "a.jsonl"
    ok = {"request_id": "a", "error_reason": None, "prompt_tokens": 10, "completion_tokens": 5}
    failed = {"request_id": "b", "error_reason": "retries_exhausted", "prompt_tokens": None, "completion_tokens": None}
    journal.write_bytes((json.dumps(ok) + "\n" + json.dumps(failed)[:20]).encode())
    counter = JournalCounter(str(tmp_path / "run1"))
    counter.scan()
    assert (counter.done, counter.failed, counter.tokens) == (1, 0, 15)
    journal.write_bytes((json.dumps(ok) + "\n" + json.dumps(failed) + "\n").encode())
    (part / "b.jsonl").write_text(json.dumps({**ok, "request_id": "c"}) + "\n")
    counter.scan()
    counter.scan()
    assert (counter.done, counter.failed, counter.tokens) == (3, 1, 30)


def test_journal_counter_before_the_folder_exists(tmp_path: Path):
    """The first progress tick can come before any task journaled: zero, not an error."""
    counter = JournalCounter(str(tmp_path / "not-yet"))
    counter.scan()
    assert counter.done == 0


def test_heartbeat_logs_while_the_block_runs(caplog):
    """A stage running longer than the interval logs `stage <name>: running, <elapsed><details>` lines."""
    import time

    log = logging.getLogger("test.heartbeat")
    with caplog.at_level(logging.INFO, logger="test.heartbeat"), Heartbeat("match", 0.05, log, lambda: ", x"):
        time.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.heartbeat"]
    assert len(lines) >= 2 and lines[0] == "stage match: running, 0s, x"
