package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// lineCase is a command line typed up to the cursor and the candidates a
// shell must offer for it, in any order ("" for none).
type lineCase struct {
	line string
	want []string
}

// fixedCompCases hold across changes to the command tree; the model-driven
// cases come from compModelCases.
var fixedCompCases = []lineCase{
	{"conclave chan", []string{"channel"}},
	{"conclave channel cr", []string{"create"}},
	{"conclave channel set-v", []string{"set-visibility"}},
	{"conclave machine ls --se", []string{"--server"}},
	{"conclave -v --config-dir /tmp perm s", []string{"set", "show"}},
	{"conclave perm set ", []string{"mute", "notify", "converse", "act"}},
	{"conclave join ops --perm c", []string{"converse"}},
	{"conclave completions ", []string{"bash", "zsh", "fish"}},
	{"conclave channel create x --visibility ", []string{"public", "unlisted", "private"}},
	{"conclave channel create x --visibility=pr", []string{"private"}},
	{"conclave channel set-visibility ops p", []string{"public", "private"}},
	{"conclave register alice --server ws://h:4390 --ma", []string{"--machine"}},
	{"conclave serve --tls-cert c", []string{"cert.pem"}},
	{"conclave serve --data-dir ", []string{"data"}},
	{"conclave serve --data-dir=d", []string{"data"}},
	{`conclave send --channel "my ops" hel`, nil},
	{"conclave nosuchverb ", nil},
}

// compModelCases derives cases from the kong model, so that every command
// of every verb — also those added after this test was written — is
// checked: `conclave PATH ` offers exactly PATH's subcommands, and
// `conclave PATH --` offers at least every long flag PATH accepts.
func compModelCases(t *testing.T) (exact, flags []lineCase) {
	t.Helper()
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		var children []string
		for _, c := range n.Children {
			if !c.Hidden && c.Type == kong.CommandNode {
				children = append(children, c.Name)
			}
		}
		if len(children) > 0 {
			exact = append(exact, lineCase{path + " ", children})
		}
		var names []string
		for _, level := range n.AllFlags(true) {
			for _, f := range level {
				names = append(names, "--"+f.Name)
			}
		}
		flags = append(flags, lineCase{path + " --", names})
		for _, c := range n.Children {
			if !c.Hidden && c.Type == kong.CommandNode {
				walk(c, path+" "+c.Name)
			}
		}
	}
	walk(model(t).Node, "conclave")
	return exact, flags
}

