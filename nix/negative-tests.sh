#!/usr/bin/env bash
# negative-tests.sh — proves that nix/verify-flake.sh fails on deliberate
# mistakes. Each case copies the repository (the files a commit would
# hold) into a throwaway git repository, breaks one thing, commits, runs
# verify-flake.sh on the copy and requires the named check to FAIL.
#
# Usage: nix/negative-tests.sh [CASE-SUBSTRING…]   (default: every case)
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VERIFY=$REPO/nix/verify-flake.sh
BASE=$(mktemp -d -t negative-tests.XXXXXX)
trap 'chmod -R u+w "$BASE" 2>/dev/null; rm -rf "$BASE"' EXIT

commit() { git -c user.name=negative-tests -c user.email=negative-tests@localhost commit -qam "$1" >/dev/null; }

# The pristine copy, committed so that verify-flake.sh sees a clean git
# tree (as on CI after a commit).
mkdir -p "$BASE/pristine"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) |
	while IFS= read -r -d '' f; do
		[ -e "$REPO/$f" ] || continue
		mkdir -p "$BASE/pristine/$(dirname "$f")"
		cp -p "$REPO/$f" "$BASE/pristine/$f"
	done
(cd "$BASE/pristine" && git init -q && git add -A && commit pristine) || exit 2

# name | verify-flake.sh flags | check that must FAIL | mutation (shell, run in the copy)
CASES=$(
	cat <<'EOF'
stale vendorHash|--skip-build|vendorHash|sed -i 's#\(vendorHash = "sha256-\)[A-Za-z0-9]#\1A#' nix/package.nix
stale vendorHash, caught by the build itself|--skip-build-never|build (stand-in)|sed -i 's#\(vendorHash = "sha256-\)[A-Za-z0-9]#\1A#' nix/package.nix
new dependency, vendorHash not updated|--skip-build|vendorHash|printf 'package skill\n\nimport _ "golang.org/x/sync/errgroup"\n' >skill/zz_dep.go && GOFLAGS=-mod=mod go get golang.org/x/sync@v0.23.0 && git add -A
nix syntax error|--skip-build|nix syntax, literal inputs|sed -i 's/ldflags = \[/ldflags = [[/' nix/package.nix
missing output: apps.conclave|--skip-build|required outputs (stand-in)|sed -i 's/          conclave = app;/          conclave-cli = app;/' flake.nix
missing output: formatter|--skip-build|required outputs (stand-in)|sed -i '/formatter = forAllSystems/d' flake.nix
missing output: nixosModules.default|--skip-build|required outputs (stand-in)|sed -i '/nixosModules = rec {/,/^      };/ s/^        default = conclave;$/        conclave-default = conclave;/' flake.nix
go.mod go line newer than nixpkgs' Go|--skip-build|go.mod go line|sed -i 's/^go .*/go 1.27.0/' go.mod
go.mod go line with a patch level|--skip-build|go.mod go line|sed -i 's/^go .*/go 1.26.3/' go.mod
CGO_ENABLED at the top level|--skip-build|flake check --no-build (stand-in)|sed -i 's/  env.CGO_ENABLED = 0;/  CGO_ENABLED = 0;/' nix/package.nix
package file not tracked by git|--skip-build|files tracked by git|git rm -q --cached nix/package.nix
flake.nix input and lock disagree|--skip-build|flake.lock structure|sed -i 's|nixos-unstable";|nixos-26.05";|' flake.nix
devShell names a package that does not exist|--skip-build|flake check --no-build (stand-in)|sed -i 's/pkgs.gopls/pkgs.goplz/' flake.nix
module option typo|--skip-build|NixOS module unit (stand-in lib)|sed -i 's/cfg.bind$/cfg.bnd/' nix/nixos-module.nix
systemd key typo|--skip-build|NixOS module unit (stand-in lib)|sed -i 's/ProtectHostname = true;/ProtectHostnme = true;/' nix/nixos-module.nix
hardening removed|--skip-build|NixOS module unit (stand-in lib)|sed -i '/SystemCallFilter = \[/,/\];/d; /RestrictAddressFamilies = \[/,/\];/d; s/PrivateDevices = true/PrivateDevices = false/; s/ProtectKernelTunables = true/ProtectKernelTunables = false/; s/ProtectSystem = "strict"/ProtectSystem = "full"/' nix/nixos-module.nix
version not injected|--with-build|nix run (stand-in build)|sed -i '/-X main.version=/d' nix/package.nix
image runs as root|--with-build|container image (stand-in)|sed -i 's/User = "65532:65532";/User = "0:0";/' nix/image.nix
image /data not owned by the image's user|--with-build|container image (stand-in)|sed -i '/chown 65532:65532/d' nix/image.nix
EOF
)

pass=0 fail=0
if [ $# -eq 0 ]; then
	# The control: the unbroken copy must pass, or a caught mistake proves
	# little.
	t0=$SECONDS
	if out=$("$VERIFY" --repo "$BASE/pristine" 2>&1); then
		echo "control: the unbroken copy passes every check ($((SECONDS - t0))s)"
	else
		echo "control: the unbroken copy FAILS ($((SECONDS - t0))s): every case below is weaker evidence:"
		printf '%s\n' "$out" | sed -n '/=* summary/,/^$/p' | grep '^FAIL' | sed 's/^/    /'
	fi
	echo
fi
printf '%-46s %-6s %6s  %s\n' "deliberate mistake" result time "failing checks"
while IFS='|' read -r name flags want mutation; do
	if [ $# -gt 0 ]; then
		match=0
		for f in "$@"; do [[ $name == *"$f"* ]] && match=1; done
		[ $match = 1 ] || continue
	fi
	d=$BASE/case
	rm -rf "$d"
	cp -a "$BASE/pristine" "$d"
	(cd "$d" && eval "$mutation" && { git diff --quiet HEAD || commit "$name"; }) >/dev/null 2>&1 ||
		{ echo "could not apply: $name"; fail=$((fail + 1)); continue; }
	case $flags in --skip-build-never | --with-build) flags= ;; esac
	t0=$SECONDS
	# shellcheck disable=SC2086 # flags is one word or none
	out=$("$VERIFY" --repo "$d" $flags 2>&1)
	rc=$?
	failed=$(printf '%s\n' "$out" | sed -n '/=* summary/,/^$/p' | sed -n 's/^FAIL *[0-9.]*s  \(.*[^ ]\) \{2,\}.*/\1/p' | paste -sd ';' - | sed 's/;/; /g')
	if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q -E "^FAIL +[0-9.]+s  $(printf '%s' "$want" | sed 's/[][().*+?]/\\&/g') "; then
		result=caught pass=$((pass + 1))
	else
		result=MISSED fail=$((fail + 1))
		printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /'
	fi
	printf '%-46s %-6s %5ss  %s\n' "$name" "$result" "$((SECONDS - t0))" "${failed:-none (exit $rc)}"
	printf '%s\n' "$out" | grep -v -E '^(PASS|FAIL|SKIP) +[0-9.]+s  ' | grep -E -m 2 'stale vendorHash|hash mismatch|specified:|got:|missing outputs|parse error|error: (syntax|attribute|The option|undefined)|Unknown key|exposure above|does not exist|not tracked|untracked|must be 1\.N\.0|newer than|overlapping|want: conclave|differ from|^  BAD ' |
		awk '!seen[$0]++' | sed 's/^[[:space:]]*/      > /'
done <<<"$CASES"
echo
echo "$pass caught, $fail missed"
exit $((fail > 0))
