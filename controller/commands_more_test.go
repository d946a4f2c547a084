package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waystation/waystation/schemas"
)

// A refusal from the device fails the command and lets the next one go;
// an answer after the expiry is kept on the expired command.
func TestCommandFailedAndLateAnswer(t *testing.T) {
	r := newCmdRig(t, nil)
	dev := connectRaw(t, r, "ys-b-ac", true)
	dev.publish(t, "ys-b", schemas.ChannelStatus, true, `{"online":true,"kind":"ac","conn":"f1"}`)
	r.waitOnline(t, "ys-b-ac", true)
	answer := func(id string, ok bool, msg string) {
		dev.publish(t, "ys-b", schemas.ChannelCmdResult, false,
			fmt.Sprintf(`{"id":%q,"ok":%t,"error":%q}`, id, ok, msg))
	}

	first := r.issue(t, "ys-b-ac", schemas.CmdACSet, map[string]any{"mode": "heat"}, time.Minute)
	second := r.issue(t, "ys-b-ac", schemas.CmdPing, nil, time.Minute)
	if c := dev.next(t); c.ID != first {
		t.Fatalf("first sent %+v", c)
	}
	answer(first, false, "compressor locked out")
	rec := r.waitState(t, first, CommandFailed)
	if rec.OK == nil || *rec.OK || rec.Error != "compressor locked out" || rec.Effect != "" {
		t.Fatalf("failed %+v", rec)
	}
	if got := r.notes.types(first); !slices.Equal(got, []string{NoticeCommandSent,
		NoticeCommandFailed}) {
		t.Fatalf("notices %v", got)
	}
	if c := dev.next(t); c.ID != second {
		t.Fatalf("then sent %+v", c)
	}
	r.clock.Add(time.Minute)
	r.waitState(t, second, CommandExpired)
	answer(second, true, "")
	waitUntil(t, 5*time.Second, "the late answer recorded", func() bool {
		rec, _ = r.cmds().Get(second)
		return rec.LateAnswer
	})
	if rec.State != CommandExpired || rec.OK == nil || !*rec.OK {
		t.Fatalf("late %+v", rec)
	}
	// An answer for a command id nobody sent changes nothing.
	answer("c20250101-000000-999999", true, "")
	answer(first, true, "") // nor one for a command already answered
	time.Sleep(50 * time.Millisecond)
	if rec, _ := r.cmds().Get(first); rec.State != CommandFailed {
		t.Fatalf("first became %+v", rec)
	}
}

// Finished commands older than the retention are dropped; unfinished and
// younger ones stay.
func TestCommandRetention(t *testing.T) {
	r := newCmdRig(t, func(o *CommandsOptions) { o.Retention = 2 * time.Hour })
	var old []string
	for range 3 {
		old = append(old, r.issue(t, "ys-a-ac", schemas.CmdPing, nil, time.Minute))
	}
	r.clock.Add(2 * time.Minute)
	for _, id := range old {
		r.waitState(t, id, CommandExpired)
	}
	stuck := r.issue(t, "ys-a-ac", schemas.CmdPing, nil, 24*time.Hour) // device away: pending
	r.clock.Add(3 * time.Hour)
	young := r.issue(t, "ys-a-ac", schemas.CmdPing, nil, time.Minute)
	r.clock.Add(time.Hour)

	n, err := r.cmds().sweep(r.clock.Now())
	if err != nil || n != 3 {
		t.Fatalf("dropped %d, %v", n, err)
	}
	for _, id := range old {
		if _, err := r.cmds().Get(id); err == nil {
			t.Errorf("%s kept", id)
		}
	}
	for _, id := range []string{stuck, young} {
		if _, err := r.cmds().Get(id); err != nil {
			t.Errorf("%s dropped: %v", id, err)
		}
	}
}

// A controller that owns part of the stations refuses commands to the
// others: their answers would reach another controller.
func TestCommandOutsideThePartition(t *testing.T) {
	part := Partition{Index: 1, Count: 2}
	r := newCmdRig(t, func(o *CommandsOptions) { o.Partition = part })
	var mine, other string
	for _, d := range cmdRigDevices {
		if part.Owns(d.Station) {
			mine = d.ID
		} else {
			other = d.ID
		}
	}
	if mine == "" || other == "" {
		t.Fatal("the rig's stations all fall in one partition")
	}
	if _, err := r.cmds().IssueCommand(CommandRequest{Device: other, Name: schemas.CmdPing,
		Issuer: "x"}); !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("other partition: %v", err)
	}
	if _, err := r.cmds().IssueCommand(CommandRequest{Device: mine, Name: schemas.CmdPing,
		Issuer: "x"}); err != nil {
		t.Fatalf("own partition: %v", err)
	}
}
