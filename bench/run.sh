#!/bin/sh
# bench/run.sh: `oairl run` against a naive client, both sending the same
# 1,000 gpt-4o requests (~500 prompt tokens, max_tokens 200, so TPM binds)
# to `oairl sim --tier 1 --time-scale K`, a fresh simulator each; then
# oairl's CPU per request against a zero-latency simulator with no limits.
# A benchmark, not a test: it prints figures and asserts nothing.
#
#   sh bench/run.sh            # K=60 (tier 1 gpt-4o: ~24 sim minutes ≈ 25 s wall per client)
#   K=30 N=500 sh bench/run.sh
#
# Output in bench/out/run/: requests.jsonl, per client results and the
# simulator's request log; the figures are printed at the end. The last
# step sends DRIVE_N (15,000) requests at a real-time simulator limited to
# 10,000 RPM (tier 5's class), to show one process drives it.
set -eu
cd "$(dirname "$0")/.."
K=${K:-60}
N=${N:-1000}
CPU_N=${CPU_N:-5000}
DRIVE_N=${DRIVE_N:-15000}
OUT=bench/out/run
rm -rf "$OUT"
mkdir -p "$OUT"
export OPENAI_API_KEY=sk-bench-not-a-real-key-000000

echo "building oairl and the naive client" >&2
go build -o "$OUT/oairl" .
go build -o "$OUT/naive" ./bench/naive

# 1,000 requests of ~500 prompt tokens (words from a fixed vocabulary,
# deterministic), max_tokens 200: TPM charge ~700 each at tier 1's 30,000 TPM.
python3 - "$OUT/requests.jsonl" "$N" <<'EOF'
import json, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = ("rate limit token bucket request minute organization project model answer question "
         "system user assistant paragraph summary translate explain list compare describe lighthouse "
         "copper river mountain history science music garden kitchen library window season").split()
with open(out, "w") as f:
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(470))
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"Request {i}. Summarise: {text}"}], "max_tokens": 200}
        f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n")
EOF

# start_sim LOG ARGS...: starts a simulator, sets SIM_PID and OPENAI_BASE_URL.
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

echo "oairl run: tier 1, time scale $K" >&2
start_sim "$OUT/sim-oairl.log" --tier 1 --time-scale "$K"
/usr/bin/time -f '%e %U %S %M' -o "$OUT/oairl.time" \
	"$OUT/oairl" run "$OUT/requests.jsonl" -o "$OUT/oairl-results.jsonl" --tier 1 --time-scale "$K" \
	--format json >"$OUT/oairl-summary.json" 2>"$OUT/oairl.stderr" || echo "oairl run exit $?" >&2
stop_sim

echo "naive client: concurrency 50, SDK default retries, time scale $K" >&2
start_sim "$OUT/sim-naive.log" --tier 1 --time-scale "$K"
/usr/bin/time -f '%e %U %S %M' -o "$OUT/naive.time" \
	"$OUT/naive" -in "$OUT/requests.jsonl" -out "$OUT/naive-results.jsonl" -c 50 -time-scale "$K" 2>"$OUT/naive.stderr" || true
stop_sim

echo "CPU per request: $CPU_N small requests, zero-latency simulator, no limits" >&2
python3 - "$OUT/cpu.jsonl" "$CPU_N" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"say {i}"}], "max_tokens": 5}}) + "\n")
EOF
start_sim "$OUT/sim-cpu.log" --tier none
/usr/bin/time -f '%e %U %S %M' -o "$OUT/cpu.time" \
	"$OUT/oairl" run "$OUT/cpu.jsonl" -o "$OUT/cpu-results.jsonl" --rpm 10000000 --tpm 10000000000 --max-concurrent 50 \
	--format json >"$OUT/cpu-summary.json" 2>"$OUT/cpu.stderr" || true
stop_sim

echo "driving 10,000 RPM (tier-5 class) from one process: $DRIVE_N requests, sim --rpm 10000, real time" >&2
python3 - "$OUT/drive.jsonl" "$DRIVE_N" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"custom_id": f"d{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"say {i}"}], "max_tokens": 5}}) + "\n")
EOF
start_sim "$OUT/sim-drive.log" --tier none --rpm 10000 --tpm 100000000
/usr/bin/time -f '%e %U %S %M' -o "$OUT/drive.time" \
	"$OUT/oairl" run "$OUT/drive.jsonl" -o "$OUT/drive-results.jsonl" --rpm 10000 --tpm 100000000 \
	--format json >"$OUT/drive-summary.json" 2>"$OUT/drive.stderr" || true
stop_sim

python3 - "$OUT" "$N" "$CPU_N" "$DRIVE_N" <<'EOF'
import json, sys, datetime
out, n, cpu_n, drive_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
TPM_LIMIT, RPM_LIMIT = 30000, 500  # tier 1 gpt-4o (models.json; platform.openai.com/docs/models/gpt-4o)

