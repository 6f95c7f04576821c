package main

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/kubescheme"
)

// TestCountEventsRV: the watchers read each event's type and resourceVersion from
// JSON and protobuf streams (watchLoad waits for every watcher to see the last
// write's resourceVersion).
func TestCountEventsRV(t *testing.T) {
	es := &discoveryv1.EndpointSlice{TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "n", ResourceVersion: "42"}, AddressType: discoveryv1.AddressTypeIPv4}
	js := `{"type":"MODIFIED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"a","namespace":"n","resourceVersion":"42"},"addressType":"IPv4"}}` + "\n" +
		`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","code":410,"reason":"Expired"}}` + "\n"
	obj, err := kubescheme.EncodeProto(es)
	if err != nil {
		t.Fatal(err)
	}
	ev := metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: obj}}
	frame, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var pb bytes.Buffer
	_ = binary.Write(&pb, binary.BigEndian, uint32(len(frame)))
	pb.Write(frame)
	for _, c := range []struct {
		name  string
		body  []byte
		proto bool
		want  []string
	}{
		{"json", []byte(js), false, []string{"MODIFIED 42", "ERROR 0"}},
		{"protobuf", pb.Bytes(), true, []string{"MODIFIED 42"}},
	} {
		var got []string
		countEvents(bytes.NewReader(c.body), c.proto, func(typ string, obj []byte) {
			got = append(got, typ+" "+strconv.FormatUint(objectRV(obj, c.proto), 10))
		})
		if len(got) != len(c.want) {
			t.Fatalf("%s: events %q, want %q", c.name, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%s: events %q, want %q", c.name, got, c.want)
			}
		}
	}
}
