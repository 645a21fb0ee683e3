# The SIPp phones live in the package (the demo uses them too): ivr/pbx/phones.py.
from ivr.pbx.phones import *  # noqa: F401,F403
from ivr.pbx.phones import speech_ulaw, free_port, stop_all  # noqa: F401
