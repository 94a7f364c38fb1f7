package bridge

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// Options configures [New]. Key and Config are required.
type Options struct {
	// Key is this machine's key.
	Key ed25519.PrivateKey

	// Config is the loaded config.toml: the registrations, the default
	// permission, the overrides (copied; later changes to Config have no
	// effect) and emit_budget.
	Config *identity.Config

	// Servers, if not empty, selects which registered servers to connect
	// to (the --server flags), by their exact URL. Empty means every one.
	Servers []string

	// Handle is the session handle given with --as. It is never renamed.
	// Empty means DefaultHandle, which may rename itself (base-2, …).
	Handle string

	// DefaultHandle is the handle used without --as, normally
	// [DefaultHandle] of the working directory. Empty means "session".
	DefaultHandle string

	// Joins are the --join values: CHANNEL, or URL#CHANNEL when several
	// servers are selected.
	Joins []string

	// Version is reported in serverInfo and hello. Default "dev".
	Version string

	// Logger receives the bridge's logs (never message bodies). Nil
	// discards them. stdout is not touched: it carries only JSON-RPC.
	Logger *slog.Logger

	// Now is the clock of the emit budget and catch_up. Nil means
	// time.Now.
	Now func() time.Time

	// Delivery is how messages reach the session: DeliveryPush (the
	// default) sends notifications/claude/channel; DeliveryHooks keeps
	// them in an inbox that hooks and the inbox tools read at turn
	// boundaries, for clients whose channels are off.
	Delivery string

	// InboxBytes bounds the inbox of DeliveryHooks. Zero means
	// DefaultInboxBytes.
	InboxBytes int

	// HookSocket, if not empty, is the path of the unix socket on which
	// `conclave hook` reaches this bridge ([HookSocketDir],
	// [HookSocketPath]). Serve listens on it and removes it at the end.
	HookSocket string

	// ChannelsSeen, if not nil, is called with a server's channel names
	// after a list_channels (all is true: they are the whole list the
	// user can see) or a join_channel (the one name). The CLI keeps them
	// for shell completion. It is called on the tool call's goroutine and
	// must not block for long.
	ChannelsSeen func(server string, names []string, all bool)
}

// Delivery modes (Options.Delivery).
const (
	DeliveryPush  = "push"
	DeliveryHooks = "hooks"
)

// Bridge is one MCP stdio server with its links. Build it with [New] and
// run it with [Bridge.Serve], once.
type Bridge struct {
	opts       Options
	log        *slog.Logger
	clientName string
	mcp        *server.MCPServer
	out        *outbox
	policy     *policy
	budget     *budget
	handle     *handle
	links      []*link // selection order; fixed after New
	byURL      map[string]*link
	tools      []mcp.Tool // the catalogue, in the order tools/list shows it
	inbox      *inbox     // DeliveryHooks only; nil when pushing
	perms      *approvals // permission requests Claude Code waits on
	stops      stopGuard

	// claimsMu guards claims.
	claimsMu sync.Mutex
	claims   map[string]string // server id → the first URL that reached it

	// toolsMu guards the offered flags and orders list_changed
	// notifications.
	toolsMu    sync.Mutex
	offerEmit  bool
	offerAdmin bool

	modernOnce sync.Once // the modern-era warning is logged once
}

