package filter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"k8s.io/client-go/rest"
)

// The NodePool version is v1beta2 when served, else v1beta1; no group: "".
func TestNodePoolServedVersion(t *testing.T) {
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"kind":"APIGroup","name":"apps.openyurt.io","versions":[{"groupVersion":"apps.openyurt.io/v1beta2","version":"v1beta2"},{"groupVersion":"apps.openyurt.io/v1beta1","version":"v1beta1"}]}`, 200, "v1beta2"},
		{`{"kind":"APIGroup","name":"apps.openyurt.io","versions":[{"groupVersion":"apps.openyurt.io/v1beta1","version":"v1beta1"}]}`, 200, "v1beta1"},
		{`{"kind":"APIGroup","name":"apps.openyurt.io","versions":[{"groupVersion":"apps.openyurt.io/v1alpha1","version":"v1alpha1"}]}`, 200, ""},
		{`{"kind":"Status","code":404}`, 404, ""},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/apis/apps.openyurt.io" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.code)
			fmt.Fprint(w, tc.body)
		}))
		got, err := servedVersion(context.Background(), &rest.Config{Host: srv.URL})
		srv.Close()
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.body, got, err, tc.want)
		}
	}
}

// The node's pool is --nodepool-name, else the pool listing the node; a change
// of its members calls OnChange.
func TestNodePoolsPublish(t *testing.T) {
	pool := &StaticPool{}
	var reasons []string
	p := &NodePools{NodeName: "n1", Pool: pool, Log: slog.New(slog.DiscardHandler), OnChange: func(r string) { reasons = append(reasons, r) },
		pools: map[string][]string{"a": {"n1", "n2"}, "b": {"n3"}}}
	p.publish("loaded")
	if pool.PoolName() != "a" || len(reasons) != 1 {
		t.Fatalf("pool %q, reasons %v", pool.PoolName(), reasons)
	}
	p.publish("no change")
	if len(reasons) != 1 {
		t.Fatalf("OnChange without a change: %v", reasons)
	}
	p.pools["a"] = []string{"n1", "n2", "n4"}
	p.publish("member added")
	if n, ok := pool.PoolNodes("a"); !ok || !slices.Equal(n, []string{"n1", "n2", "n4"}) || len(reasons) != 2 {
		t.Fatalf("members %v %v, reasons %v", n, ok, reasons)
	}
	p.FlagPool = "b"
	p.publish("flag")
	if pool.PoolName() != "b" || len(reasons) != 3 {
		t.Fatalf("--nodepool-name not used: %q %v", pool.PoolName(), reasons)
	}
}
