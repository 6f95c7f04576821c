package admin

import (
	"context"
	"errors"
	"io"
)

// DaemonAnswers reports whether a running yurthub answers on socket (hubctl compact
// refuses to touch a file a daemon serves from).
func DaemonAnswers(ctx context.Context, socket string) bool {
	err := askDaemon(ctx, socket, Request{Op: "inspect", Format: FormatJSON}, io.Discard)
	return !errors.Is(err, ErrNoDaemon)
}
