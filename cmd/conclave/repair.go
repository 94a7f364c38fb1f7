package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/conclave/conclave/audit"
	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/repair"
)

// RepairCmd is the operator's offline way out of a damaged data dir.
type RepairCmd struct {
	DataDir string `name:"data-dir" required:"" type:"path" placeholder:"DIR" help:"Data dir to repair; no server may be running on it (repair takes its LOCK)."`
	Yes     bool   `name:"yes" help:"Do it. Without --yes repair only prints what it would do and changes nothing."`
}

// Help is the long help of conclave repair.
func (c *RepairCmd) Help() string {
	return "Offline, with no server running on DIR, and a dry run unless --yes. " +
		"A damaged history record (a channel message) is moved into DIR/quarantine/<time>/history/ and a gap record takes its place, " +
		"so every other message keeps its seq; a server serves around such damage anyway, repair only makes audit verify clean again. " +
		"Damage in events/ stops the server: repair can cut the event log at its first damaged record, " +
		"after listing EVERY event it would set aside (type, actor, time), the security ones (bans, ACL removals, machine revocations, " +
		"user and approver removals, invite revocations, visibility changes) marked SECURITY, since cutting them undoes them; " +
		"the events cut and the snapshots that cover them go to DIR/quarantine/<time>/ too. " +
		"This cut is the one exception to \"the event log is never truncated\", and only an operator makes it: restoring a backup is often better. " +
		"With --json the plan (and, with --yes, the quarantine folder) is one JSON document. " +
		"See docs/OPERATIONS.md, \"Damage and conclave repair\"."
}

// Run inspects the data dir, prints the plan and, with --yes, carries
// it out. The security events of a cut are in bold on a terminal.
func (c *RepairCmd) Run(ctx context.Context, g *Globals) error {
	r, err := repair.Open(c.DataDir)
	if err != nil {
		return err
	}
	defer r.Close()
	plan, err := r.Inspect(ctx)
	if err != nil {
		return err
	}
	if g.JSON && (plan.Empty() || !c.Yes) {
		return g.printJSON(repairView(c.DataDir, plan, ""))
	}
	if plan.Empty() {
		g.printf("✓ nothing to repair in %s: events/ and history/ are intact\n", c.DataDir)
		return nil
	}
	if !g.JSON {
		writeRepairPlan(g.Stdout, c.DataDir, plan, auditIsTerminal(g.Stdout))
	}
	if !c.Yes {
		g.printf("\ndry run: nothing was changed. Run again with --yes to do this; everything set aside is kept in %s/%s/<time>/.\n",
			c.DataDir, datadir.QuarantineDir)
		return nil
	}
	var report bytes.Buffer
	writeRepairPlan(&report, c.DataDir, plan, false)
	q, err := r.Apply(plan, time.Now(), report.String())
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(repairView(c.DataDir, plan, q))
	}
	events := 0
	if plan.Cut != nil {
		events = len(plan.Cut.Events)
	}
	g.printf("\n✓ repaired: %d history records and %d events set aside in %s (REPAIR.txt there says what and why); start the server with: conclave serve --data-dir %s\n",
		historyRecords(plan), events, q, c.DataDir)
	return nil
}

// repairJSON is conclave repair --json's one document: the plan, and
// where it was carried out (quarantine, empty on a dry run or when there
// was nothing to do).
type repairJSON struct {
	DataDir    string              `json:"data_dir"`
	Intact     bool                `json:"intact"`
	Applied    bool                `json:"applied"`
	Quarantine string              `json:"quarantine,omitempty"`
	History    []repairHistoryJSON `json:"history"`
	Events     *repairCutJSON      `json:"events"` // null: events/ is intact
}

type repairHistoryJSON struct {
	Segment string `json:"segment"`
	First   uint64 `json:"first_seq"`
	Last    uint64 `json:"last_seq"`
	Offset  int64  `json:"offset"`
	Damage  string `json:"damage,omitempty"` // empty: a message of a channel the cut removes
}

type repairCutJSON struct {
	Segment   string            `json:"segment"`
	Seq       uint64            `json:"seq"`
	Offset    int64             `json:"offset"`
	Damage    string            `json:"damage"`
	SetAside  []repairEventJSON `json:"set_aside"`
	Snapshots []string          `json:"snapshots"`
}

