package wire

import (
	"bytes"
	"testing"
)

// A list written with ProtoListHeader, ProtoListMeta and AppendProtoItem is what
// the apiserver writes: DecodeProtoList reads it back, and ProtoRaw finds each
// item's message in the envelope a GET of it has.
func TestProtoListWriteRead(t *testing.T) {
	pods := []Item{}
	var body []byte
	body = append(body, ProtoListMeta(4711)...)
	for _, name := range []string{"p1", "p2"} {
		p := pod("ns", name, "n1", 7)
		doc := protoBytes(t, &p)
		msg, err := ProtoRaw(doc)
		if err != nil {
			t.Fatal(err)
		}
		body = AppendProtoItem(body, msg)
	}
	list := append(ProtoListHeader("v1", "PodList", len(body)), body...)
	var s collectSink
	lm, err := DecodeProtoList(bytes.NewReader(list), true, 1<<20, &s)
	if err != nil {
		t.Fatal(err)
	}
	pods = s.items
	if lm.RV != 4711 || len(pods) != 2 || pods[0].Name != "p1" || pods[1].Name != "p2" || pods[1].NodeName != "n1" || pods[0].RV != 7 {
		t.Fatalf("read back %+v and %d items (%+v)", lm, len(pods), pods)
	}
	if _, err := ProtoRaw([]byte("{}")); err == nil {
		t.Fatal("ProtoRaw took a JSON document")
	}
}
