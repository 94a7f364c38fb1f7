package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/conclave/conclave/identity"
)

// CompletionsCmd prints a shell completion script.
//
// The scripts are static: they are generated from the kong model of this
// binary and hold the command tree as tables, so no path of the binary is
// baked in. Regenerate them after an upgrade (or source `conclave
// completions bash` from the shell's rc file, which does that on every
// start). Only server and channel names are looked up on Tab, by running
// `conclave complete-names` (namecache.go), which reads local files only
// and prints nothing on error.
type CompletionsCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Run writes the script for c.Shell to stdout.
func (c *CompletionsCmd) Run(g *Globals, kctx *kong.Context) error {
	t := newCompTree(kctx.Model)
	var script string
	switch c.Shell {
	case "bash":
		script = t.bash()
	case "zsh":
		script = t.zsh()
	case "fish":
		script = t.fish()
	default: // kong's enum check has already refused anything else
		return fmt.Errorf("no completions for shell %q", c.Shell)
	}
	_, err := io.WriteString(g.Stdout, script)
	return err
}

// compTree is the part of the kong model that completion needs, in a form
// every shell's generator can print as tables.
type compTree struct {
	name  string      // the program's name, "conclave"
	nodes []*compNode // the root first, then every visible command, depth first
}

// compNode is one command. Its path is the canonical command names from
// the root, joined by spaces ("" for the root, "machine list").
type compNode struct {
	path     string
	help     string
	aliases  []string
	children []*compNode
	flags    []compFlag  // every flag accepted here: its own, its parents', the globals
	args     []compValue // what each positional takes, in order
	lastMany bool        // the last positional takes any number of words
}

// compFlag is one flag with every name it goes by.
type compFlag struct {
	names []string // "--bind", "-v", aliases, "--no-x"
	help  string
	value compValue
}

// compValue says what a flag or positional takes: nothing (a boolean or
// counter flag), free text, a file, a directory, or one of a few words.
type compValue struct {
	kind  byte     // 'n' nothing, 't' text, 'f' file, 'd' directory, 'e' enum, 's' a registered server, 'c' a cached channel
	words []string // for 'e'
}

// spec encodes v for the shell tables: "n", "t", "f", "d" or "e w1 w2 …".
func (v compValue) spec() string {
	if v.kind == 'e' {
		return "e " + strings.Join(v.words, " ")
	}
	return string(v.kind)
}

func newCompTree(app *kong.Application) *compTree {
	t := &compTree{name: app.Name}
	var walk func(n *kong.Node, path string) *compNode
	walk = func(n *kong.Node, path string) *compNode {
		cn := &compNode{path: path, help: n.Help, aliases: n.Aliases}
		t.nodes = append(t.nodes, cn)
		for _, level := range n.AllFlags(true) {
			for _, f := range level {
				cn.flags = append(cn.flags, newCompFlag(f))
			}
		}
		for _, a := range n.Positional {
			cn.args = append(cn.args, valueOf(a))
			cn.lastMany = a.IsCumulative()
		}
		for _, c := range n.Children {
			if c.Hidden || c.Type != kong.CommandNode {
				continue
			}
			cn.children = append(cn.children, walk(c, strings.TrimSpace(path+" "+c.Name)))
		}
		return cn
	}
	walk(app.Node, "")
	return t
}

func newCompFlag(f *kong.Flag) compFlag {
	cf := compFlag{names: []string{"--" + f.Name}, help: oneLine(f.Help), value: valueOf(f.Value)}
	if f.Short != 0 {
		cf.names = append(cf.names, "-"+string(f.Short))
	}
	for _, a := range f.Aliases {
		cf.names = append(cf.names, "--"+a)
	}
	switch neg := f.Tag.Negatable; {
	case neg == "_":
		cf.names = append(cf.names, "--no-"+f.Name)
	case neg != "":
		cf.names = append(cf.names, "--"+neg)
	}
	return cf
}

