#!/usr/bin/env python3
"""Drive a real, interactive Claude Code session in a pty, fully offline: a fake
Anthropic API on loopback (fake-anthropic.mjs) plays the model, and one stdio MCP
server (e.g. `conclave bridge`) is loaded as a development channel.

usage: drive.py --claude PATH --server-cmd JSON_ARGV [--name conclave] [--seconds N]
                [--trigger SHELL] [--fake-tool NAME --fake-tool-input JSON | --fake-script JSON]
                [--stop-when TEXT ...]
                [--allow-tool NAME ...] [--run-dir DIR] [--project DIR]
                [--prompt TEXT [--prompt-after N]]
Writes into --run-dir (default: a new temp dir, printed): screen.log (ANSI-stripped
pty output), debug.log (claude --debug-file), tap.jsonl (every MCP line both ways),
fake-api.jsonl (every request Claude Code made to the model).
--project runs Claude Code in an existing DIR (trusted, kept as is) so that its
.claude/settings*.json (hooks) apply; --prompt types TEXT + Enter once (2 s after
--trigger ran, or --prompt-after seconds after start) so that a turn happens.
--fake-script is a JSON list of tool calls the fake model makes in order, one per turn
(see fake-anthropic.mjs); --stop-when (repeatable) ends the run once the fake API request log
contains every TEXT (JSON-encoded requests: pick plain markers).
Prints a summary: '[api] model saw: ...' for each <channel> text the model received,
'[api] tool_result: ...', and Claude Code debug lines about channels.
"""
import argparse, json, os, pty, re, select, signal, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument('--claude', default=os.environ.get('CLAUDE_BIN'), help='the claude executable (or $CLAUDE_BIN); see install.sh')
ap.add_argument('--seconds', type=float, default=60)
ap.add_argument('--name', default='conclave', help='MCP server name: tools appear as mcp__NAME__TOOL')
ap.add_argument('--server-cmd', required=True, help='JSON argv of the stdio MCP server')
ap.add_argument('--server-env', default='{}', help='JSON env for the MCP server entry')
ap.add_argument('--no-flags', action='store_true', help='do not seed the cached feature flags that enable channels offline')
ap.add_argument('--port', type=int, default=0, help='fake API port (default: a free one)')
ap.add_argument('--channel-flag', default='--dangerously-load-development-channels', help='or --channels')
ap.add_argument('--fake-tool', default=None, help='the tool the fake model calls once it has seen a <channel> message')
ap.add_argument('--fake-tool-input', default=None, help='JSON input for --fake-tool')
ap.add_argument('--trigger', default=None, help='shell command run once Claude Code has registered the channel handler')
ap.add_argument('--trigger-on', default='Channel notifications registered', help='the debug-log text that fires --trigger (with --no-flags: "Channel notifications skipped")')
ap.add_argument('--fake-script', default=None, help='JSON list of {name, input, on?}: tool calls the fake model makes in order')
ap.add_argument('--stop-when', action='append', default=None, help='stop early once the fake API request log contains this text (repeatable: all of them); default tool_result')
ap.add_argument('--stop-file', help='stop once this file exists (written by the trigger when it is done)')
ap.add_argument('--stop-screen', action='append', default=[], help='with --stop-file: also wait until the terminal has shown this text (whitespace ignored)')
ap.add_argument('--permission-mode', help='passed as --permission-mode (e.g. manual: the dialog, not the auto-mode classifier)')
ap.add_argument('--allow-tool', action='append', default=[], help='pre-approve a tool (passed as --allowedTools)')
ap.add_argument('--run-dir', default=None)
ap.add_argument('--project', default=None, help='run Claude Code in this existing directory (trusted, kept as is) instead of a fresh one')
ap.add_argument('--prompt', default=None, help='type this prompt + Enter once, so that a turn happens')
ap.add_argument('--prompt-after', type=float, default=20, help='seconds after start to type --prompt when there is no --trigger')
a = ap.parse_args()

if not a.claude or not os.access(a.claude, os.X_OK):
    sys.exit('drive.py: no claude executable: pass --claude PATH or set CLAUDE_BIN (see install.sh)')
CLAUDE = a.claude
RUN = a.run_dir or tempfile.mkdtemp(prefix='claude-code-rig.')
print('[drive] run dir', RUN, flush=True)
HOME = f'{RUN}/home'
PROJ = os.path.realpath(a.project) if a.project else f'{RUN}/proj'
KEY = 'sk-ant-api03-offline-placeholder-not-a-real-key-000000000000'
os.makedirs(HOME, exist_ok=True)
if not a.project: os.makedirs(PROJ, exist_ok=True)
if a.port == 0:
    s = socket.socket(); s.bind(('127.0.0.1', 0)); a.port = s.getsockname()[1]; s.close()

cfg = {
    'hasCompletedOnboarding': True,
    'theme': 'dark',
    'customApiKeyResponses': {'approved': [KEY[-20:]], 'rejected': []},
    'projects': {PROJ: {'hasTrustDialogAccepted': True, 'allowedTools': []}},
}
if not a.no_flags:
    cfg['cachedGrowthBookFeatures'] = {'tengu_harbor': True, 'tengu_harbor_permissions': True}
json.dump(cfg, open(f'{HOME}/.claude.json', 'w'))

server_argv = json.loads(a.server_cmd)
mcp = {'mcpServers': {a.name: {'type': 'stdio', 'command': 'node',
        'args': [f'{HERE}/mcp-tap.mjs', '--log', f'{RUN}/tap.jsonl', '--'] + server_argv,
        'env': json.loads(a.server_env)}}}
json.dump(mcp, open(f'{RUN}/mcp.json', 'w'))

