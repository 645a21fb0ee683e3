"""Agents on shift: their groups (which projects and queues they serve) and
their states (ready, not ready with a reason, ringing, on a call, wrap-up,
offline), owned by Asterisk's queues and followed from its events.

    groups = AgentGroups(settings.groups)                 # groups.py
    states = AgentStates(groups, PbxActions(ami), settings.shift, on_change=...)
    ami events -> states.on_ami_event; call events -> states.on_call_event
    after every AMI login: states.resync(await actions.queue_status())
    states.ready_agents("acme-support")                    # for the dialers
"""

from .groups import AgentGroups
from .model import AgentState, AgentStatus, StateChange
from .states import AgentStates, StateError

__all__ = ["AgentGroups", "AgentState", "AgentStates", "AgentStatus", "StateChange", "StateError"]
