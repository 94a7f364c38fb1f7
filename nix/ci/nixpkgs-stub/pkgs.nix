# OFFLINE TEST STUB — NOT nixpkgs' package set.
#
# buildGoModule really builds, with the host's Go toolchain, in nixpkgs'
# two steps: a fixed-output derivation runs `go mod vendor` and Nix checks
# its NAR hash against vendorHash; then a sandboxed build with
# -mod=vendor, no network, and the check phase when doCheck is set. Tools
# the flake names (go, gopls, openssh…) are placeholders that evaluate but
# cannot be built. dockerTools.buildLayeredImage (docker-tools.nix) really
# writes a docker-archive. Listing a name here asserts nothing about nixpkgs.
{
  lib,
  system,
  host,
}:
let
  sh = "/bin/bash";
  isLinux = builtins.match ".*-linux" system != null;
  placeholder =
    name:
    builtins.derivation {
      inherit name system;
      builder = sh;
      args = [
        "-c"
        "echo '${name}: placeholder from the offline nixpkgs stub, not buildable' >&2; exit 1"
      ];
    }
    // {
      meta.mainProgram = name;
    };

  # Fixed point over `finalAttrs: { ... }` (or a plain attrset), like
  # mkDerivation.
  fix =
    argsFn:
    let
      final = if builtins.isFunction argsFn then argsFn final else argsFn;
    in
    final;
  # overrideAttrs takes an attrset, `prev: { … }` or `final: prev: { … }`.
  extend =
    argsFn: o: final:
    let
      prev = if builtins.isFunction argsFn then argsFn final else argsFn;
      r1 = if builtins.isFunction o then o final else o;
      delta =
        if builtins.isFunction o then
          (if builtins.isFunction r1 then r1 prev else o prev)
        else
          o;
    in
    prev // delta;

  # Checks nixpkgs' buildGoModule and mkDerivation make (nixpkgs >= 25.11).
  validate =
    a:
    if !(a ? vendorHash) then
      throw (
        if a ? vendorSha256 then
          "buildGoModule: Expect vendorHash instead of vendorSha256"
        else
          "buildGoModule: vendorHash is missing"
      )
    else if a ? CGO_ENABLED then
      throw "The `env` attribute set cannot contain any attributes passed to derivation. The following attributes are overlapping:\n  CGO_ENABLED (nixpkgs >= 25.11: use env.CGO_ENABLED)"
    else if !(a ? pname && a ? version && a ? src) then
      throw "buildGoModule (stub): pname, version and src are required"
    else if builtins.any (f: builtins.substring 0 5 f == "-mod=") (a.GOFLAGS or [ ]) then
      throw "buildGoModule (stub): use proxyVendor instead of -mod= in GOFLAGS"
    else
      # Force the check inputs: a missing attribute fails evaluation. They
      # are not built; the sandbox sees the host's /usr/bin instead.
      builtins.seq (builtins.foldl' (acc: p: builtins.seq p.drvPath acc) null (a.nativeCheckInputs or [ ])) a;

  # GOCACHE: verify-flake.sh may lend the sandbox a shared, world-writable
  # Go build cache (host.gocache, bind-mounted through sandbox-paths) so
  # that a rebuild after a small change compiles only what changed. The
  # cache is content-addressed; without it (its reproducibility check hides
  # it) the build starts cold and must produce the same bits.
  goEnv = ''
    export PATH=${host.goroot}/bin:/usr/bin:/bin
    export GOROOT=${host.goroot} GOCACHE=$TMPDIR/go-cache GOPATH=$TMPDIR/go HOME=/homeless-shelter
    export GO111MODULE=on GOTOOLCHAIN=local GOFLAGS= GOENV=off
    if [ -n "${host.gocache or ""}" ] && [ -d "${host.gocache or "/nonexistent"}" ] && [ -w "${host.gocache or "/nonexistent"}" ]; then
      umask 000
      export GOCACHE=${host.gocache or ""}
    fi
    runHook() { :; }
  '';
  unpack = ''
    cp -r "$src" "$TMPDIR/src"
    chmod -R u+w "$TMPDIR/src"
    cd "$TMPDIR/src/$modRoot"
  '';

  buildGoModule =
    argsFn:
    let
      a = validate (fix argsFn);
      name = "${a.pname}-${a.version}";
      env = a.env or { };
      proxyVendor = a.proxyVendor or false;
      goModules =
        if a.vendorHash == null then
          null
        else
          builtins.derivation {
            name = "${a.pname}-go-modules";
            inherit system;
            builder = sh;
            inherit (a) src;
            modRoot = a.modRoot or "./";
            impureEnvVars = [
              "GOPROXY"
              "GOSUMDB"
              "GONOSUMDB"
              "GOPRIVATE"
              "http_proxy"
              "https_proxy"
              "SSL_CERT_FILE"
            ];
            outputHashMode = "recursive";
            outputHash = a.vendorHash;
            outputHashAlgo = if a.vendorHash == "" then "sha256" else null;
            args = [
              "-euo"
              "pipefail"
              "-c"
              (
                goEnv
                + unpack
                + ''
                  if [ -d vendor ]; then echo "vendor folder exists, please set 'vendorHash = null;'"; exit 10; fi
                ''
                + (
                  if proxyVendor then
                    ''
                      mkdir -p "$GOPATH/pkg/mod/cache/download"
                      go mod download
                      rm -rf "$GOPATH/pkg/mod/cache/download/sumdb"
                      umask 022
                      cp -r "$GOPATH/pkg/mod/cache/download" "$out"
                    ''
                  else
                    ''
                      go mod vendor
                      mkdir -p vendor
                      umask 022
                      cp -r vendor "$out"
                    ''
                )
                + ''
                  if ! [ "$(ls -A "$out")" ]; then echo "vendor folder is empty, please set 'vendorHash = null;'"; exit 10; fi
                ''
              )
            ];
          };
      drv = builtins.derivation (
        env
        // {
          inherit name system;
          builder = sh;
          inherit (a) src;
          modRoot = a.modRoot or "./";
          subPackages = a.subPackages or [ ];
          ldflags = (a.ldflags or [ ]) ++ [ "-buildid=" ];
          tags = a.tags or [ ];
          doCheck = if (a.doCheck or true) then "1" else "";
          # nixpkgs' default checkPhase tests only `subPackages` when set.
          checkPhase =
            a.checkPhase or ''
              export GOFLAGS=''${GOFLAGS//-trimpath/}
              if [ -n "$subPackages" ]; then
                for p in $subPackages; do go test -vet=off "./$p"; done
              else
                go test -vet=off ./...
              fi
            '';
          GOFLAGS_EXTRA = a.GOFLAGS or [ ];
          goModules = if goModules == null then "" else goModules;
          args = [
            "-euo"
            "pipefail"
            "-c"
            (
              goEnv
              + unpack
              + ''
                if [ -n "$goModules" ]; then
                  ${
                    if proxyVendor then
                      ''export GOPROXY="file://$goModules" GOFLAGS="-trimpath $GOFLAGS_EXTRA"''
                    else
                      ''rm -rf vendor; cp -r "$goModules" vendor; chmod -R u+w vendor; export GOFLAGS="-mod=vendor -trimpath $GOFLAGS_EXTRA"''
                  }
                else
                  export GOFLAGS="-mod=vendor -trimpath $GOFLAGS_EXTRA"
                fi
                # nixpkgs' go has CGO_ENABLED=1 by default on Linux/Darwin.
                export GOPROXY=''${GOPROXY:-off} GOSUMDB=off CGO_ENABLED=''${CGO_ENABLED:-1}
                pkgs="$subPackages"
                if [ -z "$pkgs" ]; then pkgs=$(go list -f '{{if eq .Name "main"}}{{.Dir}}{{end}}' ./... | sed "s|^$PWD/||"); fi
                for p in $pkgs; do
                  echo "Building subPackage ./$p"
                  go install ''${tags:+-tags="''${tags// /,}"} -ldflags="$ldflags" "./$p"
                done
                if [ -n "$doCheck" ]; then
                  echo "Running checkPhase"
                  eval "$checkPhase"
                fi
                umask 022 # the shared cache's umask 000 must not reach $out
                mkdir -p "$out/bin"
                cp "$GOPATH"/bin/* "$out/bin/"
                chmod 0555 "$out/bin"/*
                # Like nixpkgs' disallowedReferences = [ go ] (allowGoReference = false).
                if grep -rqa "${host.goroot}" "$out"; then echo "output references the Go toolchain"; exit 1; fi
              ''
            )
          ];
        }
      );
    in
    drv
    // {
      inherit (a) pname version;
      inherit goModules;
      vendorHash = a.vendorHash;
      meta = a.meta or { };
      passthru = a.passthru or { };
      overrideAttrs = o: buildGoModule (extend argsFn o);
    }
    // (a.passthru or { });

  self = {
    inherit lib system buildGoModule;
    stdenv.hostPlatform = {
      inherit system isLinux;
      isDarwin = !isLinux;
    };
    callPackage =
      f: extra:
      let
        fn = if builtins.isFunction f then f else import f;
      in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) self // extra);
    mkShell =
      {
        packages ? [ ],
        ...
      }:
      # Force every listed package so that a missing attribute fails.
      builtins.seq (builtins.foldl' (acc: p: builtins.seq p.drvPath acc) null packages) (
        placeholder "stub-dev-shell"
      );
    # The VM test needs real nixpkgs and KVM. The stub evaluates the test's
    # name and script (so a Nix error in them shows) and returns a
    # placeholder.
    testers.runNixOSTest =
      test: builtins.seq test.name (builtins.seq test.testScript (placeholder "nixos-vm-test-needs-real-nixpkgs"));
    # Really writes a docker-archive, with the host's tar and gzip: see
    # docker-tools.nix for how it differs from nixpkgs' dockerTools.
    dockerTools = import ./docker-tools.nix { inherit system sh; };
    # Tools the flake names. Listing a name here asserts nothing about nixpkgs.
    go = placeholder "go";
    gopls = placeholder "gopls";
    go-tools = placeholder "go-tools";
    openssh = placeholder "openssh";
    nixfmt-tree = placeholder "nixfmt-tree";
  };
in
self
