"""The one schema of both backends, as an ordered list of migrations.

Statements are shared; the few type names SQLite and PostgreSQL spell
differently are written as {real}, {json}, {serial_pk} and {bigint} and filled
from the driver's TYPES. Each migration is applied at open, in its own
transaction, only if schema_version does not list it yet, so opening any number
of times (or two services at once) is safe. Never edit a shipped migration:
add the next one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import StoreError

if TYPE_CHECKING:
    from .sql import SqlStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calls, callbacks and callback attempts",
        (
            """CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            state TEXT NOT NULL DEFAULT 'live'
                CHECK (state IN ('live', 'ended', 'interrupted')),
            direction TEXT NOT NULL DEFAULT 'unknown',
            project TEXT NOT NULL DEFAULT '',
            script_id TEXT,
            script_version TEXT,
            did TEXT NOT NULL DEFAULT '',
            dialled TEXT NOT NULL DEFAULT '',
            customer_num TEXT NOT NULL DEFAULT '',
            customer_name TEXT NOT NULL DEFAULT '',
            department TEXT NOT NULL DEFAULT '',
            queue TEXT NOT NULL DEFAULT '',
            ivr_choice TEXT NOT NULL DEFAULT '',
            campaign TEXT NOT NULL DEFAULT '',
            agents_rung {json} NOT NULL DEFAULT '[]',
            agent TEXT,
            started_at {real} NOT NULL,
            queued_at {real},
            agent_ring_at {real},
            agent_answered_at {real},
            answered_at {real},
            ended_at {real},
            queue_wait_seconds {real},
            ring_seconds {real},
            talk_seconds {real},
            hold_seconds {real} NOT NULL DEFAULT 0,
            cause INTEGER,
            cause_txt TEXT NOT NULL DEFAULT '',
            result TEXT,
            transfers {json} NOT NULL DEFAULT '[]',
            disposition TEXT,
            notes TEXT,
            callback_at {real},
            wrapped_up_at {real},
            wrapped_up_by TEXT,
            checklist {json},
            adherence_score {real},
            prompts {json},
            transcript {json},
            updated_at {real} NOT NULL
        )""",
            # Reports filter by time, then project / agent / disposition.
            "CREATE INDEX calls_started ON calls (started_at)",
            "CREATE INDEX calls_project ON calls (project, started_at)",
            "CREATE INDEX calls_agent ON calls (agent, started_at)",
            "CREATE INDEX calls_disposition ON calls (disposition, started_at)",
            # Small partial indexes for the restart sweep and the wrap-up reminder.
            "CREATE INDEX calls_live ON calls (state) WHERE state = 'live'",
            "CREATE INDEX calls_unwrapped ON calls (agent) "
            "WHERE wrapped_up_at IS NULL AND answered_at IS NOT NULL",
            """CREATE TABLE callbacks (
            id {serial_pk},
            call_id TEXT,
            number TEXT NOT NULL,
            project TEXT NOT NULL DEFAULT '',
            agent TEXT,
            reason TEXT NOT NULL,
            due_at {real} NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'dialling', 'done', 'failed', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at {real},
            last_result TEXT,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
            # One open callback per number and project (see base.OPEN_CALLBACK_STATUSES).
            "CREATE UNIQUE INDEX callbacks_open_number ON callbacks (number, project) "
            "WHERE status IN ('pending', 'dialling')",
            "CREATE INDEX callbacks_due ON callbacks (due_at) WHERE status = 'pending'",
            "CREATE INDEX callbacks_call ON callbacks (call_id)",
            """CREATE TABLE callback_attempts (
            id {serial_pk},
            callback_id {bigint} NOT NULL REFERENCES callbacks (id),
            at {real} NOT NULL,
            status TEXT NOT NULL,
            result TEXT NOT NULL,
            call_id TEXT
        )""",
            "CREATE INDEX callback_attempts_callback ON callback_attempts (callback_id, at)",
        ),
    ),
    Migration(
        2,
        "outbound campaigns, their contacts and attempts, do-not-call list",
        (
            # One row per campaign: which project's script pops, when and how fast to dial.
            """CREATE TABLE campaigns (
            name TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'paused', 'done')),
            hours_start TEXT NOT NULL DEFAULT '09:00',
            hours_end TEXT NOT NULL DEFAULT '20:00',
            days TEXT NOT NULL DEFAULT 'mon-fri',
            timezone TEXT NOT NULL DEFAULT 'UTC',
            max_in_progress INTEGER NOT NULL DEFAULT 2,
            max_per_minute INTEGER NOT NULL DEFAULT 10,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            retry_after {real} NOT NULL DEFAULT 3600,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
            """CREATE TABLE campaign_contacts (
            id {serial_pk},
            campaign TEXT NOT NULL REFERENCES campaigns (name),
            number TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            fields {json} NOT NULL DEFAULT '{{}}',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'dialling', 'done', 'failed', 'dnc', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at {real} NOT NULL,
            last_attempt_at {real},
            last_result TEXT,
            last_call_id TEXT,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
            # A number is in a campaign once; the dialer takes the most overdue first.
            "CREATE UNIQUE INDEX campaign_contacts_number ON campaign_contacts (campaign, number)",
            "CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign, next_at) "
            "WHERE status = 'pending'",
            "CREATE INDEX campaign_contacts_by_number ON campaign_contacts (number)",
            """CREATE TABLE campaign_attempts (
            id {serial_pk},
            contact_id {bigint} NOT NULL REFERENCES campaign_contacts (id),
            at {real} NOT NULL,
            status TEXT NOT NULL,
            result TEXT NOT NULL,
            agent TEXT,
            call_id TEXT
        )""",
            "CREATE INDEX campaign_attempts_contact ON campaign_attempts (contact_id, at)",
            # Numbers (normalised: digits only) nobody may call again.
            """CREATE TABLE dnc (
            number TEXT PRIMARY KEY,
            reason TEXT NOT NULL DEFAULT '',
            call_id TEXT,
            added_by TEXT,
            added_at {real} NOT NULL
        )""",
            # Reports: callbacks due per agent, and calls of a campaign.
            "CREATE INDEX callbacks_agent_due ON callbacks (agent, due_at) WHERE status = 'pending'",  # noqa: E501
            "CREATE INDEX calls_campaign ON calls (campaign, started_at)",
        ),
    ),
    # 20-29: web console security (ivr/web/auth.py).
    Migration(
        20,
        "web console sign-in sessions and server keys",
        (
            # One row per sign-in. `id` is the SHA-256 of the session id the cookie
            # carries (signed), so a copy of the database alone opens no console.
            # secret_fp ties the session to the user's secret at sign-in: a changed
            # secret ends every session of that user, on every instance.
            """CREATE TABLE web_sessions (
            id TEXT PRIMARY KEY,
            login TEXT NOT NULL,
            secret_fp TEXT NOT NULL,
            created_at {real} NOT NULL,
            last_seen_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            revoked_at {real},
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        )""",
            "CREATE INDEX web_sessions_login ON web_sessions (login)",
            "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
            # Keys the service instances share (PostgreSQL); SQLite keeps its key in
            # a file beside the database instead (see sqlite.py).
            """CREATE TABLE server_keys (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            created_at {real} NOT NULL
        )""",
        ),
    ),
    # 30-39: agent states (ivr/agents, ivr/outcomes/agent_states.py).
    Migration(
        30,
        "agent state changes (shift reports)",
        (
            # One row per state an agent was in; ended_at is set when the next begins.
            """CREATE TABLE agent_states (
            id {serial_pk},
            agent TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('offline', 'ready', 'not_ready', 'ringing', 'on_call', 'wrapup')),
            reason TEXT NOT NULL DEFAULT '',
            started_at {real} NOT NULL,
            ended_at {real},
            call_id TEXT,
            project TEXT NOT NULL DEFAULT '',
            changed_by TEXT NOT NULL DEFAULT ''
        )""",
            "CREATE INDEX agent_states_agent ON agent_states (agent, started_at)",
            "CREATE INDEX agent_states_period ON agent_states (started_at)",
            "CREATE INDEX agent_states_open ON agent_states (agent) WHERE ended_at IS NULL",
        ),
    ),
    # 40-49: queue outcomes, the IVR menu, supervisors listening in.
    Migration(
        40,
        "queue result, IVR keys and exit rule, supervisor monitoring of calls",
        (
            # Why a queue wait ended unanswered (Asterisk's QUEUESTATUS: TIMEOUT ...).
            "ALTER TABLE calls ADD COLUMN queue_result TEXT NOT NULL DEFAULT ''",
            # Every key pressed in the menu, and the menu rule that ended it.
            "ALTER TABLE calls ADD COLUMN ivr_keys TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE calls ADD COLUMN ivr_exit TEXT NOT NULL DEFAULT ''",
            # Supervisors who listened in, whispered or barged in: who, how, when.
            "ALTER TABLE calls ADD COLUMN monitors {json} NOT NULL DEFAULT '[]'",
            # Reports count results apart (queue timeouts, abandoned ...).
            "CREATE INDEX calls_result ON calls (result, started_at)",
        ),
    ),
    Migration(
        50,
        "coaching: the items and rules speech could not check",
        ("ALTER TABLE calls ADD COLUMN cant_check {json}",),
    ),
    # 60-69: several service instances and PBXs sharing one store (ivr/cluster/).
    Migration(
        60,
        "instances, dialler claims and numbers being dialled",
        (
            # The PBX a call was on: a controller that takes a PBX over closes only
            # that PBX's calls that ended unseen ('' : recorded before version 60).
            "ALTER TABLE calls ADD COLUMN pbx TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX calls_live_pbx ON calls (pbx) WHERE state = 'live'",
            # Every running service instance. PostgreSQL: it holds an advisory lock
            # (lock_key, shared) on its lease connection while it lives, so a dead one is
            # seen at once (its connection closes) without waiting for a timeout.
            """CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            lock_key INTEGER NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            roles TEXT NOT NULL DEFAULT '',
            started_at {real} NOT NULL
        )""",
            # Who is dialling a contact or a callback: the instance, the PBX and the
            # call id it originates (chosen before the Originate), so that a claim
            # left by a dead controller is settled from that PBX before any retry.
            "ALTER TABLE campaign_contacts ADD COLUMN dial_owner TEXT",
            "ALTER TABLE campaign_contacts ADD COLUMN dial_pbx TEXT",
            "ALTER TABLE campaign_contacts ADD COLUMN dial_call_id TEXT",
            "ALTER TABLE campaign_contacts ADD COLUMN dial_agent TEXT",
            "ALTER TABLE callbacks ADD COLUMN dial_owner TEXT",
            "ALTER TABLE callbacks ADD COLUMN dial_pbx TEXT",
            "ALTER TABLE callbacks ADD COLUMN dial_call_id TEXT",
            "ALTER TABLE callbacks ADD COLUMN dial_agent TEXT",
            # Numbers being dialled now by any instance: one row per number, so two
            # dialers (callbacks and campaigns, on any instance) never call one
            # number at once. Taken in the claim's transaction, freed with its result.
            """CREATE TABLE dialling_numbers (
            number TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            pbx TEXT NOT NULL,
            call_id TEXT NOT NULL,
            since {real} NOT NULL
        )""",
        ),
    ),
)

