package cmd

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
)

func TestNewSimCmdFlags(t *testing.T) {
	cases := []struct {
		args    string
		wantErr string
		check   func(*testing.T, *SimOptions)
	}{
		{"", "", func(t *testing.T, o *SimOptions) {
			if o.Flags.Addr != "127.0.0.1:0" || o.Flags.TimeScale != 1 || o.Flags.RetryAfter != "seconds" || o.Flags.QuotaExhausted != "" {
				t.Errorf("defaults %+v", o.Flags)
			}
		}},
		{"--tier 2 --rpm 10 --tpm 2000 --rpd 5 --tpd 9 --max-concurrent 3 --time-scale 60 --retry-after ms --fault-rate 0.1 --invalid-key --slow-down --latency 200ms --latency-per-token 10ms --batch-duration 2m --batch-fail-rate 0.2 --enqueued-limit 1000 --seed 9 --log x.jsonl", "", func(t *testing.T, o *SimOptions) {
			f := o.Flags
			if f.Tier != "2" || f.RPM != 10 || f.TPM != 2000 || f.RPD != 5 || f.TPD != 9 || f.MaxConcurrent != 3 || f.TimeScale != 60 ||
				f.RetryAfter != "ms" || f.FaultRate != 0.1 || !f.InvalidKey || !f.SlowDown || f.Latency != 200*time.Millisecond ||
				f.LatencyPerTok != 10*time.Millisecond || f.BatchDuration != 2*time.Minute || f.BatchFailRate != 0.2 ||
				f.EnqueuedLimit != 1000 || f.Seed != 9 || f.LogFile != "x.jsonl" {
				t.Errorf("parsed %+v", f)
			}
		}},
		{"--quota-exhausted", "", func(t *testing.T, o *SimOptions) {
			if o.Flags.QuotaExhausted != "insufficient_quota" {
				t.Errorf("bare --quota-exhausted = %q", o.Flags.QuotaExhausted)
			}
		}},
		{"--quota-exhausted=credit_balance_exhausted", "", func(t *testing.T, o *SimOptions) {
			if o.Flags.QuotaExhausted != "credit_balance_exhausted" {
				t.Errorf("%q", o.Flags.QuotaExhausted)
			}
		}},
		{"--quota-exhausted credit_balance_exhausted", "", func(t *testing.T, o *SimOptions) {
			if o.Flags.QuotaExhausted != "credit_balance_exhausted" {
				t.Errorf("space form: %q", o.Flags.QuotaExhausted)
			}
		}},
		{"--quota-exhausted nope", `unexpected argument "nope"`, nil},
		{"stray", `unexpected argument "stray"`, nil},
		{"--time-scale 0", "--time-scale must be a positive number", nil},
		{"--latency -1s", "--latency must not be negative", nil},
		{"--tier 6", `unknown tier "6"`, nil},
		{"--fault-rate 1.5", "between 0 and 1", nil},
		{"--addr 10.0.0.1:80", "not a loopback", nil},
		{"--addr 10.0.0.1:80 --allow-remote", "", nil},
	}
	for _, c := range cases {
		t.Run(c.args, func(t *testing.T) {
			f, _, _ := newTestFactory(nil)
			var got *SimOptions
			cmd := newSimCmd(f, func(o *SimOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(c.args))
			err := cmd.Execute()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if exitcode.Of(err) != exitcode.Failure && !isFlagErr(err) {
					t.Errorf("not a usage error: %T", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, got)
			}
		})
	}
}

func isFlagErr(err error) bool {
	_, ok := err.(*FlagError)
	return ok
}

func TestSimRunServesAndSummarises(t *testing.T) {
	f, out, errOut := newTestFactory(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	cmd := newSimCmd(f, func(o *SimOptions) error {
		o.Ready = func(u string) { ready <- u }
		return simRun(o)
	})
	cmd.SetArgs([]string{"--rpm", "1"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("sim exited: %v", err)
	}
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`))
		req.Header.Set("Authorization", "Bearer sk-x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := []int{200, 429}[i]; resp.StatusCode != want {
			t.Errorf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sim returned %v after interrupt", err)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/v1\n$`).MatchString(out.String()) {
		t.Errorf("stdout %q: want exactly the base URL", out.String())
	}
	for _, want := range []string{"2 requests, 1 2xx, 1 429", "429 rpm", "goodput"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, errOut.String())
		}
	}
}
