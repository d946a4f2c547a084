package main

import (
	"strings"
	"testing"
)

// TestMistypedSubcommandFails: a group called with a subcommand it does not
// have fails and names the nearest one, in every group; called alone it
// prints its help and succeeds.
func TestMistypedSubcommandFails(t *testing.T) {
	groups := 0
	for _, c := range newRootCmd().Commands() {
		if !c.HasSubCommands() || c.Name() == "simulate" { // simulate runs a county itself
			continue
		}
		groups++
		out, err := runCLI(c.Name())
		if err != nil || !strings.Contains(out, "Available Commands") {
			t.Errorf("%s alone: err %v, output %q", c.Name(), err, out)
		}
		name := c.Commands()[0].Name()
		typo := name[:len(name)-1] // "lis" for "list"
		_, err = runCLI(c.Name(), typo)
		if err == nil || !strings.Contains(err.Error(), `unknown command "`+typo+`"`) ||
			!strings.Contains(err.Error(), "did you mean "+name) {
			t.Errorf("%s %s: err %v, want unknown command naming %s", c.Name(), typo, err, name)
		}
	}
	if groups < 10 {
		t.Errorf("only %d command groups found", groups)
	}
	// "help" as a group's subcommand still prints its help; cobra's own
	// completion group is checked like ours.
	if out, err := runCLI("stations", "help"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("stations help: err %v, output %q", err, out)
	}
	if _, err := runCLI("completion", "bsh"); err == nil || !strings.Contains(err.Error(), "did you mean bash") {
		t.Errorf("completion bsh: %v, want unknown command naming bash", err)
	}
}

// TestFlagErrorsSayWhatToGive: a flag value that does not parse is refused
// with what the flag wants, not the parser's words.
func TestFlagErrorsSayWhatToGive(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--speed", "abc"}, `"abc" for "--speed" flag: want a number`},
		{[]string{"serve", "--alert-grace", "5x"}, `"5x" for "--alert-grace" flag: want a duration`},
		{[]string{"serve", "--demo-stations", "1.5"}, `"1.5" for "--demo-stations" flag: want a whole number`},
		{[]string{"serve", "--demo-stations", "99999999999999999999"}, `flag: too large`},
		{[]string{"stations", "list", "--bogus"}, "unknown flag: --bogus (see waystation stations list --help)"},
	} {
		_, err := runCLI(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "strconv") {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
