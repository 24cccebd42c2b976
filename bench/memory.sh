#!/bin/sh
# bench/memory.sh: peak memory and throughput of `oairl run` and `oairl batch`
# on large inputs (issue 11). A benchmark, not a test: it prints figures and
# asserts nothing.
#
#   sh bench/memory.sh                    # SIZES="300000 1000000", OLD=a243291 THROUGHPUT_N=100000
#   SIZES=300000 BATCH=0 OLD= KILLS=0 sh bench/memory.sh   # SIZES= skips the size runs
#
# For each size N: bench/gen -requests N writes N short chat requests
# (~370 bytes each); `oairl run` sends them to `oairl sim --tier none` (no
# latency, no limits; --rpm/--tpm high so nothing waits); then the same
# command again (the rerun that sends nothing). Peak RSS, wall and CPU come
# from /usr/bin/time -v; a Python check counts the custom_ids of the results
# (each exactly once, with a 200).
# OLD (a commit, default a243291, the last one before streaming; empty to
# skip): builds that commit's oairl and runs old and new side by side on
# THROUGHPUT_N requests, each against its own fresh simulator.
# KILLS=3 (default): a run over KILL_N (300,000) requests is killed with
# SIGKILL KILLS times at random points (5-40 s in), then run to the end:
# the check counts each custom_id exactly once.
# BATCH=1 (default): a ~200 MB file of 200,000 requests of ~1 KB (4 shards:
# the Batch API's 50,000 requests per batch) through `oairl batch submit
# --wait` against `oairl sim --batch-duration 1s`, then `oairl batch
# results`, with their peak RSS.
# Everything goes to bench/out/memory/.
set -eu
cd "$(dirname "$0")/.."
SIZES=${SIZES-"300000 1000000"}
OLD=${OLD-a243291}
THROUGHPUT_N=${THROUGHPUT_N:-100000}
BATCH=${BATCH:-1}
KILLS=${KILLS:-3}
KILL_N=${KILL_N:-300000}
OUT=bench/out/memory
rm -rf "$OUT"
mkdir -p "$OUT"
export OPENAI_API_KEY=sk-bench-not-a-real-key-000000
export OAIRL_STATE_DIR="$OUT/state"

echo "building oairl and bench/gen" >&2
go build -o "$OUT/oairl" .
go build -o "$OUT/gen" ./bench/gen
if [ -n "$OLD" ]; then
	mkdir -p "$OUT/old-src"
	git archive "$OLD" | tar -x -C "$OUT/old-src"
	(cd "$OUT/old-src" && go build -o ../oairl-old .)
fi

