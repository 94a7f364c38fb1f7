package identity

import (
	"reflect"
	"strings"
	"testing"
)

func TestUpsertServer(t *testing.T) {
	c := NewConfig()
	c.UpsertServer(Server{URL: "ws://a", Username: "u", Machine: "m"})
	c.UpsertServer(Server{URL: "ws://b", Username: "u", Machine: "m"})
	c.UpsertServer(Server{URL: "ws://a", Username: "v", Machine: "n", ServerID: "id"})
	c.UpsertServer(Server{URL: "http://a/", Username: "w", Machine: "m"}) // the same server, spelled otherwise
	want := []Server{
		{URL: "http://a/", Username: "w", Machine: "m"},
		{URL: "ws://b", Username: "u", Machine: "m"},
	}
	if !reflect.DeepEqual(c.Servers, want) {
		t.Errorf("got %+v, want %+v", c.Servers, want)
	}
	s, ok := c.FindServer("ws://b")
	if !ok || s.Username != "u" {
		t.Errorf("FindServer(ws://b) = %+v, %v", s, ok)
	}
	s.ServerID = "pinned"
	if c.Servers[1].ServerID != "pinned" {
		t.Error("FindServer's pointer does not refer into Servers")
	}
	if _, ok := c.FindServer("ws://c"); ok {
		t.Error("FindServer found an unknown URL")
	}
}

func TestRemoveServer(t *testing.T) {
	c := sampleConfig()
	n, err := c.RemoveServer("ws://127.0.0.1:4390")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("removed %d overrides, want 2", n)
	}
	wantServers := []Server{{URL: "wss://chat.example/", Username: "alice", Machine: "wa"}}
	wantOverrides := []Override{{Server: "wss://chat.example/", Channel: "ops", Level: Notify}}
	if !reflect.DeepEqual(c.Servers, wantServers) || !reflect.DeepEqual(c.Overrides, wantOverrides) {
		t.Errorf("after remove: servers %+v, overrides %+v", c.Servers, c.Overrides)
	}

	_, err = c.RemoveServer("wss://chat.example:4390") // another port: a different URL
	if err == nil || !strings.Contains(err.Error(), "no registration for `wss://chat.example:4390`") {
		t.Errorf("got %v, want a no registration error", err)
	}
	if len(c.Servers) != 1 || len(c.Overrides) != 1 {
		t.Error("a failed RemoveServer changed the config")
	}
}

func TestSelectServer(t *testing.T) {
	one := NewConfig()
	one.UpsertServer(Server{URL: "ws://a", Username: "u", Machine: "m"})
	two := NewConfig()
	two.UpsertServer(Server{URL: "ws://a", Username: "u", Machine: "m"})
	two.UpsertServer(Server{URL: "ws://b", Username: "u", Machine: "m"})

	tests := []struct {
		name    string
		cfg     *Config
		flag    string
		wantURL string
		wantErr string
	}{
		{"none registered", NewConfig(), "", "", "no servers registered (see `conclave register`)"},
		{"one registered", one, "", "ws://a", ""},
		{"several registered", two, "", "", "several servers registered; pass --server URL (one of: ws://a, ws://b)"},
		{"flag matches", two, "ws://b", "ws://b", ""},
		{"flag matches only one", one, "ws://a", "ws://a", ""},
		{"flag unknown", two, "ws://c", "", "not registered with ws://c (see `conclave register`)"},
		{"flag spelled otherwise", one, "HTTP://A/", "ws://a", ""},
		{"flag with another scheme", one, "wss://a", "", "not registered with wss://a"},
		{"flag with none registered", NewConfig(), "ws://a", "", "not registered with ws://a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.cfg.SelectServer(tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got (%+v, %v), want error %q", s, err, tc.wantErr)
				}
				return
			}
			if err != nil || s.URL != tc.wantURL {
				t.Errorf("got (%+v, %v), want %s", s, err, tc.wantURL)
			}
		})
	}
}

func TestNormalizeURL(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"ws://h:4390", "ws://h:4390", ""},
		{"http://h:4390", "ws://h:4390", ""},
		{"https://Chat.Example.com/", "wss://chat.example.com", ""},
		{"WSS://chat.example.com", "wss://chat.example.com", ""},
		{" ws://h:1 ", "ws://h:1", ""},
		{"h:4390", "", `server URL "h:4390" has no scheme: use ws://h:4390 (plain) or wss://h:4390 (TLS)`},
		{"chat.example.com", "", "has no scheme"},
		{"ftp://h", "", "the scheme must be ws:// or wss://, not ftp://"},
		{"ws://", "", "no host"},
		{"", "", "empty server URL"},
	} {
		got, err := NormalizeURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("NormalizeURL(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
