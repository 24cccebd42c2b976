package cmd

import (
	"strings"
	"testing"
	"time"
)

func TestNewProxyCmdFlags(t *testing.T) {
	tests := []struct {
		args    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o *ProxyOptions)
	}{
		{args: "", check: func(t *testing.T, o *ProxyOptions) {
			if o.Addr != "127.0.0.1:8787" || o.MaxConcurrent != 50 || o.MaxQueueWait != 30*time.Second || o.Grace != 30*time.Second ||
				o.LogFormat != "text" || o.TimeScale != 1 || o.MaxQueue != 10000 || o.AllowRemote {
				t.Errorf("defaults %+v", o)
			}
		}},
		{args: "--tier 1 --rpm 10 --tpm 2000 --max-concurrent 4 --max-queue-wait 2m --time-scale 20 --log-format json --redact --grace 5s --priority-by-key abcd=low --api-key-env MY_KEY",
			check: func(t *testing.T, o *ProxyOptions) {
				if o.Tier != "1" || o.RPM != 10 || o.TPM != 2000 || o.MaxConcurrent != 4 || o.MaxQueueWait != 2*time.Minute || o.TimeScale != 20 ||
					o.LogFormat != "json" || !o.Redact || o.Grace != 5*time.Second || len(o.PriorityByKey) != 1 || o.APIKeyEnv != "MY_KEY" {
					t.Errorf("parsed %+v", o)
				}
			}},
		{args: "--addr 0.0.0.0:8787 --allow-remote", env: map[string]string{"OAIRL_PROXY_TOKEN": "t0k"}, check: func(t *testing.T, o *ProxyOptions) {
			if o.ProxyToken != "t0k" {
				t.Errorf("OAIRL_PROXY_TOKEN: %q", o.ProxyToken)
			}
		}},
		{args: "--addr 0.0.0.0:8787", wantErr: "not a loopback address"},
		{args: "--addr 0.0.0.0:8787 --allow-remote", wantErr: "--allow-remote requires --proxy-token"},
		{args: "--log-format yaml", wantErr: "--log-format"},
		{args: "--tier 9", wantErr: "--tier must be"},
		{args: "--priority-by-key abcd=urgent", wantErr: "KEYSUFFIX=high|normal|low"},
		{args: "--max-queue-wait 0s", wantErr: "--max-queue-wait"},
		{args: "--flex-fallback 2", check: func(t *testing.T, o *ProxyOptions) {
			if o.FlexFallback != 2 {
				t.Errorf("--flex-fallback 2 parsed as %d", o.FlexFallback)
			}
		}},
		{args: "--flex-fallback -1", wantErr: "--flex-fallback must not be negative"},
		{args: "extra", wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := newTestFactory(tt.env)
			var got *ProxyOptions
			c := newProxyCmd(f, func(o *ProxyOptions) error { got = o; return nil })
			c.SetArgs(strings.Fields(tt.args))
			c.SetOut(&strings.Builder{})
			c.SetErr(&strings.Builder{})
			err := c.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}
