"""Every subject the instances use, in one place (see ivr/cluster/roles.py).

Per PBX and call:  ivr.call.<pbx>.<call>        call events (controllers -> all)
                   ivr.pbx.<pbx>.transfer        a console's transfer (request)
                   ivr.pbx.<pbx>.queue           queue sign-in, pauses of an agent (request)
                   ivr.pbx.<pbx>.ami             queue and member events (agent states, wallboard)
                   ivr.pbx.<pbx>.action          a web front's listen-in or consult transfer:
                                                 the AMI action, made by its controller (request)
Per agent:         ivr.agent.<login>.console     console messages: coaching, taps
                   ivr.agent.<login>.mark        checklist marks (both ways)
                   ivr.agent.<login>.wrapped     a wrap-up saved (web -> controllers)
Instances:         ivr.presence                  consoles open on each web front
                   ivr.calls.live                live calls of every controller (request)
                   ivr.calls.snapshot            a controller's live calls (after an outage)
                   ivr.departments               the PBXs' queues (request)
                   ivr.queues.status             queue status of every controller (request)
Speech workers:    ivr.speech.workers            each worker's address and load (heartbeat)
                   ivr.speech.worker.<worker>    a controller places a tap there (request),
                                                 forgets, closes, ends a call's streams
                   ivr.speech.results.<instance> what a worker hears, and its taps' connections,
                                                 for the controller that placed the taps
"""

from .base import token

CALLS = "ivr.call.>"
AGENTS_CONSOLE = "ivr.agent.*.console"
AGENTS_MARK = "ivr.agent.*.mark"
AGENTS_WRAPPED = "ivr.agent.*.wrapped"
PRESENCE = "ivr.presence"
PBX_AMI = "ivr.pbx.*.ami"
QUEUE_STATUS = "ivr.queues.status"
LIVE_CALLS = "ivr.calls.live"
SNAPSHOTS = "ivr.calls.snapshot"
DEPARTMENTS = "ivr.departments"
SPEECH_WORKERS = "ivr.speech.workers"


def call(pbx: str, call_id: str) -> str:
    return f"ivr.call.{token(pbx or 'default')}.{token(call_id)}"


def agent(login: str, what: str) -> str:
    return f"ivr.agent.{token(login)}.{what}"


def pbx_ami(pbx: str) -> str:
    return f"ivr.pbx.{token(pbx or 'default')}.ami"


def queue_action(pbx: str) -> str:
    return f"ivr.pbx.{token(pbx or 'default')}.queue"


def pbx_action(pbx: str) -> str:
    return f"ivr.pbx.{token(pbx or 'default')}.action"


def transfer(pbx: str) -> str:
    return f"ivr.pbx.{token(pbx or 'default')}.transfer"


def login_of(subject: str) -> str:
    """ivr.agent.<login>.x -> <login> (as a token: logins are letters and digits)."""
    return subject.split(".")[2]


def speech_worker(worker: str) -> str:
    return f"ivr.speech.worker.{token(worker)}"


def speech_results(instance: str) -> str:
    return f"ivr.speech.results.{token(instance)}"
