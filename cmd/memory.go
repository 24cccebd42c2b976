package cmd

import (
	"os"
	"runtime/debug"
)

// softMemoryLimit is the Go runtime's soft memory limit for the commands
// that stream large inputs (run, batch submit, batch results), unless
// GOMEMLIMIT is set: what they keep grows only with the number of
// custom_ids (16-byte hashes in maps, tens of MB for millions of lines;
// README "Memory"), and without a limit the garbage collector lets the
// heap grow to twice that before collecting. Near the limit it collects
// sooner; above it, it only spends more CPU (a soft limit never fails).
const softMemoryLimit = 100 << 20 // bytes

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
}