def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))

def simlog(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    rows = [r for r in rows if r.get("path", "").endswith("/chat/completions")]
    ok = [r for r in rows if r["status"] == 200]
    n429 = sum(1 for r in rows if r["status"] == 429)
    tpm = rpm = 0.0
    if ok:
        t0 = min(ts(r["time"]) for r in rows)
        t1 = max(ts(r["time"]) for r in ok)
        mins = (t1 - t0).total_seconds() / 60
        if mins > 0:
            tpm = sum(r["tokens"] for r in ok) / mins
            rpm = len(ok) / mins
        sim_minutes = mins
    else:
        sim_minutes = 0
    return dict(http=len(rows), ok=len(ok), n429=n429, tpm=tpm, rpm=rpm, minutes=sim_minutes)

def results(path, okfn):
    seen, good = {}, set()
    for l in open(path):
        if not l.strip():
            continue
        r = json.loads(l)
        seen[r["custom_id"]] = seen.get(r["custom_id"], 0) + 1
        if okfn(r):
            good.add(r["custom_id"])
    ids = {f"r{i}" for i in range(n)}
    return len(ids - good), sum(1 for v in seen.values() if v > 1)

def tm(path):
    e, u, s, m = open(path).read().split()[-4:]
    return float(e), float(u) + float(s), int(m)

rows = []
for name, okfn in (("oairl run", lambda r: r.get("error") is None and r["response"]["status_code"] == 200),
                   ("naive (c=50, 2 retries)", lambda r: r["status_code"] == 200)):
    key = "oairl" if name.startswith("oairl") else "naive"
    s = simlog(f"{out}/sim-{key}.log")
    lost, dup = results(f"{out}/{key}-results.jsonl", okfn)
    wall, cpu, rss = tm(f"{out}/{key}.time")
    rows.append((name, 100 * s["tpm"] / TPM_LIMIT, 100 * s["n429"] / n, s["n429"], s["http"], lost, dup, s["minutes"], wall, cpu, rss))

print(f"{'client':26} {'TPM % of limit':>14} {'429s % of req':>13} {'429s':>6} {'HTTP req':>8} {'lost':>5} {'dup':>4} {'sim min':>8} {'wall s':>7} {'CPU s':>6} {'RSS KB':>7}")
for r in rows:
    print(f"{r[0]:26} {r[1]:14.1f} {r[2]:13.1f} {r[3]:6d} {r[4]:8d} {r[5]:5d} {r[6]:4d} {r[7]:8.1f} {r[8]:7.1f} {r[9]:6.2f} {r[10]:7d}")
osum = json.load(open(f"{out}/oairl-summary.json"))
om = osum["models"][0]
print(f"\noairl run's own summary (steady state: the initial full bucket excluded): {om['achieved_tpm']:.0f} TPM, "
      f"{om['tpm_percent']:.1f}% of {om['tpm_limit']}; sent {osum['sent']}, unsent {osum['unsent']}, "
      f"{sum(osum['rate_limited'].values())} 429s")
wall, cpu, rss = tm(f"{out}/cpu.time")
cs = json.load(open(f"{out}/cpu-summary.json"))
print(f"\nCPU per request (oairl run, {cs['succeeded']} of {cpu_n} requests, zero-latency sim, no limits): "
      f"{1e6 * cpu / cpu_n:.0f} µs user+sys; {cpu_n / wall:.0f} requests/s wall ({60 * cpu_n / wall:.0f}/min) on this machine; peak RSS {rss} KB")
print(f"at 10,000 RPM that is {cpu / cpu_n * 10000 / 60 * 100:.1f}% of one core")
wall, cpu, rss = tm(f"{out}/drive.time")
ds = json.load(open(f"{out}/drive-summary.json"))
m = ds["models"][0]
okt = sorted(ts(r["time"]) for r in map(json.loads, open(f"{out}/sim-drive.log")) if r.get("status") == 200)
# The first 9,000 (the bucket's capacity, 0.9 × 10,000) go at once; the
# sustained rate is measured from 15 s after the first success to the last.
cut = okt[0] + datetime.timedelta(seconds=15)
tail = [t for t in okt if t > cut]
steady = len(tail) / ((okt[-1] - cut).total_seconds() / 60) if len(tail) > 1 else 0
print(f"driving --rpm 10000 against sim --rpm 10000 ({drive_n} requests, real time): after the initial burst, "
      f"{steady:.0f} RPM sustained ({steady / 100:.1f}% of the limit), {sum(ds['rate_limited'].values())} 429s, "
      f"{ds['succeeded']} succeeded; {1e6 * cpu / drive_n:.0f} µs CPU per request, {100 * cpu / wall:.1f}% of one core over {wall:.1f} s")
EOF
