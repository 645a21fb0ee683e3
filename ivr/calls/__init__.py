"""Calls: the call model (model.py), AMI events -> calls (tracker.py), and the
typed call events other stages subscribe to (events.py, bus.py)."""
