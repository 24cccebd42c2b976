#!/bin/sh
# bench/count.sh [SIZE] — the `oairl count` benchmark of issue 2.
#
# Builds bench/gen and writes a realistic Batch API file of SIZE (default
# 100MB) into bench/out/ (gitignored), then measures, side by side:
#   - oairl count --format jsonl (the built binary, all cores);
#   - OpenAI's reference tokenizer: npm tiktoken@1.0.22 (Rust core as WASM),
#     installed into bench/out/node_modules, run by bench/ref/count.js with
#     the same cookbook recipe, streaming;
#   - a one-goroutine pkoukk/tiktoken-go baseline (bench/baseline, same
#     recipe through tokens.Counter with Options.Reference).
# For each: wall time, CPU time, MB/s, peak RSS (/usr/bin/time -v), and the
# median ratio of oairl's wall time to the reference's over ROUNDS rounds;
# then per-line exactness against the reference, and the wall time of a
# one-line file. Needs go, node/npm (for the reference), /usr/bin/time.
set -eu
cd "$(dirname "$0")/.."
OUT=bench/out
SIZE=${1:-100MB}
mkdir -p "$OUT"

echo "== build"
go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/baseline" ./bench/baseline
if go build -o "$OUT/oairl" . 2>"$OUT/build.log"; then
	HAVE_OAIRL=1
else
	HAVE_OAIRL=0
	echo "warning: oairl does not build (see $OUT/build.log); measuring 'baseline count -impl fast -workers $(nproc)' in its place"
fi

FILE="$OUT/bench-$SIZE.jsonl"
if [ ! -s "$FILE" ]; then
	echo "== generate $FILE"
	"$OUT/gen" -o "$FILE" -size "$SIZE"
fi
BYTES=$(wc -c <"$FILE")
LINES=$(wc -l <"$FILE")
echo "input: $FILE, $BYTES bytes, $LINES lines"

HAVE_NODE=0
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [ ! -d "$OUT/node_modules/tiktoken" ]; then
		echo "== npm install tiktoken@1.0.22"
		npm install --prefix "$OUT" --no-save --no-audit --no-fund --silent tiktoken@1.0.22
	fi
	cp bench/ref/count.js "$OUT/ref-count.js"
	HAVE_NODE=1
else
	echo "warning: node/npm not found; no reference run"
fi

# measure NAME CMD... : runs CMD under /usr/bin/time -v, prints a row and
# sets SECS (wall) for the caller.
SECS=""
measure() {
	name=$1
	shift
	/usr/bin/time -v -o "$OUT/time.txt" "$@" || echo "  ($name exited $?)"
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/time.txt")
	SECS=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
	cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$OUT/time.txt")
	rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$OUT/time.txt")
	mbs=$(awk -v b="$BYTES" -v s="$SECS" 'BEGIN { printf "%.2f", b/1048576/s }')
	printf "| %-22s | %8.2f s | %8.2f s | %7s MB/s | %5s MiB |\n" "$name" "$SECS" "$cpu" "$mbs" "$rss" | tee -a "$OUT/results.md"
}

# The machine's 2 cores are shared: runs are interleaved (reference, oairl,
# reference, oairl, ...) and the ratio is the median of the per-round ratios.
ROUNDS=${ROUNDS:-3}
: >"$OUT/results.md"
echo "== measure ($(nproc) cores, $ROUNDS rounds, load average: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/results.md"
echo "| run | wall | CPU (user+sys) | throughput | peak RSS |" | tee -a "$OUT/results.md"
echo "|---|---|---|---|---|" | tee -a "$OUT/results.md"
RATIOS=""
if [ $HAVE_OAIRL = 1 ]; then
	OAIRL_COUNTS="$OUT/oairl.jsonl"
	run_oairl() { measure "oairl count" sh -c "\"$OUT/oairl\" count --no-progress --format jsonl \"$FILE\" >\"$OUT/oairl.jsonl\" 2>\"$OUT/oairl.stderr\"; test \$? -le 3"; }
else
	OAIRL_COUNTS="$OUT/fast.tsv"
	run_oairl() { measure "tokens ($(nproc) workers)" "$OUT/baseline" count -impl fast -workers "$(nproc)" -o "$OUT/fast.tsv" "$FILE"; }
fi
i=0
while [ $i -lt "$ROUNDS" ]; do
	i=$((i + 1))
	if [ $HAVE_NODE = 1 ]; then
		measure reference node "$OUT/ref-count.js" "$FILE" "$OUT/reference.tsv"
		ref=$SECS
	fi
	run_oairl
	[ $HAVE_NODE = 1 ] && RATIOS="$RATIOS $(awk -v r="$ref" -v s="$SECS" 'BEGIN { printf "%.3f", r/s }')"
done
measure "pkoukk, 1 goroutine" "$OUT/baseline" count -impl pkoukk -workers 1 -o "$OUT/pkoukk.tsv" "$FILE"
if [ -n "$RATIOS" ]; then
	med=$(echo $RATIOS | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "oairl vs reference (median of per-round wall-time ratios:$RATIOS): ${med}x" | tee -a "$OUT/results.md"
fi

echo "== exactness (per line, against the reference)"
if [ $HAVE_NODE = 1 ]; then
	printf "oairl:  " | tee -a "$OUT/results.md"
	"$OUT/baseline" compare "$OUT/reference.tsv" "$OAIRL_COUNTS" | tee -a "$OUT/results.md" || true
	printf "pkoukk: " | tee -a "$OUT/results.md"
	"$OUT/baseline" compare "$OUT/reference.tsv" "$OUT/pkoukk.tsv" | tee -a "$OUT/results.md" || true
fi

if [ $HAVE_OAIRL = 1 ]; then
	echo "== one-line file (lazy encoding load), best of 5"
	head -n 1 "$FILE" >"$OUT/one.jsonl"
	best=""
	for i in 1 2 3 4 5; do
		/usr/bin/time -f %e -o "$OUT/one.time" "$OUT/oairl" count --no-progress "$OUT/one.jsonl" >/dev/null 2>&1 || true
		t=$(cat "$OUT/one.time" | tail -n 1)
		best=$(awk -v a="$best" -v b="$t" 'BEGIN { if (a == "" || b < a) print b; else print a }')
	done
	echo "one-line file: ${best} s wall" | tee -a "$OUT/results.md"
fi
echo "results: $OUT/results.md"
