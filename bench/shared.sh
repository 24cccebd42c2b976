#!/bin/sh
# bench/shared.sh: many `oairl run` processes against one organization.
# P concurrent processes × N gpt-4o requests each (~500 prompt tokens,
# max_tokens 200: ~700 TPM charge) against one `oairl sim --tier 1
# --time-scale K`, first each pacing alone (no --budget), then sharing one
# budget in a real redis-server (--budget). Scenarios 4 × 75 and 20 × 15.
# Then the cost of sharing: 4 processes × DRIVE_N tiny requests sharing a
# budget against a simulator without limits or latency (the most RPM the
# shared decisions allow). A benchmark: it prints figures, asserts nothing.
#
#   sh bench/shared.sh                 # K=10 (each scenario ~7 sim minutes ≈ 45 s wall)
#   K=20 SCENARIOS="4x75" sh bench/shared.sh
#
# Needs redis-server (apt-get install redis-server). Output in
# bench/out/shared/. The Reserve latency benchmark is a Go benchmark:
#   go test -run '^$' -bench BenchmarkRedisReserve ./internal/pace
set -eu
cd "$(dirname "$0")/.."
K=${K:-10}
SCENARIOS=${SCENARIOS:-"4x75 20x15"}
DRIVE_N=${DRIVE_N:-5000}
OUT=bench/out/shared
rm -rf "$OUT"
mkdir -p "$OUT"
export OPENAI_API_KEY=sk-bench-not-a-real-key-000000
unset OAIRL_BUDGET OPENAI_ORG_ID OPENAI_PROJECT_ID

command -v redis-server >/dev/null || { echo "bench/shared.sh needs redis-server (apt-get install redis-server)" >&2; exit 1; }
echo "building oairl" >&2
go build -o "$OUT/oairl" .

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null || true' EXIT
BUDGET="redis://127.0.0.1:$PORT/0"
i=0
until redis-cli -p "$PORT" ping >/dev/null 2>&1 || [ $i -gt 50 ]; do sleep 0.1; i=$((i + 1)); done

start_sim() {
	log=$1
	shift
	"$OUT/oairl" sim --addr 127.0.0.1:0 --log "$log" "$@" >"$log.url" 2>"$log.stderr" &
	SIM_PID=$!
	i=0
	while [ ! -s "$log.url" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	OPENAI_BASE_URL=$(head -1 "$log.url")
	export OPENAI_BASE_URL
}
stop_sim() {
	kill -INT "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
}

# gen FILE PREFIX N MODEL WORDS MAXTOK
gen() {
	python3 - "$@" <<'EOF'
import json, random, sys
out, prefix, n, model, nwords, maxtok = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
rng = random.Random(prefix)
words = ("rate limit token bucket request minute organization project model answer question "
         "system user assistant paragraph summary translate explain list compare describe lighthouse "
         "copper river mountain history science music garden kitchen library window season").split()
with open(out, "w") as f:
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(nwords))
        body = {"model": model, "messages": [{"role": "user", "content": f"Request {prefix}{i}. Summarise: {text}"}], "max_tokens": maxtok}
        f.write(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n")
EOF
}

# scenario NAME P N BUDGETFLAGS...: P concurrent runs of N requests each.
scenario() {
	name=$1 p=$2 n=$3
	shift 3
	dir="$OUT/$name"
	mkdir -p "$dir"
	redis-cli -p "$PORT" flushall >/dev/null
	start_sim "$dir/sim.log" --tier 1 --time-scale "$K"
	pids=""
	k=0
	while [ $k -lt "$p" ]; do
		gen "$dir/in$k.jsonl" "c$k" "$n" gpt-4o 470 200
		k=$((k + 1))
	done
	start=$(date +%s.%N)
	k=0
	while [ $k -lt "$p" ]; do
		"$OUT/oairl" run "$dir/in$k.jsonl" -o "$dir/out$k.jsonl" --tier 1 --time-scale "$K" --max-attempts 20 \
			--format json "$@" >"$dir/sum$k.json" 2>"$dir/err$k.log" &
		pids="$pids $!"
		k=$((k + 1))
	done
	for pid in $pids; do wait "$pid" || true; done
	end=$(date +%s.%N)
	echo "$start $end" >"$dir/wall"
	stop_sim
}

for s in $SCENARIOS; do
	p=${s%x*}
	n=${s#*x}
	echo "scenario $p processes × $n requests, tier 1, time scale $K: without --budget" >&2
	scenario "$s-alone" "$p" "$n"
	echo "scenario $p processes × $n requests: with --budget" >&2
	scenario "$s-budget" "$p" "$n" --budget "$BUDGET"
done

echo "cost of sharing: 4 processes × $DRIVE_N tiny requests, one budget, sim without limits or latency" >&2
start_sim "$OUT/drive-sim.log" --tier none
redis-cli -p "$PORT" flushall >/dev/null
pids=""
for k in 0 1 2 3; do
	gen "$OUT/drive$k.jsonl" "d$k" "$DRIVE_N" gpt-4o-mini 2 5
done
start=$(date +%s.%N)
for k in 0 1 2 3; do
	"$OUT/oairl" run "$OUT/drive$k.jsonl" -o "$OUT/drive-out$k.jsonl" --rpm 1000000 --tpm 1000000000 --max-concurrent 64 \
		--budget "$BUDGET" --format json >"$OUT/drive-sum$k.json" 2>"$OUT/drive-err$k.log" &
	pids="$pids $!"
done
for pid in $pids; do wait "$pid" || true; done
end=$(date +%s.%N)
echo "$start $end" >"$OUT/drive-wall"
stop_sim

python3 - "$OUT" "$K" "$SCENARIOS" "$DRIVE_N" <<'EOF'
import json, sys, glob, datetime, os
out, K, scen, drive_n = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
TPM = 30000  # tier 1 gpt-4o (models.json; platform.openai.com/docs/models/gpt-4o)

def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))

