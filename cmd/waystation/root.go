package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree; tests drive it with SetArgs.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "waystation",
		Short: "Device platform for roadside rest stations",
		Long: "waystation connects rest-station hardware (door terminals, air conditioners,\n" +
			"charger cabinets, AED cabinets) over MQTT to a controller with an HTTP API.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd())
	root.AddCommand(newSimulateCmd())
	root.AddCommand(newProbeCmd())
	root.AddCommand(newCheckCmd())
	root.AddCommand(newLoadgenCmd())
	addStationsCmd(root)
	addDevicesCmd(root)
	addCommandCmds(root)
	addOperatorsCmd(root)
	addCredentialsCmd(root)
	addUsageCmd(root)
	addEventsCmd(root)
	addCrewsCmd(root)
	addPlanCmd(root)
	addBrokerCmd(root)
	addAlertsCmd(root)
	addMaintenanceCmds(root)
	// cobra adds these when it runs; added now, the walk below sees them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	helpOnlyGroups(root)
	root.SetFlagErrorFunc(flagError)
	return root
}

// flagError says what a flag's value should look like instead of quoting
// the parser ("strconv.ParseFloat: parsing ...: invalid syntax"), and
// where the flags are listed.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	for _, p := range []struct{ parser, want string }{
		{": strconv.ParseFloat", "want a number, such as 2 or 0.5"},
		{": strconv.ParseInt", "want a whole number, without leading zeros"},
		{": strconv.ParseUint", "want a whole number, without leading zeros"},
		{": strconv.ParseBool", "want true or false"},
		{": time: invalid duration", "want a duration, such as 90s, 5m or 1h30m"},
		{": time: unknown unit", "want a duration, such as 90s, 5m or 1h30m"},
		{": time: missing unit", "want a duration, such as 90s, 5m or 1h30m"},
	} {
		i := strings.Index(msg, p.parser)
		if i < 0 {
			continue
		}
		if strings.Contains(msg[i:], "out of range") || strings.Contains(msg[i:], "overflow") {
			msg = msg[:i] + ": too large"
		} else {
			msg = msg[:i] + ": " + p.want
		}
		break
	}
	return fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())
}

// helpOnlyGroups makes every command that only groups others (stations,
// alerts, ...) print its help when called alone and refuse anything else,
// so that a mistyped subcommand ("stations lst") fails instead of printing
// the help and exiting 0.
func helpOnlyGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		helpOnlyGroups(sub)
	}
	if c.HasParent() && c.HasSubCommands() && !c.Runnable() {
		c.SuggestionsMinimumDistance = 2
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || (len(args) == 1 && args[0] == "help") {
				return nil // "stations help" as before
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
				msg += "; did you mean " + strings.Join(near, " or ") + "?"
			}
			return errors.New(msg + " (see " + cmd.CommandPath() + " --help)")
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}
