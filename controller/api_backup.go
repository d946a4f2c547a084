package controller

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// handleBackup adds the backup route when a data file is given.
func (a *API) handleBackup() {
	if a.o.Backup != nil {
		a.handle("GET /api/v1/backup", PermBackup, a.backup)
	}
}

// backup streams a consistent copy of the data file: the state of one read
// transaction, so writers carry on while it is sent. The file holds every
// organisation's stations, credentials and operators, so only an admin of
// every organisation may take it.
func (a *API) backup(w http.ResponseWriter, r *http.Request, op Operator) {
	if !op.AllOrgs() {
		a.deny(w, r, op, DeniedScope, fmt.Sprintf("a backup holds every organisation's data; "+
			"operator %s is scoped to %v", op.Name, op.Orgs))
		return
	}
	start := time.Now()
	var n int64
	err := a.o.Backup.View(func(tx *bolt.Tx) error {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(tx.Size(), 10))
		w.Header().Set("Content-Disposition", `attachment; filename="waystation.db"`)
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil && n == 0 {
		w.Header().Del("Content-Length")
		w.Header().Del("Content-Disposition")
		writeError(w, http.StatusInternalServerError, "backup: "+err.Error())
		return
	}
	if err != nil {
		// The status is sent; a body shorter than its length tells the
		// client it failed.
		a.log.Error("backup not sent", "by", op.Name, "bytes", n, "err", err)
		return
	}
	a.log.Info("backup sent", "by", op.Name, "bytes", n, "took", time.Since(start).Round(time.Millisecond))
}
