#!/usr/bin/env bash
# verify-flake.sh — offline checks of conclave's flake, package, container
# image and NixOS module.
#
# Made for a machine with Debian's nix-bin (Nix 2.8; installed here with
# apt-get when missing), a Go toolchain and the Go module proxy, but no
# github.com or cache.nixos.org. It cannot download nixpkgs, so it builds
# against nix/ci/nixpkgs-stub, a clearly labelled stand-in, and says at the
# end what stays unproven.
#
# Usage: nix/verify-flake.sh [--repo DIR] [--skip-build] [--with-tests]
#                            [--reproducible] [--allow-untracked]
#                            [--print-vendor-hash] [--fix-vendor-hash]
#   --skip-build       stop after evaluation (no build, no nix run)
#   --with-tests       also build checks.<system>.tests: the whole Go test
#                      suite in the sandbox, as `nix flake check` runs it
#                      (minutes; .ci/run runs the same tests outside Nix)
#   --reproducible     rebuild the package cold, and the image, and have Nix
#                      compare the bits
#   --allow-untracked  report untracked files as a warning, not a failure
#                      (before a commit; a flake in git sees tracked files only)
#   --fix-vendor-hash  recompute vendorHash from go.sum and write it to
#                      nix/package.nix
# Environment:
#   EXPECTED_NIXPKGS_GO  the Go the pinned nixpkgs ships (default 1.26.0);
#                        go.mod's go line must be 1.N.0 and not above it
#   PIN_MAX_AGE_DAYS     warn when the nixpkgs pin is older (default 180)
#   SECURITY_THRESHOLD   max `systemd-analyze security` exposure (default 25)
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SKIP_BUILD=0 WITH_TESTS=0 REPRODUCIBLE=0 ALLOW_UNTRACKED=0 PRINT_HASH=0 FIX_HASH=0
while [ $# -gt 0 ]; do
	case "$1" in
	--repo) REPO=$(cd "$2" && pwd) || exit 2; shift 2 ;;
	--skip-build) SKIP_BUILD=1; shift ;;
	--with-tests) WITH_TESTS=1; shift ;;
	--reproducible) REPRODUCIBLE=1; shift ;;
	--allow-untracked) ALLOW_UNTRACKED=1; shift ;;
	--print-vendor-hash) PRINT_HASH=1; shift ;;
	--fix-vendor-hash) FIX_HASH=1; shift ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done
cd "$REPO" || exit 2
EXPECTED_NIXPKGS_GO=${EXPECTED_NIXPKGS_GO:-1.26.0}
PIN_MAX_AGE_DAYS=${PIN_MAX_AGE_DAYS:-180}
SECURITY_THRESHOLD=${SECURITY_THRESHOLD:-25}
PACKAGE_NIX=nix/package.nix
MODULE_NIX=nix/nixos-module.nix
STUB_DIR=nix/ci/nixpkgs-stub

# ------------------------------------------------------------------ tools
if ! command -v nix >/dev/null 2>&1; then
	echo "nix not found: installing Debian's nix-bin"
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq >/dev/null &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nix-bin >/dev/null ||
		{ echo "could not install nix-bin" >&2; exit 2; }
fi
for tool in nix nix-instantiate go git; do
	command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 2; }
done

WORK=$(mktemp -d -t verify-flake.XXXXXX)
BG_PID=
cleanup() {
	if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null; wait "$BG_PID" 2>/dev/null; fi
	chmod -R u+w "$WORK" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

GOMODCACHE_DIR=$(go env GOMODCACHE)
# A Go build cache the sandboxed builds share (see nix/ci/nixpkgs-stub/pkgs.nix).
GOCACHE_SHARE=${XDG_CACHE_HOME:-$HOME/.cache}/conclave-verify-flake/go-build
mkdir -p "$GOCACHE_SHARE" && chmod 1777 "$GOCACHE_SHARE"
SANDBOX_PATHS="/bin /lib /lib64 /usr $GOMODCACHE_DIR/cache/download?"
# Single-user Nix as root, sandboxed builds, no binary cache (it cannot be
# reached, and every build would wait on it). The sandbox sees /usr (the
# host Go under /usr/local/go, ssh-keygen) and the module download cache,
# from which the fixed-output vendor derivation fetches through
# GOPROXY=file://.
NIX_CONFIG="experimental-features = nix-command flakes
substituters =
connect-timeout = 3
sandbox = true
sandbox-fallback = false
sandbox-paths = $SANDBOX_PATHS $GOCACHE_SHARE?"
getent group nixbld >/dev/null 2>&1 || NIX_CONFIG="$NIX_CONFIG
build-users-group ="
export NIX_CONFIG
SYSTEM=$(uname -m)-linux

# nixo runs nix without the notice --override-input prints every time.
nixo() {
	nix "$@" 2> >(grep -v -E "^warning: not writing modified lock file|^• Updated input 'nixpkgs'|^    'github:NixOS/nixpkgs|^  → 'path:" >&2)
}

# ------------------------------------------------------------------ vendorHash
vendor_hash_in_repo() {
	sed -n 's/^[[:space:]]*vendorHash[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$PACKAGE_NIX" | head -1
}

# compute_vendor_hash runs what nixpkgs' goModules derivation runs
# (`go mod vendor`) and prints the NAR hash of the result.
compute_vendor_hash() {
	rm -rf "$WORK/vendor"
	GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod vendor -o "$WORK/vendor" >&2 || return 1
	if [ -z "$(ls -A "$WORK/vendor" 2>/dev/null)" ]; then echo null; return 0; fi
	nix hash path "$WORK/vendor"
}

if [ "$PRINT_HASH" = 1 ] || [ "$FIX_HASH" = 1 ]; then
	h=$(compute_vendor_hash) || exit 1
	echo "vendorHash: $h"
	if [ "$FIX_HASH" = 1 ]; then
		sed -i "s#\(vendorHash[[:space:]]*=[[:space:]]*\"\)[^\"]*#\1$h#" "$PACKAGE_NIX"
		echo "updated $PACKAGE_NIX"
	fi
	exit 0
fi

# ------------------------------------------------------------------ what to evaluate
# A clean git tree is evaluated as git+file, exactly as users get it.
# Otherwise the files a commit would hold (tracked and untracked, minus
# .gitignore) are copied and evaluated as a path: flake.
#
# Either way the version is 0.1.0+dirty: Nix drops self.rev when a lock
# input is overridden without writing the lock (--override-input
# --no-write-lock-file), so the git revision part of the version can only
# be seen with real nixpkgs. What is checked here is that the flake's
# version reaches the binary through -ldflags -X main.version.
EXPECT_VERSION="0.1.0+dirty"
if [ -z "$(git status --porcelain 2>/dev/null)" ] && git rev-parse HEAD >/dev/null 2>&1; then
	FLAKE="git+file://$REPO"
	SRC=$REPO
else
	SRC=$WORK/src
	mkdir -p "$SRC"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] || continue # deleted but still in the index
			mkdir -p "$SRC/$(dirname "$f")"
			cp -p "$f" "$SRC/$f"
		done
	FLAKE="path:$SRC"
