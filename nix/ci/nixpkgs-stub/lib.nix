# OFFLINE TEST STUB — NOT nixpkgs' lib.
#
# The few lib functions conclave's flake, package and NixOS module use,
# rewritten with builtins, plus a small module system (evalModules) that is
# enough to evaluate nix/nixos-module.nix and render its systemd unit.
# Anything else is missing on purpose, so a new dependency on lib fails
# evaluation loudly instead of passing by accident. Passing here proves
# nothing about nixpkgs' own lib.
let
  inherit (builtins)
    all
    any
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    head
    isAttrs
    isBool
    isFunction
    isInt
    isList
    isString
    length
    listToAttrs
    map
    substring
    stringLength
    tail
    ;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    ls >= lx && substring (ls - lx) lx s == suffix;
  baseName =
    p:
    let
      parts = builtins.split "/" (toString p);
    in
    builtins.elemAt parts (length parts - 1);
  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  # ---------------------------------------------------------------- fileset
  # A file set here is { pred = path: type: bool; }; a path is the set of
  # everything at or under it. toSource copies what the set accepts.
  toSet =
    f:
    if isAttrs f && f ? pred then
      f
    else if isAttrs f && f ? _missing then
      { pred = _p: _t: false; }
    else
      { pred = p: _t: p == toString f || hasPrefix (toString f + "/") p; };
  fileset = {
    unions = sets: { pred = p: t: any (s: (toSet s).pred p t) sets; };
    difference = a: b: { pred = p: t: (toSet a).pred p t && !((toSet b).pred p t); };
    maybeMissing = path: if builtins.pathExists path then path else { _missing = true; };
    fileFilter = f: dir: {
      pred =
        p: t:
        hasPrefix (toString dir + "/") p
        && (
          t == "directory"
          || (
            t == "regular"
            && f {
              name = baseName p;
              hasExt = ext: hasSuffix ".${ext}" (baseName p);
              type = t;
            }
          )
        );
    };
    toSource =
      { root, fileset }:
      builtins.path {
        name = "source";
        path = root;
        filter = p: t: (toSet fileset).pred p t;
      };
  };

  # ---------------------------------------------------------------- modules
  mkOption =
    {
      type ? types.anything,
      description ? "",
      ...
    }@args:
    args
    // {
      _type = "option";
      inherit type;
    };
  mkEnableOption =
    name:
    mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${name}.";
    };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;

  mkType =
    name: check: merge: extra:
    {
      _type = "option-type";
      inherit name check merge;
    }
    // extra;
  mergeEqual =
    loc: values:
    let
      v = head values;
    in
    if all (x: x == v) values then
      v
    else
      throw "The option `${loc}' has conflicting definitions: ${concatStringsSep ", " (map builtins.toJSON values)}";
  types = rec {
    str = mkType "string" isString mergeEqual { };
    bool = mkType "boolean" isBool mergeEqual { };
    int = mkType "signed integer" isInt mergeEqual { };
    port = mkType "16 bit unsigned integer" (v: isInt v && v >= 0 && v < 65536) mergeEqual { };
    path = mkType "path" (v: builtins.isPath v || (isString v && hasPrefix "/" v)) mergeEqual { };
    package = mkType "package" (v: isAttrs v && (v.type or null == "derivation" || v ? outPath)) mergeEqual { };
    unspecified = mkType "unspecified value" (_: true) mergeEqual { };
    anything = mkType "anything" (_: true) (_loc: values: foldl' mergeAnything null values) { };
    listOf =
      t:
      mkType "list of ${t.name}" (v: isList v && all t.check v) (_loc: values: concatLists values) {
        elemType = t;
      };
    attrsOf =
      t:
      mkType "attribute set of ${t.name}" (v: isAttrs v && all (n: t.check v.${n}) (attrNames v)) (
        _loc: values: foldl' (a: b: a // b) { } values
      ) { elemType = t; };
    nullOr =
      t:
      mkType "null or ${t.name}" (v: v == null || t.check v) (
        loc: values: if all (v: v == null) values then null else t.merge loc (filter (v: v != null) values)
      ) { };
    enum =
      vs: mkType "one of ${concatStringsSep ", " (map builtins.toJSON vs)}" (v: elem v vs) mergeEqual { };
  };

  # mergeAnything merges two freeform values: attribute sets recursively,
  # lists by concatenation; anything else must be equal.
  mergeAnything =
    a: b:
    if a == null then
      b
    else if isAttrs a && isAttrs b then
      a // builtins.mapAttrs (n: v: if a ? ${n} then mergeAnything a.${n} v else v) b
    else if isList a && isList b then
      a ++ b
    else if a == b then
      a
    else
      throw "conflicting freeform definitions: ${builtins.toJSON a} and ${builtins.toJSON b}";

  isOption = v: isAttrs v && v._type or null == "option";

  # pushDown turns mkIf/mkMerge around an attribute set into a list of
  # definitions per attribute, without evaluating any condition: the names
  # a module defines must be known before config exists.
  pushDown =
    def:
    if isAttrs def && def._type or null == "if" then
      map (d: builtins.mapAttrs (_: v: mkIf def.condition v) d) (pushDown def.content)
    else if isAttrs def && def._type or null == "merge" then
      concatMap pushDown def.contents
    else if isAttrs def && def._type or null == "override" then
      map (d: builtins.mapAttrs (_: v: mkOverride def.priority v) d) (pushDown def.content)
    else
      [ def ];

  # resolve unwraps a leaf definition: a list of { priority, value }, empty
  # when a condition is false.
  resolve =
    prio: def:
    if isAttrs def && def._type or null == "if" then
      (if def.condition then resolve prio def.content else [ ])
    else if isAttrs def && def._type or null == "merge" then
      concatMap (resolve prio) def.contents
    else if isAttrs def && def._type or null == "override" then
      resolve def.priority def.content
    else
      [
        {
          priority = prio;
          value = def;
        }
      ];

  # Freeform values (types.anything) may hold mkIf & co at any depth.
  cleanAnything =
    v:
    if isAttrs v && v ? _type then
      let
        r = resolve 100 v;
      in
      if r == [ ] then null else cleanAnything (head r).value
    else if isAttrs v && !(v ? outPath) then
      removeNulls (builtins.mapAttrs (_: cleanAnything) v)
    else
      v;
  removeNulls =
    s:
    listToAttrs (
      concatMap (
        n:
        if s.${n} == null then
          [ ]
        else
          [
            {
              name = n;
              value = s.${n};
            }
          ]
      ) (attrNames s)
    );

  mergeOption =
    loc: opt: defs:
    let
      rs = concatMap (resolve 100) defs;
      best = foldl' (m: r: if r.priority < m then r.priority else m) 1500 rs;
      values = map (r: r.value) (filter (r: r.priority == best) rs);
      value =
        if values == [ ] then
          (if opt ? default then opt.default else throw "The option `${loc}' is used but not defined.")
        else
          opt.type.merge loc (map (v: if opt.type.name == "anything" then cleanAnything v else v) values);
    in
    if values != [ ] && !(all opt.type.check values || opt.type.name == "anything") then
      throw "A definition for option `${loc}' is not of type `${opt.type.name}': ${builtins.toJSON values}"
    else
      value;

  # mergeTree merges the definitions below one point of the option tree.
  mergeTree =
    loc: decls: defs:
    if isOption decls then
      mergeOption (concatStringsSep "." loc) decls defs
    else
      let
        pushed = concatMap pushDown defs;
        defined = concatMap (d: if isAttrs d then attrNames d else [ ]) pushed;
        unknown = filter (n: !(decls ? ${n})) defined;
      in
      if unknown != [ ] then
        throw "The option `${concatStringsSep "." (loc ++ [ (head unknown) ])}' does not exist."
      else
        builtins.mapAttrs (
          n: d: mergeTree (loc ++ [ n ]) d (concatMap (x: if x ? ${n} then [ x.${n} ] else [ ]) pushed)
        ) decls;

  recursiveUpdate =
    a: b:
    a
    // builtins.mapAttrs (
      n: v: if a ? ${n} && isAttrs v && isAttrs a.${n} && !(isOption v) then recursiveUpdate a.${n} v else v
    ) b;

  evalModules =
    {
      modules,
      specialArgs ? { },
    }:
    let
      args = {
        inherit config options lib;
      }
      // specialArgs;
      normalize =
        m:
        let
          v = if isFunction m then m (builtins.intersectAttrs (builtins.functionArgs m) args // args) else m;
          v' = if builtins.isPath v || isString v then import v else v;
          v'' = if isFunction v' then normalize v' else v';
        in
        if isList v'' then
          concatMap normalize v''
        else if v'' ? options || v'' ? config then
          [
            {
              options = v''.options or { };
              config = v''.config or { };
            }
          ]
          ++ concatMap normalize (v''.imports or [ ])
        else
          [
            {
              options = { };
              config = removeAttrs v'' [
                "imports"
                "_file"
                "key"
                "meta"
              ];
            }
          ]
          ++ concatMap normalize (v''.imports or [ ]);
      collected = concatMap normalize modules;
      options = foldl' recursiveUpdate { } (map (m: m.options) collected);
      config = mergeTree [ ] options (map (m: m.config) collected);
    in
    {
      inherit config options;
    };

  lib = {
    inherit
      fileset
      genAttrs
      mkOption
      mkEnableOption
      mkIf
      mkMerge
      mkOverride
      mkDefault
      mkForce
      types
      evalModules
      ;
    optionalAttrs = cond: as: if cond then as else { };
    optionals = cond: xs: if cond then xs else [ ];
    getExe =
      drv:
      if drv ? meta.mainProgram then
        "${drv}/bin/${drv.meta.mainProgram}"
      else
        throw "lib.getExe: ${drv.name or "?"} has no meta.mainProgram";
    platforms.unix = [
      "x86_64-linux"
      "aarch64-linux"
      "aarch64-darwin"
    ];
  };
in
lib
