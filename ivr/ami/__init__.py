"""Talking to Asterisk: the AMI connection (client.py) and its messages (message.py)."""