fi
STUB=$WORK/stub
OVR=(--override-input nixpkgs "path:$STUB" --no-write-lock-file)

# ------------------------------------------------------------------ bookkeeping
declare -a R_NAME R_STATUS R_TIME R_NOTE
now() { date +%s.%N; }
run_check() { # NAME NOTE FUNCTION; FUNCTION returns 0 pass, 1 fail, 3 skip
	local name=$1 note=$2 fn=$3 t0 rc st
	echo
	echo "=== $name"
	t0=$(now)
	"$fn"
	rc=$?
	case $rc in 0) st=PASS ;; 3) st=SKIP ;; *) st=FAIL ;; esac
	R_NAME+=("$name") R_STATUS+=("$st") R_NOTE+=("$note")
	R_TIME+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')")
	echo "--- $st"
}

# ------------------------------------------------------------------ checks
c_tracked() {
	local untracked
	untracked=$(git ls-files --others --exclude-standard)
	[ -z "$untracked" ] && { echo "every file is tracked"; return 0; }
	echo "untracked, so invisible to a flake built from git:"
	echo "$untracked" | sed 's/^/  /'
	[ "$ALLOW_UNTRACKED" = 1 ] && { echo "(--allow-untracked: not a failure; evaluating a copy that includes them)"; return 0; }
	return 1
}

c_parse() {
	local f rc=0
	while IFS= read -r f; do
		nix-instantiate --parse "$SRC/$f" >/dev/null || { echo "parse error: $f"; rc=1; }
	done < <(cd "$SRC" && find . -name '*.nix' -not -path './vendor/*' | sed 's|^\./||' | sort)
	# Flake inputs must be a literal attrset, evaluated without any input.
	nix eval --impure --json --expr "(import $SRC/flake.nix).inputs" >"$WORK/inputs.json" || return 1
	echo "inputs: $(cat "$WORK/inputs.json")"
	[ "$(nix eval --impure --json --expr "builtins.attrNames (import $SRC/flake.nix).inputs")" = '["nixpkgs"]' ] ||
		{ echo "nixpkgs must be the only input"; rc=1; }
	return $rc
}

