package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
)

// The bbolt files serve keeps in its data folder.
var dataFiles = []string{"waystation.db", "broker.db"}

// compactTxBytes is how much compact copies in one transaction.
const compactTxBytes = 64 << 20

func addMaintenanceCmds(root *cobra.Command) {
	root.AddCommand(newCompactCmd(), newBackupCmd())
}

func newCompactCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "compact [--data DIR]",
		Short: "Rewrite the data files without their free space (offline)",
		Long: "compact rewrites the bbolt files of a data folder (waystation.db, broker.db)\n" +
			"page by page into new files without the space that deleted data left, and puts\n" +
			"them in place of the old ones. Pruned history frees pages that bbolt reuses but\n" +
			"never gives back to the disk; compact does. The server must be stopped: compact\n" +
			"refuses a data file a running server holds.",
		Example: "  waystation compact --data /var/lib/waystation",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			found := 0
			for _, name := range dataFiles {
				path := filepath.Join(data, name)
				if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
					continue
				}
				found++
				before, after, err := compactFile(path)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s -> %s\n", path, byteSize(before),
					byteSize(after))
			}
			if found == 0 {
				return fmt.Errorf("no data files in %s (want %v): is --data the server's "+
					"data folder?", data, dataFiles)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "the server's data folder")
	return cmd
}

// compactFile rewrites the bbolt file at path into a compacted copy and
// renames the copy over it, holding the file's lock throughout so no server
// starts on it meanwhile. It returns the sizes before and after.
func compactFile(path string) (before, after int64, err error) {
	src, err := devices.OpenDB(path, 500*time.Millisecond)
	if errors.Is(err, devices.ErrLocked) {
		return 0, 0, fmt.Errorf("%s is held by a running server: stop it first "+
			"(compact works offline; `waystation backup FILE` copies a running server's data)", path)
	}
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	if fi, err := os.Stat(path); err == nil {
		before = fi.Size()
	}

	tmp := path + ".compact"
	os.Remove(tmp) // the leftover of an interrupted run
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := bolt.Compact(dst, src, compactTxBytes); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("put the compacted file in place: %w", err)
	}
	syncDir(filepath.Dir(path))
	if fi, err := os.Stat(path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}

func newBackupCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy a running server's data file, consistently, to FILE",
		Long: "backup downloads a consistent copy of the server's data file (waystation.db:\n" +
			"stations, devices, twins, operators, credentials, history...) while it runs, as\n" +
			"of one moment, checks that the copy opens as a bbolt file, and only then puts it\n" +
			"at FILE (replacing what is there). It needs an admin of every organisation.\n" +
			"To restore, stop the server and put the file in place of DATA/waystation.db.",
		Example: "  waystation backup /srv/backups/waystation-$(date +%F).db",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer c.close()
			start := time.Now()
			n, err := c.backup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s in %v\n", args[0], byteSize(n),
				time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

// backup streams GET /api/v1/backup into a temporary file beside path,
// checks it, and renames it to path.
func (c *client) backup(ctx context.Context, path string) (int64, error) {
	// The whole body may take longer than one answer: only the wait for the
	// answer to start is bounded.
	hc := *c.http
	hc.Timeout = 0
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr.ResponseHeaderTimeout = c.timeout
	}
	u := c.base.JoinPath("api/v1/backup").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, newAPIError(resp.StatusCode, raw)
	}

	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		return 0, fmt.Errorf("backup: the download stopped after %s: %w", byteSize(n), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return 0, fmt.Errorf("backup: got %d of %d bytes; the server log says why", n,
			resp.ContentLength)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := checkBoltFile(tmp); err != nil {
		return 0, fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	done = true
	syncDir(filepath.Dir(path))
	return n, nil
}

// checkBoltFile opens a bbolt file read-only and checks every page.
func checkBoltFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // read to the end: the checker stops when it is read
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// syncDir makes a rename in dir durable; where that is not possible the
// rename stands anyway.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// byteSize formats a size for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
