// Command kubecluster runs internal/testkube's etcd + kube-apiserver outside `go test`,
// for make demo and make bench. It writes what a hub and its clients need into --dir
// and stays in the foreground until SIGINT or SIGTERM, then stops every process it
// started (by PID).
//
//	YURTHUB_KUBE_BIN_DIR=$(testdata/kube/build.sh | tail -n1) kubecluster --dir /tmp/demo --node edge-1
//
// Files in --dir once it has written "ready":
//
//	env                  shell variables: APISERVER_URL, KUBECTL, ADMIN_KUBECONFIG, NODE_KUBECONFIG, CA_FILE, NODE_PEM
//	ca.crt               the cluster CA (the hub's --kubelet-ca-file)
//	node.pem             client cert+key of system:node:<node> (the hub's --kubelet-client-certificate)
//	admin.kubeconfig     cluster admin (a bearer token) straight to the apiserver
//	node.kubeconfig      system:node:<node> (client certificate) straight to the apiserver
//	apiserver.state      "running" or "stopped"
//	cluster/             certificates, tokens, etcd data and every process's log
//
// Signals: SIGUSR1 stops kube-apiserver (etcd keeps running), SIGUSR2 starts it again on
// the same port; apiserver.state says which has happened. The node is granted read
// access to everything (testkube.GrantNodeReadAll), as a hub serving a whole node needs.
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/yurthub/yurthub/internal/testkube"
)

func main() {
	dir := flag.String("dir", "", "directory for the cluster's files (required)")
	node := flag.String("node", "edge-1", "node name: gets a client certificate and read access to everything")
	quiet := flag.Bool("quiet", false, "do not print the harness's log lines")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "kubecluster: --dir is required (where to write kubeconfigs, certificates and logs)")
		os.Exit(2)
	}
	if err := run(*dir, *node, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
		os.Exit(1)
	}
}

func run(dir, node string, quiet bool) error {
	logw := os.Stderr
	if quiet {
		logw = nil
	}
	// Signals first: a Ctrl-C during start-up must still stop what has started.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)

	s, c, err := testkube.StartStandalone(filepath.Join(dir, "cluster"), testkube.Options{Nodes: []string{node}}, logw)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Do(func(t testing.TB) { c.GrantNodeReadAll(t, node) }); err != nil {
		return err
	}
	certPEM, keyPEM := c.IssueNodeClientCert(node)
	b64 := base64.StdEncoding.EncodeToString
	nodeKubeconfig := "apiVersion: v1\nkind: Config\nclusters:\n- name: testkube\n  cluster:\n" +
		"    server: " + c.URL() + "\n    certificate-authority-data: " + b64(c.CAPEM()) + "\n" +
		"users:\n- name: " + node + "\n  user:\n    client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(keyPEM) + "\n" +
		"contexts:\n- name: " + node + "\n  context:\n    cluster: testkube\n    user: " + node + "\n" +
		"current-context: " + node + "\n"
	admin, err := os.ReadFile(c.AdminKubeconfig())
	if err != nil {
		return err
	}
	path := func(n string) string { return filepath.Join(dir, n) }
	env := fmt.Sprintf("APISERVER_URL=%s\nKUBECTL=%s\nADMIN_KUBECONFIG=%s\nNODE_KUBECONFIG=%s\nCA_FILE=%s\nNODE_PEM=%s\nCLUSTER_DIR=%s\n",
		c.URL(), c.KubectlPath(), path("admin.kubeconfig"), path("node.kubeconfig"), path("ca.crt"), path("node.pem"), c.Dir())
	files := []struct {
		name string
		data []byte
	}{
		{"ca.crt", c.CAPEM()},
		{"node.pem", append(append([]byte{}, certPEM...), keyPEM...)},
		{"admin.kubeconfig", admin},
		{"node.kubeconfig", []byte(nodeKubeconfig)},
		{"apiserver.state", []byte("running\n")},
		{"env", []byte(env)},
		{"ready", []byte("ready\n")}, // last: the others are complete when it exists
	}
	for _, f := range files {
		if err := os.WriteFile(path(f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "kubecluster: kube-apiserver %s ready; files in %s (pid %d; SIGUSR1 stops the apiserver, SIGUSR2 starts it)\n", c.URL(), dir, os.Getpid())

	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR1:
			err = s.Do(func(t testing.TB) { c.APIServer().Stop(t) })
			report(path("apiserver.state"), "stopped", err)
		case syscall.SIGUSR2:
			err = s.Do(func(t testing.TB) { c.APIServer().Start(t) })
			report(path("apiserver.state"), "running", err)
		default:
			fmt.Fprintf(os.Stderr, "kubecluster: %v: stopping kube-apiserver and etcd\n", sig)
			return nil
		}
	}
	return nil
}

// report writes the apiserver's new state, or "error: ..." so a waiting script sees it.
func report(file, state string, err error) {
	if err != nil {
		state = "error: " + err.Error()
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
	}
	_ = os.WriteFile(file+".tmp", []byte(state+"\n"), 0o600)
	_ = os.Rename(file+".tmp", file)
}
