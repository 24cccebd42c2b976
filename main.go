// Command oairl ends HTTP 429 rate_limit_exceeded for teams that call the
// OpenAI API: it counts, paces, batches and diagnoses. See README.md.
package main

import (
	"os"

	"github.com/oairl/oairl/cmd"
)

// version is stamped by the release build (-X main.version=...).
var version = "dev"

func main() { os.Exit(cmd.Main(version)) }
