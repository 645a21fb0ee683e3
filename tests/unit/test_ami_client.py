
from ivr.ami.client import _Protocol


class _Factory:
    def __init__(self):
        self.events = []

    def dispatch(self, message):
        self.events.append(message)


def test_utf8_character_split_across_reads_survives():
    proto = _Protocol()
    proto.connection_made(transport=None)
    proto.factory = _Factory()
    proto.encoding = "utf-8"
    raw = "Event: Newchannel\r\nCallerIDName: Kovács Béla\r\n\r\n".encode()
    cut = raw.index("á".encode()) + 1          # inside the two bytes of "á"
    proto.data_received(raw[:cut])
    proto.data_received(raw[cut:])
    assert proto.factory.events[0]["CallerIDName"] == "Kovács Béla"