// valueOf says what v takes. Enums list their words; path types complete
// files, or directories when the type or the name says so; a value whose
// placeholder or name is LEVEL lists the permission levels.
func valueOf(v *kong.Value) compValue {
	if v.Flag != nil && (v.IsBool() || v.IsCounter()) {
		return compValue{kind: 'n'}
	}
	if v.Enum != "" {
		return compValue{kind: 'e', words: v.EnumSlice()}
	}
	switch v.Tag.Get("complete") {
	case "server":
		return compValue{kind: 's'}
	case "channel":
		return compValue{kind: 'c'}
	}
	if v.Flag != nil && v.Name == "server" {
		return compValue{kind: 's'}
	}
	if v.Flag != nil && v.Name == "channel" {
		return compValue{kind: 'c'}
	}
	name := strings.ToLower(v.Name)
	if v.Flag != nil && v.Flag.PlaceHolder != "" {
		name = strings.ToLower(v.Flag.PlaceHolder)
	}
	switch v.Tag.Type {
	case "existingdir":
		return compValue{kind: 'd'}
	case "path", "existingfile", "filecontent":
		if name == "dir" || strings.HasSuffix(name, "-dir") {
			return compValue{kind: 'd'}
		}
		return compValue{kind: 'f'}
	}
	if name == "level" {
		var words []string
		for _, l := range identity.Levels() {
			words = append(words, l.String())
		}
		return compValue{kind: 'e', words: words}
	}
	return compValue{kind: 't'}
}

// compCase is one row of a lookup table: the "PATH:WORD" patterns it
// matches, where '*' is a wildcard and nothing else is special, and the
// spec it answers.
type compCase struct {
	patterns []string
	spec     string
}

// sh renders the patterns for a sh case: quoted, '*' left bare.
func (c compCase) sh() string {
	var pats []string
	for _, p := range c.patterns {
		parts := strings.Split(p, "*")
		for i := range parts {
			if parts[i] != "" {
				parts[i] = shQuote(parts[i])
			}
		}
		pats = append(pats, strings.Join(parts, "*"))
	}
	return strings.Join(pats, "|")
}

// fish renders the patterns for a fish switch, which matches wildcards
// inside quotes.
func (c compCase) fish() string {
	var pats []string
	for _, p := range c.patterns {
		pats = append(pats, fishQuote(p))
	}
	return strings.Join(pats, " ")
}

// valueCases returns the (path:flag pattern, spec) rows of the flag-value
// table. A flag name that takes the same kind of value wherever it appears
// gets one wildcard row; one that differs between commands gets a row per
// kind listing the commands. Boolean flags are left out: the lookup's
// default is "n".
func (t *compTree) valueCases() []compCase {
	type key struct{ name, spec string }
	var order []key
	paths := map[key][]string{}
	specs := map[string]int{} // flag name -> how many different specs
	for _, n := range t.nodes {
		for _, f := range n.flags {
			for _, name := range f.names {
				k := key{name, f.value.spec()}
				if _, seen := paths[k]; !seen {
					order = append(order, k)
					specs[name]++
				}
				paths[k] = append(paths[k], n.path+":"+name)
			}
		}
	}
	var rows []compCase
	for _, k := range order {
		if k.spec == "n" {
			continue
		}
		pats := []string{"*:" + k.name}
		if specs[k.name] > 1 {
			pats = paths[k]
		}
		rows = append(rows, compCase{pats, k.spec})
	}
	return rows
}

// argCases returns the (path:index pattern, spec) rows of the positional
// table, free text (the lookup's default) left out; a trailing positional
// that takes many words matches every index from its own on.
func (t *compTree) argCases() []compCase {
	var rows []compCase
	for _, n := range t.nodes {
		for i, a := range n.args {
			if a.kind == 't' {
				continue // the lookup's default
			}
			pat := fmt.Sprintf("%s:%d", n.path, i)
			if n.lastMany && i == len(n.args)-1 {
				pat = n.path + ":*"
			}
			rows = append(rows, compCase{[]string{pat}, a.spec()})
		}
	}
	return rows
}

func (n *compNode) flagNames() []string {
	var names []string
	for _, f := range n.flags {
		names = append(names, f.names...)
	}
	return names
}

func (n *compNode) childNames() []string {
	var names []string
	for _, c := range n.children {
		names = append(names, lastWord(c.path))
	}
	return names
}

func lastWord(path string) string {
	return path[strings.LastIndex(path, " ")+1:]
}

