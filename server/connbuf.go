package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacked
// connection over with a 4 KiB bufio.Reader and a 4 KiB bufio.Writer, which
// coder/websocket keeps for the connection's life: 8 KiB of an idle
// session's ~28 KiB. With these a frame header and a message of up to
// 2 KiB (a delivery, or a few coalesced) still go out in one write system
// call; a message of 2–4 KiB now takes two, and a larger one two as
// before (header and the buffer's worth, then the rest). With a 1 KiB
// writer, the messages of 1–2 KiB common at moderate rates took two: 9 %
// of the server's CPU at 500 messages/s (docs/PERFORMANCE.md §4). The
// reader serves only a client's own frames, mostly small; a read larger
// than its buffer bypasses it.
const (
	connReadBuf  = 512
	connWriteBuf = 2 << 10
)

// smallBuffers is an http.ResponseWriter whose Hijack gives the connection
// buffers of connReadBuf and connWriteBuf bytes instead of net/http's.
// It keeps the hijacked connection in conn.
type smallBuffers struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack hijacks the connection and gives it new, smaller buffers; bytes
// the client sent after its request, which net/http's reader has read
// already, are kept at the head of the new reader.
func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = conn
	size := connReadBuf
	n := brw.Reader.Buffered()
	if n > 0 {
		early, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
		size = max(size, n)
	}
	br := bufio.NewReaderSize(r, size)
	if n > 0 {
		// Pull the early bytes into br's buffer now: the caller may take
		// what br has buffered and read the connection itself after it.
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	w.conn = conn
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connWriteBuf)), nil
}
