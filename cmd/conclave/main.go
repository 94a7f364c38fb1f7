package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
)

// CLI is the command tree. Each verb is a struct with a Run method in a
// file of its own.
type CLI struct {
	GlobalFlags

	Serve     ServeCmd     `cmd:"" help:"Run the central server."`
	Health    HealthCmd    `cmd:"" help:"Probe a server's /health endpoint: exit 0 if it answers ok (the container health check)."`
	Key       KeyCmd       `cmd:"" help:"Create this machine's key if absent and print its public key."`
	Register  RegisterCmd  `cmd:"" help:"Claim a username on a server and enroll this machine under it."`
	Machine   MachineCmd   `cmd:"" help:"Manage the machines enrolled under your user."`
	Server    ServerCmd    `cmd:"" help:"List or forget registered servers (local only)."`
	Channel   ChannelCmd   `cmd:"" help:"Create, list, delete, rename channels and set their visibility."`
	ACL       ACLCmd       `cmd:"" name:"acl" help:"Manage a channel's access list."`
	Invite    InviteCmd    `cmd:"" help:"Create, list and revoke a channel's invite tokens."`
	Join      JoinCmd      `cmd:"" help:"Check access to a channel (redeeming an invite token) and optionally set its local permission level."`
	Send      SendCmd      `cmd:"" help:"Post one message to a channel."`
	Whisper   WhisperCmd   `cmd:"" help:"Send one direct message to a live session."`
	Tail      TailCmd      `cmd:"" help:"Stream a channel, and whispers to this session, to stdout."`
	Web       WebCmd       `cmd:"" help:"Print a one-time link that enrolls a browser as one of your machines."`
	Who       WhoCmd       `cmd:"" help:"List live sessions on the server or in a channel."`
	Approvals ApprovalsCmd `cmd:"" help:"List the permission requests your Claude Code sessions wait on (from an approver machine)."`
	Approve   ApproveCmd   `cmd:"" help:"Allow a pending permission request (from an approver machine)."`
	Deny      DenyCmd      `cmd:"" help:"Deny a pending permission request (from an approver machine)."`
	Kick      KickCmd      `cmd:"" help:"Unsubscribe a session, or all of a user's sessions, from a channel."`
	Ban       BanCmd       `cmd:"" help:"Ban a user from a channel."`
	Unban     UnbanCmd     `cmd:"" help:"Lift a user's ban from a channel (membership is not restored)."`
	Bans      BansCmd      `cmd:"" help:"List the users banned from a channel."`
	User      UserCmd      `cmd:"" help:"List or remove users (server admins)."`
	Status    StatusCmd    `cmd:"" help:"Show registrations, whether each server is reachable, and permission levels."`
	Perm      PermCmd      `cmd:"" help:"Show or set local permission levels (never sent to a server)."`
	Bridge    BridgeCmd    `cmd:"" help:"Run the MCP stdio server that connects a Claude Code session to conclave."`
	Agent     AgentCmd     `cmd:"" help:"Configure a coding agent's client for conclave (agent setup claude-code|codex|gemini)."`
	Hook      HookCmd      `cmd:"" help:"Run by Codex CLI's and Gemini CLI's hooks at turn boundaries: hand over what the session's bridge holds."`
	Audit     AuditCmd     `cmd:"" help:"Admin history from a data dir: events, state at a time, verification."`
	Backup    BackupCmd    `cmd:"" help:"Take a consistent, verified backup of a data dir, also while a server runs on it."`
	Restore   RestoreCmd   `cmd:"" help:"Unpack and verify a backup into a new, empty data dir."`
	Repair    RepairCmd    `cmd:"" help:"Offline: set aside damaged history records, or cut a damaged event log (dry run unless --yes)."`
	Version   VersionCmd   `cmd:"" help:"Print the version."`
	Bench     BenchCmd     `cmd:"" help:"Load-test a server: deliveries/s, CPU, latency, handshakes, memory per session."`

	Skill         SkillCmd         `cmd:"" help:"Print or install the Claude Code skill for conclave."`
	Completions   CompletionsCmd   `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	CompleteNames CompleteNamesCmd `cmd:"" name:"complete-names" hidden:"" help:"Print registered servers or cached channel names for the completion scripts (local files only)."`
}

const description = "conclave is Discord for coding agents: shared channels that let Claude Code " +
	"sessions on any number of machines talk through a central server."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the chosen verb and returns the exit status: 0,
// 1 for a failed verb, 2 for a usage error. Errors are printed as one line
// "error: …" on stderr.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			printError(stderr, fmt.Errorf("internal error: %v", r))
			code = 1
		}
	}()
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("conclave"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Vars{"version": "conclave " + version},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		// Flag values may start with '-': an invite token is base64url, and
		// one in 64 begins with it (--token -xbE5…).
		kong.WithHyphenPrefixedParameters(true),
	)
	if err != nil {
		printError(stderr, err)
		return 1
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		if hint := positionalHint(args); hint != "" {
			err = fmt.Errorf("%w: %s", err, hint)
		}
		printError(stderr, err)
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", commandPath(err))
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, let a second one kill the process at once.
	context.AfterFunc(ctx, stop)

	g := &Globals{
		Stdin:         os.Stdin,
		Stdout:        stdout,
		Stderr:        stderr,
		Logger:        newLogger(cli.Verbose, stderr),
		JSON:          cli.JSON,
		Version:       version,
		configDirFlag: cli.ConfigDir,
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(g); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		printError(stderr, err)
		return 1
	}
	return 0
}

// printError prints err as the one line "error: <message>".
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "error: %s\n", oneLine(err.Error()))
}

// oneLine folds s onto a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// commandPath names the command a parse error is about, for the usage
// hint: "conclave" or e.g. "conclave channel create".
func commandPath(err error) string {
	var pe *kong.ParseError
	if !errors.As(err, &pe) || pe.Context == nil {
		return "conclave"
	}
	var names []string
	for n := pe.Context.Selected(); n != nil; n = n.Parent {
		if n.Type == kong.CommandNode {
			names = append([]string{n.Name}, names...)
		}
	}
	return strings.Join(append([]string{"conclave"}, names...), " ")
}

// positionalHint names the argument that replaced a flag of the reference
// CLI (register --username NAME, machine add --name NAME), for the usage
// error such a spelling gets; "" for anything else.
func positionalHint(args []string) string {
	var words []string
	flag, value := "", ""
	for i, a := range args {
		name, v, hasValue := strings.Cut(a, "=")
		switch {
		case name == "--username" || name == "--name":
			flag, value = name, v
			if !hasValue && i+1 < len(args) {
				value = args[i+1]
			}
		case !strings.HasPrefix(a, "-") && len(words) < 2:
			words = append(words, a)
		}
	}
	if value == "" {
		value = "NAME"
	}
	switch {
	case flag == "--username" && len(words) > 0 && words[0] == "register":
		return fmt.Sprintf("the username is an argument, not a flag: conclave register %s --server URL", value)
	case flag == "--name" && len(words) > 1 && words[0] == "machine" && (words[1] == "add" || words[1] == "remove"):
		return fmt.Sprintf("the machine name is an argument, not a flag: conclave machine %s %s", words[1], value)
	}
	return ""
}
