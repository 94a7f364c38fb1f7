#!/usr/bin/env bash
# Deployment checks, called by .ci/run:
#
#  1. builds a labelled stand-in for the Go toolchain image (FROM scratch +
#     this machine's Go), tags it with the real image's name, and builds the
#     multi-stage Containerfile from a clean clone against it, pinned by
#     digest, with podman (Debian's package, installed if missing), in the
#     docker format that keeps HEALTHCHECK; the binary in the image must
#     report the version passed to the build and be static;
#  2. checks the image's config with `podman image inspect` (entrypoint,
#     command, user, port, volume, env, labels, health check, stop signal)
#     and its files (only /conclave, and empty /data and /tmp owned by the
#     user);
#  3. smoke-runs the image's own files: no container runtime works on these
#     machines (crun cannot set its rlimits here), but a build step in
#     chroot isolation runs as the image's user on the image's root
#     filesystem, so `serve --data-dir /data` is started in one build and
#     the HEALTHCHECK command probes it from another, then SIGTERM must stop
#     it cleanly;
#  4. checks deploy/conclave.service with `systemd-analyze verify` and its
#     hardening with `systemd-analyze security --offline`, and that
#     deploy/fly.toml parses and keeps its essentials.
#
# Any mismatch exits non-zero. Prints the image size and the time taken.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

t0=$SECONDS
step() { printf '\n== container: %s   [%d s]\n' "$*" "$((SECONDS - t0))"; }
fail() { printf 'container check FAILED: %s\n' "$*" >&2; exit 1; }
tmp="$(mktemp -d /tmp/conclave-container.XXXXXX)"
image=localhost/conclave:ci
podman=(podman)
probe_images=(localhost/conclave-probe-serve:ci localhost/conclave-probe-health:ci localhost/conclave-probe-nonroot:ci)
server_pid=""
build_pid=""
mounted=""

