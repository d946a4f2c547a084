package main

import (
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
	return root
}
