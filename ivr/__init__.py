"""ivr: live call scripts and speech coaching for Asterisk call centres."""

__version__ = "0.1.0"