cleanup() {
	set +e
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
	if [ -n "$build_pid" ] && kill -0 "$build_pid" 2>/dev/null; then kill -TERM "$build_pid"; wait "$build_pid"; fi
	[ -n "$mounted" ] && "${podman[@]}" image unmount "$image" >/dev/null 2>&1
	for img in "${probe_images[@]}"; do "${podman[@]}" rmi -f "$img" >/dev/null 2>&1; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------- podman
step "podman"
export DEBIAN_FRONTEND=noninteractive
if ! command -v podman >/dev/null 2>&1; then
	echo "installing podman from Debian"
	apt-get update -qq >/dev/null
	apt-get install -y -qq podman >/dev/null
fi
if ! podman info >/dev/null 2>"$tmp/info.err"; then
	echo "podman's default storage does not work here ($(tail -1 "$tmp/info.err")); using vfs"
	podman=(podman --storage-driver vfs)
	"${podman[@]}" info >/dev/null
fi
"${podman[@]}" --version

# ---------------------------------------------------------------- build
# No container registry is reachable here, so the build stage's toolchain
# image is a stand-in made on the spot, clearly labelled as one: FROM
# scratch plus this machine's Go toolchain (/usr/local/go), a shell with
# its C library (the build stage's RUN lines), CA certificates (go mod
# download reaches the Go module proxy) and /tmp. It is tagged with the
# toolchain image's name, and the build pins it by its digest, as a real
# build pins the real image: the multi-stage Containerfile itself runs
# unchanged, from a clean clone of this commit, without network access to
# any registry (--pull=never).
step "stand-in toolchain image (FROM scratch + this machine's Go)"
builder_name=docker.io/library/golang:1.26-bookworm
standin="$tmp/standin"
mkdir -p "$standin/rootfs/usr/local" "$standin/rootfs/tmp" "$standin/rootfs/etc/ssl/certs" "$standin/rootfs/bin"
chmod 1777 "$standin/rootfs/tmp"
cp -a "$(go env GOROOT)" "$standin/rootfs/usr/local/go"
cp -L /bin/sh "$standin/rootfs/bin/sh"
for lib in $(ldd /bin/sh | grep -o '/[^ ]*'); do
	mkdir -p "$standin/rootfs$(dirname "$lib")"
	cp -L "$lib" "$standin/rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$standin/rootfs/etc/ssl/certs/"
cat >"$standin/Containerfile" <<'EOF'
FROM scratch
LABEL org.opencontainers.image.title="STAND-IN for docker.io/library/golang:1.26-bookworm" \
      org.opencontainers.image.description="CI only: this machine's Go toolchain on an empty base, made by .ci/container.sh because no registry is reachable; not the real golang image"
COPY rootfs/ /
ENV PATH=/go/bin:/usr/local/go/bin:/bin GOPATH=/go GOCACHE=/tmp/go-build GOTOOLCHAIN=local
WORKDIR /go
EOF
"${podman[@]}" build --quiet --layers=false --format docker -t "$builder_name" "$standin" >"$tmp/standin.log" 2>&1 ||
	{ cat "$tmp/standin.log"; fail "building the stand-in toolchain image"; }
builder_digest="$("${podman[@]}" image inspect --format '{{.Digest}}' "$builder_name")"
builder_ref="$builder_name@$builder_digest"
"${podman[@]}" image exists "$builder_ref" || fail "the stand-in cannot be named by digest ($builder_ref)"
echo "  $builder_ref"
echo "  ($("${podman[@]}" image inspect --format '{{index .Config.Labels "org.opencontainers.image.title"}}' "$builder_name"))"

step "multi-stage build from a clean clone"
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git clone --quiet --no-local . "$tmp/clone"
git -C "$tmp/clone" checkout --quiet "$revision"
if [ -n "$(git status --porcelain -- Containerfile .dockerignore 2>/dev/null)" ]; then
	# A developer's run with uncommitted container files: build those.
	cp Containerfile .dockerignore "$tmp/clone/"
fi
old_id="$("${podman[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
"${podman[@]}" build --quiet --layers=false --pull=never --isolation chroot --format docker \
	--build-arg GO_IMAGE="$builder_ref" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
	-t "$image" "$tmp/clone" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "podman build of the multi-stage Containerfile"; }
# The previous run's image, now untagged, is not needed any more.
if [ -n "$old_id" ] && [ "$old_id" != "$("${podman[@]}" image inspect --format '{{.Id}}' "$image")" ]; then
	"${podman[@]}" rmi "$old_id" >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- config
step "image config (podman image inspect)"
mismatches=0
expect() { # expect WHAT GO-TEMPLATE WANT
	local got
	got="$("${podman[@]}" image inspect --format "$2" "$image")"
	if [ "$got" = "$3" ]; then
		printf '  ok  %-14s %s\n' "$1" "$got"
	else
		printf '  BAD %-14s got %s, want %s\n' "$1" "$got" "$3"
		mismatches=$((mismatches + 1))
	fi
}
label() { printf '{{index .Config.Labels "org.opencontainers.image.%s"}}' "$1"; }
expect entrypoint '{{json .Config.Entrypoint}}' '["/conclave"]'
expect cmd '{{json .Config.Cmd}}' '["serve","--data-dir","/data"]'
expect user '{{.Config.User}}' '65532:65532'
expect ports '{{json .Config.ExposedPorts}}' '{"4390/tcp":{}}'
expect volumes '{{json .Config.Volumes}}' '{"/data":{}}'
expect bind-env '{{range .Config.Env}}{{if eq . "CONCLAVE_BIND=0.0.0.0:4390"}}{{.}}{{end}}{{end}}' 'CONCLAVE_BIND=0.0.0.0:4390'
expect stopsignal '{{.Config.StopSignal}}' 'SIGTERM'
expect healthcheck '{{json .HealthCheck.Test}}' '["CMD","/conclave","health"]'
expect health-start '{{.HealthCheck.StartPeriod}}' '1m0s'
expect title "$(label title)" 'conclave'
expect version "$(label version)" "$version"
expect revision "$(label revision)" "$revision"
expect source "$(label source)" 'https://github.com/conclave/conclave'
[ "$mismatches" -eq 0 ] || fail "$mismatches image config mismatch(es)"

step "image files"
root="$("${podman[@]}" image mount "$image")"
mounted=1
files="$(cd "$root" && find . -mindepth 1 -printf '%p %U:%G %m %y\n' | sort)"
echo "$files" | sed 's/^/  /'
want="./conclave 0:0 755 f
./data 65532:65532 755 d
./tmp 65532:65532 755 d"
[ "$files" = "$want" ] || fail "the image should hold exactly /conclave (root, 0755) and empty /data and /tmp owned by 65532:65532"
cp "$root/conclave" "$tmp/conclave"
[ "$("$tmp/conclave" version)" = "conclave $version" ] || fail "/conclave in the image does not report version $version"
go version -m "$tmp/conclave" | grep -q 'CGO_ENABLED=0' || fail "/conclave in the image was not built with CGO_ENABLED=0"
"${podman[@]}" image unmount "$image" >/dev/null
mounted=""

size="$("${podman[@]}" image inspect --format '{{.Size}}' "$image")"
gz="$("${podman[@]}" image save --format docker-archive "$image" 2>/dev/null | gzip -c | wc -c)"
awk -v s="$size" -v g="$gz" 'BEGIN { printf "  image size: %d bytes (%.1f MiB) unpacked, %d bytes (%.1f MiB) gzipped\n", s, s / 1048576, g, g / 1048576 }'

# ---------------------------------------------------------------- smoke run
step "smoke run on the image's files (build steps in chroot isolation)"
# A build step runs as the image's USER on its root filesystem with the
# host's network. Port 0: the server picks a free loopback port and logs it.
probe() { # probe NAME LINES... : a Containerfile on top of the image
	local dir="$tmp/$1"
	mkdir -p "$dir"
	{ echo "FROM $image"; shift; printf '%s\n' "$@"; } >"$dir/Containerfile"
	echo "$dir"
}
serve_ctx="$(probe serve 'ENV CONCLAVE_BIND=127.0.0.1:0 CONCLAVE_LOG_FORMAT=json' \
	'RUN ["/conclave", "serve", "--data-dir", "/data"]')"
"${podman[@]}" build --layers=false --isolation chroot --format docker -t "localhost/conclave-probe-serve:ci" "$serve_ctx" \
	>"$tmp/serve.log" 2>&1 &
build_pid=$!
addr=""
for _ in $(seq 1 600); do
	addr="$(grep -o '"msg":"conclave server listening","addr":"[^"]*"' "$tmp/serve.log" | sed 's/.*"addr":"//; s/"$//' || true)"
	[ -n "$addr" ] && break
	kill -0 "$build_pid" 2>/dev/null || { cat "$tmp/serve.log"; fail "serve in the image exited before listening"; }
	sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/serve.log"; fail "serve in the image did not listen within 60 s"; }
echo "  serve --data-dir /data is listening on $addr (as 65532, in the image's root)"

# The server process: the descendant of our build named conclave.
descends() { # descends PID ANCESTOR
	local p="$1"
	while [ -n "$p" ] && [ "$p" -gt 1 ]; do
		[ "$p" = "$2" ] && return 0
		p="$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
	done
	return 1
}
for d in /proc/[0-9]*; do
	if [ "$(cat "$d/comm" 2>/dev/null)" = conclave ] && descends "${d#/proc/}" "$build_pid"; then
		server_pid="${d#/proc/}"
	fi
done
[ -n "$server_pid" ] || fail "cannot find the server process under podman build $build_pid"
[ "$(awk '/^Uid:/ {print $2}' "/proc/$server_pid/status")" = 65532 ] || fail "the server does not run as uid 65532"

# The HEALTHCHECK's exact command, with CONCLAVE_BIND pointing at the probe.
health_ctx="$(probe health "ENV CONCLAVE_BIND=$addr" 'RUN ["/conclave", "health"]')"
"${podman[@]}" build --layers=false --isolation chroot --format docker -t "localhost/conclave-probe-health:ci" "$health_ctx" \
	>"$tmp/health.log" 2>&1 || { cat "$tmp/health.log"; fail "the HEALTHCHECK command failed against the running server"; }
grep -qx 'ok' "$tmp/health.log" || { cat "$tmp/health.log"; fail "health did not print ok"; }
echo "  /conclave health (the HEALTHCHECK command): ok"

# Not root: the rest of the image's root filesystem is not writable.
root_ctx="$(probe nonroot 'RUN ["/conclave", "key", "--config-dir", "/not-data"]')"
if "${podman[@]}" build --layers=false --isolation chroot --format docker -t "localhost/conclave-probe-nonroot:ci" "$root_ctx" \
	>"$tmp/nonroot.log" 2>&1; then
	cat "$tmp/nonroot.log"; fail "the image's user could write outside /data"
fi
grep -q 'permission denied' "$tmp/nonroot.log" || { cat "$tmp/nonroot.log"; fail "writing outside /data failed, but not for lack of permission"; }
echo "  outside /data the user cannot write: ok"

kill -TERM "$server_pid"
server_pid=""
build_status=0
wait "$build_pid" || build_status=$?
build_pid=""
[ "$build_status" -eq 0 ] || { cat "$tmp/serve.log"; fail "serve did not exit 0 on SIGTERM (podman build exit $build_status)"; }
grep -q '"msg":"server stopped"' "$tmp/serve.log" || { cat "$tmp/serve.log"; fail "serve did not log a clean stop"; }
echo "  SIGTERM: clean stop (\"server stopped\"), exit 0"

# ---------------------------------------------------------------- systemd
step "systemd unit (deploy/conclave.service)"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "installing systemd from Debian (for systemd-analyze)"
	apt-get update -qq >/dev/null
	apt-get install -y -qq systemd >/dev/null
fi
unit=deploy/conclave.service
for d in 'DynamicUser=yes' 'StateDirectory=conclave' 'ExecStart=/usr/local/bin/conclave serve --data-dir ${STATE_DIRECTORY}' \
	'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'PrivateDevices=yes' \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' 'MemoryDenyWriteExecute=yes' \
	'LockPersonality=yes' 'RestrictNamespaces=yes' 'CapabilityBoundingSet=' 'KillSignal=SIGTERM'; do
	grep -qxF "$d" "$unit" || fail "$unit lacks the line $d"
done
if grep -q '^SystemCallFilter=.*~@resources' "$unit"; then fail "$unit denies @resources: the Go runtime raises its file limit"; fi
# verify checks that ExecStart's binary exists: point it at the one just built.
sed "s#/usr/local/bin/conclave#$tmp/conclave#" "$unit" >"$tmp/conclave.service"
systemd-analyze verify "$tmp/conclave.service" || fail "systemd-analyze verify $unit"
echo "  systemd-analyze verify: ok"
exposure="$(systemd-analyze security --offline=true "$tmp/conclave.service" 2>/dev/null | sed -n 's/.*Overall exposure level for conclave.service: \([0-9.]*\).*/\1/p')"
systemd-analyze security --offline=true --threshold=20 "$tmp/conclave.service" >/dev/null 2>&1 ||
	fail "$unit: systemd-analyze security rates its exposure $exposure, above 2.0"
echo "  systemd-analyze security: exposure $exposure (threshold 2.0)"

# ---------------------------------------------------------------- fly.toml
step "deploy/fly.toml"
if python3 -c 'import tomllib' 2>/dev/null; then
	python3 - deploy/fly.toml <<'EOF' || fail "deploy/fly.toml"
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
h = c["http_service"]
checks = {
    "internal_port 4390": h["internal_port"] == 4390,
    "auto_stop off": h["auto_stop_machines"] == "off",
    "min_machines_running 1": h["min_machines_running"] == 1,
    "force_https": h["force_https"] is True,
    "connections concurrency": h["concurrency"]["type"] == "connections",
    "GET /health check": any(k["path"] == "/health" and k["method"] == "GET" for k in h["checks"]),
    "volume at /data": any(m["destination"] == "/data" for m in c["mounts"]),
    "Containerfile": c["build"]["dockerfile"] == "Containerfile",
    "builds for linux": c["build"].get("args", {}).get("TARGETOS", "linux") == "linux",
    "SIGTERM": c["kill_signal"] == "SIGTERM",
    "[metrics] on CONCLAVE_METRICS_BIND's port": c["env"]["CONCLAVE_METRICS_BIND"].rsplit(":", 1)[1] == str(c["metrics"]["port"])
        and c["metrics"]["port"] != h["internal_port"],
    "explicit bind on every interface": c["env"]["CONCLAVE_BIND"] == "0.0.0.0:4390",
    "closed registration": c["env"]["CONCLAVE_REGISTRATION"] == "closed",
}
bad = [k for k, v in checks.items() if not v]
print("  " + ("ok: " + ", ".join(checks) if not bad else "BAD: " + ", ".join(bad)))
sys.exit(1 if bad else 0)
EOF
else
	echo "  python3 with tomllib not found: fly.toml not parsed"
fi

step "container checks passed in $((SECONDS - t0)) s"
