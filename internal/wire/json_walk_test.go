package wire

import (
	"strings"
	"testing"
)

func TestJSONMembersAndElements(t *testing.T) {
	doc := []byte(` {"a" : [1, {"b":"x"} ,"s\u0021"], "k\u0065y":null,"o":{}} `)
	var got []string
	err := JSONMembers(doc, func(key string, vs, ve int) error {
		got = append(got, key+"="+string(doc[vs:ve]))
		if key == "a" {
			arr := doc[vs:ve]
			return JSONElements(arr, func(es, ee int) error {
				got = append(got, "  "+string(arr[es:ee]))
				return nil
			})
		}
		return nil
	})
	want := []string{`a=[1, {"b":"x"} ,"s\u0021"]`, `  1`, `  {"b":"x"}`, `  "s\u0021"`, `key=null`, `o={}`}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("walk = %q, %v\nwant %q", got, err, want)
	}
	if s, err := JSONString([]byte(`"s\u0021"`)); err != nil || s != "s!" {
		t.Fatalf("JSONString = %q, %v", s, err)
	}
	for _, bad := range []string{`{"a":1}x`, `{"a":}`, `{"a" 1}`, `[1,]`, `{"a":1`, `[1 2]`, `"str"`, ``} {
		errM := JSONMembers([]byte(bad), func(string, int, int) error { return nil })
		errE := JSONElements([]byte(bad), func(int, int) error { return nil })
		if errM == nil && errE == nil {
			t.Errorf("%q: no error from either walk", bad)
		}
		if strings.HasPrefix(bad, "{") && errM == nil || strings.HasPrefix(bad, "[") && errE == nil {
			t.Errorf("%q: malformed, walked without an error", bad)
		}
	}
	if _, err := JSONString([]byte(`5`)); err == nil {
		t.Fatal("JSONString of a number: no error")
	}
}