// shQuote quotes s for sh, bash and zsh: in single quotes, closing and
// reopening them around an escaped quote for each quote in s.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish, whose single-quoted strings take \\ and \'.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// shTables writes the lookup functions the bash and zsh scripts share.
// They are plain POSIX-style functions that set REPLY, so that one
// resolver (compShared) runs in both shells.
func (t *compTree) shTables(b *strings.Builder) {
	b.WriteString("# __" + t.name + "_child PATH WORD: the command WORD names under PATH, or nothing.\n")
	fmt.Fprintf(b, "__%s_child() {\n\tcase \"$1:$2\" in\n", t.name)
	for _, n := range t.nodes {
		for _, c := range n.children {
			var pats []string
			for _, w := range append([]string{lastWord(c.path)}, c.aliases...) {
				pats = append(pats, shQuote(n.path+":"+w))
			}
			fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", strings.Join(pats, "|"), shQuote(c.path))
		}
	}
	b.WriteString("\t*) REPLY='' ;;\n\tesac\n}\n\n")

	b.WriteString("# __" + t.name + "_commands PATH: the subcommands of PATH.\n")
	fmt.Fprintf(b, "__%s_commands() {\n\tcase \"$1\" in\n", t.name)
	for _, n := range t.nodes {
		if len(n.children) > 0 {
			fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", shQuote(n.path), shQuote(strings.Join(n.childNames(), " ")))
		}
	}
	b.WriteString("\t*) REPLY='' ;;\n\tesac\n}\n\n")

	b.WriteString("# __" + t.name + "_flags PATH: every flag PATH accepts.\n")
	fmt.Fprintf(b, "__%s_flags() {\n\tcase \"$1\" in\n", t.name)
	for _, n := range t.nodes {
		fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", shQuote(n.path), shQuote(strings.Join(n.flagNames(), " ")))
	}
	b.WriteString("\t*) REPLY='' ;;\n\tesac\n}\n\n")

	b.WriteString("# __" + t.name + "_value PATH FLAG: what FLAG takes under PATH: n (nothing), t (text),\n# f (a file), d (a directory) or \"e WORD…\" (one of the words).\n")
	fmt.Fprintf(b, "__%s_value() {\n\tcase \"$1:$2\" in\n", t.name)
	for _, r := range t.valueCases() {
		fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", r.sh(), shQuote(r.spec))
	}
	b.WriteString("\t*) REPLY=n ;;\n\tesac\n}\n\n")

	b.WriteString("# __" + t.name + "_arg PATH N: what PATH's positional N (from 0) takes, as for _value.\n")
	fmt.Fprintf(b, "__%s_arg() {\n\tcase \"$1:$2\" in\n", t.name)
	for _, r := range t.argCases() {
		fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", r.sh(), shQuote(r.spec))
	}
	b.WriteString("\t*) REPLY=t ;;\n\tesac\n}\n\n")
}

