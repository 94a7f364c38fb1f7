//go:build !unix

package regfile

import "testing"

func specialFiles(t *testing.T, dir string) []readCase { return nil }
