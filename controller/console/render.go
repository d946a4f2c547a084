package console

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/waystation/waystation/controller"
)

// pageNames are the page templates; each is drawn inside layout.html.
var pageNames = []string{"signin", "error", "alerts", "map", "list", "station", "commands", "plan"}

func (c *Console) parse() error {
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(c.funcs()).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// funcs are the helpers templates use; every time is shown in the
// stations' time zone.
func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		// when is a time for a glance: the clock today, the date otherwise.
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			t, now := t.In(c.o.Location), c.now()
			if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
				return t.Format("15:04:05")
			}
			if t.Year() == now.Year() {
				return t.Format("Jan 2 15:04")
			}
			return t.Format("2006-01-02 15:04")
		},
		// stamp is a full time for the datetime attribute and tooltips.
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.In(c.o.Location).Format("2006-01-02 15:04:05 MST")
		},
		"clock": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(c.o.Location).Format("15:04")
		},
		"iso": func(t time.Time) string { return t.In(c.o.Location).Format(time.RFC3339) },
		"day": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(c.o.Location).Format("2006-01-02")
		},
		"ago": func(t time.Time) string { return ago(c.now().Sub(t)) },
		"unixms": func(ms int64) time.Time {
			if ms == 0 {
				return time.Time{}
			}
			return time.UnixMilli(ms)
		},
		"num": func(v any) string {
			switch x := v.(type) {
			case *float64:
				if x == nil {
					return "—"
				}
				return trimFloat(*x)
			case float64:
				return trimFloat(x)
			case *int:
				if x == nil {
					return "—"
				}
				return fmt.Sprint(*x)
			case *int64:
				if x == nil {
					return "—"
				}
				return fmt.Sprint(*x)
			}
			return fmt.Sprint(v)
		},
		"levelWord": func(l string) string {
			if l == levelOK {
				return "No alerts"
			}
			return strings.ToUpper(l[:1]) + l[1:]
		},
		// levelMark is the text mark beside a level's colour.
		"levelMark": func(l string) string {
			switch l {
			case controller.SeverityCritical:
				return "!!!"
			case controller.SeverityMajor:
				return "!!"
			case controller.SeverityMinor:
				return "!"
			case controller.SeverityWarning:
				return "i"
			}
			return "✓"
		},
		// alertctx hands the alert list what its forms need.
		"alertctx": func(v view, alerts []alertRow, back string) alertCtx {
			return alertCtx{View: v, Alerts: alerts, Back: back}
		},
		"levels": func() []string { return append(slices.Clone(controller.Severities), levelOK) },
		"args": func(m map[string]any) string {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var b strings.Builder
			for i, k := range keys {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s=%v", k, m[k])
			}
			return b.String()
		},
		"join":  strings.Join,
		"add":   func(a, b int) int { return a + b },
		"short": shortID,
		"yesno": func(b bool, yes, no string) string {
			if b {
				return yes
			}
			return no
		},
	}
}

// ago says how long ago, in the largest whole unit.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func trimFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e9 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

// shortID is the part of a station id that tells it from its neighbours
// on the map: "ys-017" gives "017".
func shortID(id string) string {
	if i := strings.LastIndexByte(id, '-'); i >= 0 && i < len(id)-1 {
		return id[i+1:]
	}
	return id
}

// alertCtx is what the alert list template gets: the alerts, and the page's
// view for the forms (CSRF token, permissions) and where they return.
type alertCtx struct {
	View   view
	Alerts []alertRow
	Back   string
}
