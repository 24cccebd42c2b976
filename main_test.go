package main

// End-to-end tests: testdata/script/*.txtar run the real entry point
// (cmd.Main) as the command "oairl" under testscript.
//
// Environment in every script: HOME=$WORK, OPENAI_API_KEY=sk-test-oairl-0000
// (a dummy key: scripts assert it is never printed), no OPENAI_BASE_URL,
// OAIRL_NO_PROGRESS unset, and stdout/stderr are not terminals.
//
// Custom commands:
//   sim [oairl sim flags]   start an in-process simulator for the rest of the
//                           script and set OPENAI_BASE_URL to it (added by the
//                           sim package's owner: see simCmd).

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/oairl/oairl/cmd"
)

// testAPIKey is the dummy key every script runs with.
const testAPIKey = "sk-test-oairl-0000000000000000"

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"oairl": func() { os.Exit(cmd.Main("test")) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/.state")
			env.Setenv("OPENAI_API_KEY", testAPIKey)
			env.Setenv("OPENAI_BASE_URL", "")
			env.Setenv("OPENAI_ORG_ID", "")
			env.Setenv("OPENAI_PROJECT_ID", "")
			env.Setenv("REPO", repoRoot())
			return nil
		},
		Cmds: scriptCmds(),
	})
}

// scriptCmds returns the custom testscript commands.
func scriptCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := map[string]func(ts *testscript.TestScript, neg bool, args []string){}
	for name, c := range extraScriptCmds {
		cmds[name] = c
	}
	return cmds
}

// extraScriptCmds is filled by other _test.go files of package main (one
// per feature) in their init functions.
var extraScriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){}

func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}
