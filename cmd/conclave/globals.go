package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/alecthomas/kong"

	"github.com/conclave/conclave/identity"
)

// GlobalFlags are accepted before or after any verb.
type GlobalFlags struct {
	ConfigDir string           `name:"config-dir" env:"CONCLAVE_CONFIG_DIR" type:"path" placeholder:"DIR" help:"Directory of the machine key and config.toml (default: the OS config dir + /conclave)."`
	JSON      bool             `name:"json" help:"Print JSON instead of text: one document, or one object per line for streams."`
	Verbose   int              `name:"verbose" short:"v" type:"counter" help:"Log debug output to stderr (CONCLAVE_LOG_LEVEL, if set, wins)."`
	Version   kong.VersionFlag `name:"version" short:"V" help:"Print the version and exit."`
}

// Globals is what every verb's Run receives through kong's bindings (with
// a context.Context that ends on SIGINT or SIGTERM): where to write, the
// logger, and the global flags' values. There is no package-level state.
type Globals struct {
	Stdin  io.Reader    // read only where a verb is told to: a "-" argument
	Stdout io.Writer    // results
	Stderr io.Writer    // diagnostics
	Logger *slog.Logger // from newLogger: CONCLAVE_LOG_LEVEL, -v, CONCLAVE_LOG_FORMAT
	JSON   bool         // --json
	// Version is the build's version (-ldflags, else the build info).
	Version string

	configDirFlag string // --config-dir or $CONCLAVE_CONFIG_DIR, "" if neither
}

// ConfigDir returns the config dir: --config-dir, else
// $CONCLAVE_CONFIG_DIR, else the OS config dir + /conclave.
func (g *Globals) ConfigDir() (string, error) {
	return identity.ConfigDir(g.configDirFlag)
}

// loadConfig reads config.toml from the config dir.
func (g *Globals) loadConfig() (dir string, cfg *identity.Config, err error) {
	dir, err = g.ConfigDir()
	if err != nil {
		return "", nil, err
	}
	cfg, err = identity.LoadConfig(dir)
	return dir, cfg, err
}

// printf writes text output to stdout.
func (g *Globals) printf(format string, args ...any) {
	fmt.Fprintf(g.Stdout, format, args...)
}

// printJSON writes v to stdout as one compact JSON document and a newline.
func (g *Globals) printJSON(v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// notice writes a one-line notice to stderr, for the few things a user
// must be told outside a verb's output (such as a key import).
func (g *Globals) notice(msg string) {
	if msg != "" {
		fmt.Fprintln(g.Stderr, oneLine(msg))
	}
}

// oneShotHandle is the session handle of one-shot verbs: unique per
// process, so it never supersedes a live bridge's session.
func oneShotHandle() string {
	return fmt.Sprintf("cli-%d", os.Getpid())
}

// clientName is sent in hello.
func (g *Globals) clientName() string {
	return "conclave-cli/" + g.Version
}
