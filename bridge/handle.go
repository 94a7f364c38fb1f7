package bridge

import (
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/conclave/conclave/protocol"
)

// fallbackHandle is the default handle when the working directory gives
// no usable name.
const fallbackHandle = "session"

// DefaultHandle returns the session handle a bridge started in dir uses
// without --as: the last element of dir mapped into the name profile
// (protocol.MapName: "My Project" becomes "my-project"), or "session" when
// nothing is left of it. It never fails: a directory name is not the
// user's choice of handle.
func DefaultHandle(dir string) string {
	base := protocol.MapName(filepath.Base(filepath.Clean(dir)))
	if protocol.CheckNewName(base) != nil {
		return fallbackHandle
	}
	return base
}

// cutName cuts s to at most n bytes on a rune boundary, without trailing
// spaces.
func cutName(s string, n int) string {
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimRightFunc(s, unicode.IsSpace)
}

// handle is the session handle all links share. A defaulted handle can
// rename itself (base, base-2, base-3, …) when the flapping breaker
// decides another session holds it; an explicit --as never changes. Safe
// for concurrent use.
type handle struct {
	base     string
	explicit bool

	// mu guards gen.
	mu  sync.Mutex
	gen int // 1 is the bare base
}

func newHandle(base string, explicit bool) *handle {
	return &handle{base: base, explicit: explicit, gen: 1}
}

// current returns the handle to dial with and its generation.
func (h *handle) current() (string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nameLocked(), h.gen
}

func (h *handle) nameLocked() string {
	if h.gen <= 1 {
		return h.base
	}
	suffix := "-" + strconv.Itoa(h.gen)
	return cutName(h.base, protocol.MaxNameLen-len(suffix)) + suffix
}

// rename moves a defaulted handle past generation gen, the one a link
// dialled with. If another link already renamed past it, nothing changes
// and renamed is false (one rename per collision across links).
func (h *handle) rename(gen int) (old, renamed string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.explicit || h.gen != gen {
		return "", "", false
	}
	old = h.nameLocked()
	h.gen++
	return old, h.nameLocked(), true
}
