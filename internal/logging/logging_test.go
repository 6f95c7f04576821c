package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// TestRouteKlog checks that client-go's klog output (here runtime.HandleError, which
// the reflector uses for "Failed to watch") arrives as one JSON record of our logger,
// and that klog's verbose records stay out at the default level.
func TestRouteKlog(t *testing.T) {
	var buf bytes.Buffer
	RouteKlog(New(&buf, "json", 0))
	t.Cleanup(func() { klog.ClearLogger() })

	utilruntime.HandleError(errors.New("failed to list *v1.ConfigMap: boom"))
	klog.V(4).InfoS("chatty detail")
	klog.Flush()

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want exactly 1 record (the error, not the V(4) detail), got %d:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatalf("klog output is not one of our JSON records: %v: %s", err, lines[0])
	}
	if rec["level"] != "ERROR" || rec["part"] != "client-go" {
		t.Errorf("record = %v, want level ERROR and part client-go", rec)
	}
	if err, _ := rec["err"].(string); err != "failed to list *v1.ConfigMap: boom" {
		t.Errorf("err = %q, want the HandleError error", err)
	}
}
