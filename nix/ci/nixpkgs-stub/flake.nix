# OFFLINE TEST STUB — THIS IS NOT NIXPKGS.
#
# nix/verify-flake.sh passes a copy of this directory as
# `--override-input nixpkgs path:<copy>` so that conclave's real flake.nix,
# nix/package.nix and nix/nixos-module.nix can be evaluated and built on a
# machine that cannot download nixpkgs. It provides only what the flake
# uses: a small lib (lib.nix) and a package set (pkgs.nix) whose
# buildGoModule re-implements nixpkgs' two-step scheme with the host's Go,
# and whose dockerTools.buildLayeredImage (docker-tools.nix) writes a
# docker-archive with the host's tar. Passing against it says nothing about
# nixpkgs' own buildGoModule or dockerTools, its Go version, its module
# system or whether the attribute names used exist.
{
  description = "offline stand-in for nixpkgs (conclave CI only; NOT nixpkgs)";
  outputs =
    { self }:
    let
      host = import ./host.nix; # written by verify-flake.sh: { goroot; gomodcache; }
      lib = import ./lib.nix;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit lib system host; });
    };
}
