package controller

import (
	"fmt"
	"time"

	"github.com/waystation/waystation/devices"
)

// Presence alerts. A device found offline (its last will, or silence
// reported by Presence) is held before it is paged:
//
//   - until the grace period after start ends, so that devices which
//     reconnect after a restart of the broker or the controller page
//     nobody;
//   - for StationWindow, when its station has other devices, unless they
//     all report meanwhile: when every device of the station goes quiet
//     within the window, one station.down alert is raised and the devices'
//     offline alerts are folded under it, notifying nobody.
//
// A device that sends anything valid is back: its hold is dropped and its
// offline alert, and its station's down alert, resolve.

// DeviceSilent is told by Presence of a device it marked offline because it
// stopped reporting. Give it to Presence.OnSilent.
func (e *Alerts) DeviceSilent(tw devices.Twin, at time.Time) {
	e.mu.Lock()
	e.deviceOffline(tw.Device, tw.Station, at, "silence")
	e.mu.Unlock()
	e.sweepOffline(e.o.Now())
}

// deviceOffline holds an offline device. e.mu must be held.
func (e *Alerts) deviceOffline(id, station string, at time.Time, how string) {
	if _, held := e.offline[id]; held {
		return
	}
	if a := e.byKey[alertKey(station, id, RuleOffline, "")]; a != nil && a.Open() {
		return
	}
	due := at
	if n := e.stationDevices(station); n > 1 {
		due = at.Add(e.o.StationWindow)
	}
	if g := e.started.Add(e.o.Grace); due.Before(g) {
		due = g
	}
	e.offline[id] = offlineHold{station: station, since: at, due: due, how: how}
	e.held.Store(int64(len(e.offline)))
	e.kick()
}

// kick has Run sweep soon.
func (e *Alerts) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// stationDevices counts the registered devices of a station.
func (e *Alerts) stationDevices(station string) int {
	n := 0
	for _, d := range e.o.Registry.Devices() {
		if d.Station == station {
			n++
		}
	}
	return n
}

// unhold drops the hold of a device. e.mu must be held.
func (e *Alerts) unhold(id string) {
	if _, ok := e.offline[id]; ok {
		delete(e.offline, id)
		e.held.Store(int64(len(e.offline)))
	}
}

// sweepOffline raises the alerts of held devices that are due, folding
// whole stations into one alert.
func (e *Alerts) sweepOffline(now time.Time) {
	e.mu.Lock()
	if len(e.offline) == 0 {
		e.mu.Unlock()
		return
	}
	stations := map[string]bool{}
	for _, h := range e.offline {
		stations[h.station] = true
	}
	e.mu.Unlock()

	// Twins and the registry are read outside the alerts' lock.
	members := map[string][]devices.Twin{}
	for _, d := range e.o.Registry.Devices() {
		if !stations[d.Station] {
			continue
		}
		// A device that never reported is not watched.
		if tw, ok := e.o.Twins.Get(d.ID); ok {
			members[d.Station] = append(members[d.Station], tw)
		}
	}
	names := map[string]string{}
	for st := range stations {
		names[st] = e.stationName(st)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	graceEnd := e.started.Add(e.o.Grace)
	if now.Before(graceEnd) {
		return
	}
	byStation := map[string][]string{}
	for id, h := range e.offline {
		byStation[h.station] = append(byStation[h.station], id)
	}
	for st, held := range byStation {
		twins := members[st]
		downAt := now
		for _, id := range held {
			if h := e.offline[id]; h.since.Before(downAt) {
				downAt = h.since
			}
		}
		if sa := e.byKey[alertKey(st, "", RuleStationDown, "")]; sa != nil && sa.Open() {
			for _, id := range held {
				e.raiseOffline(id, names[st], sa.ID, now)
			}
			continue
		}
		allOffline, allQuiet := len(twins) >= 2, len(twins) >= 2
		for _, tw := range twins {
			if tw.Online {
				allOffline = false
				if tw.LastSeen.After(downAt) {
					allQuiet = false
				}
			}
		}
		if allOffline || (allQuiet && !now.Before(downAt.Add(e.o.StationWindow))) {
			sa, _ := e.apply(signal{station: st, rule: RuleStationDown, severity: SeverityCritical,
				active: true, summary: fmt.Sprintf("station %s is down: all %d of its devices went "+
					"quiet at about %s (power or network loss)", names[st], len(twins),
					downAt.In(e.o.Location).Format("15:04:05"))}, now)
			for _, id := range held {
				e.raiseOffline(id, names[st], sa.ID, now)
			}
			// Devices of the station already paged just before join it.
			for _, a := range e.alerts {
				if a.Station == st && a.Rule == RuleOffline && a.Open() && a.Parent == "" &&
					!a.FirstSeen.Before(downAt.Add(-e.o.StationWindow)) {
					a.Parent = sa.ID
					e.dirty[a.ID] = struct{}{}
				}
			}
			continue
		}
		for _, id := range held {
			h := e.offline[id]
			othersBack := len(twins) > 1
			for _, tw := range twins {
				if tw.Device != id && (!tw.Online || !tw.LastSeen.After(h.since)) {
					othersBack = false
				}
			}
			if !now.Before(h.due) || othersBack {
				e.raiseOffline(id, names[st], "", now)
			}
		}
	}
}

// raiseOffline raises the offline alert of a held device, under a station
// alert when parent is set. e.mu must be held.
func (e *Alerts) raiseOffline(id, station string, parent string, now time.Time) {
	h := e.offline[id]
	e.unhold(id)
	why := "its connection closed or dropped"
	if h.how == "silence" {
		why = "it stopped reporting"
	}
	e.apply(signal{station: h.station, device: id, rule: RuleOffline, severity: SeverityMajor,
		active: true, parent: parent, summary: fmt.Sprintf("device %s at %s is offline since %s: %s",
			id, station, h.since.In(e.o.Location).Format("15:04:05"), why)}, now)
}
