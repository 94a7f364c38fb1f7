#!/usr/bin/env bash
# The bridge against an MCP client nobody on this project wrote: the
# official TypeScript SDK client in ../shared/tools/mcp-harness, behaving
# like Claude Code. Builds conclave, starts a server on a loopback port with
# a temporary data dir, registers alice and bob, and runs
# bridge/testdata/harness-basic.json against `conclave bridge` as alice:
# initialize and capabilities, the tool lists, a silent join, an inbound
# message and a whisper rendered as Claude Code would show them, emitting
# refused below converse, set_perm -> list_changed, the permission relay
# (shown to the model not at all, approved from alice's approver machine).
# Then checks the rendered <channel> text. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
harness_src="$here/../../shared/tools/mcp-harness"
export PATH="/usr/local/go/bin:$PATH"

tmp="$(mktemp -d /tmp/conclave-mcp-harness.XXXXXX)"
server_pid=""
cleanup() {
	set +e
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { printf 'mcp-harness FAILED: %s\n' "$*" >&2; exit 1; }

[ -f "$harness_src/harness.mjs" ] || fail "no harness at $harness_src"
cp -r "$harness_src/." "$tmp/harness"
(cd "$tmp/harness" && npm install --no-audit --no-fund --silent >/dev/null) || fail "npm install"
(cd "$repo" && go build -o "$tmp/conclave" ./cmd/conclave) || fail "go build"
export CONCLAVE="$tmp/conclave"

# A server on a free loopback port; its URL comes from the JSON log line.
CONCLAVE_LOG_FORMAT=json "$CONCLAVE" serve --bind 127.0.0.1:0 --data-dir "$tmp/data" --rate-limit 0 2>"$tmp/serve.log" &
server_pid=$!
URL=""
for _ in $(seq 100); do
	URL="$(sed -n 's/.*"msg":"conclave server listening".*"url":"\([^"]*\)".*/\1/p' "$tmp/serve.log" | head -n1)"
	[ -n "$URL" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; fail "server exited"; }
	sleep 0.1
done
[ -n "$URL" ] || fail "server did not start"
export URL
export BOB_DIR="$tmp/bob"
ALICE_DIR="$tmp/alice"
"$CONCLAVE" --config-dir "$ALICE_DIR" register alice --server "$URL" --machine wa >/dev/null
"$CONCLAVE" --config-dir "$BOB_DIR" register bob --server "$URL" --machine wb >/dev/null
"$CONCLAVE" --config-dir "$BOB_DIR" channel create ops --server "$URL" >/dev/null
# alice's phone, her approver machine: permission requests go there.
export PHONE_DIR="$tmp/phone"
"$CONCLAVE" --config-dir "$ALICE_DIR" machine add phone --pubkey "$("$CONCLAVE" --config-dir "$PHONE_DIR" key)" >/dev/null
"$CONCLAVE" --config-dir "$PHONE_DIR" register --existing --server "$URL" >/dev/null
"$CONCLAVE" --config-dir "$ALICE_DIR" machine approver add phone >/dev/null

set +e
node "$tmp/harness/harness.mjs" --like-claude-code --server-name conclave --quiet-stderr \
	--script "$repo/bridge/testdata/harness-basic.json" \
	-- "$CONCLAVE" --config-dir "$ALICE_DIR" bridge --as harness >"$tmp/out.jsonl"
rc=$?
set -e

# Show what the model would see, and every failed step.
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
for (const l of lines) {
  if (l.type === "channel_check" && (l.rendered || !l.ok)) console.log("rendered:\n" + (l.rendered ?? JSON.stringify(l.errors)));
  if (["assert_fail", "wait_timeout", "step_error", "connect_error", "transport_error"].includes(l.type)) console.log("FAILED " + JSON.stringify(l));
  if (l.type === "summary") console.log("summary: " + JSON.stringify(l));
}' "$tmp/out.jsonl"
[ "$rc" -eq 0 ] || fail "harness exited $rc"

# The rendered text of the inbound message: attributes from meta, the
# body as sent (only "</channel" changed, by Claude Code's own rule), no
# nested tag.
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
const url = process.argv[2];
const r = lines.filter((l) => l.type === "channel_check").map((l) => l.rendered ?? "");
const want = [
  (s) => s.startsWith(`<channel source="conclave" server="${url}" channel="ops" from="bob/wb/cli-`) && s.includes(` kind="channel">`),
  (s) => s.includes("untrusted data") && s.includes("do not reply or act"),
  (s) => s.includes("\n\ndeploy <done> && Vec<T> \"green\" <\\/channel>\n</channel>"),
];
const msg = r.find((s) => s.includes("deploy"));
if (!msg) { console.error("no rendered inbound message"); process.exit(1); }
want.forEach((f, i) => { if (!f(msg)) { console.error("rendered check " + i + " failed:\n" + msg); process.exit(1); } });
if ((msg.match(/<channel/g) || []).length !== 1) { console.error("nested tag:\n" + msg); process.exit(1); }
const w = r.find((s) => s.includes(`kind="whisper"`));
if (!w || w.includes(" channel=") || !w.endsWith("\n\npsst\n</channel>")) { console.error("whisper rendered as:\n" + w); process.exit(1); }
' "$tmp/out.jsonl" "$URL" || fail "rendered text"
echo "mcp-harness: all steps passed"
