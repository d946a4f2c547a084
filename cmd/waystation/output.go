package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"golang.org/x/text/width"
)

// outputFormat is the -o flag of the client commands. As a flag value it
// refuses anything else while the flags are parsed, before any request.
type outputFormat string

const (
	outputTable outputFormat = "table" // aligned columns for people
	outputJSON  outputFormat = "json"  // the API's JSON, for scripts
)

func (f *outputFormat) String() string { return string(*f) }

func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(strings.ToLower(s)); v {
	case outputTable, outputJSON:
		*f = v
		return nil
	}
	return errors.New("want table or json")
}

func (f *outputFormat) Type() string { return "format" }

// timeLayout shows a time with its UTC offset: zone abbreviations are
// ambiguous (China's CST is also a US zone).
const timeLayout = "2006-01-02 15:04:05 -07:00"

// printer writes answers for people: tables, times in the server's zone,
// ages against the server's clock.
type printer struct {
	out io.Writer
	loc *time.Location
	now func() time.Time
}

// newPrinter prints in the zone and against the clock of the server c
// talks to, as of its last answer; with a nil c, in this machine's.
func newPrinter(cmd *cobra.Command, c *client) *printer {
	if c == nil {
		return &printer{out: cmd.OutOrStdout(), loc: time.Local, now: time.Now}
	}
	return &printer{out: cmd.OutOrStdout(), loc: c.clock.location(), now: c.clock.now}
}

// show prints an API answer of c: as the server sent it for -o json
// (indented, fields in the server's order), else decoded into T and given
// to table.
func show[T any](cmd *cobra.Command, c *client, format outputFormat, raw []byte,
	table func(*printer, T) error) error {
	if format == outputJSON {
		return writeJSON(cmd.OutOrStdout(), raw)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("read the server's answer: %w", err)
	}
	return table(newPrinter(cmd, c), v)
}

// writeJSON writes a JSON document indented by two spaces, ending in a
// newline, without changing its content or field order.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// when shows t in the printer's zone with its offset, or "-" when unset.
func (p *printer) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(p.loc).Format(timeLayout)
}

// whenAgo is when followed by how long ago, to the second.
func (p *printer) whenAgo(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	age := p.now().Sub(t).Round(time.Second)
	if age < 0 {
		return fmt.Sprintf("%s (in %v)", p.when(t), -age)
	}
	return fmt.Sprintf("%s (%v ago)", p.when(t), age)
}

// table writes rows as columns two spaces apart, padded by display width.
// text/tabwriter would count a Chinese character as one column where a
// terminal draws two, and the station names here are mostly Chinese.
func (p *printer) table(rows [][]string) error {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			row[i] = printable(cell)
			cell = row[i]
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(cell))
		}
	}

	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			line.WriteString(cell)
			line.WriteString(strings.Repeat(" ", widths[i]-displayWidth(cell)+2))
		}
		// Trailing blanks only get in the way of diff and grep.
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(p.out, b.String())
	return err
}

// displayWidth is how many terminal columns s takes: East Asian wide and
// full-width characters take two, combining marks none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r) || r == '\u200b':
			// zero width
		case width.LookupRune(r).Kind() == width.EastAsianWide ||
			width.LookupRune(r).Kind() == width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// printable replaces control characters (a newline in an address, or a
// terminal escape sequence in a name) with spaces so a row stays one line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// orDash is s, or "-" for an empty cell so columns stay readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
