"""The log: the call and agent come from context, as text or JSON, set by the bus."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from ivr import logs
from ivr.calls.bus import CallEventBus
from ivr.calls.events import AgentRinging
from ivr.calls.model import Call, Direction, Leg, LegRole
from ivr.config import load_settings
from ivr.yamlfile import YamlError


def capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logs.TextFormatter())
    log = logging.getLogger(f"test.logs.{fmt}")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, out


def test_lines_inside_about_name_the_call_and_agent_and_nest():
    log, out = capture("text")
    log.info("outside")
    with logs.about("c1", "1001"):
        log.info("inside")
        with logs.about(agent="1002"):
            log.info("another agent, same call")
    log.info("outside again")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("test.logs.text: outside")
    assert lines[1].endswith("inside [call c1 agent 1001]")
    assert lines[2].endswith("another agent, same call [call c1 agent 1002]")
    assert lines[3].endswith("outside again")


def test_json_lines_carry_call_agent_and_exception():
    log, out = capture("json")
    with logs.about("c9"):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed on %s", "x")
    (line,) = out.getvalue().splitlines()
    got = json.loads(line)
    assert got["message"] == "failed on x" and got["call_id"] == "c9" and "agent" not in got
    assert got["level"] == "ERROR" and "ValueError: boom" in got["exception"]


async def test_a_task_started_for_a_call_keeps_it_and_others_do_not_see_it():
    log, out = capture("json")

    async def tap(call_id: str) -> None:
        logs.about_call(call_id)
        await asyncio.sleep(0)
        log.info("tap")

    await asyncio.gather(tap("a"), tap("b"))
    log.info("loop")
    got = [json.loads(x).get("call_id") for x in out.getvalue().splitlines()]
    assert sorted(got[:2]) == ["a", "b"] and got[2] is None


def test_the_bus_tells_subscribers_logs_which_call_and_agent():
    log, out = capture("json")
    bus = CallEventBus()
    bus.subscribe(lambda event: log.info("rang"))
    call = Call(call_id="c7", started_at=0.0, direction=Direction.INBOUND)
    leg = Leg("1.2", "PJSIP/1003-00000001", "1.1", "1003", LegRole.AGENT, 0.0)
    bus.publish(AgentRinging(call, 0.0, "1003", leg))
    got = json.loads(out.getvalue())
    assert (got["call_id"], got["agent"]) == ("c7", "1003")


def test_log_format_is_text_or_json_in_the_config(tmp_path):
    good = tmp_path / "ivr.yaml"
    good.write_text("log_format: json\n")
    assert load_settings(good, env={}).log_format == "json"
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_format: xml\n")
    with pytest.raises(YamlError, match="log_format: must be text or json, not 'xml'"):
        load_settings(bad, env={})
    with pytest.raises(ValueError):
        logs.setup("INFO", "xml")
