package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPin(t *testing.T) {
	pinned := &Server{URL: "ws://h:4390", Username: "u", Machine: "m", ServerID: "id-A"}
	unpinned := &Server{URL: "ws://h:4390", Username: "u", Machine: "m"}

	for _, tc := range []struct {
		name  string
		srv   *Server
		got   string
		match bool
	}{
		{"same id", pinned, "id-A", true},
		{"not pinned", unpinned, "id-B", true},
		{"not registered", nil, "id-B", true},
		{"different id", pinned, "id-B", false},
		{"no id presented", pinned, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPin(tc.srv, tc.got)
			if tc.match {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrServerIDMismatch) {
				t.Fatalf("got %v, want ErrServerIDMismatch", err)
			}
			var mm *ServerIDMismatchError
			if !errors.As(err, &mm) || mm.URL != tc.srv.URL || mm.Got != tc.got || mm.Want != "id-A" {
				t.Errorf("got %#v", err)
			}
			for _, s := range []string{"ws://h:4390", "id-A", "conclave server remove ws://h:4390"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tc.got != "" && !strings.Contains(err.Error(), "presents id "+tc.got) {
				t.Errorf("error %q does not name the presented id", err)
			}
		})
	}
}
