package server

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/conclave/conclave/protocol"
)

// admission enforces the per-address limits on a public server: concurrent
// connections and handshakes per second per IP, and admin events per
// second per user.
type admission struct {
	maxConns      int     // per IP; <= 0 disables
	handshakeRate float64 // per IP per second; <= 0 disables
	adminRate     float64 // per user per second; <= 0 disables
	adminBurst    int

	// mu guards the maps.
	mu         sync.Mutex
	conns      map[string]int
	handshakes map[string]*bucket
	admin      map[string]*bucket
}

func newAdmission(c Config) *admission {
	return &admission{
		maxConns: c.MaxConnsPerIP, handshakeRate: c.HandshakesPerIP,
		adminRate: c.AdminRate, adminBurst: c.AdminBurst,
		conns: make(map[string]int), handshakes: make(map[string]*bucket), admin: make(map[string]*bucket),
	}
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// enter admits a connection from ip, or says why not. The caller must call
// leave(ip) when an admitted connection ends.
func (a *admission) enter(ip string, now time.Time) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxConns > 0 && a.conns[ip] >= a.maxConns {
		return "too many connections from your address"
	}
	if a.handshakeRate > 0 {
		b := a.handshakes[ip]
		if b == nil {
			b = newBucket(a.handshakeRate, int(a.handshakeRate))
			a.handshakes[ip] = b
		}
		if b.take(now) > 0 {
			return "too many handshakes from your address; retry in a moment"
		}
	}
	a.conns[ip]++
	return ""
}

func (a *admission) leave(ip string) {
	a.mu.Lock()
	if a.conns[ip]--; a.conns[ip] <= 0 {
		delete(a.conns, ip)
	}
	a.mu.Unlock()
}

// adminEvent spends one of user's admin-event tokens.
func (a *admission) adminEvent(user string, now time.Time) *protocol.Error {
	if a.adminRate <= 0 || user == "" {
		return nil
	}
	a.mu.Lock()
	b := a.admin[user]
	if b == nil {
		b = newBucket(a.adminRate, a.adminBurst)
		a.admin[user] = b
	}
	a.mu.Unlock()
	if wait := b.take(now); wait > 0 {
		return protocol.Errorf(protocol.CodeRateLimited, "too many changes; retry after %d ms", wait.Milliseconds()+1)
	}
	return nil
}

// sweep forgets full buckets, so the maps do not grow without bound.
func (a *admission) sweep(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, b := range a.handshakes {
		if b.full(now) {
			delete(a.handshakes, ip)
		}
	}
	for u, b := range a.admin {
		if b.full(now) {
			delete(a.admin, u)
		}
	}
}
