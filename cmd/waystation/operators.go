package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const operatorsPath = "api/v1/operators"

// addOperatorsCmd adds `operators` and its subcommands to root.
func addOperatorsCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "operators",
		Short: "Add, list and revoke the people who use the API (admins only)",
		Long: "Operators have a role and a scope. The role says what they may do:\n" +
			"  monitor     read stations, devices, usage; acknowledge alerts\n" +
			"  scheduler   read, and change timetables\n" +
			"  technician  read, add stations, register devices, set station access rules,\n" +
			"              list worker credentials\n" +
			"  admin       all of that, issue and revoke credentials, manage operators\n" +
			"The scope says on which organisations' stations: a list, or * for all.",
	}
	cmd.AddCommand(newOperatorsAddCmd(), newOperatorsListCmd(), newOperatorsRevokeCmd())
	root.AddCommand(cmd)
}

// tokenNote goes with every operator token printed.
const tokenNote = "Keep this token now: the server stores only its hash and cannot show it " +
	"again.\nSend it as `Authorization: Bearer <token>`, or give it to the CLI with --token " +
	"or $" + envToken + "."

func newOperatorsAddCmd() *cobra.Command {
	var o clientOptions
	var name, role, orgs string
	cmd := &cobra.Command{
		Use:   "add --name N --role R --org O[,O2|*]",
		Short: "Add an operator and print its token, shown this once",
		Example: "  waystation operators add --name night-desk --role monitor --org '*'\n" +
			"  waystation operators add --name icbc-tech --role technician --org 工商银行颍上支行",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !controller.ValidRole(role) {
				return fmt.Errorf("--role %q: want one of %s", role,
					strings.Join(controller.Roles, ", "))
			}
			scope := controller.ParseScope(orgs)
			if len(scope) == 0 {
				return fmt.Errorf("--org is empty: give organisations, comma-separated, or '*'")
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			in := map[string]any{"name": name, "role": role, "orgs": scope}
			raw, err := c.post(cmd.Context(), operatorsPath, in)
			if err != nil {
				return fmt.Errorf("add operator %s: %w", name, err)
			}
			if o.output == outputJSON {
				if err := writeJSON(cmd.OutOrStdout(), raw); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.ErrOrStderr(), tokenNote)
				return err
			}
			return show(cmd, c, o.output, raw, func(p *printer, op controller.NewOperator) error {
				_, err := fmt.Fprintf(p.out, "added operator %s (%s of %s)\n\ntoken: %s\n\n%s\n",
					op.Name, op.Role, scopeText(op.Orgs), op.Token, tokenNote)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the operator's name: letters, digits, . _ -")
	f.StringVar(&role, "role", "", "monitor, scheduler, technician or admin")
	f.StringVar(&orgs, "org", "", "organisations in scope, comma-separated, or '*' for all")
	for _, n := range []string{"name", "role", "org"} {
		_ = cmd.MarkFlagRequired(n) // fails only for a flag that does not exist
	}
	addClientFlags(cmd, &o)
	return cmd
}

func newOperatorsListCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List operators within your scope",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.get(cmd.Context(), operatorsPath, nil)
			if err != nil {
				return fmt.Errorf("list operators: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.Operator) error {
				rows := [][]string{{"NAME", "ROLE", "SCOPE", "ADDED"}}
				for _, op := range list {
					rows = append(rows, []string{op.Name, op.Role, scopeText(op.Orgs),
						p.when(op.Created)})
				}
				return p.table(rows)
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

func newOperatorsRevokeCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an operator: its token stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if strings.ContainsAny(name, "/?#% ") || name == "" || name == "." || name == ".." {
				return fmt.Errorf("operator name %q: want letters, digits, . _ -", name)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.call(cmd.Context(), http.MethodDelete, operatorsPath+"/"+name, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke operator %s: %w", name, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, op controller.Operator) error {
				_, err := fmt.Fprintf(p.out, "revoked operator %s (%s of %s)\n", op.Name, op.Role,
					scopeText(op.Orgs))
				return err
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// scopeText shows a scope for people.
func scopeText(orgs []string) string {
	if len(orgs) == 1 && orgs[0] == controller.AllOrgs {
		return "every organisation"
	}
	return strings.Join(orgs, ", ")
}
