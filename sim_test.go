package main

// The testscript command `sim`: start an in-process oairl simulator for the
// rest of the script.
//
//	sim [oairl sim flags]
//
// It parses the same flags as `oairl sim` (sim.ParseArgs), listens on a
// free loopback port, sets OPENAI_BASE_URL and SIM_URL to its base URL
// (http://127.0.0.1:PORT/v1), and stops the server when the script ends.
// --log FILE is relative to $WORK. `sim stats` prints the simulator's
// counters (requests, ok, 429 by limit type) to stdout; `sim expire ID`
// expires a batch now; `sim call METHOD PATH [BODY]` sends one request to
// the running simulator with $OPENAI_API_KEY and prints "status N", the
// response headers (lowercased, "name: value", sorted) and the body.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/oairl/oairl/internal/sim"
)

func init() {
	extraScriptCmds["sim"] = simScriptCmd
}

// simServers maps a script's work directory to its running simulator
// (scripts run in parallel).
var (
	simMu      sync.Mutex
	simServers = map[string]*sim.Server{}
)

func simScriptCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! sim")
	}
	work := ts.Getenv("WORK")
	simMu.Lock()
	running := simServers[work]
	simMu.Unlock()
	if len(args) > 0 && args[0] == "call" {
		simCall(ts, args[1:])
		return
	}
	if len(args) > 0 && (args[0] == "stats" || args[0] == "expire") {
		srv := running
		if srv == nil {
			ts.Fatalf("sim %s: no simulator running", args[0])
		}
		switch args[0] {
		case "stats":
			st := srv.Stats()
			fmt.Fprintf(ts.Stdout(), "requests %d\nok %d\nserver_errors %d\n", st.Requests, st.OK, st.ServerErrors)
			var keys []string
			for k := range st.RateLimited {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(ts.Stdout(), "429 %s %d\n", k, st.RateLimited[k])
			}
		case "expire":
			if len(args) != 2 {
				ts.Fatalf("usage: sim expire BATCH_ID")
			}
			ts.Check(srv.ExpireBatch(args[1]))
		}
		return
	}
	if running != nil {
		ts.Fatalf("sim: a simulator is already running in this script")
	}
	flags, err := sim.ParseArgs(args)
	if err != nil {
		ts.Fatalf("sim: %v", err)
	}
	cfg, err := flags.Config()
	if err != nil {
		ts.Fatalf("sim: %v", err)
	}
	if flags.LogFile != "" {
		lf, err := os.Create(ts.MkAbs(flags.LogFile))
		ts.Check(err)
		ts.Defer(func() { lf.Close() })
		cfg.Log = lf
	}
	srv, err := sim.New(cfg)
	if err != nil {
		ts.Fatalf("sim: %v", err)
	}
	ln, err := net.Listen("tcp", flags.Addr)
	ts.Check(err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	simMu.Lock()
	simServers[work] = srv
	simMu.Unlock()
	ts.Defer(func() {
		cancel()
		<-done
		simMu.Lock()
		delete(simServers, work)
		simMu.Unlock()
	})
	url := "http://" + ln.Addr().String() + "/v1"
	ts.Setenv("OPENAI_BASE_URL", url)
	ts.Setenv("SIM_URL", strings.TrimSuffix(url, "/"))
}

func simCall(ts *testscript.TestScript, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: sim call METHOD PATH [BODY]")
	}
	base := ts.Getenv("OPENAI_BASE_URL")
	if base == "" {
		ts.Fatalf("sim call: OPENAI_BASE_URL is not set (start a simulator with sim first)")
	}
	var body io.Reader
	if len(args) == 3 {
		body = strings.NewReader(args[2])
	}
	req, err := http.NewRequest(args[0], base+args[1], body)
	ts.Check(err)
	req.Header.Set("Content-Type", "application/json")
	if k := ts.Getenv("OPENAI_API_KEY"); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "status %d\n", resp.StatusCode)
	var names []string
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(ts.Stdout(), "%s: %s\n", strings.ToLower(k), resp.Header.Get(k))
	}
	fmt.Fprintf(ts.Stdout(), "\n%s\n", b)
}
