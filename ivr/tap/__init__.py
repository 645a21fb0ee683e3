"""Live audio taps: each party of a call streamed to us over AudioSocket.

- frames.py: the AudioSocket wire format
- server.py: TapServer, the asyncio server the taps connect to
- taps.py: TapManager, which asks Asterisk for the taps (AMI Originate of
  ChanSpy on each leg) and keeps them up while the call lasts
"""

from .frames import Frame, FrameDecoder, FrameError, TruncatedFrame, encode_frame, read_frame
from .server import AGENT, CUSTOMER, StreamSink, TapRegistry, TapServer, TapStream, TapTarget
from .taps import TapManager, TapStatus

__all__ = [
    "Frame",
    "FrameDecoder",
    "FrameError",
    "TruncatedFrame",
    "encode_frame",
    "read_frame",
    "AGENT",
    "CUSTOMER",
    "StreamSink",
    "TapRegistry",
    "TapServer",
    "TapStream",
    "TapTarget",
    "TapManager",
    "TapStatus",
]
