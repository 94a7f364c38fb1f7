#!/usr/bin/env bash
# The real Codex CLI and Gemini CLI against the fake model APIs in testing/:
# installs both from npm (cached), then runs the Go tests that drive them
# (TestCodexCLI, TestCodexCLIPermission, TestCodexCLIStop, TestGeminiCLI,
# TestGeminiCLIStop). Without any npm registry it says so loudly and skips;
# any other failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! npm ping >/dev/null 2>&1; then
	echo "SKIPPED: no npm registry (the real Codex CLI and Gemini CLI cannot be installed)"
	exit 0
fi
command -v node >/dev/null || { echo "node is missing" >&2; exit 1; }
CONCLAVE_CODEX_BIN="$(testing/codex-rig/install.sh)"
CONCLAVE_GEMINI_BIN="$(testing/gemini-rig/install.sh)"
export CONCLAVE_CODEX_BIN CONCLAVE_GEMINI_BIN
echo "codex: $("$CONCLAVE_CODEX_BIN" --version)  gemini: $("$CONCLAVE_GEMINI_BIN" --version)"
go test -count=1 -run '^(TestCodexCLI|TestCodexCLIPermission|TestCodexCLIStop|TestGeminiCLI|TestGeminiCLIStop)$' -v ./cmd/conclave 2>&1 | grep -v '^        '
