// Package apistatus holds what the hub's two answering paths (internal/proxy, online;
// internal/localproxy, offline) share about the metav1.Status bodies they write
// themselves: how much of a request's own input an error may repeat.
package apistatus

import (
	"fmt"
	"unicode/utf8"
)

// MaxEcho bounds each piece of request input (a name, a selector, a User-Agent, a
// cause) an error message repeats, and MaxMessage a whole message (a backstop for
// input that reaches it another way).
const (
	MaxEcho    = 256
	MaxMessage = 4096
)

// Shorten cuts s to at most n bytes (on a rune boundary), saying how much was cut.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d more bytes)", s[:cut], len(s)-cut)
}
