// Package admin is the daemon's local admin endpoint and hubctl's way to reach the
// cache, designed once for every operator command.
//
// A running yurthub holds the cache file's lock, so hubctl cannot open it. The daemon
// therefore serves HTTP on a unix socket, <root-dir>/hub.sock (mode 0600, root only):
//
//	GET /v1/inspect?o=text|json
//	GET /v1/dump?component=&resource=&namespace=&name=&o=json|yaml&show-secrets=true
//
// Both answer with exactly what hubctl prints. Query (used by hubctl) asks the socket
// first; when nothing listens there (no socket file, or connection refused) it opens
// the cache file read-only and renders the same output itself. When the file is
// locked and no socket answers, it says so. Rendering lives here (Inspect, Dump) so
// both paths print byte-identical output.
package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
)

// Output formats.
const (
	FormatText = "text"
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// ComponentAnnotation is added to every dumped object: which component's cache it
// came from (the same object can be cached for several components).
const ComponentAnnotation = "hubctl.yurthub.io/component"

// Redacted replaces every redacted value.
const Redacted = "REDACTED"

// Inspect writes the cache's figures per component and resource.
func Inspect(ctx context.Context, w io.Writer, s *store.Store, format string) error {
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	switch format {
	case FormatJSON:
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatText, "":
	default:
		return fmt.Errorf("unknown output format %q for inspect (text or json)", format)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "cache file:      %s\n", st.Path)
	fmt.Fprintf(bw, "schema version:  %d (this binary writes %d)\n", st.SchemaVersion, st.LatestSchema)
	if st.Created != "" {
		fmt.Fprintf(bw, "created:         %s\n", st.Created)
	}
	fmt.Fprintf(bw, "file size:       %d bytes, %d on disk (page size %d, %d free pages, %d pending)\n", st.FileSize, st.DiskBytes, st.PageSize, st.FreePages, st.PendingPages)
	fmt.Fprintf(bw, "reclaimable:     %d bytes (free pages: hubctl compact on a stopped node, or a start once they exceed half the file and 64 MiB)\n", st.Reclaimable)
	if st.OpenYurtImport != "" {
		fmt.Fprintf(bw, "openyurt import: %s\n", st.OpenYurtImport)
	}
	fmt.Fprintln(bw)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tRESOURCE\tOBJECTS\tBYTES\tLIST (NAMESPACE?SELECTOR)\tLIST RV\tCOUNT\tSYNCED\tSTATE")
	for _, c := range st.Components {
		for _, r := range c.Resources {
			if len(r.Lists) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t-\t-\t-\t-\t-\n", cell(c.Name), r.Resource, r.Objects, r.Bytes)
			}
			for i, l := range r.Lists {
				objs, bytes := fmt.Sprint(r.Objects), fmt.Sprint(r.Bytes)
				if i > 0 {
					objs, bytes = "", ""
				}
				synced := "-"
				if !l.SyncedAt.IsZero() {
					synced = l.SyncedAt.UTC().Format(time.RFC3339)
				}
				state := "complete"
				if !l.Complete {
					state = "incomplete"
				}
				if l.Reason != "" {
					state += ": " + l.Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", cell(c.Name), r.Resource, objs, bytes,
					cell(l.Namespace+"?"+l.Selector), l.ResourceVersion, l.Count, synced, cell(state))
			}
		}
		if len(c.Raw) > 0 {
			fmt.Fprintf(tw, "%s\t(discovery)\t%d\t%d\t%s\t-\t-\t-\t-\n", cell(c.Name), len(c.Raw), c.RawBytes, cell(strings.Join(c.Raw, " ")))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Components) == 0 {
		fmt.Fprintln(bw, "(the cache is empty)")
	}
	for _, c := range st.Components {
		for _, r := range c.Resources {
			if len(r.Damaged) > 0 {
				fmt.Fprintf(bw, "damaged: %s %s: %d object(s) failed the integrity check, never served: %s\n",
					c.Name, r.Resource, len(r.Damaged), cell(strings.Join(r.Damaged, " ")))
			}
		}
	}
	return bw.Flush()
}

// DumpOptions select and shape a dump.
type DumpOptions struct {
	Filter      store.Filter
	Format      string // json (default) or yaml
	ShowSecrets bool
}

// Dump writes the selected objects as one kubectl-style v1 List, streaming.
func Dump(ctx context.Context, w io.Writer, s *store.Store, o DumpOptions) error {
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Format != FormatJSON && o.Format != FormatYAML {
		return fmt.Errorf("unknown output format %q for dump (json or yaml)", o.Format)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	if o.Format == FormatJSON {
		bw.WriteString("{\n    \"apiVersion\": \"v1\",\n    \"items\": [")
	} else {
		bw.WriteString("apiVersion: v1\nitems:")
	}
	err := s.Walk(ctx, o.Filter, func(k store.ObjectKey, obj store.Object) error {
		item, err := decodeObject(k, obj)
		if err != nil {
			return err
		}
		if !o.ShowSecrets {
			redact(item)
		}
		if n == 0 && o.Format == FormatYAML {
			bw.WriteString("\n")
		}
		if o.Format == FormatJSON {
			b, err := json.MarshalIndent(item, "        ", "    ")
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if n > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n        ")
			bw.Write(b)
		} else {
			b, err := yaml.Marshal(item)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				if i == 0 {
					bw.WriteString("- ")
				} else {
					bw.WriteString("  ")
				}
				bw.WriteString(line)
				bw.WriteString("\n")
			}
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if o.Format == FormatJSON {
		if n > 0 {
			bw.WriteString("\n    ")
		}
		bw.WriteString("],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n")
	} else {
		if n == 0 {
			bw.WriteString(" []\n")
		}
		bw.WriteString("kind: List\nmetadata:\n  resourceVersion: \"\"\n")
	}
	return bw.Flush()
}

// decodeObject turns a stored object into a generic map: JSON as is, protobuf
// through kubescheme.Scheme (built-in types). A protobuf object of a kind the
// scheme does not know is shown with its identity and the raw bytes in base64.
func decodeObject(k store.ObjectKey, o store.Object) (map[string]any, error) {
	if o.Damaged != nil {
		m := map[string]any{
			"apiVersion":                strings.TrimPrefix(k.Resource.Group+"/"+k.Resource.Version, "/"),
			"kind":                      "Unknown",
			"metadata":                  map[string]any{"name": o.Name, "namespace": o.Namespace},
			"hubctl.yurthub.io/damaged": o.Damaged.Error(),
		}
		annotate(m, k.Component)
		return m, nil
	}
	var raw []byte
	if o.Encoding == store.EncodingProtobuf {
		typed, gvk, err := kubescheme.Protobuf.Decode(o.Data, nil, nil)
		if err != nil {
			m := map[string]any{
				"apiVersion":                    strings.TrimPrefix(k.Resource.Group+"/"+k.Resource.Version, "/"),
				"kind":                          "Unknown",
				"metadata":                      map[string]any{"name": o.Name, "namespace": o.Namespace},
				"hubctl.yurthub.io/undecodable": fmt.Sprintf("protobuf: %v", err),
				"hubctl.yurthub.io/raw":         base64.StdEncoding.EncodeToString(o.Data),
			}
			annotate(m, k.Component)
			return m, nil
		}
		if gvk != nil {
			typed.GetObjectKind().SetGroupVersionKind(*gvk)
		}
		if raw, err = json.Marshal(typed); err != nil {
			return nil, fmt.Errorf("%s: re-encode as JSON: %w", k, err)
		}
	} else {
		raw = o.Data
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		m = map[string]any{
			"apiVersion":                    strings.TrimPrefix(k.Resource.Group+"/"+k.Resource.Version, "/"),
			"kind":                          "Unknown",
			"metadata":                      map[string]any{"name": o.Name, "namespace": o.Namespace},
			"hubctl.yurthub.io/undecodable": fmt.Sprintf("json: %v", err),
		}
	}
	annotate(m, k.Component)
	return m, nil
}

func annotate(m map[string]any, component string) {
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	ann[ComponentAnnotation] = component
}

// redact blanks what must not leave the node by accident: Secret data and
// stringData (every Secret, service-account token secrets included), the
// last-applied-configuration annotation of a Secret (it repeats the data), and the
// token of a cached TokenRequest.
func redact(m map[string]any) {
	switch m["kind"] {
	case "Secret":
		for _, field := range []string{"data", "stringData"} {
			if d, ok := m[field].(map[string]any); ok {
				for k := range d {
					d[k] = Redacted
				}
			}
		}
		if meta, ok := m["metadata"].(map[string]any); ok {
			if ann, ok := meta["annotations"].(map[string]any); ok {
				if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; ok {
					ann["kubectl.kubernetes.io/last-applied-configuration"] = Redacted
				}
			}
		}
	case "TokenRequest":
		if st, ok := m["status"].(map[string]any); ok {
			if _, ok := st["token"]; ok {
				st["token"] = Redacted
			}
		}
	}
}

// maxCell is the widest a table cell gets in hubctl inspect's text output: one long
// selector must not pad every row of the table to its width. The JSON output keeps
// every value whole.
const maxCell = 96

// cell shortens s to maxCell characters, saying how much was cut.
func cell(s string) string {
	r := []rune(s)
	if len(r) <= maxCell {
		return s
	}
	tail := fmt.Sprintf("...(%d more chars; -o json shows all)", len(r)-(maxCell-40))
	return string(r[:maxCell-40]) + tail
}
