#!/bin/sh
# render-prompts.sh SRC DST - the IVR prompts as Asterisk plays them ("ivr/NAME").
#
# The same rule as `ivr pbx up` (ivr/pbx/sandbox.py): for each SRC/NAME.txt,
# SRC/NAME.wav is used as given if it exists, else the text is spoken by
# espeak-ng and converted by sox to DST/NAME.wav, 8 kHz mono 16-bit.
# Used at image build time (docker/Dockerfile); any failure fails the build.
set -eu

[ "$#" -eq 2 ] || { echo "usage: $0 SRC DST" >&2; exit 2; }
src=$1
dst=$2
mkdir -p "$dst"
count=0
for txt in "$src"/*.txt; do
	[ -f "$txt" ] || continue
	name=$(basename "$txt" .txt)
	out="$dst/$name.wav"
	if [ -f "$src/$name.wav" ]; then
		cp "$src/$name.wav" "$out"
		echo "prompt ivr/$name: $name.wav as given"
	else
		raw="$dst/$name.espeak.wav"
		espeak-ng -s 150 -w "$raw" -f "$txt"
		sox "$raw" -r 8000 -c 1 -b 16 "$out"
		rm -f "$raw"
		echo "prompt ivr/$name: spoken from $name.txt"
	fi
	count=$((count + 1))
done
echo "$count prompt(s) in $dst"
