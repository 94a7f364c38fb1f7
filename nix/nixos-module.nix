# NixOS module: services.conclave runs `conclave serve` as a hardened
# systemd service. The flake's nixosModules.default imports it and sets
# services.conclave.package to the flake's own build.
#
# It uses only lib.mkOption, lib.mkEnableOption, lib.mkIf, lib.types and
# builtins, so nix/verify-flake.sh can render its unit offline (with the
# stand-in lib of nix/ci/nixpkgs-stub, or the real one via NIXPKGS_LIB) and
# run systemd-analyze on it.
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.conclave;
  inherit (lib) mkOption types;

  # The port of `bind` ("0.0.0.0:4390", "[::]:443"), for the firewall and
  # the capability to bind below 1024.
  port =
    let
      m = builtins.match ".*:([0-9]+)" cfg.bind;
    in
    if m == null then
      throw "services.conclave.bind must end in :PORT, got ${cfg.bind}"
    else
      builtins.fromJSON (builtins.head m);
  privilegedPort = port < 1024;

  # One ExecStart argument, quoted for systemd: in double quotes, with
  # backslashes and quotes escaped and % and $ doubled so that systemd
  # expands neither specifiers nor variables in it.
  systemdArg =
    s:
    ''"${
      builtins.replaceStrings
        [ "\\" "\"" "%" "$" "\n" ]
        [ "\\\\" "\\\"" "%%" "$$" "\\n" ]
        s
    }"'';

  unpinnedAdmins = builtins.filter (a: builtins.match "[^=]*=.+" a == null) cfg.admins;
  tls = cfg.tlsCert != null;

  # `conclave serve`'s arguments. %S/conclave is /var/lib/conclave, the
  # StateDirectory: the event log, history, snapshots and server id survive
  # restarts and upgrades (with DynamicUser it lives under
  # /var/lib/private). %d is the credentials directory (LoadCredential).
  execStart = builtins.concatStringsSep " " (
    map systemdArg (
      [
        (lib.getExe cfg.package)
        "serve"
        "--bind"
        cfg.bind
      ]
      ++ builtins.concatMap (a: [
        "--admin"
        a
      ]) cfg.admins
    )
    ++ [
      "--data-dir"
      "%S/conclave"
    ]
    ++ lib.optionals tls [
      "--tls-cert"
      "%d/tls-cert"
      "--tls-key"
      "%d/tls-key"
    ]
    ++ map systemdArg cfg.extraArgs
  );
in
{
  options.services.conclave = {
    enable = lib.mkEnableOption "the conclave server";

    package = mkOption {
      type = types.package;
      description = "The conclave package to run.";
    };

    bind = mkOption {
      type = types.str;
      default = "0.0.0.0:4390";
      example = "127.0.0.1:4390";
      description = ''
        Address to listen on (`--bind`), HOST:PORT. Behind a reverse proxy
        that terminates TLS, bind to 127.0.0.1.
      '';
    };

    admins = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "alice=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… alice@laptop" ];
      description = ''
        Server admins, each "USER" or "USER=KEY" (`--admin`). KEY, an
        ssh-ed25519 public key (the line `conclave key` prints, or its
        base64 field), pins the name: nobody can register it with another
        key. An unpinned admin name goes to whoever registers it first.
        A non-empty list overrides CONCLAVE_ADMINS from environmentFile.
      '';
    };

    tlsCert = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/acme/chat.example.com/fullchain.pem";
      description = ''
        Certificate (PEM) to serve wss:// directly (`--tls-cert`). A path
        as a string, read at start through systemd's LoadCredential, so it
        may belong to root; never a Nix path, which would copy it into the
        world-readable store. Leave null when a proxy terminates TLS.
      '';
    };

    tlsKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/acme/chat.example.com/key.pem";
      description = "Private key (PEM) for tlsCert, read like it.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the TCP port of `bind` in the firewall.";
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/conclave.env";
      description = ''
        A file of VAR=value lines for the service (systemd EnvironmentFile),
        kept out of the Nix store: CONCLAVE_ADMINS, CONCLAVE_LOG_LEVEL,
        CONCLAVE_LOG_FORMAT=json, …
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--history-retention"
        "30d"
        "--metrics-bind"
        "127.0.0.1:9390"
      ];
      description = "More arguments for `conclave serve` (see `conclave serve --help`).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.tlsCert == null) == (cfg.tlsKey == null);
        message = "services.conclave: tlsCert and tlsKey go together.";
      }
    ];

    warnings = map (
      a:
      "services.conclave.admins: ${a} is not pinned to a key; whoever registers that name first becomes an admin. Use \"${a}=ssh-ed25519 …\"."
    ) unpinnedAdmins;

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ port ];

    systemd.services.conclave = {
      description = "conclave server";
      documentation = [ "https://github.com/conclave/conclave/blob/main/docs/OPERATIONS.md" ];
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];

      serviceConfig = {
        ExecStart = execStart;
        # SIGTERM: close every session with a reason, write a snapshot, exit 0.
        Restart = "on-failure";
        RestartSec = "2s";
        TimeoutStopSec = "60s";

        DynamicUser = true;
        StateDirectory = "conclave";
        StateDirectoryMode = "0700";
        WorkingDirectory = "%S/conclave";
        UMask = "0077";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        LoadCredential = lib.mkIf tls [
          "tls-cert:${cfg.tlsCert}"
          "tls-key:${cfg.tlsKey}"
        ];

        # Hardening. DynamicUser implies ProtectSystem=strict, PrivateTmp,
        # RemoveIPC and RestrictSUIDSGID; said again here for the reader.
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        # User namespacing would take away CAP_NET_BIND_SERVICE.
        PrivateUsers = !privilegedPort;
        CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.optionals privilegedPort [ "CAP_NET_BIND_SERVICE" ];
        DevicePolicy = "closed";
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        ProtectClock = true;
        ProtectControlGroups = true;
        ProtectHostname = true;
        ProtectKernelLogs = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        # Not ProcSubset=pid: it hides /proc/sys/net/core/somaxconn, and Go then
        # listens with a backlog of 128 instead of the kernel's limit.
        ProtectProc = "invisible";
        RemoveIPC = true;
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        SystemCallArchitectures = "native";
        # @system-service without the privileged calls. Not ~@resources: the
        # Go runtime raises its open-file limit (setrlimit) at start.
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