start_sim() { # start_sim NAME ARGS...: sets SIM_PID and OPENAI_BASE_URL
	name=$1
	shift
	"$OUT/oairl" sim --addr 127.0.0.1:0 "$@" >"$OUT/$name.url" 2>"$OUT/$name.sim.stderr" &
	SIM_PID=$!
	i=0
	while [ ! -s "$OUT/$name.url" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	OPENAI_BASE_URL=$(head -1 "$OUT/$name.url")
	export OPENAI_BASE_URL
}
stop_sim() {
	kill -INT "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
}
timed() { # timed NAME CMD...: /usr/bin/time -v into $OUT/NAME.time
	name=$1
	shift
	/usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" || echo "$name: exit $?" >&2
}
figures() { # figures NAME: "wall_s cpu_s maxrss_MB"
	python3 - "$OUT/$1.time" <<'EOF'
import sys, re
t = open(sys.argv[1]).read()
def f(k):
    return re.search(re.escape(k) + r":\s*(.+)", t).group(1).strip()
w = f("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
cpu = float(f("User time (seconds)")) + float(f("System time (seconds)"))
print(f"{wall:.1f} {cpu:.1f} {int(f('Maximum resident set size (kbytes)')) / 1024:.0f}")
EOF
}
check() { # check RESULTS N: custom_ids r0..rN-1 each exactly once with a 200
	python3 - "$1" "$2" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
seen = {}
ok = 0
for l in open(path):
    r = json.loads(l)
    seen[r["custom_id"]] = seen.get(r["custom_id"], 0) + 1
    if r.get("error") is None and r["response"]["status_code"] == 200:
        ok += 1
want = {f"r{i}" for i in range(n)}
print(f"{len(seen)} ids, {ok} with 200, missing {len(want - set(seen))}, extra {len(set(seen) - want)}, duplicated {sum(1 for v in seen.values() if v > 1)}")
EOF
}
RUNFLAGS="--rpm 100000000 --tpm 100000000000 --max-concurrent 50 --format json --no-progress"

printf '%-34s %8s %8s %8s  %s\n' "what" "wall s" "CPU s" "RSS MB" "check" >"$OUT/figures.txt"
row() { printf '%-34s %8s %8s %8s  %s\n' "$1" $(figures "$2") "$3" >>"$OUT/figures.txt"; }

if [ -n "$OLD" ]; then
	echo "throughput: $THROUGHPUT_N requests, $OLD vs this tree" >&2
	"$OUT/gen" -o "$OUT/t.jsonl" -requests "$THROUGHPUT_N"
	for v in old new; do
		bin="$OUT/oairl"
		[ $v = old ] && bin="$OUT/oairl-old"
		start_sim "t-$v" --tier none
		timed "t-$v" "$bin" run "$OUT/t.jsonl" -o "$OUT/t-$v.results.jsonl" $RUNFLAGS
		stop_sim
		row "run $THROUGHPUT_N ($v: $([ $v = old ] && echo "$OLD" || echo tree))" "t-$v" "$(check "$OUT/t-$v.results.jsonl" "$THROUGHPUT_N")"
	done
fi

for n in $SIZES; do
	echo "oairl run: $n requests" >&2
	"$OUT/gen" -o "$OUT/r$n.jsonl" -requests "$n"
	start_sim "r$n" --tier none
	timed "r$n" "$OUT/oairl" run "$OUT/r$n.jsonl" -o "$OUT/r$n.results.jsonl" $RUNFLAGS
	row "run $n" "r$n" "$(check "$OUT/r$n.results.jsonl" "$n")"
	timed "r$n-again" "$OUT/oairl" run "$OUT/r$n.jsonl" -o "$OUT/r$n.results.jsonl" $RUNFLAGS
	row "rerun $n (nothing to send)" "r$n-again" "$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('skipped', s['skipped'], 'sent', s['sent'])" "$OUT/r$n-again.stdout")"
	stop_sim
	rm -f "$OUT/r$n.results.jsonl"
done

if [ "$KILLS" -gt 0 ]; then
	echo "kill -KILL at random points: $KILL_N requests, $KILLS kills, then a run to the end" >&2
	[ -s "$OUT/r$KILL_N.jsonl" ] || "$OUT/gen" -o "$OUT/r$KILL_N.jsonl" -requests "$KILL_N"
	start_sim kill --tier none
	rm -f "$OUT/kill.results.jsonl"
	k=0
	while [ $k -lt "$KILLS" ]; do
		"$OUT/oairl" run "$OUT/r$KILL_N.jsonl" -o "$OUT/kill.results.jsonl" $RUNFLAGS >/dev/null 2>>"$OUT/kill.stderr" &
		pid=$!
		sleep "$(python3 -c 'import random; print(round(random.uniform(5, 40), 1))')"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "kill $k: $(wc -l <"$OUT/kill.results.jsonl" 2>/dev/null || echo 0) result lines, last line $(tail -c 1 "$OUT/kill.results.jsonl" | od -An -c | tr -d ' ')" >>"$OUT/kill.log"
		k=$((k + 1))
	done
	timed kill-final "$OUT/oairl" run "$OUT/r$KILL_N.jsonl" -o "$OUT/kill.results.jsonl" $RUNFLAGS
	stop_sim
	row "run $KILL_N, $KILLS kill -9, resumed" kill-final "$(check "$OUT/kill.results.jsonl" "$KILL_N")"
fi

if [ "$BATCH" = 1 ]; then
	echo "batch: a ~200 MB file, 4 shards" >&2
	"$OUT/gen" -o "$OUT/b.jsonl" -requests 200000 -line-bytes 1048
	start_sim batch --tier none --batch-duration 1s
	timed batch-submit "$OUT/oairl" batch submit "$OUT/b.jsonl" --wait --poll-interval 1s
	row "batch submit $(($(wc -c <"$OUT/b.jsonl") / 1048576)) MB (--wait)" batch-submit "$(grep -o '[0-9,]* requests in [0-9]* shards' "$OUT/batch-submit.stderr")"
	timed batch-results "$OUT/oairl" batch results -o "$OUT/b.results.jsonl"
	row "batch results" batch-results "$(check "$OUT/b.results.jsonl" 200000)"
	stop_sim
fi
cat "$OUT/figures.txt"
