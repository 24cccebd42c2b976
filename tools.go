//go:build tools

// Package main's tools.go pins modules that the packages under construction
// import, so that go.mod is stable while several people edit in parallel.
// Remove entries once real imports exist.
package main

import (
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/olekukonko/tablewriter"
	_ "github.com/pkoukk/tiktoken-go"
	_ "github.com/pkoukk/tiktoken-go-loader"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
)
