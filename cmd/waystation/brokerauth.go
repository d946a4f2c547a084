package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/waystation/waystation/broker"
	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

// addBrokerCmd adds `broker` and its subcommands to root.
func addBrokerCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Work with an external MQTT broker (serve --broker)",
	}
	cmd.AddCommand(newExportAuthCmd())
	root.AddCommand(cmd)
}

type exportAuthOptions struct {
	data         []string
	servers      []string
	tokens       []string
	passwd, acl  string
	ctrlUser     string
	ctrlPassFile string
	rotateTo     string
	timeout      time.Duration
}

func newExportAuthCmd() *cobra.Command {
	var o exportAuthOptions
	cmd := &cobra.Command{
		Use:   "export-auth --passwd FILE --acl FILE --controller-password-file F (--data DIR | --server URL)...",
		Short: "Write Mosquitto's password and ACL files from the device registry",
		Long: "export-auth writes the password_file and acl_file of an external Mosquitto (or a\n" +
			"broker that reads its files) so that it checks device logins as the embedded broker\n" +
			"does: each device logs in with its id and secret, publishes only on its own topics\n" +
			"and subscribes only to its own cmd, access/res and access/list; the controller's\n" +
			"user may use everything under waystation/v1/.\n\n" +
			"The registry keeps, beside its Argon2id hash, the Mosquitto hash of every secret it\n" +
			"issues, so secrets need not be issued anew. Devices registered before it kept them\n" +
			"have none; --rotate-missing issues those devices new secrets (offline, with --data)\n" +
			"and writes them to a file to load into the devices.\n\n" +
			"Read the registries offline (--data, the servers stopped) or ask running servers\n" +
			"(--server, an admin token). Give one --data or --server per partition: the files\n" +
			"cover them all. Reload the broker afterwards (kill -HUP the mosquitto process).",
		Example: "  waystation broker export-auth --data /var/lib/waystation \\\n" +
			"    --passwd /etc/mosquitto/waystation.passwd --acl /etc/mosquitto/waystation.acl \\\n" +
			"    --controller-password-file /etc/waystation/broker.password\n" +
			"  waystation broker export-auth --server http://ctl-1:8080 --server http://ctl-2:8080 \\\n" +
			"    --token $ADMIN --passwd p --acl a --controller-password-file f",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.data, "data", nil, "a data folder to read (the server stopped); repeat "+
		"for each partition")
	f.StringArrayVar(&o.servers, "server", nil, "a running server to ask instead; repeat for "+
		"each partition")
	f.StringArrayVar(&o.tokens, "token", nil, "admin token for --server (or $"+envToken+
		"); one for all servers, or one per --server in the same order")
	f.StringVar(&o.passwd, "passwd", "", "the password file to write")
	f.StringVar(&o.acl, "acl", "", "the ACL file to write")
	f.StringVar(&o.ctrlUser, "controller-user", controllerUser, "the controller's broker user "+
		"(serve --broker-user)")
	f.StringVar(&o.ctrlPassFile, "controller-password-file", "", "file holding the controller's "+
		"broker password (serve --broker-password-file)")
	f.StringVar(&o.rotateTo, "rotate-missing", "", "with --data: issue new secrets to devices "+
		"that have no broker hash and write device,secret lines to this file")
	f.DurationVar(&o.timeout, "timeout", defaultRequestTimeout, "how long to wait for each server")
	for _, name := range []string{"passwd", "acl", "controller-password-file"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (o *exportAuthOptions) run(cmd *cobra.Command) error {
	if (len(o.data) == 0) == (len(o.servers) == 0) {
		return errors.New("give --data (servers stopped) or --server (servers running), not both")
	}
	if len(o.tokens) > 1 && len(o.tokens) != len(o.servers) {
		return fmt.Errorf("%d --token for %d --server: give one for all, or one per server",
			len(o.tokens), len(o.servers))
	}
	if o.rotateTo != "" && len(o.data) == 0 {
		return errors.New("--rotate-missing needs --data: secrets are issued offline")
	}
	pass, err := readPasswordFile(o.ctrlPassFile, "--controller-password-file")
	if err != nil {
		return err
	}
	hash, err := devices.MosquittoHash(pass)
	if err != nil {
		return err
	}
	logins := []broker.Login{{User: o.ctrlUser, Hash: hash, Controller: true}}

	var found []devices.BrokerLogin
	rotated := map[string]string{}
	if len(o.data) > 0 {
		for _, dir := range o.data {
			l, r, err := o.readData(dir)
			if err != nil {
				return err
			}
			found = append(found, l...)
			for k, v := range r {
				rotated[k] = v
			}
		}
	} else {
		for i, s := range o.servers {
			token := ""
			if len(o.tokens) == 1 {
				token = o.tokens[0]
			} else if len(o.tokens) > 1 {
				token = o.tokens[i]
			}
			l, err := o.askServer(cmd, s, token)
			if err != nil {
				return err
			}
			found = append(found, l...)
		}
	}

	seen := map[string]string{o.ctrlUser: "the controller"}
	var missing []string
	for _, l := range found {
		if where, dup := seen[l.Device]; dup {
			return fmt.Errorf("device %s is in two registries (%s and station %s): each station "+
				"belongs to one partition", l.Device, where, l.Station)
		}
		seen[l.Device] = "station " + l.Station
		if l.Hash == "" {
			missing = append(missing, l.Device)
			continue
		}
		logins = append(logins, broker.Login{User: l.Device, Station: l.Station, Hash: l.Hash})
	}
	pw, acl, err := broker.MosquittoFiles(logins)
	if err != nil {
		return err
	}
	if o.rotateTo != "" && len(rotated) > 0 {
		var b strings.Builder
		for _, l := range found {
			if s, ok := rotated[l.Device]; ok {
				fmt.Fprintf(&b, "%s,%s\n", l.Device, s)
			}
		}
		if err := writeFileAtomic(o.rotateTo, []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(o.passwd, pw, 0o640); err != nil {
		return err
	}
	if err := writeFileAtomic(o.acl, acl, 0o640); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "wrote %d logins (%d devices and the controller %s) to %s and %s\n",
		len(logins), len(logins)-1, o.ctrlUser, o.passwd, o.acl)
	if len(rotated) > 0 {
		fmt.Fprintf(out, "issued new secrets to %d devices; they are in %s: load them into the "+
			"devices, the old secrets no longer work\n", len(rotated), o.rotateTo)
	}
	if len(missing) > 0 {
		fmt.Fprintf(out, "left out %d devices registered before the registry kept broker hashes "+
			"(%s): run again with --data and --rotate-missing FILE\n", len(missing),
			clipList(missing, 5))
	}
	return nil
}

// readData reads one stopped server's registry, issuing new secrets to the
// devices without a broker hash if asked.
func (o *exportAuthOptions) readData(dir string) ([]devices.BrokerLogin, map[string]string,
	error) {
	path := filepath.Join(dir, "waystation.db")
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("--data %s: %w", dir, err)
	}
	db, err := devices.OpenDB(path, time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("--data %s: %w (stop the server, or use --server)", dir, err)
	}
	defer db.Close()
	reg, err := devices.NewRegistry(db, devices.RegistryOptions{})
	if err != nil {
		return nil, nil, err
	}
	rotated := map[string]string{}
	if o.rotateTo != "" {
		for _, l := range reg.BrokerLogins() {
			if l.Hash != "" {
				continue
			}
			s, err := reg.RotateSecret(l.Device)
			if err != nil {
				return nil, nil, err
			}
			rotated[l.Device] = s
		}
	}
	return reg.BrokerLogins(), rotated, nil
}

// askServer reads a running server's logins through its API.
func (o *exportAuthOptions) askServer(cmd *cobra.Command, server, token string) (
	[]devices.BrokerLogin, error) {
	base, err := parseServer(server)
	if err != nil {
		return nil, err
	}
	token = strings.TrimSpace(token)
	if token == "" {
		token = strings.TrimSpace(os.Getenv(envToken))
	}
	if token == "" {
		return nil, errors.New("--server needs an admin token: --token or $" + envToken)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base.String()+"/api/v1/broker/logins", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ask %s: %w", base, newAPIError(resp.StatusCode, raw))
	}
	var out controller.BrokerLogins
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("ask %s: %w", base, err)
	}
	return out.Logins, nil
}

// readPasswordFile reads a password kept in a file, without its trailing
// newline.
func readPasswordFile(path, flag string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s is empty", flag)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	p := strings.TrimRight(string(buf), "\r\n")
	if p == "" || strings.ContainsAny(p, "\r\n") {
		return "", fmt.Errorf("%s %s: want one line holding the password", flag, path)
	}
	return p, nil
}

// writeFileAtomic replaces path with data, so a broker reloading meanwhile
// reads the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func clipList(l []string, n int) string {
	if len(l) <= n {
		return strings.Join(l, ", ")
	}
	return strings.Join(l[:n], ", ") + fmt.Sprintf(", and %d more", len(l)-n)
}
