package identity

import (
	"encoding"
	"fmt"
	"strconv"
	"strings"
)

// Level is a permission level: how far an inbound message may drive the
// agent that receives it. Levels are ordered, Mute < Notify < Converse <
// Act, and compare with < and >=. The zero value is Mute, the most
// restrictive level, so a forgotten level errs on the safe side.
type Level int8

const (
	// Mute drops inbound messages.
	Mute Level = iota
	// Notify shows inbound messages to the agent as read-only data.
	Notify
	// Converse shows inbound messages and lets the agent reply.
	Converse
	// Act shows inbound messages framed as requests to act on, and lets the
	// agent reply. Real side effects stay under Claude Code's own
	// permission system.
	Act
)

// DefaultLevel is the default_permission of a config that does not set one.
const DefaultLevel = Notify

var levelNames = [...]string{Mute: "mute", Notify: "notify", Converse: "converse", Act: "act"}

var (
	_ encoding.TextMarshaler   = Level(0)
	_ encoding.TextUnmarshaler = (*Level)(nil)
)

// Levels returns every level in ascending order.
func Levels() []Level { return []Level{Mute, Notify, Converse, Act} }

// LevelNames returns the name of every level in ascending order: mute,
// notify, converse, act.
func LevelNames() []string { return append([]string(nil), levelNames[:]...) }

// ParseLevel parses a level name: mute, notify, converse or act (case is
// ignored). The error names the unknown token and lists the valid ones.
func ParseLevel(s string) (Level, error) {
	for l, name := range levelNames {
		if strings.EqualFold(s, name) {
			return Level(l), nil
		}
	}
	return 0, fmt.Errorf("unknown permission level %q (valid levels: mute, notify, converse, act)", s)
}

// Valid reports whether l is one of the four levels.
func (l Level) Valid() bool { return l >= Mute && l <= Act }

// CanEmit reports whether an agent at level l may send messages and
// whispers: Converse and above.
func (l Level) CanEmit() bool { return l >= Converse && l.Valid() }

// String returns the level's lowercase name.
func (l Level) String() string {
	if !l.Valid() {
		return "Level(" + strconv.Itoa(int(l)) + ")"
	}
	return levelNames[l]
}

// MarshalText returns the level's lowercase name; an invalid level is an
// error.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("invalid permission level %d", int(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText parses a level name as [ParseLevel] does.
func (l *Level) UnmarshalText(text []byte) error {
	v, err := ParseLevel(string(text))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
