package main

// Testscript commands for driving `oairl proxy` as a background process:
//
//	freeport VAR      set VAR to a free loopback TCP port
//	waithttp URL      wait (up to 10 s) until GET URL answers 200
//	httpget URL       GET URL; print "status N" and the body on stdout

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	extraScriptCmds["freeport"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: freeport VAR")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ts.Setenv(args[0], strconv.Itoa(port))
	}
	extraScriptCmds["waithttp"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: waithttp URL")
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get(args[0])
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		ts.Fatalf("waithttp: %s did not answer 200 within 10s", args[0])
	}
	extraScriptCmds["httpget"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: httpget URL")
		}
		resp, err := http.Get(args[0])
		ts.Check(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "status %d\n%s", resp.StatusCode, b)
	}
}