// compShared is the resolver the bash and zsh scripts share. Given the
// words after the program name, the last one being the word under the
// cursor, it walks the command tree the way kong parses (flags may come
// anywhere, a flag that takes a value swallows the next word unless
// written --flag=value) and sets __NAME_kind (words, file or dir) and
// __NAME_list (the candidate words).
const compShared = `# __NAME_complete WORD…: the words after NAME, the last one under the cursor.
# Sets __NAME_kind (words, file or dir), __NAME_list (candidates) and
# __NAME_path (the command they belong to).
__NAME_complete() {
	local cpath='' want='' n=0 i=0 w cur=''
	__NAME_kind=words
	__NAME_list=''
	__NAME_cfg=''
	__NAME_srv=''
	for w in "$@"; do
		i=$((i + 1))
		if [ "$i" -eq "$#" ]; then cur=$w; break; fi
		if [ -n "$want" ]; then
			__NAME_seen "$want" "$w"
			want=''
			continue
		fi
		case $w in
		--*=*) __NAME_seen "${w%%=*}" "${w#*=}" ;;
		-|--) ;;
		-*)
			__NAME_value "$cpath" "$w"
			[ "$REPLY" = n ] || want=$w ;;
		*)
			__NAME_child "$cpath" "$w"
			if [ -n "$REPLY" ]; then cpath=$REPLY; n=0; else n=$((n + 1)); fi ;;
		esac
	done
	__NAME_path=$cpath
	if [ -n "$want" ]; then
		__NAME_value "$cpath" "$want"
	else
		case $cur in
		--*=*) __NAME_value "$cpath" "${cur%%=*}" ;;
		-*) __NAME_flags "$cpath"; __NAME_list=$REPLY; return ;;
		*)
			# A command with subcommands takes no arguments: after a word
			# that names none of them, nothing fits.
			__NAME_commands "$cpath"
			if [ -n "$REPLY" ]; then [ "$n" -eq 0 ] && __NAME_list=$REPLY; return; fi
			__NAME_arg "$cpath" "$n" ;;
		esac
	fi
	case $REPLY in
	f) __NAME_kind=file ;;
	d) __NAME_kind=dir ;;
	'e '*) __NAME_list=${REPLY#e } ;;
	s) __NAME_list=$(__NAME_names servers) ;;
	c) __NAME_list=$(__NAME_names channels) ;;
	esac
}

# __NAME_seen FLAG VALUE: remember the config dir and server typed so far.
__NAME_seen() {
	case $1 in
	--config-dir) __NAME_cfg=$2 ;;
	--server) __NAME_srv=$2 ;;
	esac
}

# __NAME_names servers|channels: the registered servers, or the channel
# names cached by earlier commands (of the server typed, if any). NAME
# reads only local files for this, and any error prints nothing.
__NAME_names() {
	local cfg=$__NAME_cfg
	case $cfg in "~/"*) cfg=$HOME/${cfg#"~/"} ;; esac
	if [ -n "$__NAME_srv" ] && [ "$1" = channels ]; then
		command NAME ${cfg:+--config-dir "$cfg"} complete-names "$1" --server "$__NAME_srv" </dev/null 2>/dev/null
	else
		command NAME ${cfg:+--config-dir "$cfg"} complete-names "$1" </dev/null 2>/dev/null
	fi
}
`

const bashFront = `# __NAME_split LINE: split LINE into __NAME_words as the shell would (quotes,
# backslashes); the last element is the word under the cursor, maybe empty.
# COMP_WORDS is not used: bash splits it at '=' and ':', which would cut
# --flag=value and ws:// URLs in pieces.
__NAME_split() {
	local s=$1 w='' q='' c i
	__NAME_words=()
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if [[ -n $q ]]; then
			if [[ $c == "$q" ]]; then
				q=''
			elif [[ $c == '\' && $q == '"' ]]; then
				i=$((i + 1)); w+=${s:i:1}
			else
				w+=$c
			fi
			continue
		fi
		case $c in
		[[:space:]]) [[ -n $w ]] && __NAME_words+=("$w"); w='' ;;
		\'|\") q=$c ;;
		\\) i=$((i + 1)); w+=${s:i:1} ;;
		*) w+=$c ;;
		esac
	done
	__NAME_words+=("$w")
}

_NAME() {
	local cur prefix=''
	__NAME_split "${COMP_LINE:0:COMP_POINT}"
	__NAME_complete "${__NAME_words[@]:1}"
	cur=${__NAME_words[${#__NAME_words[@]}-1]}
	if [[ $cur == --*=* ]]; then
		prefix=${cur%%=*}=
		cur=${cur#*=}
		# With '=' in COMP_WORDBREAKS (the default) bash replaces only
		# what follows it.
		[[ $COMP_WORDBREAKS == *=* ]] && prefix=''
	fi
	COMPREPLY=()
	case $__NAME_kind in
	file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
	dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
	*)
		mapfile -t COMPREPLY < <(compgen -P "$prefix" -W "$__NAME_list" -- "$cur")
		# With ':' in COMP_WORDBREAKS (the default) bash replaces only
		# what follows the last ':' of a URL.
		if [[ $cur == *:* && $COMP_WORDBREAKS == *:* && -z $prefix ]]; then
			local colon=${cur%"${cur##*:}"} j
			for j in "${!COMPREPLY[@]}"; do COMPREPLY[j]=${COMPREPLY[j]#"$colon"}; done
		fi
		;;
	esac
}

complete -F _NAME NAME
`

