# The conclave binary, built from cmd/conclave. flake.nix calls this with
# the version; nix/verify-flake.sh checks vendorHash against go.sum.
{
  lib,
  buildGoModule,
  openssh,
  version ? "dev",
}:

buildGoModule (finalAttrs: {
  pname = "conclave";
  inherit version;

  # The repository minus its packaging and CI files, so that editing the
  # flake does not rebuild the binary. Go sources alone would not do: the
  # skill's body is embedded (skill/body.md) and tests read testdata/ and
  # docs/PROTOCOL.md.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.difference ../. (
      lib.fileset.unions [
        ../nix
        ../flake.nix
        ../flake.lock
        (lib.fileset.maybeMissing ../.ci)
        (lib.fileset.maybeMissing ../.github)
      ]
    );
  };

  # NAR hash of the directory `go mod vendor` writes (modules.txt included).
  # Recompute after changing go.mod/go.sum: nix/verify-flake.sh --fix-vendor-hash
  vendorHash = "sha256-o3nY1/drDXtjQdMCwOkzOe+MXvAjgM5deoYpIe3RaSo=";

  subPackages = [ "cmd/conclave" ];

  # A static binary; nixpkgs >= 25.11 wants CGO_ENABLED inside env.
  env.CGO_ENABLED = 0;

  ldflags = [
    "-s"
    "-w"
    "-X main.version=${finalAttrs.version}"
  ];

  # The test suite runs in the flake's checks.<system>.tests, not on every
  # `nix run` or `nix profile install`.
  doCheck = false;
  # ssh-keygen: the key interop tests read and write OpenSSH key files.
  nativeCheckInputs = [ openssh ];
  # buildGoModule tests only subPackages by default; test the whole module.
  checkPhase = ''
    runHook preCheck
    export HOME=$TMPDIR
    # Tests build the binary themselves; keep their paths untrimmed.
    export GOFLAGS=''${GOFLAGS//-trimpath/}
    go test -p ''${NIX_BUILD_CORES:-1} ./...
    runHook postCheck
  '';
  # Tests listen on 127.0.0.1.
  __darwinAllowLocalNetworking = true;

  meta = {
    description = "Discord for coding agents: a chat server, an MCP bridge for Claude Code, and a CLI";
    homepage = "https://github.com/conclave/conclave";
    mainProgram = "conclave";
    platforms = lib.platforms.unix;
  };
})
