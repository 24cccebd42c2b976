#!/bin/sh
# bench/proxy.sh: an unchanged app using the official OpenAI Node SDK
# (internal/proxy/testdata/sdk/load.mjs: concurrency 50, the SDK's default
# 2 retries) sends N (600) gpt-4o requests of ~700 tokens of TPM charge
# (470 prompt words, max_tokens 200) to `oairl sim --tier 1` (30,000 TPM:
# TPM binds), directly and through `oairl proxy --tier 1`, each against a
# fresh simulator; then the proxy's overhead against a simulator with no
# latency and no limits: added latency p50/p99 (concurrency 1), streamed
# time to first byte, and the most requests per second (concurrency 50).
# A benchmark, not a test: it prints figures and asserts nothing.
#
#   sh bench/proxy.sh          # K=20: ~14 sim minutes ≈ 45 s wall per client
#   K=40 N=300 sh bench/proxy.sh
#
# Time scale: the sim and the proxy run K times faster, and so does the
# app (load.mjs TIME_SCALE divides every setTimeout: the SDK's retry sleeps
# and its 10-minute timeout), so retry-after waits keep their meaning.
# Output in bench/out/proxy/.
set -eu
cd "$(dirname "$0")/.."
K=${K:-20}
N=${N:-600}
LAT_N=${LAT_N:-3000}
RPS_N=${RPS_N:-30000}
OUT=bench/out/proxy
rm -rf "$OUT"
mkdir -p "$OUT"
export OPENAI_API_KEY=sk-bench-not-a-real-key-000000
SDK=internal/proxy/testdata/sdk

echo "building oairl and the load generator" >&2
go build -o "$OUT/oairl" .
go build -o "$OUT/proxyload" ./bench/proxyload
[ -d "$SDK/node_modules/openai" ] || (cd "$SDK" && npm ci --no-audit --no-fund --loglevel=error)

