#!/bin/sh
# entrypoint.sh - start Asterisk in the container on the admins' dialplans/.
#
# Runs as the asterisk user (the image never runs anything as root). Steps:
#
# 1. Secrets, all from the environment, all required: IVR_AMI_SECRET (the AMI
#    password of user "ivr"; the ivr service logs in with the same one) and
#    SIP_PASSWORD_<user> for every SIP user that has a password in pjsip.conf
#    (SIP_PASSWORD_1001 ... SIP_PASSWORD_customer). A missing, short (under 12
#    characters) or sample value ("agent1001", "change-me", "pick-one" ...)
#    stops the container with a message saying what to set.
# 2. The configuration: /etc/asterisk (a volume) gets the image's copy of
#    dialplans/*.conf at the first start and whenever the image was rebuilt
#    from other files. Otherwise it keeps what is there, which may be a newer
#    set that an admin installed with `ivr pbx apply` on the running PBX.
# 3. Per-run settings, written into /etc/asterisk (the same edits `ivr pbx up`
#    makes in its sandbox, ivr/pbx/sandbox.py):
#      manager.conf   [ivr] secret <- $IVR_AMI_SECRET
#                     [general] bindaddr <- 0.0.0.0 (the service reaches AMI over
#                     the compose network; the [ivr] ACL still permits 127/8 and
#                     172.16/12 only, and compose does not publish 5038)
#      pjsip.conf     every password <- $SIP_PASSWORD_<its section>
#                     [trunk-identify] match <- the host of $TRUNK_PEER, if set
#                     (calls are taken as the carrier's only from that address)
#                     [transport-udp] external_media_address and
#                     external_signaling_address <- $SIP_EXTERNAL_ADDRESS, if set
#      extensions.conf [globals] TRUNK_PEER <- $TRUNK_PEER, if set
#      rtp.conf       [general] rtpstart/rtpend <- $RTP_START/$RTP_END, if set
# 4. Runs the command given (by default Asterisk in the foreground).
#
# ASTERISK_ETC (default /etc/asterisk) and IVR_IMAGE_DIALPLANS exist so the
# steps can be tried on copies: ASTERISK_ETC=/tmp/x ... entrypoint.sh true
set -eu

etc=${ASTERISK_ETC:-/etc/asterisk}
image_set=${IVR_IMAGE_DIALPLANS:-/usr/local/share/ivr/dialplans}

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

# check_secret NAME VALUE: refuse a value that is missing, short, a sample
# one, or that cannot be written into an Asterisk .conf line.
check_secret() {
	case $2 in
	"")
		return 1 ;;
	esac
	if [ "${#2}" -lt 12 ]; then
		die "$1 is too short (${#2} characters): use at least 12, e.g. $1=\$(openssl rand -hex 16)"
	fi
	lower=$(printf '%s' "$2" | tr 'A-Z' 'a-z')
	case $lower in
	*change-me* | *changeme* | *pick-one* | *set-by-installer* | *example* | *password*)
		die "$1 is a sample value: generate one, e.g. $1=\$(openssl rand -hex 16)" ;;
	esac
	nl='
'
	case $2 in
	*"$nl"* | *";"* | " "* | *" " | "	"* | *"	")
		die "$1 cannot be written into an Asterisk .conf file: it must not contain
';' or a line break, nor start or end with a space or tab. Choose another one." ;;
	esac
	return 0
}

# sip_users FILE: the sections of pjsip.conf that hold a password, one a line.
sip_users() {
	awk '
		/^[ \t]*\[[^]]+\]/ { name = $0; sub(/^[ \t]*\[/, "", name); sub(/\].*$/, "", name) }
		/^[ \t]*password[ \t]*=/ { print name }
	' "$1" | sort -u
}

# set_passwords FILE: every "password = ..." line gets $SIP_PASSWORD_<section>
# (the values reach awk through the environment, as in set_option).
set_passwords() {
	tmp="$1.entrypoint.$$"
	(umask 077 && awk '
		/^[ \t]*\[[^]]+\]/ { name = $0; sub(/^[ \t]*\[/, "", name); sub(/\].*$/, "", name) }
		/^[ \t]*password[ \t]*=/ {
			match($0, /^[ \t]*password[ \t]*=[ \t]*/)
			print substr($0, 1, RLENGTH) ENVIRON["SIP_PASSWORD_" name]
			next
		}
		{ print }
	' "$1" >"$tmp")
	cat "$tmp" >"$1"
	rm -f "$tmp"
}

# ------------------------------------------------------------ 1. secrets
if ! check_secret IVR_AMI_SECRET "${IVR_AMI_SECRET:-}"; then
	die "IVR_AMI_SECRET is not set. It is the AMI password of user \"ivr\" and the
ivr service logs in with the same one. docker/README.md shows how to generate
every secret into docker/.env; or docker run -e IVR_AMI_SECRET=... ."
fi

# ------------------------------------------------------------ 2. the configuration
[ -f "$image_set/pjsip.conf" ] || die "$image_set holds no dialplans (broken image?)"
[ -d "$etc" ] && [ -w "$etc" ] || die "$etc is missing or not writable by $(id -un)"
wanted=$(cat "$image_set/.image-set" 2>/dev/null || echo unknown)
if [ "$(cat "$etc/.image-set" 2>/dev/null || true)" != "$wanted" ]; then
	rm -f "$etc"/*.conf
	cp "$image_set"/*.conf "$etc"/
	printf '%s\n' '; written by docker/entrypoint.sh' '[options]' 'maxcalls = 500' \
		>"$etc/asterisk.conf"
	echo "$wanted" >"$etc/.image-set"
	echo "entrypoint: installed the image's dialplans into $etc"
fi
chmod 640 "$etc"/*.conf

missing=""
for user in $(sip_users "$etc/pjsip.conf"); do
	value=$(printenv "SIP_PASSWORD_$user" || true)
	if ! check_secret "SIP_PASSWORD_$user" "$value"; then
		missing="$missing SIP_PASSWORD_$user"
	fi
done
if [ -n "$missing" ]; then
	die "no SIP password for:$missing.
Every SIP user of pjsip.conf needs one from the environment (at least 12
characters); docker/README.md shows how to generate them into docker/.env."
fi

# ------------------------------------------------------------ 3. per-run settings
set_option "$etc/manager.conf" ivr secret "$IVR_AMI_SECRET"
set_option "$etc/manager.conf" general bindaddr 0.0.0.0
set_passwords "$etc/pjsip.conf"

if [ -n "${TRUNK_PEER:-}" ]; then
	set_option "$etc/extensions.conf" globals TRUNK_PEER "$TRUNK_PEER"
	set_option "$etc/pjsip.conf" trunk-identify match "${TRUNK_PEER%:*}"
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

# ------------------------------------------------------------ 4. run
if [ "$#" -eq 0 ]; then
	set -- asterisk -f -vvv
fi
exec "$@"
