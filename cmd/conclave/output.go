package main

import (
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// checkName checks a name locally, before connecting, naming what it is
// ("channel name", "username") in the error.
func checkName(what, name string) error {
	if err := protocol.CheckName(name); err != nil {
		return fmt.Errorf("invalid %s %q: %w", what, name, err)
	}
	return nil
}

// checkNewName checks a name that is about to be created (a user, a
// machine, a channel, a session handle) against the name profile.
func checkNewName(what, name string) error {
	if err := protocol.CheckNewName(name); err != nil {
		return fmt.Errorf("invalid %s %q: %w", what, name, err)
	}
	return nil
}

// done prints a verb's result: v as one JSON document with --json,
// otherwise the text line "✓ " + the formatted text.
func (g *Globals) done(v any, format string, args ...any) error {
	if g.JSON {
		return g.printJSON(v)
	}
	g.printf("✓ "+format+"\n", args...)
	return nil
}

// printNames prints a list of names (users, members, bans): one per line,
// or one JSON array (never null) with --json.
func (g *Globals) printNames(names []string) error {
	if g.JSON {
		if names == nil {
			names = []string{}
		}
		return g.printJSON(names)
	}
	for _, n := range names {
		g.printf("%s\n", n)
	}
	return nil
}

// channelFlag is the required --channel of channel-admin verbs.
type channelFlag struct {
	Channel string `name:"channel" required:"" placeholder:"CHANNEL" help:"The channel."`
}
