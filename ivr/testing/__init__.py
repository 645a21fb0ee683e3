"""The simulated world around the service: SIPp phones that call through the
PBX, synthetic speakers, and a probe of which phrases a model can hear.

phones.py         SIPp agents and customers (scenarios in sipp/)
speech.py         the one text-to-speech helper (espeak-ng through a phone line)
pronunciation.py  Korean as people pronounce it, for espeak-ng
probe.py          which phrases a model recognises (``python -m ivr.testing.probe``)

Used by the tests, the benchmarks and ``ivr demo`` (whose agent and customer
are such phones). It ships inside the package, not in tests/, because the demo
is one of the README's two commands and must run from an installed package;
the service itself never imports it (tests/unit/test_layout.py checks that).
"""
