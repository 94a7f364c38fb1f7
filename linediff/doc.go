// Package linediff renders the change between two small text files as a
// unified diff, for commands that show what they would write before they
// write it (agent setup, --dry-run).
package linediff
