package simulators

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/waystation/waystation/schemas"
)

// A registry file lists simulated devices with the MQTT secrets they log
// in with, so a fleet provisioned once can run again:
//
//	# waystation simulate: device secrets, keep this file private
//	devices:
//	  - station: ys-001
//	    id: ys-001-ac
//	    kind: ac
//	    secret: 3q2-...
//	    model: KFR-35GW        # optional, as are firmware and interval_s
//
// WriteRegistry writes it readable by its owner only.

// registryEntry is one device in a registry file.
type registryEntry struct {
	Station   string `yaml:"station"`
	ID        string `yaml:"id"`
	Kind      string `yaml:"kind"`
	Secret    string `yaml:"secret"`
	Model     string `yaml:"model,omitempty"`
	Firmware  string `yaml:"firmware,omitempty"`
	IntervalS int    `yaml:"interval_s,omitempty"`
}

var registryKeys = []string{"station", "id", "kind", "secret", "model", "firmware", "interval_s"}

// registryHeader heads every registry file written.
const registryHeader = "# waystation simulate: simulated devices and their MQTT secrets.\n" +
	"# Keep this file private: anyone holding it can log in as these devices.\n"

// ReadRegistry reads a registry file. A bad file is refused whole, each
// problem with its line, wrapping ErrSpec.
func ReadRegistry(path string) ([]DeviceSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s:%d: %s", ErrSpec, path, yamlErrorLine(err), yamlErrorReason(err))
	}
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", path, line, fmt.Sprintf(format, args...)))
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s: want a mapping with a devices list", ErrSpec, path)
	}
	root := doc.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value == "devices" {
			list = root.Content[i+1]
		} else {
			bad(k.Line, "unknown key %q; want devices", k.Value)
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		bad(root.Line, "want a non-empty devices list")
		return nil, fmt.Errorf("%w: %s", ErrSpec, strings.Join(problems, "\n"))
	}

	var specs []DeviceSpec
	seen := map[string]int{}
	for _, n := range list.Content {
		if n.Kind != yaml.MappingNode {
			bad(n.Line, "want a device: station, id, kind, secret")
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(registryKeys, k.Value) {
				bad(k.Line, "unknown key %q; want one of %s", k.Value, strings.Join(registryKeys, ", "))
			}
		}
		var e registryEntry
		if err := n.Decode(&e); err != nil {
			bad(n.Line, "%s", yamlErrorReason(err))
			continue
		}
		spec := DeviceSpec{Station: e.Station, Device: e.ID, Kind: schemas.Kind(e.Kind),
			Secret: e.Secret, Model: e.Model, Firmware: e.Firmware,
			Interval: time.Duration(e.IntervalS) * time.Second}
		if err := validate(spec, defaultBroker); err != nil {
			bad(n.Line, "%s", strings.TrimPrefix(err.Error(), ErrSpec.Error()+": "))
			continue
		}
		if e.IntervalS < 0 {
			bad(n.Line, "interval_s %d: want 0 (the kind's default) or more", e.IntervalS)
		}
		if line, dup := seen[e.ID]; dup {
			bad(n.Line, "device %s already listed on line %d", e.ID, line)
			continue
		}
		seen[e.ID] = n.Line
		specs = append(specs, spec)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrSpec, strings.Join(problems, "\n"))
	}
	return specs, nil
}

// WriteRegistry writes specs to a registry file readable by its owner
// only, replacing it whole: a crash leaves the old file or the new one.
func WriteRegistry(path string, specs []DeviceSpec) error {
	var doc struct {
		Devices []registryEntry `yaml:"devices"`
	}
	for _, s := range specs {
		doc.Devices = append(doc.Devices, registryEntry{Station: s.Station, ID: s.Device,
			Kind: string(s.Kind), Secret: s.Secret, Model: s.Model, Firmware: s.Firmware,
			IntervalS: int(s.Interval / time.Second)})
	}
	var buf bytes.Buffer
	buf.WriteString(registryHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".registry-*")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone already after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("registry: %w", err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("registry: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("registry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
