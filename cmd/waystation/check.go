package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/schemas"
)

// newCheckCmd checks payload files against the wire contract offline, as
// the platform would decode them.
func newCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check MESSAGE FILE...",
		Short: "Check payload files against the wire contract",
		Long: "check decodes each FILE (or - for standard input) as the platform decodes a\n" +
			"message of kind MESSAGE and says whether it is valid, and if not which field is wrong\n" +
			"and why. MESSAGE is one of: " + strings.Join(schemas.SchemaNames, ", ") + ".\n" +
			"It needs no server. It exits 1 when any file is invalid.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, kind, err := messageOf(args[0])
			if err != nil {
				return err
			}
			bad := 0
			for _, file := range args[1:] {
				payload, err := readPayload(cmd, file)
				if err != nil {
					return err
				}
				if _, err := schemas.DecodePayload(ch, kind, payload); err != nil {
					bad++
					fmt.Fprintf(cmd.OutOrStdout(), "%s: invalid %s: %v\n", file, args[0], err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid %s\n", file, args[0])
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d payloads invalid", bad, len(args)-1)
			}
			return nil
		},
	}
}

// messageOf maps a schema name to the channel and kind it decodes.
func messageOf(name string) (schemas.Channel, schemas.Kind, error) {
	if !slices.Contains(schemas.SchemaNames, name) {
		return "", "", fmt.Errorf("unknown message %q: want one of %s", name,
			strings.Join(schemas.SchemaNames, ", "))
	}
	for _, ch := range schemas.Channels {
		for _, k := range schemas.Kinds {
			if schemas.SchemaName(ch, k) == name {
				return ch, k, nil
			}
		}
	}
	return "", "", fmt.Errorf("message %q has no channel", name)
}

func readPayload(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	return b, nil
}
