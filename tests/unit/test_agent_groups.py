"""Agent groups and shift settings in the config (file:line problems), the
group look-ups, and `ivr check`'s queue check against queues.conf."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.agents import AgentGroups
from ivr.agents.check import check_agent_groups, queues_in
from ivr.config import load_settings
from ivr.yamlfile import YamlError

REPO = Path(__file__).resolve().parents[2]
USERS = """users:
  "1001": {name: Anna, secret: a}
  "1002": {name: Bela, secret: b}
  boss: {name: Sara, role: supervisor, secret: c}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ivr.yaml"
    p.write_text(USERS + text)
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(YamlError) as err:
        load_settings(write(tmp_path, text), env={})
    return [str(p) for p in err.value.problems]


def test_groups_load_with_penalties_and_an_agent_in_several_groups(tmp_path):
    s = load_settings(write(tmp_path, """groups:
  sales: {projects: [acme-sales], queues: [sales], agents: ["1001", 1002]}
  support:
    projects: [acme-support]
    queues: [support]
    agents: {"1002": 0, "1001": 3}
shift:
  not_ready_reasons: [break, lunch]
  wrapup_seconds: 30
  service_level_seconds: 15
  projects:
    acme-support: {wrapup_seconds: 90}
"""), env={})
    groups = AgentGroups(s.groups)
    assert groups.queues_of("1001") == {"sales": 0, "support": 3}
    assert groups.agents_of_project("acme-support") == {"1002": 0, "1001": 3}
    assert list(groups.agents_of_project("acme-support")) == ["1002", "1001"]
    assert groups.agents_of_queue("sales") == {"1001": 0, "1002": 0}
    assert not groups.has_project("acme-unknown")
    assert s.shift.not_ready_reasons == ("break", "lunch")
    assert s.shift.wrapup_limit("acme-support") == 90 and s.shift.wrapup_limit("x") == 30
    assert s.shift.service_level_seconds == 15


def test_unknown_agent_supervisor_empty_group_and_bad_values_name_file_and_line(tmp_path):
    got = problems(tmp_path, """groups:
  sales:
    projects: [acme-sales]
    queues: [sales]
    agents: ["1001", "1009", boss]
  empty:
    queues: [support]
  odd:
    agents: {"1001": -1}
    colour: blue
shift:
  not_ready_reasons: [lunch, lunch]
  wrapup_seconds: 0
  projects: {acme: 5}
""")
    p = tmp_path / "ivr.yaml"
    assert f"{p}:9: groups.sales.agents.1009: unknown agent (not in users)" in got
    assert f"{p}:9: groups.sales.agents.boss: is a supervisor, not an agent" in got
    assert f"{p}:11: groups.empty.agents: empty group: list at least one agent" in got
    assert f"{p}:13: groups.odd.agents.1001: penalty must be a whole number, 0-1000" in got
    assert any(x.startswith(f"{p}:14: groups.odd.colour: unknown setting") for x in got)
    assert f"{p}:16: shift.not_ready_reasons: lists a reason twice" in got
    assert f"{p}:17: shift.wrapup_seconds: must be seconds, 1-86400" in got
    assert any(x.startswith(f"{p}:18: shift.projects.acme: must be") for x in got)


def test_a_reason_may_not_pose_as_the_wrapup(tmp_path):
    got = problems(tmp_path, "shift:\n  not_ready_reasons: [lunch, wrap-up then lunch]\n")
    assert any("shift.not_ready_reasons: must be a list of short words" in x for x in got)


def test_check_names_a_queue_missing_from_queues_conf(tmp_path):
    dialplans = tmp_path / "dialplans"
    dialplans.mkdir()
    (dialplans / "queues.conf").write_text(
        "[general]\n[department](!)\ntimeout = 5\n[sales](department)\n[support](department)\n")
    assert queues_in(dialplans / "queues.conf") == {"sales", "support"}
    p = write(tmp_path, """pbx: {dialplans: dialplans}
groups:
  sales:
    queues: [sales, salse]
    agents: ["1001"]
""")
    s = load_settings(p, env={})
    got = [str(x) for x in check_agent_groups(s)]
    assert got == [f"{p.resolve()}:8: groups.sales.queues: unknown queue 'salse': "
                   f"{dialplans.resolve() / 'queues.conf'} defines sales, support"]


def test_the_example_config_and_the_dialplans_agree():
    s = load_settings(REPO / "ivr.example.yaml", env={})
    assert {g.name for g in s.groups} == {"sales", "support", "key-accounts"}
    assert check_agent_groups(s) == []
