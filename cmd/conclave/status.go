package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// StatusCmd probes every registered server and shows the permission
// table.
type StatusCmd struct{}

// serverStatus is one registration's line.
type serverStatus struct {
	URL       string `json:"url"`
	Username  string `json:"username"`
	Machine   string `json:"machine"`
	Reachable bool   `json:"reachable"`
	Revoked   bool   `json:"revoked,omitempty"` // reachable, but this machine's key is not enrolled
	Sessions  int    `json:"sessions"`          // live sessions on the server, the probe included
	Error     string `json:"error,omitempty"`   // why it is unreachable
}

// Run prints `<url>\t<user>/<machine>\treachable (<n> session(s) online)`
// or `…\tunreachable: <error>` per registration, a blank line, and the
// permission table. It fails if any server is unreachable.
func (c *StatusCmd) Run(ctx context.Context, g *Globals) error {
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if len(cfg.Servers) == 0 {
		if g.JSON {
			return g.printJSON(struct {
				Servers []serverStatus `json:"servers"`
				Perm    permDoc        `json:"perm"`
			}{[]serverStatus{}, permTable(cfg, "")})
		}
		g.printf("%s\n", noServers)
		return nil
	}
	key, err := g.loadKey(dir)
	if err != nil {
		return err
	}
	out := make([]serverStatus, len(cfg.Servers))
	var wg sync.WaitGroup
	for i, srv := range cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = g.probe(ctx, &srv, key)
		}()
	}
	wg.Wait()
	down := 0
	for _, s := range out {
		if !s.Reachable {
			down++
		}
	}
	if g.JSON {
		if err := g.printJSON(struct {
			Servers []serverStatus `json:"servers"`
			Perm    permDoc        `json:"perm"`
		}{out, permTable(cfg, "")}); err != nil {
			return err
		}
	} else {
		for _, s := range out {
			switch {
			case s.Reachable:
				g.printf("%s\t%s/%s\treachable (%d session(s) online)\n", s.URL, s.Username, s.Machine, s.Sessions)
			case s.Revoked:
				g.printf("%s\t%s/%s\tkey revoked: %s\n", s.URL, s.Username, s.Machine, s.Error)
			default:
				g.printf("%s\t%s/%s\tunreachable: %s\n", s.URL, s.Username, s.Machine, s.Error)
			}
		}
		g.printf("\n")
		writePermTable(g.Stdout, cfg, "")
	}
	if down > 0 {
		return fmt.Errorf("%d server(s) unreachable or refusing this machine's key", down)
	}
	return nil
}

// probe logs in to srv and asks who is online.
func (g *Globals) probe(ctx context.Context, srv *identity.Server, key ed25519.PrivateKey) serverStatus {
	st := serverStatus{URL: srv.URL, Username: srv.Username, Machine: srv.Machine}
	conn, err := g.dial(ctx, srv, key, connectOptions{})
	if err != nil {
		var ne *notEnrolledError
		st.Revoked = errors.As(err, &ne)
		st.Error = oneLine(err.Error())
		return st
	}
	defer conn.Close()
	r, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TWho})
	if err == nil {
		r, err = expect(r, protocol.TPresence)
	}
	if err != nil {
		st.Error = oneLine(err.Error())
		return st
	}
	st.Reachable, st.Sessions = true, len(r.Sessions)
	return st
}
