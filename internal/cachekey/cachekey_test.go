package cachekey

import "testing"

func TestSelector(t *testing.T) {
	cases := map[[2]string]string{
		{"", ""}:                                "",
		{"b=2,a=1", ""}:                         "labelSelector=a%3D1%2Cb%3D2",
		{"a=1,b=2", ""}:                         "labelSelector=a%3D1%2Cb%3D2",
		{"", "spec.nodeName=n1"}:                "fieldSelector=spec.nodeName%3Dn1",
		{"", "metadata.name=x,spec.a!=b"}:       "fieldSelector=metadata.name%3Dx%2Cspec.a%21%3Db",
		{"", "spec.a!=b,metadata.name=x"}:       "fieldSelector=metadata.name%3Dx%2Cspec.a%21%3Db",
		{"!service.kubernetes.io/headless", ""}: "labelSelector=%21service.kubernetes.io%2Fheadless",
	}
	for in, want := range cases {
		if got := Selector(in[0], in[1]); got != want {
			t.Errorf("Selector(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}