// New checks opts and builds a bridge. Errors name the flag or file at
// fault: an unregistered --server, a bad --as or --join, no registrations.
func New(opts *Options) (*Bridge, error) {
	if opts == nil || opts.Config == nil {
		return nil, errors.New("bridge: New needs options with a config")
	}
	o := *opts
	if len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("no usable machine key (run `conclave key`)")
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.Delivery {
	case "":
		o.Delivery = DeliveryPush
	case DeliveryPush, DeliveryHooks:
	default:
		return nil, fmt.Errorf("invalid --delivery %q: want push or hooks", o.Delivery)
	}
	b := &Bridge{
		opts:       o,
		log:        o.Logger,
		clientName: "conclave-bridge/" + o.Version,
		policy:     newPolicy(o.Config),
		budget:     newBudget(o.Config.EmitBudget, o.Now),
		byURL:      make(map[string]*link),
		claims:     make(map[string]string),
		perms:      newApprovals(),
	}
	if o.Delivery == DeliveryHooks {
		b.inbox = newInbox(o.InboxBytes)
	}

	if o.Handle != "" {
		if err := protocol.CheckNewName(o.Handle); err != nil {
			return nil, fmt.Errorf("invalid --as handle %q: %w", o.Handle, err)
		}
		b.handle = newHandle(o.Handle, true)
	} else {
		base := o.DefaultHandle
		if protocol.CheckNewName(base) != nil {
			base = fallbackHandle
		}
		b.handle = newHandle(base, false)
	}

	selected, err := selectServers(o.Config, o.Servers)
	if err != nil {
		return nil, err
	}
	b.out = newOutbox(b.send, b.log)
	for _, s := range selected {
		l := newLink(b, s.URL, s.ServerID)
		b.links = append(b.links, l)
		b.byURL[s.URL] = l
		// A second registration pinned to the same server id is the
		// same server: disable it before it ever dials.
		if s.ServerID != "" {
			if canonical, dup := b.claim(s.ServerID, s.URL); dup {
				l.canonical = canonical
				l.state = stateDisabled
				b.log.Warn("duplicate server URL disabled", "server", s.URL, "canonical", canonical)
				b.tell(notice(s.URL, kindLink, "", duplicateText(s.URL, canonical)))
			}
		}
	}
	if err := b.parseJoins(o.Joins); err != nil {
		return nil, err
	}

	b.tools = catalogue(b.inbox != nil)
	b.offerEmit, b.offerAdmin = b.offered()
	text := instructions
	if b.inbox != nil {
		text += " " + inboxInstructions
	}
	hooks := &server.Hooks{}
	hooks.AddAfterInitialize(func(context.Context, any, *mcp.InitializeRequest, *mcp.InitializeResult) {
		// A client that never sends notifications/initialized still
		// gets its notifications.
		time.AfterFunc(initFallback, b.out.setReady)
	})
	hooks.AddAfterDiscover(func(_ context.Context, _ any, _ *mcp.DiscoverRequest, r *mcp.DiscoverResult) {
		// Only a client that stays in the modern era keeps these
		// instructions: one that falls back reads initialize's. With
		// hooks delivery the era does not matter.
		r.Instructions = text
		if b.inbox == nil {
			r.Instructions += " " + modernEraNote
		}
	})
	hooks.AddBeforeAny(func(ctx context.Context, _ any, method mcp.MCPMethod, _ any) {
		if method != mcp.MethodServerDiscover && server.IsModernRequest(ctx) {
			b.modernEra()
		}
	})
	mcpOpts := []server.ServerOption{
		server.WithHooks(hooks),
		server.WithToolCapabilities(true),
		server.WithInstructions(text),
		server.WithToolFilter(b.filterTools),
		server.WithRecovery(),
	}
	// With DeliveryHooks nothing is pushed, so the channel capability is
	// not declared: a client with channels on must not wait for pushes.
	if b.inbox == nil {
		mcpOpts = append(mcpOpts, server.WithExperimental(map[string]any{
			"claude/channel":            map[string]any{},
			"claude/channel/permission": map[string]any{},
		}))
	}
	b.mcp = server.NewMCPServer("conclave", o.Version, mcpOpts...)
	b.registerTools()
	b.mcp.AddNotificationHandler("notifications/initialized", func(context.Context, mcp.JSONRPCNotification) {
		b.out.setReady()
	})
	b.mcp.AddNotificationHandler(methodPermissionRequest, func(_ context.Context, n mcp.JSONRPCNotification) {
		b.onPermissionRequest(n.Params.AdditionalFields) // only queues: never blocks the read loop
	})
	return b, nil
}

