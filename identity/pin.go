package identity

import "fmt"

// ServerIDMismatchError reports a server presenting an id other than the
// one pinned when this machine registered with it. It wraps
// [ErrServerIDMismatch].
type ServerIDMismatchError struct {
	URL  string // the server's URL as registered
	Got  string // the id the server presents now
	Want string // the id recorded at registration
}

func (e *ServerIDMismatchError) Error() string {
	got := e.Got
	if got == "" {
		got = "(none)"
	}
	return fmt.Sprintf("the server at %s presents id %s but was registered with id %s; "+
		"if it was legitimately reinstalled, run `conclave server remove %s` and register again",
		e.URL, got, e.Want, e.URL)
}

// Unwrap returns [ErrServerIDMismatch].
func (e *ServerIDMismatchError) Unwrap() error { return ErrServerIDMismatch }

// CheckPin checks the id a server presents against the one recorded for its
// registration, the way ssh checks known_hosts: a client must not sign for
// a server whose id has changed. A registration without a recorded id (or
// a nil srv) accepts any id; recording it is up to the caller. A mismatch
// is a [*ServerIDMismatchError].
func CheckPin(srv *Server, gotID string) error {
	if srv == nil || srv.ServerID == "" || gotID == srv.ServerID {
		return nil
	}
	return &ServerIDMismatchError{URL: srv.URL, Got: gotID, Want: srv.ServerID}
}
