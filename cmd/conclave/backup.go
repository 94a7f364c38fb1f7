package main

import (
	"context"
	"os"

	"github.com/conclave/conclave/backup"
)

// BackupCmd takes a consistent, verified copy of a data dir, also while a
// server is running on it.
type BackupCmd struct {
	DataDir string `name:"data-dir" required:"" type:"path" placeholder:"DIR" help:"Data dir to back up; it may belong to a running server (nothing is written to it)."`
	Out     string `name:"out" required:"" type:"path" placeholder:"FILE" help:"Backup file to create (FILE.tar.zst), outside the data dir; an existing file is never overwritten."`
}

// Run writes the backup, verifies it and prints
// `✓ backup of DIR at event seq N → FILE (X files, Y bytes)`, or the
// manifest with --json. Progress lines go to stderr.
func (c *BackupCmd) Run(ctx context.Context, g *Globals) error {
	m, err := backup.Create(ctx, c.DataDir, c.Out, g.Stderr)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(m)
	}
	var size int64
	if fi, err := os.Stat(c.Out); err == nil {
		size = fi.Size()
	}
	g.printf("✓ backup of %s at event seq %d → %s (%d files, %d bytes)\n", c.DataDir, m.EventSeq, c.Out, len(m.Files), size)
	return nil
}
