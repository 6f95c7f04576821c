package multiplexer

import "github.com/yurthub/yurthub/internal/requestinfo"

// Filters is the hook for the response filters (internal/filter, issue 16): it
// returns the filtering of one client's list or watch of a multiplexed resource,
// or nil when no filter applies to it. The multiplexer calls it once per request
// and applies what it returns to that client's objects only, on the way out, so
// one upstream stream serves differently filtered clients.
type Filters func(info *requestinfo.Info) ClientFilter

// ClientFilter is the filtering of one client's response. Objects are full
// documents in the client's encoding: JSON with kind and apiVersion, or the
// protobuf envelope (proto=true).
type ClientFilter interface {
	// Object filters one list item: the bytes to send (data itself when nothing
	// changed, so the shared encoding is reused), and keep=false to leave it out.
	// On an error the object is sent as it was and the error is logged.
	Object(data []byte, proto bool) (out []byte, keep bool, err error)
	// NewWatch returns the per-stream state of one watch (an object that stops
	// passing is sent as DELETED, one that starts passing as ADDED).
	NewWatch() WatchFilter
}

// WatchFilter filters the events of one watch stream (one goroutine).
type WatchFilter interface {
	// Event returns the event to send: its type and object (data itself when
	// unchanged), send=false to hold it back. On an error the event is sent as it
	// was and the error is logged.
	Event(typ string, data []byte, proto bool) (outType string, out []byte, send bool, err error)
}

// sameBytes reports whether a filter handed back its input (nothing changed), so
// the shared, already framed encoding can be written instead of a new frame.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Ender is implemented by a WatchFilter whose answers can change without an
// event of the multiplexed resource (servicetopology: a Service's annotation, the
// node's pool). End is closed when the client must relist: the multiplexer then
// ends the watch with a 410 Expired ERROR event (a clean end would only make a
// client-go reflector re-watch from its resourceVersion, and the slices whose
// filtering changed would never be sent again). Close releases it when the watch
// ends.
type Ender interface {
	End() <-chan struct{}
	Close()
}