# start NAME CMD...: starts a server that prints its base URL first on
# stdout; sets URL and PID.
start() {
	name=$1
	shift
	"$@" >"$OUT/$name.url" 2>"$OUT/$name.stderr" &
	PID=$!
	i=0
	while [ ! -s "$OUT/$name.url" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	URL=$(head -1 "$OUT/$name.url")
}
stop() {
	kill -INT "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

sdk() { # sdk NAME BASE_URL
	(cd "$SDK" && OPENAI_BASE_URL=$2 N=$N CONCURRENCY=50 MODEL=gpt-4o PROMPT_WORDS=470 MAX_TOKENS=200 TIME_SCALE=$K \
		node load.mjs) >"$OUT/$1.json"
}

echo "direct: Node SDK → oairl sim --tier 1 --time-scale $K" >&2
start sim-direct "$OUT/oairl" sim --tier 1 --time-scale "$K" --addr 127.0.0.1:0 --log "$OUT/sim-direct.log"
SIM_PID=$PID
sdk direct "$URL"
stop "$SIM_PID"

echo "proxy: Node SDK → oairl proxy --tier 1 → oairl sim --tier 1 (time scale $K)" >&2
start sim-proxy "$OUT/oairl" sim --tier 1 --time-scale "$K" --addr 127.0.0.1:0 --log "$OUT/sim-proxy.log"
SIM_PID=$PID
start proxy "$OUT/oairl" proxy --tier 1 --time-scale "$K" --addr 127.0.0.1:0 --base-url "$URL" --max-queue-wait 5m --log-format json
PROXY_PID=$PID
sdk proxied "$URL"
stop "$PROXY_PID"
stop "$SIM_PID"

echo "overhead: oairl sim --tier none (no latency), direct vs through the proxy" >&2
start sim-fast "$OUT/oairl" sim --tier none --addr 127.0.0.1:0
SIM_PID=$PID
SIM_URL=$URL
start proxy-fast "$OUT/oairl" -q proxy --rpm 100000000 --tpm 100000000000 --max-concurrent 200 --addr 127.0.0.1:0 --base-url "$SIM_URL"
PROXY_PID=$PID
PROXY_URL=$URL
for target in direct:$SIM_URL proxy:$PROXY_URL; do
	name=${target%%:*}
	u=${target#*:}
	"$OUT/proxyload" -url "$u" -n 300 -c 8 >/dev/null # warm up
	"$OUT/proxyload" -url "$u" -n "$LAT_N" -c 1 >"$OUT/lat-$name.json"
	"$OUT/proxyload" -url "$u" -n "$LAT_N" -c 1 -stream >"$OUT/ttfb-$name.json"
	"$OUT/proxyload" -url "$u" -n "$RPS_N" -c 50 >"$OUT/rps-$name.json"
done
stop "$PROXY_PID"
stop "$SIM_PID"

python3 - "$OUT" "$N" <<'PY'
import json, sys, datetime
out, n = sys.argv[1], int(sys.argv[2])
TPM = 30000  # tier 1 gpt-4o (OpenAI rate-limits page; models.json)
def simlog(name):
    rows = [json.loads(l) for l in open(f"{out}/sim-{name}.log") if l.strip()]
    rows = [r for r in rows if r["path"].endswith("/chat/completions")]
    t = lambda r: datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
    ok = [r for r in rows if r["status"] == 200]
    n429 = sum(1 for r in rows if r["status"] == 429)
    # the app's whole run: first request to last answer (the direct app
    # gives up early on its failures, which is part of its goodput)
    start, end = t(rows[0]), max(t(r) for r in rows)
    mins = max((end - start).total_seconds() / 60, 1e-9)
    good = sum(r["tokens"] for r in ok)
    # attainable: the bucket starts full (one minute's worth), then refills at TPM
    return dict(requests=len(rows), ok=len(ok), n429=n429, mins=mins, good=good, pct=100 * good / (TPM * (1 + mins)))
print(f"\nSDK at concurrency 50, default retries, {n} gpt-4o requests (~700 TPM charge each), tier 1 (30,000 TPM):")
print(f"{'':10} {'ok':>5} {'failed':>7} {'429s seen by app':>17} {'upstream 429s':>14} {'(% of upstream req)':>20} {'sim minutes':>12} {'goodput TPM':>12} {'% attainable':>13}")
for name, label in (("direct", "direct"), ("proxied", "proxy")):
    app = json.load(open(f"{out}/{name}.json"))
    s = simlog("direct" if name == "direct" else "proxy")
    print(f"{label:10} {app['ok']:>5} {app['failed']:>7} {app['seen429']:>17} {s['n429']:>14} {100*s['n429']/max(s['requests'],1):>19.1f}% {s['mins']:>12.1f} {s['good']/s['mins']:>12.0f} {s['pct']:>12.1f}%")
print("\nOverhead against a sim with no latency and no limits:")
for kind, label, key in (("lat", "latency, concurrency 1", "latency_ms"), ("ttfb", "stream TTFB, concurrency 1", "ttfb_ms")):
    d, p = json.load(open(f"{out}/{kind}-direct.json")), json.load(open(f"{out}/{kind}-proxy.json"))
    print(f"  {label}: direct p50 {d[key]['p50']:.3f} ms p99 {d[key]['p99']:.3f} ms; proxy p50 {p[key]['p50']:.3f} ms p99 {p[key]['p99']:.3f} ms; "
          f"added p50 {p[key]['p50']-d[key]['p50']:.3f} ms, p99 {p[key]['p99']-d[key]['p99']:.3f} ms")
d, p = json.load(open(f"{out}/rps-direct.json")), json.load(open(f"{out}/rps-proxy.json"))
print(f"  most requests/s (concurrency 50): direct {d['req_per_s']:.0f}/s ({d['errors']} errors), through the proxy {p['req_per_s']:.0f}/s ({p['errors']} errors)")
PY