type repairEventJSON struct {
	Seq      uint64 `json:"seq"`
	Damaged  string `json:"damaged,omitempty"` // set: type, actor and time unknown
	Time     string `json:"time,omitempty"`
	Actor    string `json:"actor,omitempty"`
	Type     string `json:"type,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Security bool   `json:"security"`
}

func repairView(dir string, p *repair.Plan, quarantine string) repairJSON {
	v := repairJSON{DataDir: dir, Intact: p.Empty(), Applied: quarantine != "", Quarantine: quarantine,
		History: []repairHistoryJSON{}}
	for _, r := range p.History {
		h := repairHistoryJSON{Segment: r.Segment, First: r.First, Last: r.Last, Offset: r.Offset}
		if r.Damage != nil {
			h.Damage = r.Damage.Err.Error()
		}
		v.History = append(v.History, h)
	}
	if cut := p.Cut; cut != nil {
		c := &repairCutJSON{Segment: cut.Break.Segment, Seq: cut.Seq(), Offset: cut.Break.Offset,
			Damage: cut.Break.Err.Error(), SetAside: []repairEventJSON{}, Snapshots: cut.Snapshots}
		if c.Snapshots == nil {
			c.Snapshots = []string{}
		}
		for _, e := range cut.Events {
			ev := repairEventJSON{Seq: e.Seq, Security: e.Security()}
			if e.Damage != nil {
				ev.Damaged = e.Damage.Err.Error()
			} else {
				ev.Time = time.UnixMilli(e.TimeMs).UTC().Format("2006-01-02T15:04:05.000Z")
				ev.Actor, ev.Type, ev.Detail = e.Actor, e.Type, e.Describe()
			}
			c.SetAside = append(c.SetAside, ev)
		}
		v.Events = c
	}
	return v
}

func historyRecords(p *repair.Plan) int {
	n := 0
	for _, r := range p.History {
		n += int(r.Last - r.First + 1)
	}
	return n
}

// writeRepairPlan prints what repair does, for people. With bold, the
// security events of a cut are in ANSI bold; they carry the SECURITY
// marker either way.
func writeRepairPlan(w io.Writer, dir string, p *repair.Plan, bold bool) {
	fmt.Fprintf(w, "repair of %s (its LOCK is held: no server can start meanwhile)\n", dir)
	var damaged, dropped []string
	for _, r := range p.History {
		if r.Damage != nil {
			d := *r.Damage
			d.Seq, d.Last = r.First, 0
			if r.Last > r.First {
				d.Last = r.Last
			}
			damaged = append(damaged, audit.HistoryDamageText(&d))
		} else {
			dropped = append(dropped, fmt.Sprintf("%s/%s, seq %d", datadir.HistoryDir, r.Segment, r.First))
		}
	}
	if len(damaged) > 0 {
		fmt.Fprintf(w, "\nhistory/: %d damaged places to set aside (a gap record takes the place of each record; every other message keeps its seq):\n", len(damaged))
		for _, d := range damaged {
			fmt.Fprintf(w, "  %s\n", auditClean(d))
		}
	}
	if len(dropped) > 0 {
		fmt.Fprintf(w, "\nhistory/: %d messages of channels created by the events cut below, to set aside:\n", len(dropped))
		for _, d := range dropped {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	if p.Cut == nil {
		if len(damaged) > 0 {
			fmt.Fprintln(w, "\nevents/: intact")
		}
		return
	}
	cut := p.Cut
	security := 0
	for _, e := range cut.Events {
		if e.Security() {
			security++
		}
	}
	at := ""
	if cut.Break.Offset >= 0 {
		at = fmt.Sprintf(" (byte %d)", cut.Break.Offset)
	}
	fmt.Fprintf(w, "\nevents/: damaged at events/%s, seq %d%s: %s\n", cut.Break.Segment, cut.Seq(), at, auditClean(cut.Break.Err.Error()))
	fmt.Fprintf(w, "  Cutting the event log there keeps seq 1-%d and sets aside, and UNDOES, these %d events", cut.Seq()-1, len(cut.Events))
	if security > 0 {
		fmt.Fprintf(w, " (%d of them SECURITY measures: the banned, removed or revoked can come back)", security)
	}
	fmt.Fprintln(w, ":")
	for _, e := range cut.Events {
		if e.Damage != nil {
			fmt.Fprintf(w, "  seq %d  DAMAGED: type, actor and time unknown (%s)\n", e.Seq, auditClean(e.Damage.Err.Error()))
			continue
		}
		line := fmt.Sprintf("  seq %d  %s  %s  %s", e.Seq, time.UnixMilli(e.TimeMs).UTC().Format("2006-01-02T15:04:05.000Z"),
			auditClean(e.Actor), auditClean(e.Type))
		if d := e.Describe(); d != "" {
			line += "  " + auditClean(d)
		}
		if e.Security() {
			line += "  SECURITY: the cut undoes it"
			if bold {
				line = "\x1b[1m" + line + "\x1b[0m"
			}
		}
		fmt.Fprintln(w, line)
	}
	if len(cut.Snapshots) > 0 {
		fmt.Fprintf(w, "  and the snapshots that cover them:")
		for _, s := range cut.Snapshots {
			fmt.Fprintf(w, " %s/%s", datadir.SnapshotsDir, s)
		}
		fmt.Fprintln(w)
	}
}
