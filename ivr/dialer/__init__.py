"""Dialers: callbacks that come due and outbound campaigns, placed for free agents.

pool = AgentPool(agents_for, is_busy)        # shared: one agent, one dialer call
guard = NumberGuard(live_numbers)            # shared: one number, one call at a time
callbacks = CallbackDialer(store, ami, agents=pool, guard=guard)
campaigns = CampaignDialer(store, ami, agents=pool, guard=guard)
bus.subscribe(callbacks.on_call_event); bus.subscribe(campaigns.on_call_event)
await callbacks.start(); await campaigns.start()   # ... await .stop()
"""

from .callbacks import CallbackDialer
from .campaigns import CampaignDialer, dnc_on_wrapup, import_campaign
from .common import AgentPool, CallWatcher, NumberGuard, busy_agents, busy_unless
from .pacing import CallingHours, Pacer

__all__ = [
    "AgentPool",
    "CallWatcher",
    "CallbackDialer",
    "CallingHours",
    "CampaignDialer",
    "NumberGuard",
    "Pacer",
    "busy_agents",
    "busy_unless",
    "dnc_on_wrapup",
    "import_campaign",
]
