package cmd

import (
	"context"
	"strings"
	"testing"
)

// Colour follows CLICOLOR_FORCE / NO_COLOR as 'oairl help environment'
// documents: off a terminal only CLICOLOR_FORCE colours the error prefix.
func TestErrorColour(t *testing.T) {
	for _, tc := range []struct {
		env    map[string]string
		colour bool
	}{
		{map[string]string{}, false},
		{map[string]string{"CLICOLOR_FORCE": "1"}, true},
		{map[string]string{"CLICOLOR_FORCE": "1", "NO_COLOR": "1"}, true},
		{map[string]string{"CLICOLOR_FORCE": "0"}, false},
	} {
		f, _, errOut := newTestFactory(tc.env)
		run(f, context.Background(), []string{"count", "/nonexistent/x.jsonl"})
		got := strings.Contains(errOut.String(), "\x1b[1;31moairl:\x1b[0m")
		if got != tc.colour || !strings.Contains(errOut.String(), "oairl:") {
			t.Errorf("env %v: stderr %q, want colour %v", tc.env, errOut.String(), tc.colour)
		}
	}
}