// compDir is a working directory with one file and one directory, for the
// file and directory cases.
func compDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeScript(t *testing.T, shell string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conclave."+shell)
	if err := os.WriteFile(path, []byte(ok(t, nil, "completions", shell)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runShell runs a driver script in shell, in dir, with the completion
// script as $1 (argv[1]) and a file of command lines as $2 (argv[2]); it
// returns stdout split in lines.
func runShell(t *testing.T, dir string, argv []string, driver, script string, lines []string) []string {
	t.Helper()
	linesFile := filepath.Join(t.TempDir(), "lines")
	if err := os.WriteFile(linesFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(argv[1:]), driver, script, linesFile)
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s%s", argv[0], err, out, stderr)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// checkCases compares a driver's output — a header line, then one line of
// '|'-separated candidates per case — with the cases.
func checkCases(t *testing.T, shell string, got []string, exact, atLeast []lineCase) {
	t.Helper()
	all := append(slices.Clone(exact), atLeast...)
	if len(got) != len(all) {
		t.Fatalf("%s driver printed %d lines for %d cases:\n%s", shell, len(got), len(all), strings.Join(got, "\n"))
	}
	for i, c := range all {
		var cands []string
		if got[i] != "" {
			cands = strings.Split(got[i], "|")
		}
		slices.Sort(cands)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if i < len(exact) {
			if !slices.Equal(cands, want) {
				t.Errorf("%s: %q offers %q, want %q", shell, c.line, cands, want)
			}
			continue
		}
		for _, w := range want {
			if !slices.Contains(cands, w) {
				t.Errorf("%s: %q offers %q, lacking %q", shell, c.line, cands, w)
			}
		}
		for _, c2 := range cands {
			if !strings.HasPrefix(c2, "--") {
				t.Errorf("%s: %q offers %q, which is not a flag", shell, c.line, c2)
			}
		}
	}
}

const bashDriver = `
source "$1" || exit 1
complete -p conclave || exit 1
while IFS= read -r line; do
	COMP_LINE=$line COMP_POINT=${#line}
	COMPREPLY=()
	_conclave conclave
	(IFS='|'; printf '%s\n' "${COMPREPLY[*]}")
done <"$2"
`

// TestCompletionsBash sources the script in a real bash, checks that it
// registered itself, and completes lines the way bash does on Tab: with
// COMP_LINE and COMP_POINT set, calling the registered function.
func TestCompletionsBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := compDir(t)
	script := writeScript(t, "bash")
	exact, flags := compModelCases(t)
	exact = append(slices.Clone(fixedCompCases), exact...)
	var lines []string
	for _, c := range append(slices.Clone(exact), flags...) {
		lines = append(lines, c.line)
	}
	driver := filepath.Join(t.TempDir(), "driver.bash")
	if err := os.WriteFile(driver, []byte(bashDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	got := runShell(t, dir, []string{bash, "--norc", "--noprofile"}, driver, script, lines)
	if want := "complete -F _conclave conclave"; got[0] != want {
		t.Fatalf("complete -p conclave: %q, want %q", got[0], want)
	}
	checkCases(t, "bash", got[1:], exact, flags)
}

const zshDriver = `
autoload -Uz compinit && compinit -u -D
source "$1" || exit 1
print -r -- "$_comps[conclave]"
while IFS= read -r line; do
	local -a ws
	ws=(${(z)line})
	[[ $line == *' ' ]] && ws+=('')
	__conclave_complete "${(@)ws[2,-1]}"
	cur=${ws[-1]}
	[[ $cur == --*=* ]] && cur=${cur#*=}
	local -a out
	out=()
	case $__conclave_kind in
	file) out=(${cur}*(N)) ;;
	dir) out=(${cur}*(N/)) ;;
	*) for c in ${=__conclave_list}; do [[ $c == ${cur}* ]] && out+=($c); done ;;
	esac
	print -r -- ${(j:|:)out}
done <"$2"
`

// TestCompletionsZsh checks the zsh script's syntax, that sourcing it
// after compinit registers _conclave, and the resolver it shares with the
// bash script, run by zsh. (What zsh then does with the candidates —
// compadd, _files — needs a terminal; the prefix filtering here stands in
// for it.)
func TestCompletionsZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh (apt-get install zsh)")
	}
	script := writeScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	dir := compDir(t)
	exact, flags := compModelCases(t)
	exact = append(slices.Clone(fixedCompCases), exact...)
	var lines []string
	for _, c := range append(slices.Clone(exact), flags...) {
		lines = append(lines, c.line)
	}
	driver := filepath.Join(t.TempDir(), "driver.zsh")
	if err := os.WriteFile(driver, []byte(zshDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	got := runShell(t, dir, []string{zsh, "-f"}, driver, script, lines)
	if got[0] != "_conclave" {
		t.Fatalf("sourcing the zsh script registered %q for conclave, want _conclave", got[0])
	}
	checkCases(t, "zsh", got[1:], exact, flags)
}

const fishDriver = `
source $argv[1]; or exit 1
while read -l line
	set -l out
	for c in (complete -C"$line")
		set -a out (string split -f1 \t -- $c)
	end
	echo (string join '|' -- $out)
end <$argv[2]
`

// TestCompletionsFish checks the fish script's syntax and completes lines
// with fish's own `complete -C`, which runs the registered completions as
// Tab does.
func TestCompletionsFish(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("no fish (apt-get install fish)")
	}
	script := writeScript(t, "fish")
	if out, err := exec.Command(fish, "--no-execute", script).CombinedOutput(); err != nil {
		t.Fatalf("fish --no-execute: %v\n%s", err, out)
	}
	dir := compDir(t)
	exact, flags := compModelCases(t)
	exact = append(slices.Clone(fixedCompCases), exact...)
	// fish offers a directory with its trailing slash.
	for i, c := range exact {
		if slices.Contains(c.want, "data") {
			exact[i].want = []string{"data/"}
			if strings.HasSuffix(c.line, "=d") {
				exact[i].want = []string{"--data-dir=data/"}
			}
		}
		if strings.HasSuffix(c.line, "--visibility=pr") {
			exact[i].want = []string{"--visibility=private"}
		}
	}
	var lines []string
	for _, c := range append(slices.Clone(exact), flags...) {
		lines = append(lines, c.line)
	}
	driver := filepath.Join(t.TempDir(), "driver.fish")
	if err := os.WriteFile(driver, []byte(fishDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	got := runShell(t, dir, []string{fish, "--no-config"}, driver, script, lines)
	checkCases(t, "fish", got, exact, flags)
}

// TestCompletionsBakeInNoPath: the scripts name the program, never the
// path of the binary that printed them, so a packaged copy works wherever
// conclave is installed.
func TestCompletionsBakeInNoPath(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		script := ok(t, nil, "completions", shell)
		if !strings.Contains(script, "conclave") {
			t.Errorf("%s script does not mention conclave", shell)
		}
		if dir := filepath.Dir(binary); strings.Contains(script, dir) {
			t.Errorf("%s script contains the binary's directory %s", shell, dir)
		}
		if wd, _ := os.Getwd(); strings.Contains(script, wd) {
			t.Errorf("%s script contains the build directory %s", shell, wd)
		}
	}
	fails(t, 2, "", nil, "completions", "powershell")
}

// TestCompletionsDieQuietlyOnBrokenPipe: `conclave completions bash | head
// -c 16` must not print a panic or an error. (The script fits in a pipe's
// buffer, so the writer usually finishes before head exits; when it does
// not, SIGPIPE ends it with status 141.)
func TestCompletionsDieQuietlyOnBrokenPipe(t *testing.T) {
	for _, args := range []string{"completions bash", "skill"} {
		cmd := exec.Command("bash", "-c", `"$0" `+args+` | head -c 16 >/dev/null; echo "${PIPESTATUS[0]}"`, binary)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if stderr.Len() > 0 {
			t.Errorf("conclave %s | head: stderr %q", args, stderr.String())
		}
		if st := strings.TrimSpace(string(out)); st != "0" && st != "141" {
			t.Errorf("conclave %s | head: writer status %s, want 0 or 141", args, st)
		}
	}
}

const zshDescDriver = `
autoload -Uz compinit && compinit -u -D
source "$1" || exit 1
# compadd needs a completion widget; this stand-in prints what _conclave
# hands it: each display string (-d ARRAY), one per line.
compadd() {
	local i
	for (( i = 1; i <= $#; i++ )); do
		if [[ ${@[i]} == -d ]]; then print -rl -- "${(@P)${@[i+1]}}"; fi
	done
}
words=(conclave ''); CURRENT=2; _conclave
words=(conclave serve --); CURRENT=3; _conclave
`

// TestCompletionsZshDescriptions: zsh shows each command and flag with its
// help, as fish does.
func TestCompletionsZshDescriptions(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh (apt-get install zsh)")
	}
	script := writeScript(t, "zsh")
	driver := filepath.Join(t.TempDir(), "desc.zsh")
	if err := os.WriteFile(driver, []byte(zshDescDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zsh, "-f", driver, script).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"serve  -- Run the central server.",
		"send  -- Post one message to a channel.",
		"--bind  -- Address to listen on (loopback by default; 0.0.0.0:4390 for every interface).",
		"--data-dir  -- Data directory",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("zsh shows no %q:\n%s", want, out)
		}
	}
}
