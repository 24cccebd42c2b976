#!/bin/sh
# bench/batch_split.sh [SIZE] — how long `oairl batch submit` takes to
# validate and split a Batch-sized input (default 200MB), against merely
# reading it (issue 6).
#
# Generates bench/out/bench-SIZE.jsonl with bench/gen (realistic chat
# requests over five models; see bench/README.md), builds oairl, then
# times, each ROUNDS times (default 3), with /usr/bin/time:
#   read      cat FILE > /dev/null                  (the floor: page cache)
#   count     oairl count --format json FILE        (validation + token counts)
#   submit    oairl batch submit FILE --dry-run     (validation + counts +
#             splitting into shard files + the order file + SHA-256)
# and prints wall seconds, CPU seconds (user+sys) and peak RSS for each.
# split cost = submit - count. Nothing is uploaded (--dry-run); shards are
# written under bench/out/tmp and removed. Needs go and /usr/bin/time.
set -eu
cd "$(dirname "$0")/.."
OUT=bench/out
SIZE=${1:-200MB}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT/tmp"

go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/oairl" .
FILE="$OUT/bench-$SIZE.jsonl"
if [ ! -s "$FILE" ]; then
	"$OUT/gen" -o "$FILE" -size "$SIZE"
fi
BYTES=$(wc -c <"$FILE")
LINES=$(wc -l <"$FILE")
echo "input: $FILE, $BYTES bytes, $LINES lines; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$FILE" >/dev/null # warm the page cache

measure() { # name command...
	name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$OUT/batch_split.time" "$@" >/dev/null 2>"$OUT/batch_split.stderr" || true
	read -r wall user sys rss <"$OUT/batch_split.time"
	printf '%-8s wall %6.2f s  cpu %6.2f s  %7.1f MB/s  peak RSS %4d MB\n' "$name" "$wall" \
		"$(echo "$user + $sys" | bc)" "$(echo "$BYTES / 1048576 / $wall" | bc -l)" "$((rss / 1024))"
}

i=1
while [ "$i" -le "$ROUNDS" ]; do
	echo "== round $i"
	measure read cat "$FILE"
	measure count "$OUT/oairl" count --format json "$FILE"
	TMPDIR="$PWD/$OUT/tmp" measure submit "$OUT/oairl" batch submit "$FILE" --dry-run --tier 5
	i=$((i + 1))
done
echo "== shards (last run)"
TMPDIR="$PWD/$OUT/tmp" "$OUT/oairl" batch submit "$FILE" --dry-run --tier 5 2>"$OUT/batch_split.stderr" | awk -F'\t' '{printf "shard %s %s %s requests %s bytes %s tokens\n", $1, $3, $4, $5, $6}'
