package observers

import (
	"context"
	"os"

	"github.com/cockroachdb/errors"
)

// LoadOptions configures LoadConfig and ParseConfig.
type LoadOptions struct {
	// Getenv looks up the *_env variables; default os.LookupEnv.
	Getenv func(string) (string, bool)
	// Rows reads the observers_table rows when the file names a table
	// (ReadTableObservers, after attaching the table's NOTIFY trigger in
	// `run`); nil: the rows are not read, and TableSkipped reports it.
	Rows func(ctx context.Context, table string) ([]TableObserver, error)
	// Resolve checks every *_env variable (Config.Resolve): `run` and a
	// reload refuse an unset one; `validate-config` only warns.
	Resolve bool
	// MaxFileBytes is the largest configuration file (and observers_table
	// row) accepted; default ConfigMaxBytesDefault (1 MiB).
	MaxFileBytes int
}

// LoadConfig is the configuration pipeline every command shares (`run`,
// the reloader, `validate-config`): read the file at path, decode it with
// its observers_table rows in one pass, and resolve its variables. The
// diagnostics are every problem found; the error is non-nil when the
// configuration cannot be used (the Config is then nil). Every step is
// bounded (limits.go): the file is read no further than MaxFileBytes, and
// a file past a limit is refused with a positioned diagnostic.
func LoadConfig(ctx context.Context, path string, o LoadOptions) (*Config, Diagnostics, error) {
	data, err := ReadConfigFile(path, o.MaxFileBytes)
	if err != nil {
		return nil, nil, errors.WithHint(errors.Wrapf(err, "read observer config"),
			"pass the path of an observers YAML file; examples/observers.yaml is a starting point")
	}
	return ParseConfig(ctx, path, data, o)
}

// ParseConfig is LoadConfig on the file's bytes.
func ParseConfig(ctx context.Context, filename string, data []byte, o LoadOptions) (*Config, Diagnostics, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	in := parseInput{getenv: getenv, maxBytes: o.MaxFileBytes, ctx: ctx}
	if o.Rows != nil {
		in.readRows = func(table string) ([]TableObserver, error) { return o.Rows(ctx, table) }
	}
	cfg, diags, err := parse(filename, data, in)
	if err != nil {
		return nil, diags, err
	}
	if o.Resolve {
		if err := cfg.Resolve(getenv); err != nil {
			return nil, diags, err
		}
	}
	return cfg, diags, nil
}

// TableSkipped reports whether the configuration names an observers_table
// whose rows were not read (LoadOptions.Rows was nil).
func (c *Config) TableSkipped() bool { return c.ObserversTable != "" && !c.tableRead }