def figures(d, p, n):
    rows = [json.loads(l) for l in open(f"{d}/sim.log") if l.strip()]
    rows = [r for r in rows if r.get("path", "").endswith("/chat/completions")]
    ok = [r for r in rows if r["status"] == 200]
    n429 = sum(1 for r in rows if r["status"] == 429)
    charged = sum(r["tokens"] for r in ok)
    mins = (max(ts(r["time"]) for r in ok) - min(ts(r["time"]) for r in rows)).total_seconds() / 60 if ok else 0
    # Attainable: a perfect client starts with the server's full bucket
    # (one limit's worth) and then gets the limit per minute.
    ideal = max(charged - TPM, 0) / TPM
    seen = {}
    for k in range(p):
        for l in open(f"{d}/out{k}.jsonl"):
            if l.strip():
                r = json.loads(l)
                if r.get("error") is None and r["response"]["status_code"] == 200:
                    seen[r["custom_id"]] = seen.get(r["custom_id"], 0) + 1
    once = sum(1 for v in seen.values() if v == 1)
    dup = sum(1 for v in seen.values() if v > 1)
    w0, w1 = map(float, open(f"{d}/wall").read().split())
    return dict(req=p * n, http=len(rows), n429=n429, pct429=100 * n429 / (p * n), tpm=charged / mins if mins else 0,
                attain=100 * ideal / mins if mins else 0, once=once, dup=dup, missing=p * n - once - dup, mins=mins, wall=w1 - w0)

print(f"{'scenario':20} {'requests':>8} {'HTTP':>6} {'429s':>6} {'429 %':>6} {'TPM':>7} {'% attainable':>12} {'once':>5} {'dup':>4} {'missing':>7} {'sim min':>7} {'wall s':>6}")
for s in scen:
    p, n = map(int, s.split("x"))
    for mode in ("alone", "budget"):
        f = figures(f"{out}/{s}-{mode}", p, n)
        label = f"{p}×{n} " + ("no --budget" if mode == "alone" else "--budget")
        print(f"{label:20} {f['req']:8d} {f['http']:6d} {f['n429']:6d} {f['pct429']:6.1f} {f['tpm']:7.0f} {f['attain']:12.1f} {f['once']:5d} {f['dup']:4d} {f['missing']:7d} {f['mins']:7.1f} {f['wall']:6.1f}")
w0, w1 = map(float, open(f"{out}/drive-wall").read().split())
ok = 0
for k in range(4):
    s = json.load(open(f"{out}/drive-sum{k}.json"))
    ok += s["succeeded"]
print(f"\n4 processes sharing one budget, sim without limits or latency: {ok} of {4 * drive_n} succeeded in {w1 - w0:.1f} s wall "
      f"= {60 * ok / (w1 - w0):.0f} RPM through the shared budget (2 Redis scripts per request)")
EOF
