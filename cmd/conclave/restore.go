package main

import (
	"context"

	"github.com/conclave/conclave/backup"
)

// RestoreCmd unpacks and verifies a backup into a new data dir.
type RestoreCmd struct {
	File    string `arg:"" type:"path" placeholder:"FILE" help:"Backup file written by conclave backup."`
	DataDir string `name:"data-dir" required:"" type:"path" placeholder:"DIR" help:"Data dir to create; it must be empty or not exist."`
}

// Run restores the backup and prints
// `✓ restored FILE into DIR at event seq N (X files, Y bytes)`, or the
// manifest with --json. Progress lines go to stderr. Nothing is left in
// DIR if the backup does not verify.
func (c *RestoreCmd) Run(ctx context.Context, g *Globals) error {
	m, err := backup.Restore(ctx, c.File, c.DataDir, g.Stderr)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(m)
	}
	g.printf("✓ restored %s into %s at event seq %d (%d files, %d bytes); start it with: conclave serve --data-dir %s\n",
		c.File, c.DataDir, m.EventSeq, len(m.Files), m.Size(), c.DataDir)
	return nil
}
