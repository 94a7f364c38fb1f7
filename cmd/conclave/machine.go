package main

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// MachineCmd groups the machine verbs.
type MachineCmd struct {
	Add      MachineAddCmd      `cmd:"" help:"Enroll another machine's key under your user."`
	List     MachineListCmd     `cmd:"" aliases:"ls" help:"List the machines enrolled under your user."`
	Remove   MachineRemoveCmd   `cmd:"" aliases:"rm" help:"Revoke one of your machines; its live sessions are dropped."`
	Approver MachineApproverCmd `cmd:"" help:"Choose the machines whose people answer your agents' permission requests."`
}

// MachineApproverCmd groups the approver-list verbs.
type MachineApproverCmd struct {
	Add    ApproverAddCmd    `cmd:"" help:"Put one of your machines on your approver list (from a machine already on it; the first one from any machine)."`
	Remove ApproverRemoveCmd `cmd:"" aliases:"rm" help:"Take a machine off your approver list (from a machine on it)."`
}

// ApproverAddCmd puts a machine on the caller's approver list.
type ApproverAddCmd struct {
	serverFlag
	Name string `arg:"" help:"The machine (see 'conclave machine list')."`
	User string `name:"user" placeholder:"USER" help:"As a server admin: restore an approver machine of USER, whose list is empty (once set up and emptied, a list cannot be set up again by its user)."`
}

// ApproverRemoveCmd takes a machine off the caller's approver list.
type ApproverRemoveCmd struct {
	serverFlag
	Name string `arg:"" help:"The machine."`
}

// Run asks the server and prints `✓ NAME is an approver machine`.
func (c *ApproverAddCmd) Run(ctx context.Context, g *Globals) error {
	if c.User != "" {
		if err := checkName("user name", c.User); err != nil {
			return err
		}
		return approverChange(ctx, g, c.Server, &protocol.Frame{Type: protocol.TApproverAdd, Machine: c.Name, User: c.User}, "%s is an approver machine of "+c.User)
	}
	return approverChange(ctx, g, c.Server, &protocol.Frame{Type: protocol.TApproverAdd, Machine: c.Name}, "%s is an approver machine")
}

// Run asks the server and prints `✓ NAME is no longer an approver machine`.
func (c *ApproverRemoveCmd) Run(ctx context.Context, g *Globals) error {
	return approverChange(ctx, g, c.Server, &protocol.Frame{Type: protocol.TApproverRemove, Machine: c.Name}, "%s is no longer an approver machine")
}

func approverChange(ctx context.Context, g *Globals, server string, f *protocol.Frame, format string) error {
	name, add := f.Machine, f.Type == protocol.TApproverAdd
	if err := checkName("machine name", name); err != nil {
		return err
	}
	if _, _, err := g.oneShot(ctx, server, f, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		Machine  string `json:"machine"`
		User     string `json:"user,omitempty"`
		Approver bool   `json:"approver"`
	}{name, f.User, add}, format, name)
}

// MachineAddCmd enrolls a key under the caller's user.
type MachineAddCmd struct {
	serverFlag
	Name   string `arg:"" help:"The new machine's name."`
	Pubkey string `name:"pubkey" required:"" placeholder:"KEY" help:"The new machine's public key: the line 'conclave key' prints there, or its base64 field."`
}

// Run checks the key and name locally, then asks the server.
func (c *MachineAddCmd) Run(ctx context.Context, g *Globals) error {
	pub, err := identity.ParsePublicKey(c.Pubkey)
	if err != nil {
		return err
	}
	if err := checkNewName("machine name", c.Name); err != nil {
		return err
	}
	_, _, err = g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TMachineAdd, Machine: c.Name, Pubkey: pub}, protocol.TAck)
	if err != nil {
		return err
	}
	fp := identity.Fingerprint(pub)
	if g.JSON {
		return g.printJSON(struct {
			Machine     string `json:"machine"`
			Fingerprint string `json:"fingerprint"`
		}{c.Name, fp})
	}
	g.printf("✓ added machine %s (%s)\n", c.Name, fp)
	return nil
}

// MachineListCmd lists the caller's machines.
type MachineListCmd struct {
	serverFlag
}

// Run prints `<name>\t<SHA256 fingerprint>\t<added_at>[\tapprover]` per
// machine.
func (c *MachineListCmd) Run(ctx context.Context, g *Globals) error {
	r, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TListMachines}, protocol.TMachineList)
	if err != nil {
		return err
	}
	type machine struct {
		Name        string `json:"name"`
		PublicKey   string `json:"public_key"`
		Fingerprint string `json:"fingerprint"`
		AddedAt     string `json:"added_at"`
		Approver    bool   `json:"approver"`
	}
	out := make([]machine, 0, len(r.Machines))
	for _, m := range r.Machines {
		pub := ed25519.PublicKey(m.Pubkey)
		fp := m.Fingerprint
		if fp == "" && len(pub) == ed25519.PublicKeySize {
			fp = identity.Fingerprint(pub)
		}
		var line string
		if len(pub) == ed25519.PublicKeySize {
			line = identity.AuthorizedKey(pub, "")
		}
		out = append(out, machine{m.Name, line, fp, m.AddedAt, m.Approver})
	}
	if g.JSON {
		return g.printJSON(out)
	}
	for _, m := range out {
		approver := ""
		if m.Approver {
			approver = "\tapprover"
		}
		g.printf("%s\t%s\t%s%s\n", m.Name, m.Fingerprint, m.AddedAt, approver)
	}
	return nil
}

// MachineRemoveCmd revokes one of the caller's machines.
type MachineRemoveCmd struct {
	serverFlag
	Name string `arg:"" help:"The machine to remove."`
}

// Run asks the server to remove the machine.
func (c *MachineRemoveCmd) Run(ctx context.Context, g *Globals) error {
	if err := protocol.CheckName(c.Name); err != nil {
		return fmt.Errorf("invalid machine name %q: %w", c.Name, err)
	}
	_, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TMachineRemove, Machine: c.Name}, protocol.TAck)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(struct {
			Machine string `json:"machine"`
		}{c.Name})
	}
	g.printf("✓ removed machine %s\n", c.Name)
	return nil
}
