package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/controller"
)

const credentialsPath = "api/v1/credentials"

// addCredentialsCmd adds `credentials` and its subcommands to root.
func addCredentialsCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Issue, list and revoke workers' door credentials",
		Long: "A credential is an opaque token a door terminal sends for a worker's face, card\n" +
			"or QR code. The server shows it once when it is issued and keeps only its hash.\n" +
			"A credential of an organisation opens that organisation's stations and every\n" +
			"station that is open to all.",
	}
	cmd.AddCommand(newCredentialsAddCmd(), newCredentialsListCmd(), newCredentialsRevokeCmd())
	root.AddCommand(cmd)
}

// credentialNote goes with every credential token printed.
const credentialNote = "Keep this token now: the server stores only its hash and cannot show it " +
	"again.\nLoad it into the worker's card, face enrolment or QR code at the door terminal."

func newCredentialsAddCmd() *cobra.Command {
	var o clientOptions
	var org, worker, methods string
	cmd := &cobra.Command{
		Use:   "add --org ORG [--worker NAME] [--methods face,nfc,qr]",
		Short: "Issue a credential and print its token, shown this once",
		Example: "  waystation credentials add --org 县环卫所 --worker 张师傅 --methods face,nfc\n" +
			"  waystation credentials add --org 美团 -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := map[string]any{"org": org, "worker": worker}
			if list := commaList(methods); len(list) > 0 {
				in["methods"] = list
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.post(cmd.Context(), credentialsPath, in)
			if err != nil {
				return fmt.Errorf("issue a credential of %s: %w", org, err)
			}
			if o.output == outputJSON {
				if err := writeJSON(cmd.OutOrStdout(), raw); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.ErrOrStderr(), credentialNote)
				return err
			}
			return show(cmd, c, o.output, raw, func(p *printer, cr controller.NewCredential) error {
				_, err := fmt.Fprintf(p.out, "issued credential %s of %s for %s (%s)\n\n"+
					"token: %s\n\n%s\n", cr.ID, cr.Org, orDash(cr.Worker),
					strings.Join(cr.Methods, ", "), cr.Token, credentialNote)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&org, "org", "", "the worker's organisation")
	f.StringVar(&worker, "worker", "", "a label for people: the worker's name or staff number")
	f.StringVar(&methods, "methods", "", "methods it may be used with, comma-separated "+
		"(default all: face,nfc,qr)")
	_ = cmd.MarkFlagRequired("org") // fails only for a flag that does not exist
	addClientFlags(cmd, &o)
	return cmd
}

func newCredentialsListCmd() *cobra.Command {
	var o clientOptions
	var org string
	cmd := &cobra.Command{
		Use:   "list [--org ORG]",
		Short: "List credentials within your scope, revoked ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			query := url.Values{}
			if org != "" {
				query.Set("org", org)
			}
			raw, err := c.get(cmd.Context(), credentialsPath, query)
			if err != nil {
				return fmt.Errorf("list credentials: %w", err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, list []controller.Credential) error {
				if len(list) == 0 {
					_, err := fmt.Fprintln(p.out, "no credentials: issue one with "+
						"`waystation credentials add --org ORG`")
					return err
				}
				rows := [][]string{{"ID", "ORG", "WORKER", "METHODS", "ISSUED", "REVOKED"}}
				for _, cr := range list {
					rows = append(rows, []string{cr.ID, cr.Org, orDash(cr.Worker),
						strings.Join(cr.Methods, ","), p.when(cr.Created), p.when(cr.Revoked)})
				}
				return p.table(rows)
			})
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "only the credentials of this organisation")
	addClientFlags(cmd, &o)
	return cmd
}

// credentialIDRE is what a credential id looks like.
var credentialIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func newCredentialsRevokeCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "revoke TOKEN|ID",
		Short: "Revoke a credential: refused at once, and removed from every allow-list",
		Long: "revoke takes the credential's token or its id (from `credentials list`). A\n" +
			"token is turned into its id here: it is not sent to the server.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimSpace(args[0])
			if !credentialIDRE.MatchString(id) {
				if !strings.HasPrefix(id, "wsc_") {
					return fmt.Errorf("%q is neither a credential token (wsc_...) nor an id "+
						"(16 hex digits, see `waystation credentials list`)", clipArg(id))
				}
				id = controller.CredentialID(id)
			}
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()

			raw, err := c.call(cmd.Context(), http.MethodDelete, credentialsPath+"/"+id, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke credential %s: %w", id, err)
			}
			return show(cmd, c, o.output, raw, func(p *printer, cr controller.Credential) error {
				_, err := fmt.Fprintf(p.out, "revoked credential %s of %s (%s) at %s\n", cr.ID,
					cr.Org, orDash(cr.Worker), p.when(cr.Revoked))
				return err
			})
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// clipArg shortens an argument quoted back in an error.
func clipArg(s string) string {
	if r := []rune(s); len(r) > 24 {
		return string(r[:24]) + "..."
	}
	return s
}

// commaList splits a comma-separated flag value, dropping blanks.
func commaList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
