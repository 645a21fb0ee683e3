#!/bin/sh
# entrypoint.sh - start Asterisk in the container on the admins' dialplans/.
#
# The image holds dialplans/*.conf as written (see docker/Dockerfile). Like
# `ivr pbx up` (ivr/pbx/sandbox.py), this only changes what differs per run:
#   manager.conf   [ivr] secret      <- $IVR_AMI_SECRET (required)
#                  [general] bindaddr <- 0.0.0.0 (the service reaches AMI over
#                                       the compose network; the [ivr] ACL
#                                       still permits 127/8 and 172.16/12 only)
#   extensions.conf [globals] TRUNK_PEER <- $TRUNK_PEER, if set
#   rtp.conf       [general] rtpstart/rtpend <- $RTP_START/$RTP_END, if set
#                  (to match the UDP range the container publishes)
#   pjsip.conf     [transport-udp] external_media_address and
#                  external_signaling_address <- $SIP_EXTERNAL_ADDRESS, if set
#                  (the address phones reach the Docker host at)
# then runs the command given (by default Asterisk in the foreground).
#
# ASTERISK_ETC (default /etc/asterisk) exists so the edits can be tried on a
# copy of the files: ASTERISK_ETC=/tmp/x IVR_AMI_SECRET=s entrypoint.sh true
set -eu

etc=${ASTERISK_ETC:-/etc/asterisk}

die() {
	echo "entrypoint: $*" >&2
	exit 1
}

# set_option FILE SECTION KEY VALUE
# Set KEY in the first [SECTION] of an Asterisk .conf file, as
# ivr/pbx/asterisk_conf.py set_option does: replace the first "KEY = ..." (or
# "KEY => ...") line of that section, keeping its trailing ;comment, or add
# "KEY = VALUE" at the end of the section. Other sections are left alone.
# Values go to awk through the environment, so backslashes stay as they are.
set_option() {
	[ -f "$1" ] || die "$1 is missing"
	tmp="$1.entrypoint.$$"
	# umask 077: the copy may hold the AMI password; only root reads it.
	if ! (umask 077 && SET_SECTION=$2 SET_KEY=$3 SET_VALUE=$4 awk '
		BEGIN {
			want = ENVIRON["SET_SECTION"]; key = tolower(ENVIRON["SET_KEY"])
			value = ENVIRON["SET_VALUE"]; inside = 0; found = 0; done = 0; nblank = 0
		}
		function flush(   i) {
			for (i = 1; i <= nblank; i++) print blank[i]
			nblank = 0
		}
		function append() {
			print ENVIRON["SET_KEY"] " = " value
			done = 1
		}
		/^[ \t]*\[[^]]+\]/ {
			if (inside && !done) append()
			flush()
			name = $0
			sub(/^[ \t]*\[/, "", name); sub(/\].*$/, "", name)
			gsub(/^[ \t]+|[ \t]+$/, "", name)
			inside = (!found && name == want)
			if (inside) found = 1
			print
			next
		}
		inside && !done && /^[ \t]*$/ { blank[++nblank] = $0; next }
		inside && !done {
			flush()
			line = $0
			match(line, /^[ \t]*/); lead = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
			if (match(rest, /^[A-Za-z_][A-Za-z0-9_-]*/)) {
				k = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
				if (tolower(k) == key && match(rest, /^[ \t]*=>?[ \t]*/)) {
					sep = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
					comment = ""
					if ((c = index(rest, ";")) > 0) {
						comment = substr(rest, c); rest = substr(rest, 1, c - 1)
						match(rest, /[ \t]*$/); comment = substr(rest, RSTART) comment
					}
					print lead k sep value comment
					done = 1
					next
				}
			}
			print
			next
		}
		{ print }
		END {
			if (inside && !done) append()
			flush()
			if (!found) exit 3
		}
	' "$1" >"$tmp"); then
		rm -f "$tmp"
		die "$1: cannot set $3: no [$2] section"
	fi
	# Write back in place: the file keeps its owner and mode (manager.conf 640).
	cat "$tmp" >"$1"
	rm -f "$tmp"
}

# ------------------------------------------------------------ the AMI password
secret=${IVR_AMI_SECRET:-}
if [ -z "$secret" ]; then
	die "IVR_AMI_SECRET is not set. It is the AMI password of user \"ivr\" and the
ivr service logs in with the same one. Start with, for example:
  IVR_AMI_SECRET=\$(openssl rand -hex 16) docker compose -f docker/compose.yaml up --build
or docker run -e IVR_AMI_SECRET=... (or put IVR_AMI_SECRET=... in docker/.env)."
fi
nl='
'
case $secret in
*"$nl"* | *";"* | " "* | *" " | "	"* | *"	")
	die "IVR_AMI_SECRET cannot be written into manager.conf: it must not contain
';' or a line break, nor start or end with a space or tab. Choose another one."
	;;
esac

set_option "$etc/manager.conf" ivr secret "$secret"
set_option "$etc/manager.conf" general bindaddr 0.0.0.0

# ------------------------------------------------------------ optional settings
if [ -n "${TRUNK_PEER:-}" ]; then
	set_option "$etc/extensions.conf" globals TRUNK_PEER "$TRUNK_PEER"
fi
if [ -n "${RTP_START:-}" ]; then
	set_option "$etc/rtp.conf" general rtpstart "$RTP_START"
fi
if [ -n "${RTP_END:-}" ]; then
	set_option "$etc/rtp.conf" general rtpend "$RTP_END"
fi
if [ -n "${SIP_EXTERNAL_ADDRESS:-}" ]; then
	set_option "$etc/pjsip.conf" transport-udp external_media_address "$SIP_EXTERNAL_ADDRESS"
	set_option "$etc/pjsip.conf" transport-udp external_signaling_address "$SIP_EXTERNAL_ADDRESS"
fi

# ------------------------------------------------------------ run
# /run is empty in a new container; Asterisk (-U asterisk) needs its run folder.
if [ "$etc" = /etc/asterisk ] && id asterisk >/dev/null 2>&1; then
	mkdir -p /var/run/asterisk
	chown asterisk:asterisk /var/run/asterisk
fi

if [ "$#" -eq 0 ]; then
	set -- asterisk -f -U asterisk -G asterisk -vvv
fi
exec "$@"