// selectServers returns the registrations to connect to: those named by
// urls (each must be registered), else all.
func selectServers(cfg *identity.Config, urls []string) ([]identity.Server, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("no servers registered (run `conclave register` first)")
	}
	if len(urls) == 0 {
		return slices.Clone(cfg.Servers), nil
	}
	var out []identity.Server
	for _, u := range urls {
		s, ok := cfg.FindServer(u)
		if !ok {
			return nil, fmt.Errorf("--server %s: not registered (see `conclave server list`)", u)
		}
		if !slices.ContainsFunc(out, func(x identity.Server) bool { return x.URL == u }) {
			out = append(out, *s)
		}
	}
	return out, nil
}

// parseJoins records the --join channels on their links.
func (b *Bridge) parseJoins(joins []string) error {
	for _, j := range joins {
		url, ch := "", j
		if i := strings.Index(j, "://"); i >= 0 {
			k := strings.Index(j[i+3:], "#")
			if k < 0 {
				return fmt.Errorf("--join %s: want CHANNEL or URL#CHANNEL", j)
			}
			url, ch = j[:i+3+k], j[i+3+k+1:]
		}
		if err := protocol.CheckName(ch); err != nil {
			return fmt.Errorf("--join %s: invalid channel name %q: %w", j, ch, err)
		}
		var l *link
		if url != "" {
			l = b.byURL[url]
			if l == nil {
				return fmt.Errorf("--join %s: %s is not one of the servers this bridge connects to", j, url)
			}
		} else {
			active := b.activeLinks()
			if len(active) != 1 {
				return fmt.Errorf("--join %s: %d servers are selected; write URL#CHANNEL", j, len(active))
			}
			l = active[0]
		}
		if !l.disabled() {
			l.sess.Follow(ch)
		}
	}
	return nil
}

// Serve speaks MCP on stdin and stdout and runs the links until stdin
// ends or ctx is cancelled; both are a normal end and return nil. Call it
// once per process.
func (b *Bridge) Serve(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { b.out.run(ctx) })
	if b.opts.HookSocket != "" {
		ln, err := hookListener(b.opts.HookSocket)
		if err != nil {
			// Not fatal: the tools still work; turn-boundary delivery
			// through hooks does not.
			b.log.Warn("no hook socket", "err", err)
		} else {
			wg.Go(func() { b.serveHooks(ctx, ln) })
		}
	}
	for _, l := range b.links {
		if !l.disabled() {
			wg.Go(func() { l.run(ctx) })
		}
	}
	stdio := server.NewStdioServer(b.mcp)
	stdio.SetErrorLogger(slog.NewLogLogger(b.log.Handler(), slog.LevelWarn))
	// server/discover lists only the revisions before 2026-07-28: in the
	// modern era Claude Code drops notifications/claude/channel, so a
	// client that sees no modern revision falls back to initialize, where
	// pushes are delivered. Modern requests are still served.
	stdio.SetContextFunc(func(ctx context.Context) context.Context {
		return server.WithSupportedProtocolVersions(ctx, mcp.LegacyProtocolVersions())
	})
	server.WithWorkerPoolSize(64)(stdio)
	server.WithQueueSize(1000)(stdio)
	err := stdio.Listen(ctx, stdin, stdout)
	cancel()
	wg.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// modernEra records that the client speaks MCP 2026-07-28 or later
// although server/discover offered only earlier revisions: pushes cannot
// reach its model. It says so once on stderr; the instructions of the
// discover answer say it to the client. The outbox is opened so that
// notifications do not pile up (a client of that era may still read them).
func (b *Bridge) modernEra() {
	b.modernOnce.Do(func() {
		if b.inbox != nil {
			b.out.setReady() // hooks delivery: nothing is pushed, so nothing is lost
			return
		}
		b.log.Warn("the MCP client negotiated a protocol revision (2026-07-28 or later) in which Claude Code " +
			"does not deliver channel notifications: messages will not be pushed into this session; " +
			"tools (catch_up) still work")
		b.out.setReady()
	})
}

