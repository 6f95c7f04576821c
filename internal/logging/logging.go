// Package logging builds the one *slog.Logger the program passes down.
package logging

import (
	"io"
	"log/slog"

	"k8s.io/klog/v2"
)

// New returns a logger writing text (default) or JSON records to w. verbosity is
// klog's -v: 4 and above turn on debug records.
func New(w io.Writer, format string, verbosity int) *slog.Logger {
	level := slog.LevelInfo
	if verbosity >= 4 {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RouteKlog sends what client-go logs through klog (reflector and watch errors,
// runtime.HandleError's "UnhandledError" reports) to log, tagged part=client-go,
// so the daemon writes one log format. klog's V(n) records become slog levels
// below Info and are dropped unless -v turns on debug.
func RouteKlog(log *slog.Logger) {
	klog.SetSlogLogger(log.With(slog.String("part", "client-go")))
}
