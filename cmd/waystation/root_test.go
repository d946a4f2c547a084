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
}
