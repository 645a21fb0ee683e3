"""The web console: agent and supervisor pages, pushed live over WebSockets.

app.py        the aiohttp application: routes, handlers, the consoles' socket
view.py       what the consoles show of each call (cards, their coaching, the board)
messages.py   every WebSocket message, defined once
hub.py        who is connected; pushing without ever blocking
auth.py, guard.py, passwords.py, policy.py, throttle.py, inputs.py
              sign-in and sessions, the guard on every request, input checking
reports.py    supervisors' reports and the call export
campaigns.py  campaigns and the do-not-call list
shift.py      agent states and the wallboard
static/       the pages (agent.js and supervisor.js follow messages.py)
"""
