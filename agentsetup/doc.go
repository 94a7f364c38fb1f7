// Package agentsetup writes, shows and removes what a coding agent needs
// to be a conclave session: the MCP server entry that starts `conclave
// bridge`, the hooks that run `conclave hook <runtime>` at turn
// boundaries, and what each runtime needs besides (Codex's hook trust,
// Gemini CLI's MCP trust), in the runtime's own configuration format.
//
// # Entry points
//
// [Codex] and [Gemini] compute a [Plan] for a project: the new content of
// every file they touch, from the files as they are. [Plan.Diff] shows it,
// [Plan.Apply] writes it. Setting up twice changes nothing the second time;
// removing (Options.Remove) takes out exactly what setup wrote and keeps
// every entry of the user's own.
//
// # Codex (TOML)
//
// The project's .codex/config.toml gets one block between marker comments
// (`# BEGIN conclave …` / `# END conclave`): [mcp_servers.conclave] and
// one [[hooks.EVENT]] group per hook event. Codex runs a hook only if the
// user's config.toml ($CODEX_HOME, default ~/.codex) records its trusted
// hash, keyed by the file, the event and the group's position; setup
// writes those keys in a marked block of the user's config.toml (Codex's
// own project trust is left to the user).
//
// # Gemini CLI (JSON)
//
// The project's .gemini/settings.json gets mcpServers.conclave and, under
// hooks.EVENT, one group whose hook is named "conclave". The file is
// rewritten with two-space indentation; the order of the user's keys is
// kept.
package agentsetup
