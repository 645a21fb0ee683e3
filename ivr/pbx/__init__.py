"""The sandbox PBX: Asterisk 22 from Debian sid in a chroot, driven by dialplans/."""