// deliver hands a relayed message (notification params) to the session:
// pushed, or kept in the inbox. e carries its dedup key, level and scope;
// its text is rendered here.
func (b *Bridge) deliver(params map[string]any, e entry) {
	if b.inbox == nil {
		b.out.push(methodChannel, params)
		return
	}
	e.text = element("conclave", params)
	if !b.inbox.add(e) {
		b.log.Debug("inbox: duplicate or oversized entry not kept", "seq", e.key.seq)
	}
}

// tell hands a bridge notice (notification params) to the session.
func (b *Bridge) tell(params map[string]any) {
	b.deliver(params, entry{level: noLevel, scope: "conclave notices"})
}

// send is the outbox's way out.
func (b *Bridge) send(method string, params map[string]any) error {
	return b.mcp.SendNotificationToSpecificClient("stdio", method, params)
}

// claim records that url reached the server with this id. It returns the
// other URL and true if one claimed the id first.
func (b *Bridge) claim(id, url string) (string, bool) {
	if id == "" {
		return "", false
	}
	b.claimsMu.Lock()
	defer b.claimsMu.Unlock()
	if first, ok := b.claims[id]; ok && first != url {
		return first, true
	}
	b.claims[id] = url
	return "", false
}

// activeLinks are the links that are not disabled duplicates.
func (b *Bridge) activeLinks() []*link {
	var out []*link
	for _, l := range b.links {
		if !l.disabled() {
			out = append(out, l)
		}
	}
	return out
}

// resolve picks the link a tool call is for (behaviour.md §4.9).
func (b *Bridge) resolve(serverArg string) (*link, error) {
	if serverArg != "" {
		l := b.byURL[serverArg]
		if l == nil {
			return nil, fmt.Errorf("not connected to server %s (this bridge's servers: %s)", code(serverArg), b.serverList())
		}
		if l.disabled() {
			l.mu.Lock()
			canonical := l.canonical
			l.mu.Unlock()
			return nil, errors.New(duplicateText(serverArg, canonical))
		}
		return l, nil
	}
	active := b.activeLinks()
	switch len(active) {
	case 1:
		return active[0], nil
	case 0:
		return nil, errors.New("no server is connected")
	}
	return nil, fmt.Errorf("multiple servers connected; pass `server` (one of: %s)", b.serverList())
}

func (b *Bridge) serverList() string {
	var urls []string
	for _, l := range b.activeLinks() {
		urls = append(urls, code(l.url))
	}
	return strings.Join(urls, ", ")
}

// offered computes which optional tool groups tools/list shows: the emit
// tools when a joined or --join channel or a server's whisper scope is at
// converse or above, the admin tools when a server said admin:true. The
// --join channels count before they are joined because some clients
// (Codex) read tools/list once, at startup, and ignore list_changed.
func (b *Bridge) offered() (emit, admin bool) {
	for _, l := range b.activeLinks() {
		joined := l.sess.Channels()
		l.mu.Lock()
		isAdmin := l.admin
		l.mu.Unlock()
		admin = admin || isAdmin
		if emit {
			continue
		}
		if b.policy.whisper(l.url).CanEmit() {
			emit = true
			continue
		}
		for _, ch := range joined {
			if b.policy.channel(l.url, ch.Name).CanEmit() {
				emit = true
				break
			}
		}
	}
	return emit, admin
}

// refreshTools recomputes the offered set after a change of state and
// queues notifications/tools/list_changed if it changed.
func (b *Bridge) refreshTools() {
	b.toolsMu.Lock()
	defer b.toolsMu.Unlock()
	emit, admin := b.offered()
	if emit == b.offerEmit && admin == b.offerAdmin {
		return
	}
	b.offerEmit, b.offerAdmin = emit, admin
	b.log.Debug("offered tools changed", "emit", emit, "admin", admin)
	b.out.push(methodToolsListChanged, nil)
}

// now is the bridge's clock.
func (b *Bridge) now() time.Time { return b.opts.Now() }
