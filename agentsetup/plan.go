package agentsetup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/conclave/conclave/atomicfile"
	"github.com/conclave/conclave/linediff"
	"github.com/conclave/conclave/regfile"
)

// Options says what to set up and where. Project and Bridge are required.
type Options struct {
	// Project is the project directory whose runtime configuration is
	// changed.
	Project string

	// Bridge is the argv of the MCP server: the conclave executable and
	// its arguments (`bridge …`).
	Bridge []string

	// Hook is the argv of the hook command for the runtime:
	// the conclave executable and `hook <runtime>` with any global flags.
	Hook []string

	// Home is the user's home directory, where the runtime keeps its user
	// configuration (~/.codex unless CodexHome is set, ~/.gemini).
	Home string

	// CodexHome is $CODEX_HOME; empty means Home/.codex.
	CodexHome string

	// Stop also installs the hook of the agent finishing (Codex's Stop,
	// Gemini CLI's AfterAgent), which keeps it going when a message that
	// asks for a reply is waiting.
	Stop bool

	// Remove takes out what setup wrote instead of writing it.
	Remove bool
}

// Plan is what setup or removal would do: the new content of each file it
// touches, and notes for the user. Build it with [Codex] or [Gemini].
type Plan struct {
	Files []FileChange
	Notes []string
}

// FileChange is one file before and after.
type FileChange struct {
	Path              string
	Old, New          []byte
	OldExists, Exists bool // whether the file exists before, and after
}

// Changed reports whether the file changes.
func (f *FileChange) Changed() bool {
	return f.OldExists != f.Exists || string(f.Old) != string(f.New)
}

// Changed reports whether anything would be written.
func (p *Plan) Changed() bool {
	for i := range p.Files {
		if p.Files[i].Changed() {
			return true
		}
	}
	return false
}

// Diff renders every change as a unified diff, "" when nothing changes.
func (p *Plan) Diff() string {
	var sb strings.Builder
	for i := range p.Files {
		f := &p.Files[i]
		from, to := f.Path, f.Path
		if !f.OldExists {
			from = "/dev/null"
		}
		if !f.Exists {
			to = "/dev/null"
		}
		sb.WriteString(linediff.Unified(from, to, f.Old, f.New))
	}
	return sb.String()
}

// Apply writes the changed files (each by a rename, so a reader sees the
// old file or the new one) and deletes those that setup had created and
// removal emptied, with their directory if it is left empty.
func (p *Plan) Apply() error {
	for i := range p.Files {
		f := &p.Files[i]
		if !f.Changed() {
			continue
		}
		if !f.Exists {
			if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", f.Path, err)
			}
			_ = os.Remove(filepath.Dir(f.Path)) // only succeeds when empty
			continue
		}
		if err := writeFile(f.Path, f.New); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// maxSettingsFile caps what is read of an agent's settings file.
const maxSettingsFile = 8 << 20

// readFile returns a file's content and whether it exists.
func readFile(path string) ([]byte, bool, error) {
	data, err := regfile.Read(path, maxSettingsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, true, nil
}

// check validates the options every runtime needs and returns the
// project directory, absolute and with symlinks resolved the way the
// runtime's getcwd sees it.
func (o *Options) check() (string, error) {
	if o.Project == "" || len(o.Bridge) == 0 || len(o.Hook) == 0 || o.Home == "" {
		return "", errors.New("agentsetup: Options needs Project, Bridge, Hook and Home")
	}
	dir, err := filepath.Abs(o.Project)
	if err != nil {
		return "", fmt.Errorf("project %s: %w", o.Project, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("project %s: %w", o.Project, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("project %s is not a directory", o.Project)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir, nil
}

// shellJoin quotes argv for a POSIX shell, as the runtimes run hook
// commands with `sh -c`.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@%+,") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
