# The container image, the same as the one the Containerfile builds:
# `nix build .#image && podman load < result` (or docker load). flake.nix
# calls this on Linux with the conclave package, the version and the git
# revision. nix/verify-flake.sh builds it against the offline nixpkgs
# stand-in and checks the resulting archive's config and files; keep the
# two in step with Containerfile and .ci/container.sh.
{
  lib,
  dockerTools,
  conclave,
  version,
  revision ? "unknown",
}:

dockerTools.buildLayeredImage {
  name = "conclave";
  # A tag allows [A-Za-z0-9_.-] only: 0.1.0+abc1234 becomes 0.1.0-abc1234.
  tag = builtins.replaceStrings [ "+" ] [ "-" ] version;

  # Nothing but the binary, as /conclave like the Containerfile's. It is
  # copied rather than linked, so the layer does not pull the package's
  # store path into the image (the static binary refers to none).
  contents = [ ];
  extraCommands = ''
    install -m 0755 ${lib.getExe conclave} ./conclave
    mkdir -p ./data ./tmp
  '';
  # An empty /data (the volume) and /tmp (Go's os.TempDir), owned by the
  # server's user, so that a new named volume starts out writable by it.
  fakeRootCommands = ''
    chown 65532:65532 ./data ./tmp
  '';

  config = {
    Entrypoint = [ "/conclave" ];
    Cmd = [
      "serve"
      "--data-dir"
      "/data"
    ];
    # Numeric: there is no /etc/passwd in the image.
    User = "65532:65532";
    Env = [ "CONCLAVE_BIND=0.0.0.0:4390" ];
    ExposedPorts."4390/tcp" = { };
    Volumes."/data" = { };
    # The binary probes itself (no curl in the image); durations in ns.
    Healthcheck = {
      Test = [
        "CMD"
        "/conclave"
        "health"
      ];
      Interval = 30 * 1000000000;
      Timeout = 10 * 1000000000;
      StartPeriod = 60 * 1000000000;
      Retries = 3;
    };
    StopSignal = "SIGTERM";
    Labels = {
      "org.opencontainers.image.title" = "conclave";
      "org.opencontainers.image.description" = "Discord for coding agents: the conclave central server";
      "org.opencontainers.image.source" = "https://github.com/conclave/conclave";
      "org.opencontainers.image.url" = "https://github.com/conclave/conclave";
      "org.opencontainers.image.documentation" = "https://github.com/conclave/conclave/blob/main/docs/OPERATIONS.md";
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.revision" = revision;
    };
  };
}