const zshFront = `_NAME() {
	# No emulate -L here: compsys has set the options its helpers (_files)
	# rely on, and the shared resolver needs none of its own.
	__NAME_complete "${(@)words[2,CURRENT]}"
	case $__NAME_kind in
	file) _files ;;
	dir) _files -/ ;;
	*)
		[[ ${words[CURRENT]} == --*=* ]] && compset -P '*='
		# Each candidate with its description, as "word  -- help".
		local -a candidates displays
		local c
		candidates=(${=__NAME_list})
		for c in "${candidates[@]}"; do
			__NAME_desc "$__NAME_path" "$c"
			if [[ -n $REPLY ]]; then displays+=("$c  -- $REPLY"); else displays+=("$c"); fi
		done
		(( ${#candidates} )) && compadd -l -d displays -- "${candidates[@]}"
		;;
	esac
}

# Loaded from $fpath as _NAME, or sourced (after compinit).
if [ "${funcstack[1]}" = _NAME ]; then
	_NAME "$@"
else
	compdef _NAME NAME
fi
`

func (t *compTree) header(b *strings.Builder, shell, install string) {
	fmt.Fprintf(b, "# %s completion for %s, generated by `%s completions %s` from its command tree.\n", shell, t.name, t.name, shell)
	fmt.Fprintf(b, "# %s\n", install)
	fmt.Fprintf(b, "# Regenerate after an upgrade: the tables below list this version's commands and flags.\n\n")
}

func (t *compTree) bash() string {
	var b strings.Builder
	t.header(&b, "bash", "Use: source <(conclave completions bash)   (or save it as ~/.local/share/bash-completion/completions/conclave)")
	t.shTables(&b)
	b.WriteString(strings.ReplaceAll(compShared, "NAME", t.name) + "\n")
	b.WriteString(strings.ReplaceAll(bashFront, "NAME", t.name))
	return b.String()
}

func (t *compTree) zsh() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", t.name)
	t.header(&b, "zsh", "Use: save it as _conclave in a directory on $fpath, or source <(conclave completions zsh) after compinit")
	t.shTables(&b)
	t.zshDescriptions(&b)
	b.WriteString(strings.ReplaceAll(compShared, "NAME", t.name) + "\n")
	b.WriteString(strings.ReplaceAll(zshFront, "NAME", t.name))
	return b.String()
}

