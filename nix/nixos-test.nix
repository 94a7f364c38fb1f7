# NixOS VM test (checks.<linux system>.nixos-module): a server running
# services.conclave and a client on a second VM. Needs real nixpkgs and KVM,
# so it runs on a networked CI runner (`nix flake check -L`), not in
# nix/verify-flake.sh.
{ self }:
let
  # A key made for this test alone and published with it: alice is a pinned
  # admin, and the client logs in with the private half. Never use it
  # anywhere else.
  alicePublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkckMc3qC/TCGgVcieot+WekA/W4FSS9QknBYeJVD40 alice@conclave-vm-test";
  alicePrivateKey = ''
    -----BEGIN OPENSSH PRIVATE KEY-----
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
    QyNTUxOQAAACCZHJDHN6gv0whoFXInqLflnpAP1uBUkvUJJwWHiVQ+NAAAAKDDW52Aw1ud
    gAAAAAtzc2gtZWQyNTUxOQAAACCZHJDHN6gv0whoFXInqLflnpAP1uBUkvUJJwWHiVQ+NA
    AAAEDIBHwONHc612W8y3JacTXbTywtNlcz+L88WAicrR/tuJkckMc3qC/TCGgVcieot+We
    kA/W4FSS9QknBYeJVD40AAAAFmFsaWNlQGNvbmNsYXZlLXZtLXRlc3QBAgMEBQYH
    -----END OPENSSH PRIVATE KEY-----
  '';
in
{
  name = "conclave";

  nodes.server = {
    imports = [ self.nixosModules.default ];
    services.conclave = {
      enable = true;
      openFirewall = true;
      admins = [ "alice=${alicePublicKey}" ];
      extraArgs = [
        "--snapshot-every"
        "5"
      ];
    };
  };

  nodes.client =
    { pkgs, ... }:
    {
      environment.systemPackages = [
        self.packages.${pkgs.stdenv.hostPlatform.system}.conclave
        pkgs.curl
      ];
      environment.etc."conclave-test/alice/id_ed25519" = {
        text = alicePrivateKey;
        mode = "0600";
      };
    };

  testScript = ''
    start_all()

    server.wait_for_unit("conclave.service")
    server.wait_for_open_port(4390)
    client.wait_for_unit("multi-user.target")

    with subtest("health over the network, through the opened firewall"):
        client.wait_until_succeeds("curl -sf http://server:4390/health | grep -qx ok")

    with subtest("the unit is hardened"):
        for prop, value in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                            ("ProtectSystem", "strict"), ("PrivateUsers", "yes")]:
            server.succeed(f"systemctl show -p {prop} --value conclave | grep -qx {value}")
        server.succeed("systemctl show -p ExecStart --value conclave | grep -q -- '--data-dir /var/lib/conclave'")

    with subtest("the pinned admin registers with her key; nobody else can take the name"):
        client.succeed("cp -r /etc/conclave-test/alice /root/alice && chmod 700 /root/alice && chmod 600 /root/alice/id_ed25519")
        client.succeed("conclave --config-dir /root/alice key | grep -q AAAAC3NzaC1lZDI1NTE5AAAAIJkckMc3qC")
        client.succeed("conclave --config-dir /root/alice register alice --server ws://server:4390 --machine vm")
        client.fail("conclave --config-dir /root/mallory register alice --server ws://server:4390")
        client.succeed("conclave --config-dir /root/bob register bob --server ws://server:4390")

    with subtest("a message goes from alice to bob's tail"):
        client.succeed("conclave --config-dir /root/alice channel create ops")
        client.succeed("(conclave --config-dir /root/bob tail --channel ops >/tmp/tail.log 2>&1 &)")
        client.wait_until_succeeds("conclave --config-dir /root/alice who ops | grep -q bob/")
        client.succeed("conclave --config-dir /root/alice send --channel ops 'hello from the vm'")
        client.wait_until_succeeds("grep -q 'hello from the vm' /tmp/tail.log")

    with subtest("state survives a restart; a clean stop writes a snapshot"):
        server.succeed("systemctl restart conclave")
        server.wait_for_open_port(4390)
        client.wait_until_succeeds("conclave --config-dir /root/alice channel list | grep -q ops")
        server.succeed("test -s /var/lib/private/conclave/server-id")
        server.succeed("systemctl stop conclave")
        server.succeed("ls /var/lib/private/conclave/snapshots | grep -q '^snap-'")
        server.succeed("journalctl -u conclave | grep -q 'server stopped'")
  '';
}
