package simulators

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/waystation/waystation/schemas"
)

// command handles one payload from the device's cmd topic: it carries the
// command out at most once, answers on cmd/result, and publishes the new
// state at once when the command changed it. It reports whether the device
// must now reboot; a reboot, once answered, happens even if publishing the
// answer failed, since the id is remembered as carried out.
func (d *Device) command(ctx context.Context, s *session, payload []byte) (bool, error) {
	res, answer, changed, reboot := d.execute(d.opts.Now(), payload)
	if !answer {
		return false, nil
	}

	res.Meta = d.meta()
	b, err := json.Marshal(res)
	if err != nil {
		return reboot, fmt.Errorf("result: %w", err)
	}
	if err := d.send(ctx, s, schemas.ChannelCmdResult, false, b); err != nil {
		return reboot, fmt.Errorf("result %s: %w", res.ID, err)
	}
	if changed {
		return reboot, d.report(ctx, s)
	}
	return reboot, nil
}

// execute decides what to do with a command payload and does it:
//
//   - a payload without a usable id is dropped: there is no one to answer;
//   - an id answered before is not carried out again, and its first answer
//     is sent again, so a platform that retries because it lost the answer
//     gets it (this holds even after the command expired);
//   - an invalid command is refused with ok false;
//   - device.ping changes nothing, and is answered with the telemetry;
//   - a command past its expires_at, by the device clock, is dropped with no
//     answer and no effect, and its id is not remembered;
//   - anything else is carried out and answered.
func (d *Device) execute(now time.Time, payload []byte) (
	res schemas.CommandResult, answer, changed, reboot bool) {
	cmd, decodeErr := schemas.DecodeCommand(payload)
	id := cmd.ID
	if decodeErr != nil {
		id = looseID(payload)
	}
	if !validCommandID(id) {
		d.log.Debug("command without id dropped", "err", decodeErr)
		return res, false, false, false
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if prev, ok := d.answered[id]; ok && !d.opts.Break.RepeatCommands {
		d.log.Debug("repeated command answered again", "command", id)
		d.stats.repeated.Add(1)
		return prev, true, false, false
	}
	if decodeErr != nil {
		res = schemas.CommandResult{ID: id, Error: clipError("invalid command: " + decodeErr.Error())}
		d.remember(res)
		d.stats.executed.Add(1)
		return res, true, false, false
	}
	if cmd.ExpiresAt > 0 && now.UnixMilli() > cmd.ExpiresAt && !d.opts.Break.ExpiredCommands {
		d.log.Debug("expired command dropped", "command", id, "name", cmd.Name,
			"late", now.Sub(time.UnixMilli(cmd.ExpiresAt)))
		d.stats.expired.Add(1)
		return res, false, false, false
	}

	d.advance(now)
	res = schemas.CommandResult{ID: id, OK: true}
	switch cmd.Name {
	case schemas.CmdReboot:
		reboot = true
	case schemas.CmdPing:
		changed = true // nothing to do but show the state
	default:
		evs, err := d.model.command(now, cmd)
		d.queueLocked(evs...)
		if err != nil {
			res.OK, res.Error = false, clipError(err.Error())
		}
		changed = err == nil
	}
	d.remember(res)
	d.stats.executed.Add(1)
	d.log.Debug("command", "command", id, "name", cmd.Name, "ok", res.OK, "error", res.Error)
	return res, true, changed, reboot
}

// remember records the answer to a command id, forgetting the oldest ids
// beyond what the device keeps. d.mu is held.
func (d *Device) remember(res schemas.CommandResult) {
	d.answered[res.ID] = res
	d.order = append(d.order, res.ID)
	if len(d.order) > rememberedCmds {
		delete(d.answered, d.order[0])
		d.order = d.order[1:]
	}
}

// looseID digs the id out of a payload the decoder refused, so the device
// can still say why.
func looseID(payload []byte) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(payload, &v) != nil {
		return ""
	}
	id, _ := v.ID.(string)
	return id
}

// validCommandID reports whether id is one the contract allows, so an
// answer echoing it is valid too: 1-64 of A-Z a-z 0-9 _ -.
func validCommandID(id string) bool {
	if len(id) == 0 || len(id) > maxCommandIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// maxCommandIDLen is the longest command id the contract allows.
const maxCommandIDLen = 64

// clipError keeps an answer's error within what the contract allows.
func clipError(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}