// fish writes the fish script: the same tables as fish functions printing
// their answers (commands and flags with descriptions, as fish shows
// them), and the same resolver in fish syntax.
func (t *compTree) fish() string {
	var b strings.Builder
	t.header(&b, "fish", "Use: conclave completions fish | source   (or save it as ~/.config/fish/completions/conclave.fish)")
	N := t.name

	fmt.Fprintf(&b, "function __%s_child --argument-names p w\n\tswitch \"$p:$w\"\n", N)
	for _, n := range t.nodes {
		for _, c := range n.children {
			var pats []string
			for _, w := range append([]string{lastWord(c.path)}, c.aliases...) {
				pats = append(pats, fishQuote(n.path+":"+w))
			}
			fmt.Fprintf(&b, "\t\tcase %s\n\t\t\techo %s\n", strings.Join(pats, " "), fishQuote(c.path))
		}
	}
	b.WriteString("\tend\nend\n\n")

	fmt.Fprintf(&b, "function __%s_commands --argument-names p\n\tswitch \"$p\"\n", N)
	for _, n := range t.nodes {
		if len(n.children) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t\tcase %s\n\t\t\tprintf '%%s\\t%%s\\n'", fishQuote(n.path))
		for _, c := range n.children {
			fmt.Fprintf(&b, " %s %s", fishQuote(lastWord(c.path)), fishQuote(oneLine(c.help)))
		}
		b.WriteString("\n")
	}
	b.WriteString("\tend\nend\n\n")

	fmt.Fprintf(&b, "function __%s_flags --argument-names p\n\tswitch \"$p\"\n", N)
	for _, n := range t.nodes {
		fmt.Fprintf(&b, "\t\tcase %s\n\t\t\tprintf '%%s\\t%%s\\n'", fishQuote(n.path))
		for _, f := range n.flags {
			for _, name := range f.names {
				fmt.Fprintf(&b, " %s %s", fishQuote(name), fishQuote(f.help))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\tend\nend\n\n")

	fmt.Fprintf(&b, "function __%s_value --argument-names p f\n\tswitch \"$p:$f\"\n", N)
	for _, r := range t.valueCases() {
		fmt.Fprintf(&b, "\t\tcase %s\n\t\t\techo %s\n", r.fish(), fishQuote(r.spec))
	}
	b.WriteString("\t\tcase '*'\n\t\t\techo n\n\tend\nend\n\n")

	fmt.Fprintf(&b, "function __%s_arg --argument-names p i\n\tswitch \"$p:$i\"\n", N)
	for _, r := range t.argCases() {
		fmt.Fprintf(&b, "\t\tcase %s\n\t\t\techo %s\n", r.fish(), fishQuote(r.spec))
	}
	b.WriteString("\t\tcase '*'\n\t\t\techo t\n\tend\nend\n\n")

	b.WriteString(strings.ReplaceAll(fishResolver, "NAME", N))
	return b.String()
}

const fishResolver = `# __NAME_complete: the candidates for the token under the cursor, resolved
# the way kong parses the words before it.
function __NAME_complete
	set -l toks (commandline -opc)
	set -l cur (commandline -ct)
	set -e toks[1]
	set -l p ''
	set -l want ''
	set -l n 0
	set -l cfg ''
	set -l srv ''
	for w in $toks
		if test -n "$want"
			switch $want
				case --config-dir
					set cfg $w
				case --server
					set srv $w
			end
			set want ''
			continue
		end
		if string match -q -- '--config-dir=*' $w
			set cfg (string replace -- '--config-dir=' '' $w)
		else if string match -q -- '--server=*' $w
			set srv (string replace -- '--server=' '' $w)
		else if string match -q -- '-' $w; or string match -q -- '--' $w; or string match -q -- '--*=*' $w
			continue
		else if string match -q -- '-*' $w
			if test (__NAME_value $p $w) != n
				set want $w
			end
		else
			set -l c (__NAME_child $p $w)
			if test -n "$c"
				set p $c
				set n 0
			else
				set n (math $n + 1)
			end
		end
	end
	set -l spec
	set -l prefix ''
	if test -n "$want"
		set spec (__NAME_value $p $want)
	else if string match -q -- '--*=*' $cur
		set prefix (string replace -r '=.*' '=' -- $cur)
		set cur (string replace -r '^[^=]*=' '' -- $cur)
		set spec (__NAME_value $p (string sub -e -1 -- $prefix))
	else if string match -q -- '-*' $cur
		__NAME_flags $p
		return
	else
		set -l cmds (__NAME_commands $p)
		if test (count $cmds) -gt 0
			test $n -eq 0; and printf '%s\n' $cmds
			return
		end
		set spec (__NAME_arg $p $n)
	end
	switch "$spec"
		case f
			__fish_complete_path $cur | string replace -r '^' -- $prefix
		case d
			__fish_complete_directories $cur | string replace -r '^' -- $prefix
		case 'e *'
			for v in (string split ' ' -- (string sub -s 3 -- $spec))
				echo $prefix$v
			end
		case s c
			# NAME reads only local files for these; any error prints nothing.
			set -l kind servers
			test $spec = c; and set kind channels
			set -l args
			test -n "$cfg"; and set args --config-dir (string replace -r '^~/' "$HOME/" -- $cfg)
			set -a args complete-names $kind
			test $kind = channels; and test -n "$srv"; and set -a args --server $srv
			for v in (command NAME $args </dev/null 2>/dev/null)
				echo $prefix$v
			end
	end
end

complete -c NAME -f -a '(__NAME_complete)'
`

// zshDescriptions writes __NAME_desc PATH WORD, the help of the command or
// flag WORD under PATH, which zsh shows beside each candidate (as fish
// does). Enum values have none.
func (t *compTree) zshDescriptions(b *strings.Builder) {
	b.WriteString("# __" + t.name + "_desc PATH WORD: the description of subcommand or flag WORD under PATH.\n")
	fmt.Fprintf(b, "__%s_desc() {\n\tcase \"$1:$2\" in\n", t.name)
	for _, n := range t.nodes {
		for _, c := range n.children {
			if h := oneLine(c.help); h != "" {
				fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", shQuote(n.path+":"+lastWord(c.path)), shQuote(h))
			}
		}
		for _, f := range n.flags {
			if f.help == "" {
				continue
			}
			var pats []string
			for _, name := range f.names {
				pats = append(pats, shQuote(n.path+":"+name))
			}
			fmt.Fprintf(b, "\t%s) REPLY=%s ;;\n", strings.Join(pats, "|"), shQuote(f.help))
		}
	}
	b.WriteString("\t*) REPLY='' ;;\n\tesac\n}\n\n")
}