fenv = dict(os.environ, PORT=str(a.port), FAKE_LOG=f'{RUN}/fake-api.jsonl')
if a.fake_tool: fenv['FAKE_TOOL'] = a.fake_tool
if a.fake_tool_input: fenv['FAKE_TOOL_INPUT'] = a.fake_tool_input
if a.fake_script: fenv['FAKE_SCRIPT'] = a.fake_script
stop_when = a.stop_when if a.stop_when is not None else ['tool_result']
fake = subprocess.Popen(['node', f'{HERE}/fake-anthropic.mjs'], env=fenv)
time.sleep(0.5)

env = {k: v for k, v in os.environ.items() if not k.startswith(('ANTHROPIC_', 'CLAUDE_'))}
for k in ('DISABLE_TELEMETRY', 'DO_NOT_TRACK', 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC'):
    env.pop(k, None)
env.update(HOME=HOME, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=f'http://127.0.0.1:{a.port}',
           TERM='xterm-256color', COLUMNS='160', LINES='50', MCP_TIMEOUT='30000')
argv = [CLAUDE, '--strict-mcp-config', '--mcp-config', f'{RUN}/mcp.json',
        '--debug-file', f'{RUN}/debug.log',
        a.channel_flag, f'server:{a.name}']
if a.allow_tool:
    argv += ['--allowedTools', ','.join(a.allow_tool)]
if a.permission_mode:
    argv += ['--permission-mode', a.permission_mode]

pid, fd = pty.fork()
if pid == 0:
    os.chdir(PROJ)
    os.execve(CLAUDE, argv, env)

ansi = re.compile(rb'\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>78]')
screen = open(f'{RUN}/screen.log', 'wb')
answered = set()
buf = b''
pending = b''
t_start = time.time(); t_trigger = None
t_end = time.time() + a.seconds
# terminal size
import fcntl, termios, struct
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 160, 0, 0))
while time.time() < t_end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        # An escape sequence may be split across two reads: keep an
        # unfinished one for the next read, so none of it reaches the text.
        data = pending + data
        pending = b''
        esc = data.rfind(b'\x1b')
        if esc >= 0 and not ansi.match(data, esc) and len(data) - esc < 64:
            data, pending = data[:esc], data[esc:]
        clean = ansi.sub(b'', data)
        screen.write(clean); screen.flush()
        buf = (buf + clean)[-20000:]
        low = re.sub(rb'\s+', b'', buf.lower())
        if b'localdevelopment' in low and 'dev' not in answered:
            time.sleep(0.5); os.write(fd, b'\r'); answered.add('dev'); print('[drive] accepted dev-channels dialog', flush=True)
    if a.trigger and 'trigger' not in answered:
        try:
            if a.trigger_on in open(f'{RUN}/debug.log').read():
                answered.add('trigger'); print('[drive] trigger rc =', subprocess.call(['/bin/sh', '-c', a.trigger]), flush=True)
                t_trigger = time.time()
        except FileNotFoundError:
            pass
    if a.prompt and 'prompt' not in answered:
        if (t_trigger is not None and time.time() >= t_trigger + 2) if a.trigger else time.time() >= t_start + a.prompt_after:
            answered.add('prompt'); os.write(fd, a.prompt.encode()); time.sleep(0.5); os.write(fd, b'\r')
            print('[drive] typed prompt', repr(a.prompt), flush=True)
    if a.stop_file and os.path.exists(a.stop_file):
        seen = re.sub(rb'\s+', b'', open(f'{RUN}/screen.log', 'rb').read())
        if all(re.sub(r'\s+', '', w).encode() in seen for w in a.stop_screen):
            print('[drive] stop file present', flush=True); time.sleep(1.5); break
    try:
        log = open(f'{RUN}/fake-api.jsonl').read()
        if stop_when and all(w in log for w in stop_when):
            print('[drive] stop condition met', flush=True); time.sleep(1.5); break
    except FileNotFoundError:
        pass

os.kill(pid, signal.SIGTERM)
time.sleep(1.0)
try:
    os.kill(pid, signal.SIGKILL)
except ProcessLookupError:
    pass
os.waitpid(pid, 0)
fake.terminate(); fake.wait()
print('[drive] finished; answered =', sorted(answered), flush=True)

# ---- summary ----
def lines(path):
    try: return open(path, errors='replace').read().splitlines()
    except FileNotFoundError: return []
keys = ('Channel notifications', 'notifications/claude/channel', '[channel]', 'Channel gate', 'list_changed',
        'Uncaught error in notification handler', 'permission denied', 'Calling MCP tool', 'Connection failed')
for l in lines(f'{RUN}/debug.log'):
    if any(k in l for k in keys): print('[debug]', l[:300])
for l in lines(f'{RUN}/tap.jsonl'):
    try: m = json.loads(l)['msg']
    except Exception: continue
    if isinstance(m, dict) and str(m.get('method', '')).startswith(('notifications/claude', 'notifications/tools', 'tools/call')):
        print('[tap]', json.loads(l)['dir'], json.dumps(m)[:300])
seen = set()
for l in lines(f'{RUN}/fake-api.jsonl'):
    b = json.loads(l).get('body', {})
    for m in b.get('messages', []):
        for blk in (m['content'] if isinstance(m['content'], list) else [{'type': 'text', 'text': m['content']}]):
            t = blk.get('text') or ''
            key = t if '<channel' in t else json.dumps(blk) if blk.get('type') == 'tool_result' else None
            if key is None or key in seen: continue
            seen.add(key)
            if '<channel' in t: print('[api] model saw:', repr(t[t.index('<channel'):][:2000]))
            else: print('[api] tool_result:', json.dumps(blk.get('content'))[:200])