c_lock_structure() {
	cat >"$WORK/check-lock.nix" <<'NIX'
{ flake, lock, maxAgeDays }:
let
  inputs = (import flake).inputs;
  l = builtins.fromJSON (builtins.readFile lock);
  root = l.nodes.${l.root};
  problems =
    (if l.version != 7 then [ "lock version ${toString l.version} is not 7" ] else [ ])
    ++ (if builtins.attrNames inputs != builtins.attrNames (root.inputs or { }) then
      [ "flake.nix inputs ${toString (builtins.attrNames inputs)} differ from the lock's root inputs" ] else [ ])
    ++ builtins.concatMap (name:
      let
        node = l.nodes.${root.inputs.${name}};
        L = node.locked;
        O = node.original;
        m = builtins.match "github:([^/]+)/([^/?]+)(/([^?]+))?" (inputs.${name}.url or "");
      in
      if m == null || L.type != "github" then [ "${name}: not a github: input with a github lock" ]
      else
        let owner = builtins.elemAt m 0; repo = builtins.elemAt m 1; ref = builtins.elemAt m 3; in
        (if O.owner != owner || O.repo != repo || (O.ref or null) != ref then [ "${name}: original ${builtins.toJSON O} does not match ${inputs.${name}.url}" ] else [ ])
        ++ (if L.owner != owner || L.repo != repo then [ "${name}: locked ${L.owner}/${L.repo} is not ${owner}/${repo}" ] else [ ])
        ++ (if builtins.match "[0-9a-f]{40}" L.rev == null then [ "${name}: rev is not 40 hex digits" ] else [ ])
        ++ (if builtins.match "sha256-[A-Za-z0-9+/]{43}=" L.narHash == null then [ "${name}: narHash is not an SRI sha256" ] else [ ])
        ++ (if !(builtins.isInt L.lastModified) || L.lastModified < 1577836800 || L.lastModified > builtins.currentTime + 86400 then [ "${name}: lastModified implausible" ] else [ ])
    ) (builtins.attrNames (root.inputs or { }));
  pin = l.nodes.nixpkgs.locked;
  ageDays = (builtins.currentTime - pin.lastModified) / 86400;
in
{
  inherit problems;
  summary = "nixpkgs: github:${pin.owner}/${pin.repo}/${pin.rev} (${toString ageDays} days old)";
  stale = ageDays > maxAgeDays;
}
NIX
	local out
	out=$(nix eval --impure --json --expr "import $WORK/check-lock.nix { flake = $SRC/flake.nix; lock = $SRC/flake.lock; maxAgeDays = $PIN_MAX_AGE_DAYS; }") || return 1
	nix eval --impure --raw --expr "(builtins.fromJSON ''$out'').summary"
	echo
	if [ "$(nix eval --impure --expr "(builtins.fromJSON ''$out'').stale")" = true ]; then
		echo "WARN: the nixpkgs pin is older than $PIN_MAX_AGE_DAYS days: run 'nix flake update' on a networked machine"
	fi
	local problems
	problems=$(nix eval --impure --raw --expr "builtins.concatStringsSep \"\n\" (builtins.fromJSON ''$out'').problems")
	[ -z "$problems" ] || { echo "$problems"; return 1; }
}

c_lock_nix() {
	# Nix itself decides that the lock matches flake.nix; otherwise it would
	# re-lock, which needs the network and fails at once with --offline.
	nix flake metadata --offline --no-update-lock-file "$FLAKE" | sed -n '/^Inputs:/,$p'
	return "${PIPESTATUS[0]}"
}

c_gomod() {
	local gov rc=0
	gov=$(sed -n 's/^go[[:space:]]\{1,\}\([0-9.]*\)[[:space:]]*$/\1/p' go.mod | head -1)
	echo "go.mod: go $gov; local Go $(go env GOVERSION); pinned nixpkgs assumed to ship $EXPECTED_NIXPKGS_GO"
	if ! [[ $gov =~ ^1\.[0-9]+\.0$ ]]; then
		echo "go.mod's go line must be 1.N.0 (nixpkgs builds with GOTOOLCHAIN=local; a patch level would demand that exact Go)"
		rc=1
	fi
	if [ "$(printf '%s\n%s\n' "$gov" "$EXPECTED_NIXPKGS_GO" | sort -V | tail -1)" != "$EXPECTED_NIXPKGS_GO" ]; then
		echo "go.mod requires go $gov, newer than the $EXPECTED_NIXPKGS_GO the pinned nixpkgs ships"
		rc=1
	fi
	grep -q '^toolchain ' go.mod && echo "note: the toolchain line is ignored under GOTOOLCHAIN=local"
	return $rc
}

c_tidy() {
	GOFLAGS=-mod=mod go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; return 1; }
	echo "go.mod and go.sum are tidy"
}

c_vendor_hash() {
	local want got
	want=$(vendor_hash_in_repo)
	got=$(compute_vendor_hash) || return 1
	echo "$PACKAGE_NIX: $want"
	echo "go mod vendor: $got"
	[ "$want" = "$got" ] || { echo "stale vendorHash: run nix/verify-flake.sh --fix-vendor-hash"; return 1; }
}

prepare_stub() {
	rm -rf "$STUB"
	cp -r "$SRC/$STUB_DIR" "$STUB" || return 1
	chmod -R u+w "$STUB"
	printf '{ goroot = "%s"; gomodcache = "%s"; gocache = "%s"; }\n' "$(go env GOROOT)" "$GOMODCACHE_DIR" "$GOCACHE_SHARE" >"$STUB/host.nix"
}

