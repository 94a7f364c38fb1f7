package regfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link") // a NixOS or Kubernetes secret
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	linkToLink := filepath.Join(dir, "link2")
	if err := os.Symlink(link, linkToLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, link, linkToLink} {
		b, err := Read(p, 10)
		if err != nil || string(b) != "0123456789" {
			t.Errorf("Read(%s, 10) = %q, %v", p, b, err)
		}
	}

	tests := []readCase{
		{"over the cap", plain, 9, ErrTooLarge, plain + ": larger than 9 bytes"},
		{"a symlink over the cap", link, 9, ErrTooLarge, link + ": larger than 9 bytes"},
		{"a directory", dir, 1 << 10, ErrNotRegular, dir + ": not a regular file (it is a directory)"},
		{"missing", filepath.Join(dir, "none"), 1, fs.ErrNotExist, "no such file"},
	}
	tests = append(tests, specialFiles(t, dir)...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read(tt.path, tt.max)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Read(%s) = %d bytes, %v; want %v saying %q", tt.path, len(b), err, tt.want, tt.says)
			}
		})
	}
}

type readCase struct {
	name string
	path string
	max  int64
	want error
	says string
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{64 << 10: "64 KiB", 1 << 20: "1 MiB", 100: "100 bytes", 1536: "1536 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
