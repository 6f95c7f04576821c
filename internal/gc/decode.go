package gc

import (
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
)

// DecodePod decodes a cached pod, JSON or protobuf.
func DecodePod(o store.Object) (*corev1.Pod, error) {
	if o.Encoding == store.EncodingProtobuf {
		obj, _, err := kubescheme.Protobuf.Decode(o.Data, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decode cached pod %s/%s: %w", o.Namespace, o.Name, err)
		}
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("cached pod %s/%s is a %T", o.Namespace, o.Name, obj)
		}
		return p, nil
	}
	var p corev1.Pod
	if err := json.Unmarshal(o.Data, &p); err != nil {
		return nil, fmt.Errorf("decode cached pod %s/%s: %w", o.Namespace, o.Name, err)
	}
	return &p, nil
}

// EventTime is the latest time an event records (last seen, series, event time,
// first seen, creation), or the zero time when it has none or does not decode.
func EventTime(o store.Object) time.Time {
	var latest time.Time
	see := func(t time.Time) {
		if t.After(latest) {
			latest = t
		}
	}
	if o.Encoding == store.EncodingProtobuf {
		obj, _, err := kubescheme.Protobuf.Decode(o.Data, nil, nil)
		if err != nil {
			return time.Time{}
		}
		switch e := obj.(type) {
		case *corev1.Event:
			see(e.CreationTimestamp.Time)
			see(e.FirstTimestamp.Time)
			see(e.LastTimestamp.Time)
			see(e.EventTime.Time)
			if e.Series != nil {
				see(e.Series.LastObservedTime.Time)
			}
		case *eventsv1.Event:
			see(e.CreationTimestamp.Time)
			see(e.EventTime.Time)
			see(e.DeprecatedFirstTimestamp.Time)
			see(e.DeprecatedLastTimestamp.Time)
			if e.Series != nil {
				see(e.Series.LastObservedTime.Time)
			}
		}
		return latest
	}
	// JSON: the fields of both Event APIs, parsed leniently (a bad time is skipped).
	var e struct {
		Metadata struct {
			CreationTimestamp string `json:"creationTimestamp"`
		} `json:"metadata"`
		FirstTimestamp           string `json:"firstTimestamp"`
		LastTimestamp            string `json:"lastTimestamp"`
		EventTime                string `json:"eventTime"`
		DeprecatedFirstTimestamp string `json:"deprecatedFirstTimestamp"`
		DeprecatedLastTimestamp  string `json:"deprecatedLastTimestamp"`
		Series                   *struct {
			LastObservedTime string `json:"lastObservedTime"`
		} `json:"series"`
	}
	if json.Unmarshal(o.Data, &e) != nil {
		return time.Time{}
	}
	for _, s := range []string{e.Metadata.CreationTimestamp, e.FirstTimestamp, e.LastTimestamp, e.EventTime, e.DeprecatedFirstTimestamp, e.DeprecatedLastTimestamp} {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			see(t)
		}
	}
	if e.Series != nil {
		if t, err := time.Parse(time.RFC3339Nano, e.Series.LastObservedTime); err == nil {
			see(t)
		}
	}
	return latest
}

// Kind is the metrics label of a resource: "pods", "events.events.k8s.io".
func Kind(r store.Resource) string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}
