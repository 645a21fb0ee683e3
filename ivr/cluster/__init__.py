"""Beyond one machine: several PBXs and service instances on one PostgreSQL store.

    leases = create_leases(store_url, instance)       # lease.py: who follows which PBX
    links = [PbxLink(pbx, bus.publish) for pbx in settings.all_pbxs]   # pbx.py
    controller = Controller(links, leases)            # controller.py: take, poll, take over
    settler = ClaimSettler(store, instance, ...)      # reconcile.py: dead owners' dialler claims
    roles.py          controllers and web fronts over the bus (calls, coaching, marks, requests)
    speech_worker.py  `--role speech`: taps in, what was heard out, for the controllers
    speech_pool.py    a controller's speech workers: taps placed by load, moved off dead ones

One machine (SQLite) needs none of it: every PBX is simply followed.
"""

from .controller import Controller
from .lease import LocalLeases, PgLeases, create_leases, new_instance_id
from .pbx import AmiRouter, PbxLink
from .reconcile import ClaimSettler

__all__ = [
    "AmiRouter",
    "ClaimSettler",
    "Controller",
    "LocalLeases",
    "PbxLink",
    "PgLeases",
    "create_leases",
    "new_instance_id",
]