# Outputs every user and CI relies on: per system (Linux only for the VM
# test), and global.
c_outputs() {
	prepare_stub || return 1
	nixo flake show --json "${OVR[@]}" "$FLAKE" >"$WORK/show.json" 2>"$WORK/show.err" || { cat "$WORK/show.err"; return 1; }
	local missing
	missing=$(nix eval --impure --raw --expr "let
	  show = builtins.fromJSON (builtins.readFile $WORK/show.json);
	  has = path: builtins.foldl' (s: n: if s != null && builtins.isAttrs s && s ? \${n} then s.\${n} else null) show path != null;
	  systems = [ \"x86_64-linux\" \"aarch64-linux\" \"aarch64-darwin\" ];
	  perSystem = s: [ [ \"packages\" s \"conclave\" ] [ \"packages\" s \"default\" ] [ \"apps\" s \"conclave\" ]
	    [ \"apps\" s \"default\" ] [ \"devShells\" s \"default\" ] [ \"formatter\" s ]
	    [ \"checks\" s \"package\" ] [ \"checks\" s \"tests\" ] ]
	    ++ (if builtins.match \".*-linux\" s != null then [ [ \"packages\" s \"image\" ] [ \"checks\" s \"image\" ] [ \"checks\" s \"nixos-module\" ] ] else [ ]);
	  required = builtins.concatMap perSystem systems ++ [ [ \"overlays\" \"default\" ] [ \"nixosModules\" \"default\" ] ];
	in builtins.concatStringsSep \" \" (map (builtins.concatStringsSep \".\") (builtins.filter (p: !(has p)) required))") || return 1
	[ -z "$missing" ] || { echo "missing outputs: $missing"; return 1; }
	echo "present: packages (Linux: image), apps, devShells, formatter and checks (package, tests, Linux: image, nixos-module)"
	echo "for x86_64-linux, aarch64-linux and aarch64-darwin; overlays.default; nixosModules.default"
}

c_stub_check() {
	[ -e "$STUB/host.nix" ] || prepare_stub || return 1
	# Evaluates every output (packages, apps, devShells, formatter, overlay,
	# module, checks) for every system, as `nix flake check` does.
	nixo flake check --no-build "${OVR[@]}" "$FLAKE"
}

c_stub_build() {
	[ "$SKIP_BUILD" = 1 ] && { echo "--skip-build"; return 3; }
	[ -e "$STUB/host.nix" ] || prepare_stub || return 1
	# Fill the module cache; the fixed-output vendor build fetches from it.
	GOFLAGS=-mod=mod go mod download || return 1
	GOPROXY="file://$GOMODCACHE_DIR/cache/download" GOSUMDB=off \
		nixo build -L --no-link "${OVR[@]}" "$FLAKE#packages.$SYSTEM.conclave" 2>&1 | tail -n 20
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	local out
	out=$(nixo eval --raw "${OVR[@]}" "$FLAKE#packages.$SYSTEM.conclave.outPath") || return 1
	echo "built: $out"
	echo "binary: $(stat -c %s "$out/bin/conclave") bytes ($(du -h "$out/bin/conclave" | cut -f1))"
	if ldd "$out/bin/conclave" >/dev/null 2>&1; then echo "dynamically linked; CGO_ENABLED=0 should make it static"; return 1; fi
	echo "$out" >"$WORK/pkg-out"
}

c_stub_tests() {
	[ "$SKIP_BUILD" = 1 ] && return 3
	[ "$WITH_TESTS" = 1 ] || { echo "not asked for (--with-tests)"; return 3; }
	GOPROXY="file://$GOMODCACHE_DIR/cache/download" GOSUMDB=off \
		nixo build -L --no-link "${OVR[@]}" "$FLAKE#checks.$SYSTEM.tests" 2>&1 |
		grep -v -E '^conclave[^>]*> (ok|\?) ' | tail -n 40
	[ "${PIPESTATUS[0]}" = 0 ]
}

c_reproducible() {
	[ "$SKIP_BUILD" = 1 ] && return 3
	[ "$REPRODUCIBLE" = 1 ] || { echo "not asked for (--reproducible)"; return 3; }
	[ -s "$WORK/pkg-out" ] || { echo "package not built"; return 1; }
	# Build the package again, without the shared Go build cache (a cold
	# build, minutes), and have Nix compare the result bit for bit.
	GOPROXY="file://$GOMODCACHE_DIR/cache/download" GOSUMDB=off \
		nixo build --rebuild --no-link --option sandbox-paths "$SANDBOX_PATHS" \
		"${OVR[@]}" "$FLAKE#packages.$SYSTEM.conclave" || return 1
	echo "a cold rebuild is bit-for-bit identical to the first build"
	# The image's two steps (its layer, then the archive), built again.
	nixo build --no-link "${OVR[@]}" "$FLAKE#packages.$SYSTEM.image" || return 1
	nixo build --rebuild --no-link "${OVR[@]}" "$FLAKE#packages.$SYSTEM.image.customisationLayer" || return 1
	nixo build --rebuild --no-link "${OVR[@]}" "$FLAKE#packages.$SYSTEM.image" || return 1
	echo "so is a rebuild of the image's layer and archive (stand-in dockerTools)"
}

c_nix_run() {
	[ "$SKIP_BUILD" = 1 ] && return 3
	[ -s "$WORK/pkg-out" ] || { echo "package not built"; return 1; }
	local v addr data=$WORK/data
	v=$(nixo run "${OVR[@]}" "$FLAKE#conclave" -- version) || return 1
	echo "nix run .#conclave -- version: $v"
	[ "$v" = "conclave $EXPECT_VERSION" ] || { echo "want: conclave $EXPECT_VERSION (the version comes from -ldflags -X main.version)"; return 1; }
	nix run "${OVR[@]}" "$FLAKE#conclave" -- serve --data-dir "$data" --bind 127.0.0.1:0 >"$WORK/serve.log" 2>&1 &
	BG_PID=$!
	for _ in $(seq 100); do
		addr=$(sed -n 's/.*conclave server listening.*addr=\([0-9.]*:[0-9]*\).*/\1/p' "$WORK/serve.log" | head -1)
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || { echo "serve did not start:"; cat "$WORK/serve.log"; return 1; }
	local body=
	for _ in $(seq 50); do
		body=$(http_get "$addr" /health) && [ "$body" = ok ] && break
		sleep 0.1
	done
	echo "nix run .#conclave -- serve --data-dir DIR: /health on $addr says '$body'"
	kill -TERM "$BG_PID"
	wait "$BG_PID"
	local st=$?
	BG_PID=
	[ "$body" = ok ] || { cat "$WORK/serve.log"; return 1; }
	[ "$st" = 0 ] || { echo "serve exited $st after SIGTERM, want 0"; cat "$WORK/serve.log"; return 1; }
	[ -s "$data/server-id" ] || { echo "no server-id in the data dir"; return 1; }
	echo "SIGTERM: exit 0; data dir holds $(cd "$data" && echo *)"
}

# The container image (packages.<linux>.image), built by the stand-in's
# dockerTools.buildLayeredImage: the docker-archive's manifest, config and
# files against what the Containerfile makes (.ci/container.sh checks that
# one), and, when podman is installed, `podman load` and `podman image
# inspect` in a throwaway store.
c_image() {
	[ "$SKIP_BUILD" = 1 ] && return 3
	[ -s "$WORK/pkg-out" ] || { echo "package not built"; return 1; }
	nixo build -L --no-link "${OVR[@]}" "$FLAKE#packages.$SYSTEM.image" 2>&1 | tail -n 20
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	local out img=$WORK/image rc=0
	out=$(nixo eval --raw "${OVR[@]}" "$FLAKE#packages.$SYSTEM.image.outPath") || return 1
	echo "built: $out"
	rm -rf "$img" && mkdir -p "$img" || return 1
	tar -xzf "$out" -C "$img" || { echo "not a gzipped tar"; return 1; }
	[ -s "$img/manifest.json" ] || { echo "no manifest.json: not a docker-archive"; return 1; }

	# What the archive says, one "name<TAB>JSON" line per setting (Nix reads
	# the JSON, so no jq is needed), then one "layer<TAB>path<TAB>diff_id"
	# line per layer.
	nix eval --impure --raw --expr "let
	  j = builtins.toJSON;
	  m = builtins.fromJSON (builtins.readFile \"$img/manifest.json\");
	  e = builtins.head m;
	  c = builtins.fromJSON (builtins.readFile \"$img/\${e.Config}\");
	  cc = c.config or { };
	  l = cc.Labels or { };
	  label = n: l.\"org.opencontainers.image.\${n}\" or null;
	  ids = c.rootfs.diff_ids or [ ];
	  f = n: v: n + \"\t\" + j v;
	in builtins.concatStringsSep \"\n\" ([
	  (f \"images\" (builtins.length m))
	  (f \"config-file\" e.Config)
	  (f \"repo-tags\" (e.RepoTags or null))
	  (f \"os\" (c.os or null))
	  (f \"architecture\" (c.architecture or null))
	  (f \"entrypoint\" (cc.Entrypoint or null))
	  (f \"cmd\" (cc.Cmd or null))
	  (f \"user\" (cc.User or null))
	  (f \"ports\" (cc.ExposedPorts or null))
	  (f \"volumes\" (cc.Volumes or null))
	  (f \"env\" (cc.Env or null))
	  (f \"stopsignal\" (cc.StopSignal or null))
	  (f \"healthcheck\" (cc.Healthcheck or null))
	  (f \"label-title\" (label \"title\"))
	  (f \"label-source\" (label \"source\"))
	  (f \"label-version\" (label \"version\"))
	  (f \"label-revision\" (label \"revision\"))
	  (f \"layer-count\" [ (builtins.length e.Layers) (builtins.length ids) ])
	] ++ builtins.genList (i: \"layer\t\" + builtins.elemAt e.Layers i + \"\t\"
	  + (if i < builtins.length ids then builtins.elemAt ids i else \"none\")) (builtins.length e.Layers)) + \"\n\"" \
		>"$WORK/image.fields" || return 1

	local tag=${EXPECT_VERSION//+/-} arch name got want
	case $SYSTEM in x86_64-*) arch=amd64 ;; aarch64-*) arch=arm64 ;; *) arch=unknown ;; esac
	while IFS=$'\t' read -r name want; do
		got=$(sed -n "s/^$name\t//p" "$WORK/image.fields")
		if [ "$got" = "$want" ]; then
			printf '  ok  %-15s %s\n' "$name" "$got"
		else
			printf '  BAD %-15s got %s, want %s\n' "$name" "${got:-nothing}" "$want"
			rc=1
		fi
	done <<WANT
images	1
repo-tags	["conclave:$tag"]
os	"linux"
architecture	"$arch"
entrypoint	["/conclave"]
cmd	["serve","--data-dir","/data"]
user	"65532:65532"
ports	{"4390/tcp":{}}
volumes	{"/data":{}}
env	["CONCLAVE_BIND=0.0.0.0:4390"]
stopsignal	"SIGTERM"
healthcheck	{"Interval":30000000000,"Retries":3,"StartPeriod":60000000000,"Test":["CMD","/conclave","health"],"Timeout":10000000000}
label-title	"conclave"
label-source	"https://github.com/conclave/conclave"
label-version	"$EXPECT_VERSION"
WANT
	# A tag may hold [A-Za-z0-9_.-] only (a version's "+" is not allowed).
	[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "  BAD tag '$tag' is not a valid image tag"; rc=1; }
	grep -q $'^label-revision\t"[^"]' "$WORK/image.fields" || { echo "  BAD no revision label"; rc=1; }

	# Content addressing: the config is named by its digest, each layer's
	# diff_id is the digest of its tar.
	local cfg lpath lid n=0 files=
	cfg=$(sed -n 's/^config-file\t"\(.*\)"$/\1/p' "$WORK/image.fields")
	[ -n "$cfg" ] && [ "$(sha256sum "$img/$cfg" | cut -d ' ' -f 1).json" = "$cfg" ] ||
		{ echo "  BAD config file '$cfg' is not named by its sha256"; rc=1; }
	grep -q $'^layer-count\t\\[\\([0-9]*\\),\\1\\]$' "$WORK/image.fields" || { echo "  BAD not as many diff_ids as layers"; rc=1; }
	while IFS=$'\t' read -r _ lpath lid; do
		n=$((n + 1))
		[ "sha256:$(sha256sum "$img/$lpath" | cut -d ' ' -f 1)" = "$lid" ] || { echo "  BAD layer $lpath: diff_id $lid is not its sha256"; rc=1; }
		# "path owner mode" per entry (a later layer's entry wins below).
		files+=$(tar --numeric-owner -tvf "$img/$lpath" | while read -r perm owner _ _ _ path _; do
			path=${path%/}
			printf '%s %s %s\n' "/${path#.}" "$owner" "$perm"
		done)$'\n'
	done < <(grep $'^layer\t' "$WORK/image.fields")
	files=$(printf '%s' "$files" | sed '/^$/d; s|^//*|/|' | tac | sort -s -u -k1,1)
	echo "  $n layer(s), files:"
	printf '%s\n' "$files" | sed 's/^/    /'
	want="/ 0/0 drwxr-xr-x
/conclave 0/0 -rwxr-xr-x
/data 65532/65532 drwxr-xr-x
/tmp 65532/65532 drwxr-xr-x"
	[ "$files" = "$want" ] || { echo "  BAD the image should hold exactly /conclave (root's, 0755) and empty /data and /tmp owned by 65532:65532"; rc=1; }

	# /conclave is the flake's binary, and it runs.
	rm -rf "$WORK/image-root" && mkdir -p "$WORK/image-root" || return 1
	lpath=$(grep $'^layer\t' "$WORK/image.fields" | tail -n 1 | cut -f 2)
	tar -xf "$img/$lpath" -C "$WORK/image-root" ./conclave 2>/dev/null
	if cmp -s "$WORK/image-root/conclave" "$(cat "$WORK/pkg-out")/bin/conclave"; then
		echo "  /conclave is the package's binary and says: $("$WORK/image-root/conclave" version)"
	else
		echo "  BAD /conclave is not the flake's conclave binary"
		rc=1
	fi
	local gz raw
	gz=$(stat -c %s "$out")
	raw=$(cat "$img"/*/layer.tar | wc -c)
	awk -v g="$gz" -v r="$raw" 'BEGIN { printf "  image: %d bytes (%.1f MiB) gzipped, layers %d bytes (%.1f MiB)\n", g, g / 1048576, r, r / 1048576 }'

	# podman reads the archive as `podman load` and `docker load` do. It is
	# fed uncompressed: Debian 12's podman 4.3 fails on every gzipped
	# docker-archive ("invalid tar header"), its own `podman save | gzip`
	# included.
	if ! command -v podman >/dev/null 2>&1; then
		echo "  podman not installed: the archive was not loaded (.ci/container.sh installs it)"
		return $rc
	fi
	local P=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver vfs) ref="localhost/conclave:$tag" tmpl
	gzip -dc "$out" | "${P[@]}" load >"$WORK/podman-load.log" 2>&1 ||
		{ sed 's/^/    /' "$WORK/podman-load.log"; echo "  BAD podman load"; return 1; }
	echo "  podman load: $(tail -n 1 "$WORK/podman-load.log")"
	while IFS=$'\t' read -r name tmpl want; do
		got=$("${P[@]}" image inspect --format "$tmpl" "$ref" 2>&1)
		if [ "$got" = "$want" ]; then
			printf '  ok  podman %-10s %s\n' "$name" "$got"
		else
			printf '  BAD podman %-10s got %s, want %s\n' "$name" "$got" "$want"
			rc=1
		fi
	done <<'WANT'
entrypoint	{{json .Config.Entrypoint}}	["/conclave"]
cmd	{{json .Config.Cmd}}	["serve","--data-dir","/data"]
user	{{.Config.User}}	65532:65532
ports	{{json .Config.ExposedPorts}}	{"4390/tcp":{}}
volumes	{{json .Config.Volumes}}	{"/data":{}}
env	{{json .Config.Env}}	["CONCLAVE_BIND=0.0.0.0:4390"]
healthcheck	{{json .HealthCheck.Test}} {{.HealthCheck.StartPeriod}}	["CMD","/conclave","health"] 1m0s
stopsignal	{{.Config.StopSignal}}	SIGTERM
source	{{index .Config.Labels "org.opencontainers.image.source"}}	https://github.com/conclave/conclave
WANT
	"${P[@]}" rmi -a -f >/dev/null 2>&1
	return $rc
}

# http_get ADDR PATH prints the body of a plain HTTP/1.0 GET, with bash's
# /dev/tcp (no curl needed).
http_get() {
	local host=${1%:*} port=${1##*:} resp
	exec 9<>"/dev/tcp/$host/$port" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&9
	resp=$(cat <&9)
	exec 9<&-
	printf '%s' "${resp#*$'\r\n\r\n'}" | tr -d '\r\n'
}

# The NixOS module, evaluated with the stub's small module system (not
# nixpkgs' lib) and rendered to a unit file the way NixOS writes
# [Service] lines, then checked by systemd-analyze.
c_module() {
	[ -e "$STUB/host.nix" ] || prepare_stub || return 1
	cat >"$WORK/render-unit.nix" <<'NIX'
{ stub, flakeModule, pkgs, settings }:
let
  lib = import (stub + "/lib.nix");
  inherit (lib) mkOption types;
  nixosShim = {
    options = {
      systemd.services = mkOption { type = types.anything; default = { }; };
      networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
    };
  };
  eval = lib.evalModules {
    modules = [ flakeModule nixosShim { services.conclave = { enable = true; } // settings; } ];
    specialArgs = { inherit pkgs; };
  };
  cfg = eval.config;
  failed = builtins.filter (a: !a.assertion) cfg.assertions;
  svc = cfg.systemd.services.conclave;
  known = [ "description" "documentation" "wantedBy" "wants" "after" "serviceConfig" ];
  unknown = builtins.filter (k: !(builtins.elem k known)) (builtins.attrNames svc);
  render = v: if builtins.isBool v then (if v then "true" else "false") else toString v;
  lines = k: v: if builtins.isList v then map (x: "${k}=${render x}") v else [ "${k}=${render v}" ];
  unit = builtins.concatStringsSep "\n" (
    [ "[Unit]" "Description=${svc.description}" ]
    ++ map (u: "Documentation=${u}") (svc.documentation or [ ])
    ++ map (u: "Wants=${u}") svc.wants ++ map (u: "After=${u}") svc.after
    ++ [ "" "[Service]" ]
    ++ builtins.concatLists (builtins.attrValues (builtins.mapAttrs lines svc.serviceConfig))
    ++ [ "" "[Install]" ] ++ map (u: "WantedBy=${u}") svc.wantedBy
  ) + "\n";
in
if failed != [ ] then throw ("assertion failed: " + builtins.concatStringsSep "; " (map (a: a.message) failed))
else if unknown != [ ] then throw "systemd.services.conclave: unknown attribute ${builtins.head unknown}"
else {
  inherit unit;
  ports = cfg.networking.firewall.allowedTCPPorts;
  inherit (cfg) warnings;
}
NIX
	local rc=0 name settings want
	render() { # SETTINGS -> $WORK/conclave.service, $WORK/module.json
		nixo eval --impure --json "${OVR[@]}" "$FLAKE#nixosModules.default" --apply "m: import $WORK/render-unit.nix {
		  stub = $STUB; flakeModule = m; settings = $1;
		  pkgs = import $STUB/pkgs.nix { lib = import $STUB/lib.nix; system = \"$SYSTEM\"; host = import $STUB/host.nix; }; }" >"$WORK/module.json" || return 1
		nix eval --impure --raw --expr "(builtins.fromJSON (builtins.readFile $WORK/module.json)).unit" >"$WORK/conclave.service"
	}
	analyze() { # verify and security-rate $WORK/conclave.service
		systemd-analyze verify --man=no "$WORK/conclave.service" 2>"$WORK/verify.err"
		local ignore='Failed to (connect|open).*bus|Cannot find unit for network-online|Failed to .*(transient|cgroup)|System has not been booted with systemd'
		# Without a build the binary in ExecStart does not exist yet.
		[ -s "$WORK/pkg-out" ] || ignore="$ignore|is not executable: No such file"
		grep -v -E "$ignore" "$WORK/verify.err" >"$WORK/verify.rel" || true
		if [ -s "$WORK/verify.rel" ]; then sed 's/^/    verify: /' "$WORK/verify.rel"; return 1; fi
		local score
		score=$(systemd-analyze security --offline=true "$WORK/conclave.service" 2>/dev/null | tail -n 1)
		echo "    security: ${score:-unavailable}"
		systemd-analyze security --offline=true --threshold="$SECURITY_THRESHOLD" "$WORK/conclave.service" >/dev/null 2>&1 ||
			{ echo "    exposure above $SECURITY_THRESHOLD"; return 1; }
	}
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		echo "no systemd-analyze: the unit is rendered but not verified"
	fi
	# name | settings | grep -E patterns, separated by ~, that the unit,
	# firewall and warnings lines must each match
	while IFS='|' read -r name settings want; do
		echo "-- $name: $settings"
		render "$settings" || { rc=1; continue; }
		{
			cat "$WORK/conclave.service"
			echo "firewall: $(nix eval --impure --json --expr "(builtins.fromJSON (builtins.readFile $WORK/module.json)).ports")"
			nix eval --impure --raw --expr "builtins.concatStringsSep \"\n\" (map (w: \"warning: \" + w) (builtins.fromJSON (builtins.readFile $WORK/module.json)).warnings)"
			echo
		} >"$WORK/rendered.txt"
		grep -E '^(ExecStart|LoadCredential|EnvironmentFile|CapabilityBoundingSet|AmbientCapabilities|PrivateUsers)=|^(firewall|warning): ' "$WORK/rendered.txt" | sed 's/^/    /'
		local pat
		while IFS= read -r -d '~' pat; do
			grep -q -E -- "$pat" "$WORK/rendered.txt" || { echo "    expected to match: $pat"; rc=1; }
		done <<<"$want~"
		if command -v systemd-analyze >/dev/null 2>&1; then analyze || rc=1; fi
	done <<'CASES'
defaults|{ }|^ExecStart=.*"serve" "--bind" "0\.0\.0\.0:4390" --data-dir %S/conclave$~^DynamicUser=true$~^StateDirectory=conclave$~^NoNewPrivileges=true$~^firewall: \[\]$
pinned admin, firewall, env file|{ admins = [ "alice=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkckMc3qC/TCGgVcieot+WekA/W4FSS9QknBYeJVD40 alice@laptop" "bob" ]; openFirewall = true; environmentFile = "/run/secrets/conclave.env"; }|"--admin" "alice=ssh-ed25519 AAAA[^"]* alice@laptop" "--admin" "bob"~^EnvironmentFile=/run/secrets/conclave.env$~^firewall: \[4390\]$~^warning: .*bob is not pinned
TLS on 443, odd extra args|{ bind = "[::]:443"; tlsCert = "/var/lib/acme/c/fullchain.pem"; tlsKey = "/var/lib/acme/c/key.pem"; extraArgs = [ "--history-retention" "30 d%$HOME" ]; }|^AmbientCapabilities=CAP_NET_BIND_SERVICE$~^PrivateUsers=false$~--tls-cert %d/tls-cert --tls-key %d/tls-key~^LoadCredential=tls-key:/var/lib/acme/c/key.pem$~"30 d%%\$\$HOME"
CASES
	# A TLS certificate without its key is refused at evaluation.
	if render '{ tlsCert = "/c.pem"; }' 2>"$WORK/assert.err"; then
		echo "tlsCert without tlsKey was accepted"
		rc=1
	else
		echo "-- tlsCert without tlsKey: refused ($(grep -o 'tlsCert and tlsKey go together' "$WORK/assert.err" | head -1))"
	fi
	return $rc
}

echo "nix: $(nix --version)   go: $(go env GOVERSION)   repo: $REPO"
echo "flake: $FLAKE   (nixpkgs replaced by the OFFLINE STAND-IN $STUB_DIR)"
run_check "files tracked by git" "a flake built from git sees tracked files only" c_tracked
run_check "nix syntax, literal inputs" "every *.nix parses; nixpkgs is the only input" c_parse
run_check "flake.lock structure" "lock well-formed, matches flake.nix, pin plausible" c_lock_structure
run_check "lock accepted by nix" "Nix would use this lock without re-locking" c_lock_nix
run_check "go.mod go line" "go 1.N.0, not newer than the pinned nixpkgs' Go" c_gomod
run_check "go.mod tidy" "go mod tidy would change nothing" c_tidy
run_check "vendorHash" "NAR hash of 'go mod vendor' == vendorHash" c_vendor_hash
run_check "required outputs (stand-in)" "packages apps devShells checks formatter overlay module" c_outputs
run_check "flake check --no-build (stand-in)" "every output evaluates on every system" c_stub_check
run_check "build (stand-in)" "FOD re-checks vendorHash; sandboxed static build" c_stub_build
run_check "go test in the sandbox (stand-in)" "checks.tests: the Go suite without network" c_stub_tests
run_check "reproducible (stand-in)" "a cold rebuild is bit-for-bit identical" c_reproducible
run_check "nix run (stand-in build)" "apps wiring, ldflags version, serve --data-dir" c_nix_run
run_check "container image (stand-in)" "nix build .#image: config, files, podman load" c_image
run_check "NixOS module unit (stand-in lib)" "module renders; systemd-analyze verify + security" c_module

echo
echo "================ summary"
fails=0
for i in "${!R_NAME[@]}"; do
	printf '%-4s %7s  %-34s %s\n' "${R_STATUS[$i]}" "${R_TIME[$i]}" "${R_NAME[$i]}" "${R_NOTE[$i]}"
	[ "${R_STATUS[$i]}" = FAIL ] && fails=$((fails + 1))
done
cat <<'EOF'

Built against nix/ci/nixpkgs-stub, a stand-in for nixpkgs. NOT verified here
(no network to github.com or cache.nixos.org, and Nix 2.8 is too old for
current nixpkgs):
  - that flake.lock's narHash is the hash of that nixpkgs revision
  - nixpkgs' own buildGoModule, its Go version, its lib and module system,
    and that the attribute names used (go-tools, nixfmt-tree, openssh…) exist
  - the NixOS module under real NixOS, and the VM test checks.*.nixos-module
  - the git revision in the version (hidden while nixpkgs is overridden)
  - nixpkgs' dockerTools: .#image is built here by the stand-in's
    buildLayeredImage, so only its config and files are proven, and that
    podman loads the stand-in's archive
  - `nix develop`, `nix fmt`, `nix profile install`
On a networked runner: nix flake check -L && nix run .#conclave -- version
  && nix build .#image && podman load < result
EOF
exit $((fails > 0))
