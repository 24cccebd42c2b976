package pace

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// BatchQueue shares a budget's Batch API enqueued-token queues between
// processes and hosts: each batch job holds an entry with the tokens its
// shards take in a model's queue, and a shard is admitted only if, with the
// other jobs' entries, it fits the limit, atomically (two processes never
// both take the last room; the server would fail one batch with
// token_limit_exceeded).
//
// Key: oairl:{NAME}:batchq:MODEL, a HASH job id -> "TOKENS EXPIRY" (ms on
// Redis' clock). An entry lives TTL after it was last written: a job
// counts while a process drives it (batch submit --wait, batch wait), and
// the server's token_limit_exceeded (which batch retries) covers the rest.
// Errors are ignored: sharing is best effort, never a reason to stop.
type BatchQueue struct {
	rdb  redis.UniversalClient
	keys budgetKeys
	ttl  time.Duration
}

// scriptAdmit sums the live entries of the other jobs (dropping expired
// ones) and, when the caller's total fits beside them (or nobody else
// holds anything), records it.
// KEYS: 1 the model's queue (HASH)   ARGV: 1 job, 2 tokens, 3 limit (0: record only), 4 ttl ms
// Returns -1 when recorded, else the other jobs' tokens.
var scriptAdmit = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local others, all = 0, redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local tok, exp = string.match(all[i + 1], '^(%d+) (%d+)$')
    if tok and tonumber(exp) > now then others = others + tonumber(tok)
    else redis.call('HDEL', KEYS[1], all[i]) end
  end
end
local want, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if limit > 0 and others > 0 and others + want > limit then return others end
if want <= 0 then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[4]))) end
return -1`)

// NewBatchQueue returns the shared queues of budget name (BudgetName);
// ttl <= 0 means one hour.
func NewBatchQueue(rdb redis.UniversalClient, name string, ttl time.Duration) *BatchQueue {
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &BatchQueue{rdb: rdb, keys: keysFor(name), ttl: ttl}
}

func (q *BatchQueue) run(job, model string, tokens, limit int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return scriptAdmit.Run(ctx, q.rdb, []string{q.keys.k("batchq:" + model)}, job, tokens, limit, q.ttl.Milliseconds()).Int64()
}

// Publish records the tokens job holds in model's queue (0 removes it).
func (q *BatchQueue) Publish(job, model string, tokens int64) { _, _ = q.run(job, model, tokens, 0) }

// Admit records that job will hold tokens (its shards already queued plus
// the one to submit) in model's queue if they fit limit beside the other
// jobs' (or no other job holds any): ok. Otherwise nothing changes and
// others is what the other jobs hold. A Redis error admits (best effort).
func (q *BatchQueue) Admit(job, model string, tokens, limit int64) (others int64, ok bool) {
	n, err := q.run(job, model, tokens, limit)
	if err != nil || n < 0 {
		return 0, true
	}
	return n, false
}
