// Package agent writes the configuration that connects a coding agent's
// client to conclave: for Claude Code, the MCP server entry of the bridge,
// the hooks that hand the bridge's inbox over at turn boundaries, and the
// "hooks" delivery mode, in a project's own settings files.
//
// Files are edited, not rewritten: every key of the user's own stays,
// in its order, and what setup adds is recorded (with the files as they
// were) so that removing it restores them. A [Plan] says what would
// change; [Plan.Apply] writes it. Nothing here talks to a server.
//
// Which file holds what (Claude Code reads each from the project dir):
//
//   - .mcp.json: the project's MCP servers (mcpServers). Settings files do
//     not hold MCP servers.
//   - .claude/settings.local.json: hooks, and enabledMcpjsonServers, which
//     approves a .mcp.json server without the approval dialog. It is the
//     personal, git-ignored settings file: the hooks and the approval are
//     this user's choice, like the delivery mode they go with.
//   - .claude/conclave-setup.json: setup's record of what it changed.
package agent
