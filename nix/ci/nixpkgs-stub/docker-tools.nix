# OFFLINE TEST STUB — NOT nixpkgs' dockerTools.
#
# A small buildLayeredImage that really writes a gzipped docker-archive
# (what `docker save` writes and `docker load` / `podman load` read) from
# the arguments nixpkgs' function takes, with the host's tar, gzip and
# sha256sum (the sandbox sees /usr). It follows nixpkgs' scheme:
#
#  * a customisation layer: `contents` linked into a root directory (files
#    as symlinks into the store, like symlinkJoin), then `extraCommands`
#    and `fakeRootCommands` run in it, then one tar with every file root's;
#  * one layer per store path the customisation layer and the config refer
#    to (exportReferencesGraph), below it, owned by uid/gid;
#  * the image config JSON: architecture, os, created, `config` as given,
#    rootfs.diff_ids and history.
#
# What differs: nixpkgs runs fakeRootCommands under fakeroot; here `chown`
# is a shell function that records the owner a path gets in the layer
# (numeric owners only) and everything else runs as it is. Store paths are
# not grouped by popularity (one layer each, the rest in the last one),
# gzip replaces pigz, and fromImage, enableFakechroot, includeNixDB and
# layeringPipeline are refused. Passing against this says nothing about
# nixpkgs' dockerTools, its layer order or the exact bytes it writes.
{
  system,
  sh,
}:
let
  inherit (builtins)
    attrNames
    elem
    filter
    isList
    toJSON
    ;
  chars = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);
  toLower = builtins.replaceStrings (chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (chars "abcdefghijklmnopqrstuvwxyz");
  goarch =
    {
      x86_64-linux = "amd64";
      aarch64-linux = "arm64";
    }
    .${system} or null;

  # nixpkgs' streamLayeredImage takes exactly these (plus compressor in
  # buildLayeredImage); anything else is an evaluation error there too.
  known = [
    "name"
    "tag"
    "fromImage"
    "contents"
    "config"
    "architecture"
    "created"
    "uid"
    "gid"
    "uname"
    "gname"
    "maxLayers"
    "extraCommands"
    "fakeRootCommands"
    "enableFakechroot"
    "includeStorePaths"
    "includeNixDB"
    "passthru"
    "meta"
    "layeringPipeline"
    "debug"
    "compressor"
  ];

  buildEnv = ''
    export PATH=/usr/bin:/bin LC_ALL=C
    export SOURCE_DATE_EPOCH=315532800 # what nixpkgs' stdenv sets
    tarOpts=(--format=gnu --numeric-owner --mtime=@$SOURCE_DATE_EPOCH --hard-dereference)
  '';

  buildLayeredImage =
    args:
    let
      unknown = filter (n: !(elem n known)) (attrNames args);
      a = {
        tag = null;
        fromImage = null;
        contents = [ ];
        config = { };
        architecture = goarch;
        created = "1970-01-01T00:00:01Z";
        uid = 0;
        gid = 0;
        maxLayers = 100;
        extraCommands = "";
        fakeRootCommands = "";
        enableFakechroot = false;
        includeStorePaths = true;
        includeNixDB = false;
        passthru = { };
        meta = { };
        layeringPipeline = null;
        compressor = "gz";
      }
      // args;
      baseName = baseNameOf a.name;
      stubRefuses = what: throw "dockerTools.buildLayeredImage (offline stub): ${what} is not implemented by the stand-in";
      check =
        if unknown != [ ] then
          throw "function 'buildLayeredImage' called with unexpected argument '${builtins.head unknown}'"
        else if !(args ? name) then
          throw "function 'buildLayeredImage' called without required argument 'name'"
        else if a.architecture == null then
          throw "dockerTools.buildLayeredImage (offline stub): no image architecture for ${system}"
        else if a.tag == null then
          stubRefuses "a tag derived from the output hash (tag = null)"
        else if a.fromImage != null then
          stubRefuses "fromImage"
        else if a.enableFakechroot then
          stubRefuses "enableFakechroot"
        else if a.includeNixDB then
          stubRefuses "includeNixDB"
        else if a.layeringPipeline != null then
          stubRefuses "layeringPipeline"
        else if a.compressor != "gz" then
          stubRefuses "compressor ${a.compressor}"
        else if a.maxLayers < 2 then
          throw "dockerTools.buildLayeredImage: the maximum number of layers must be at least 2"
        else
          true;

      customisationLayer = builtins.derivation {
        name = "${baseName}-customisation-layer";
        inherit system;
        builder = sh;
        contents = if isList a.contents then a.contents else [ a.contents ];
        inherit (a) extraCommands fakeRootCommands;
        args = [
          "-euo"
          "pipefail"
          "-c"
          (
            buildEnv
            + ''
              root=$TMPDIR/root
              mkdir -m 0755 "$root"
              for p in $contents; do cp -rs "$p/." "$root/"; done
              find "$root" -type d -exec chmod u+w {} +
              cd "$root"
              (eval "$extraCommands")

              # chown records the owner a path gets in the layer (fakeroot's
              # effect on tar; every other file is root's, as under fakeroot).
              owners=$TMPDIR/owners
              : >"$owners"
              chown() {
                local recursive= spec uid gid f rel
                while [ $# -gt 0 ]; do
                  case $1 in
                  -R | --recursive) recursive=1; shift ;;
                  -h | --no-dereference | -v | -c | -f) shift ;;
                  --) shift; break ;;
                  -*) echo "chown (offline stub): unsupported option $1" >&2; return 1 ;;
                  *) break ;;
                  esac
                done
                spec=$1
                shift
                uid=''${spec%%:*}
                gid=''${spec#*:}
                [ "$gid" != "$spec" ] || gid=0
                if ! [[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]]; then
                  echo "chown (offline stub): use numeric owners, not '$spec' (an image has no /etc/passwd to resolve names)" >&2
                  return 1
                fi
                for f in "$@"; do
                  [ -e "$f" ] || [ -L "$f" ] || { echo "chown: cannot access '$f': No such file or directory" >&2; return 1; }
                  rel=$(realpath -s --relative-to="$root" -- "$f")
                  case $rel in ..*) echo "chown (offline stub): $f is outside the image root" >&2; return 1 ;; esac
                  if [ -n "$recursive" ] && [ -d "$f" ] && [ ! -L "$f" ]; then
                    (cd "$root" && find "./$rel" | sed 's|^\./\./|./|; s|/\.$||') | sed "s|^|$uid\t$gid\t|" >>"$owners"
                  else
                    printf '%s\t%s\t%s\n' "$uid" "$gid" "$([ "$rel" = . ] && echo . || echo "./$rel")" >>"$owners"
                  fi
                done
              }
              (eval "$fakeRootCommands")
              unset -f chown

              # Every entry, sorted, with its owner (the last chown wins),
              # appended to the tar in runs of equal owner.
              mkdir -p "$out"
              declare -A owner=()
              while IFS=$'\t' read -r uid gid path; do owner[$path]=$uid:$gid; done <"$owners"
              tar "''${tarOpts[@]}" -cf "$out/layer.tar" --files-from=/dev/null
              run=() runOwner=
              flush() {
                [ ''${#run[@]} -gt 0 ] || return 0
                tar "''${tarOpts[@]}" --no-recursion --owner="''${runOwner%:*}" --group="''${runOwner#*:}" \
                  -rf "$out/layer.tar" -- "''${run[@]}"
                run=()
              }
              while IFS= read -r path; do
                o=''${owner[$path]:-0:0}
                [ "$o" = "$runOwner" ] || { flush; runOwner=$o; }
                run+=("$path")
              done < <(find . -path ./proc -prune -o -path ./sys -prune -o -path ./nix/store -prune -o -print | sort)
              flush
              sha256sum "$out/layer.tar" | cut -d ' ' -f 1 >"$out/checksum"
            ''
          )
        ];
      };

      # The config without the layer digests, which the image build fills
      # in. A derivation rather than a string so that the store paths it
      # names (an Entrypoint in the store, say) are found by
      # exportReferencesGraph and go into the image, as in nixpkgs.
      baseJson = builtins.derivation {
        name = "${baseName}-config.json";
        inherit system;
        builder = sh;
        json = toJSON {
          inherit (a) architecture created config;
          os = "linux";
          rootfs = {
            type = "layers";
            diff_ids = "@DIFF_IDS@";
          };
          history = "@HISTORY@";
        };
        args = [
          "-c"
          "printf '%s' \"$json\" >\"$out\""
        ];
      };

      image = builtins.derivation {
        name = "${baseName}.tar.gz";
        inherit system;
        builder = sh;
        inherit customisationLayer baseJson;
        inherit (a) created maxLayers uid gid;
        includeStorePaths = if a.includeStorePaths then "1" else "";
        repoTag = "${toLower a.name}:${a.tag}";
        exportReferencesGraph = [
          "closure-customisation"
          customisationLayer
          "closure-config"
          baseJson
        ];
        args = [
          "-euo"
          "pipefail"
          "-c"
          (
            buildEnv
            + ''
              # The closure files list path, deriver, count and references
              # per store path; keep the paths.
              paths() {
                local p d n k r
                while IFS= read -r p; do
                  IFS= read -r d
                  IFS= read -r n
                  for ((k = 0; k < n; k++)); do IFS= read -r r; done
                  case $p in "$customisationLayer" | "$baseJson") ;; *) echo "$p" ;; esac
                done
              }
              storePaths=()
              if [ -n "$includeStorePaths" ]; then
                mapfile -t storePaths < <(cat closure-customisation closure-config | paths | sort -u)
              fi

              # Store layers (at most maxLayers - 1; the rest share the
              # last), then the customisation layer on top.
              mkdir layers
              layers=()
              for i in "''${!storePaths[@]}"; do
                n=$((i < maxLayers - 2 ? i : maxLayers - 2))
                [ -e "layers/$n.list" ] || layers+=("layers/$n.tar")
                printf '%s\n' "''${storePaths[$i]#/}" >>"layers/$n.list"
              done
              for l in "''${layers[@]}"; do
                tar "''${tarOpts[@]}" --sort=name --owner="$uid" --group="$gid" -C / -cf "$l" --files-from="''${l%.tar}.list"
              done
              layers+=("$customisationLayer/layer.tar")

              mkdir image
              ids= hist= names=
              for l in "''${layers[@]}"; do
                sum=$(sha256sum "$l" | cut -d ' ' -f 1)
                mkdir -p "image/$sum"
                cp "$l" "image/$sum/layer.tar"
                case $l in "$customisationLayer"/*) comment="customisation layer" ;; *) comment="store paths: $(tr '\n' ' ' <"''${l%.tar}.list" | sed 's/ $//')" ;; esac
                ids="$ids''${ids:+,}\"sha256:$sum\""
                hist="$hist''${hist:+,}{\"created\":\"$created\",\"comment\":\"$comment\"}"
                names="$names''${names:+,}\"$sum/layer.tar\""
              done
              sed -e "s|\"@DIFF_IDS@\"|[$ids]|" -e "s|\"@HISTORY@\"|[$hist]|" "$baseJson" >image/config.json
              cfg=$(sha256sum image/config.json | cut -d ' ' -f 1)
              mv image/config.json "image/$cfg.json"
              printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]\n' "$cfg" "$repoTag" "$names" >image/manifest.json

              cd image
              # shellcheck disable=SC2035
              tar "''${tarOpts[@]}" --sort=name --owner=0 --group=0 -cf - * | gzip -9 -n >"$out"
            ''
          )
        ];
      };
    in
    builtins.seq check (
      image
      // {
        imageName = toLower a.name;
        imageTag = a.tag;
        inherit (a) meta passthru;
        inherit customisationLayer;
      }
      // a.passthru
    );
in
{
  inherit buildLayeredImage;
}
