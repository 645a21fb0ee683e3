"""Fixtures running a test on both outcomes stores: SQLite and PostgreSQL.

Test modules import them (`from tests.store_fixtures import *`). The
PostgreSQL cluster is started once per test process and stopped at exit; each
test gets a fresh database in it. A missing PostgreSQL fails the test, never
skips it: the suite must pass on both.
"""
from __future__ import annotations

import functools

import pytest

from ivr.outcomes.store import Store, open_store

from .postgres import PostgresCluster, PostgresUnavailable

BACKENDS = ("sqlite", "postgres")

__all__ = ["BACKENDS", "postgres_cluster", "store", "store_url"]


@functools.lru_cache(maxsize=1)
def _cluster() -> PostgresCluster | str:
    """The process's one cluster, or why there is none (remembered: try once)."""
    try:
        return PostgresCluster.start_new()
    except PostgresUnavailable as exc:
        return str(exc)


def _unavailable(reason: str) -> None:
    pytest.fail(f"PostgreSQL is required (run `bash .ci/setup` as root) but {reason}")


@pytest.fixture(scope="session")
def postgres_cluster() -> PostgresCluster:
    cluster = _cluster()
    if isinstance(cluster, str):
        _unavailable(cluster)
    assert isinstance(cluster, PostgresCluster)
    return cluster


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL of an empty outcomes database, one per backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/outcomes.db"   # tmp_path is absolute
    return request.getfixturevalue("postgres_cluster").create_database()


@pytest.fixture
async def store(store_url: str):
    s: Store = await open_store(store_url)
    yield s
    await s.close()


# -- calls of every kind, as the tracker would hand them over -------------------

from ivr.calls.model import Call, CallResult, CallState, Direction, Transfer  # noqa: E402

T0 = 1_700_000_000.0


def make_call(kind: CallResult | str, call_id: str = "", *, at: float = T0, project: str = "acme",
              agent: str = "1001", number: str = "36201234567", ended: bool = True) -> Call:
    """A call that ends (or, with ended=False, is still going) as `kind`."""
    kind = CallResult(kind)
    call = Call(call_id=call_id or f"{kind.value}-{at}", started_at=at, project=project,
                customer_num=number, customer_name="Kim Minji", state=CallState.BRIDGED)
    if kind is CallResult.ANSWERED:
        call.direction = Direction.INBOUND
        call.did, call.ivr_choice, call.queue, call.department = "5550100", "2", "support", "support"
        call.queued_at, call.agent_ring_at = at + 5, at + 6
        call.agents_rung, call.agent = ["1002", agent], agent
        call.agent_answered_at = call.answered_at = at + 9
        call.hold_seconds = 4.5
        call.transfers = [Transfer(at=at + 30, kind="blind", by_agent="1002", target="sales")]
        end, call.cause, call.cause_txt = at + 60, 16, "Normal Clearing"
    elif kind is CallResult.ABANDONED:
        call.direction, call.did, call.queue = Direction.INBOUND, "5550100", "support"
        call.queued_at, call.agent_ring_at, call.agents_rung = at + 5, at + 6, ["1002"]
        call.abandoned = True
        end, call.cause, call.cause_txt = at + 25, 16, "Normal Clearing"
    elif kind is CallResult.QUEUE_TIMEOUT:
        call.direction, call.did, call.queue = Direction.INBOUND, "5550100", "support"
        call.ivr_choice, call.ivr_keys, call.ivr_exit = "invalid", "97", "wrong_key"
        call.queued_at, call.agent_ring_at, call.agents_rung = at + 5, at + 6, ["1002"]
        call.queue_result = "TIMEOUT"
        end, call.cause, call.cause_txt = at + 305, 16, "Normal Clearing"
    elif kind is CallResult.IVR_HANGUP:
        call.direction, call.did = Direction.INBOUND, "5550100"
        end, call.cause, call.cause_txt = at + 8, 16, "Normal Clearing"
    elif kind is CallResult.NO_ANSWER:
        call.direction, call.dialled, call.campaign = Direction.OUTBOUND, number, "spring"
        call.agent = agent
        end, call.cause, call.cause_txt = at + 30, 19, "No answer"
    else:
        call.direction, call.did = Direction.INBOUND, "5550100"
        call.queued_at = None
        call.agents_rung = ["1002"]
        call.agent_ring_at = at + 2
        end, call.cause, call.cause_txt = at + 3, 17, "User busy"
    if ended:
        call.state, call.ended_at = CallState.ENDED, end
        assert call.result is kind, (kind, call.result)
    return call
