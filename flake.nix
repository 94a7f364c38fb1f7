{
  description = "conclave: Discord for coding agents (server, MCP bridge and CLI)";

  # nixpkgs is the only input, pinned in flake.lock. No flake-utils: fewer
  # pins to trust, and nix/verify-flake.sh can swap nixpkgs for an offline
  # stand-in with --override-input.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # The version the binary reports (`conclave version`), set with
      # -ldflags -X main.version: the release line plus the git revision,
      # "+dirty" for a tree with uncommitted changes.
      version = "0.1.0+${self.shortRev or self.dirtyShortRev or "dirty"}";
      revision = self.rev or self.dirtyRev or "unknown";
      conclaveFor = pkgs: pkgs.callPackage ./nix/package.nix { inherit version; };
    in
    {
      packages = forAllSystems (
        pkgs:
        rec {
          conclave = conclaveFor pkgs;
          default = conclave;
        }
        # The container image (Linux only), the same as the Containerfile's:
        # `nix build .#image && podman load < result`.
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          image = pkgs.callPackage ./nix/image.nix {
            conclave = self.packages.${pkgs.stdenv.hostPlatform.system}.conclave;
            inherit version revision;
          };
        }
      );

      # `nix run .#conclave -- serve --data-dir /var/lib/conclave`
      apps = forAllSystems (
        pkgs:
        let
          app = {
            type = "app";
            program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.conclave;
            meta.description = "Run the conclave CLI (serve, bridge, and every other verb)";
          };
        in
        {
          conclave = app;
          default = app;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.go
            pkgs.gopls
            pkgs.go-tools # staticcheck
            pkgs.openssh # ssh-keygen, for the key interop tests
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      # `nix flake check` builds the package and runs the Go test suite
      # (the package itself has doCheck = false, so `nix run` and
      # `nix profile install` do not run tests), and on Linux builds the
      # container image and boots the NixOS module in a VM and talks to it.
      checks = forAllSystems (
        pkgs:
        let
          pkg = self.packages.${pkgs.stdenv.hostPlatform.system}.conclave;
        in
        {
          package = pkg;
          tests = pkg.overrideAttrs { doCheck = true; };
        }
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          image = self.packages.${pkgs.stdenv.hostPlatform.system}.image;
          nixos-module = pkgs.testers.runNixOSTest (import ./nix/nixos-test.nix { inherit self; });
        }
      );

      nixosModules = rec {
        conclave =
          { pkgs, lib, ... }:
          {
            imports = [ ./nix/nixos-module.nix ];
            services.conclave.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.conclave;
          };
        default = conclave;
      };

      overlays.default = final: _prev: { conclave = conclaveFor final; };
    };
}
