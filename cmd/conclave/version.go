package main

import (
	"runtime/debug"
	"strings"
)

// version and revision may be set at build time with -ldflags
// "-X main.version=… -X main.revision=…". When they are not (go install,
// go build), they come from the module version and VCS stamp that the Go
// toolchain records in the binary.
var (
	version  = ""
	revision = ""
)

func init() {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	if version == "" {
		version = versionFrom(info)
	}
	if revision == "" {
		revision, _ = vcsStamp(info)
	}
}

// versionFrom names the build: the module version when there is one
// (go install …@v1.2.3, or a VCS pseudo-version such as
// v0.0.0-20261207194800-7687ba0abcde+dirty), else "devel-" and the VCS
// revision, else "dev".
func versionFrom(info *debug.BuildInfo) string {
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, modified := vcsStamp(info)
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel-" + rev
	if modified {
		v += "+dirty"
	}
	return v
}

// vcsStamp returns the VCS revision recorded in info, if any, and whether
// the tree was modified.
func vcsStamp(info *debug.BuildInfo) (rev string, modified bool) {
	if info == nil {
		return "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return strings.TrimSpace(rev), modified
}

// buildRevision is the VCS revision of this build, or "" if unknown.
func buildRevision() string { return revision }

// VersionCmd prints the version, as --version does.
type VersionCmd struct{}

// Run prints `conclave <version>`.
func (c *VersionCmd) Run(g *Globals) error {
	if g.JSON {
		return g.printJSON(struct {
			Version  string `json:"version"`
			Revision string `json:"revision,omitempty"`
		}{g.Version, revision})
	}
	g.printf("conclave %s\n", g.Version)
	return nil
}