# The newest version this code knows (migrations of other ranges may be older).
LATEST = max(m.version for m in MIGRATIONS)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {real} NOT NULL
)"""


def render(statement: str, types: dict[str, str]) -> str:
    return statement.format_map(types)


async def migrate(store: "SqlStore", migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the database up to the latest version; returns the versions applied.

    Refuses a database newer than this code: running on columns we do not
    know could lose data silently.
    """
    applied: list[int] = []
    known = max((m.version for m in migrations), default=0)
    for migration in sorted(migrations, key=lambda m: m.version):
        async with store.transaction() as tx:
            await store.lock_for_migration(tx)
            await tx.execute(render(_VERSION_TABLE, store.TYPES))
            rows = await tx.fetch("SELECT version FROM schema_version")
            have = {int(r["version"]) for r in rows}
            newest = max(have, default=0)
            if newest > known:
                raise StoreError(
                    f"the outcomes database is at schema version {newest}, newer "
                    f"than this code knows ({known}): upgrade the service"
                )
            if migration.version in have:
                continue
            for statement in migration.statements:
                await tx.execute(render(statement, store.TYPES))
            await tx.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.description, time.time()],
            )
            applied.append(migration.version)
            log.info(
                "outcomes store: applied schema migration %d (%s)",
                migration.version,
                migration.description,
            )
    return applied
