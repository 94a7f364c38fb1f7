package main

// VersionCmd prints the version, as --version does.
type VersionCmd struct{}

// Run prints `conclave <version>`.
func (c *VersionCmd) Run(g *Globals) error {
	if g.JSON {
		return g.printJSON(struct {
			Version string `json:"version"`
		}{g.Version})
	}
	g.printf("conclave %s\n", g.Version)
	return nil
}
