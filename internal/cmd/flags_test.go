package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/yurthub/yurthub/internal/config"
)

// referenceFlags is ../shared/REFERENCE.md section 1: every flag OpenYurt's yurthub
// accepts that we must accept too, with its default as --help shows it ("" = none).
var referenceFlags = map[string]string{
	"server-addr":                  "",
	"node-name":                    "",
	"nodepool-name":                "",
	"working-mode":                 `"edge"`,
	"lb-mode":                      `"rr"`,
	"bind-address":                 `"127.0.0.1"`,
	"serve-port":                   "10267",
	"bind-proxy-address":           `"127.0.0.1"`,
	"proxy-port":                   "10261",
	"proxy-secure-port":            "10268",
	"root-dir":                     `"/var/lib/yurthub"`,
	"disk-cache-path":              `"/etc/kubernetes/cache/"`,
	"enable-dummy-if":              "true",
	"dummy-if-name":                `"yurthub-dummy0"`,
	"dummy-if-ip":                  `"169.254.2.1"`,
	"enable-iptables":              "true",
	"heartbeat-failed-retry":       "3",
	"heartbeat-healthy-threshold":  "2",
	"heartbeat-timeout-seconds":    "2",
	"heartbeat-interval-seconds":   "10",
	"kubelet-health-grace-period":  "40s",
	"gc-frequency":                 "120",
	"join-token":                   "",
	"bootstrap-file":               "",
	"discovery-token-ca-cert-hash": "",
	"discovery-token-unsafe-skip-ca-verification": "false",
	"bootstrap-mode":               `"token"`,
	"hub-cert-organizations":       "",
	"kubelet-ca-file":              `"/etc/kubernetes/pki/ca.crt"`,
	"kubelet-client-certificate":   `"/var/lib/kubelet/pki/kubelet-client-current.pem"`,
	"enable-resource-filter":       "true",
	"disabled-resource-filters":    "",
	"enable-node-pool":             "true",
	"max-requests-in-flight":       "250",
	"min-request-timeout":          "30m0s",
	"profiling":                    "true",
	"cert-mgr-mode":                `"hubself"`,
	"access-server-through-hub":    "true",
	"version":                      "false",
	"namespace":                    `"kube-system"`,
	"node-ip":                      "",
	"multiplexer-port":             "10269",
	"pool-scope-resources":         "",
	"enable-pool-service-topology": "false",
	"host-control-plane-address":   "",
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(append([]string{"yurthub"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestHelpListsEveryReferenceFlagWithDefault(t *testing.T) {
	code, out, _ := run("--help")
	if code != ExitOK {
		t.Fatalf("--help exited %d", code)
	}
	for flag, def := range referenceFlags {
		re := regexp.MustCompile(`(?m)^\s+--` + regexp.QuoteMeta(flag) + `\b.*$`)
		line := re.FindString(out)
		if line == "" {
			t.Errorf("--help does not list --%s", flag)
			continue
		}
		if def != "" && !strings.Contains(line, "(default: "+def+")") {
			t.Errorf("--%s: help line %q does not show default %s", flag, strings.TrimSpace(line), def)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+-v\b`).MatchString(out) {
		t.Error("--help does not list -v")
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run("--version")
	if code != ExitOK || !strings.HasPrefix(out, "yurthub version ") {
		t.Fatalf("--version = %d %q", code, out)
	}
}

func TestInvalidFlagsFailWithOneLineNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := []string{"--server-addr=https://127.0.0.1:6443", "--node-name=node-a", "--root-dir=" + dir}
	cases := []struct {
		name string
		args []string
		flag string // the flag the error must name
		want string // a phrase the error must contain
	}{
		{"missing server-addr", []string{"--node-name=n", "--root-dir=" + dir}, "--server-addr", "required"},
		{"missing node-name", []string{"--server-addr=https://a:6443", "--root-dir=" + dir}, "--node-name", "required"},
		{"http server-addr", append(ok, "--server-addr=http://127.0.0.1:6443"), "--server-addr", "not an https URL"},
		{"bare host server-addr", append(ok, "--server-addr=10.0.0.1:6443"), "--server-addr", "not an https URL"},
		{"one bad among several", append(ok, "--server-addr=https://a:6443,ftp://b"), "--server-addr", "not an https URL"},
		{"duplicate server", append(ok, "--server-addr=https://a:6443,https://a:6443"), "--server-addr", "listed twice"},
		{"bad node name", append(ok, "--node-name=Node_A"), "--node-name", "not a valid node name"},
		{"unknown working-mode", append(ok, "--working-mode=fog"), "--working-mode", "must be one of edge, cloud"},
		{"unknown lb-mode", append(ok, "--lb-mode=random"), "--lb-mode", "must be one of rr, priority"},
		{"unknown bootstrap-mode", append(ok, "--bootstrap-mode=magic"), "--bootstrap-mode", "must be one of"},
		{"unknown log-format", append(ok, "--log-format=xml"), "--log-format", "must be one of text, json"},
		{"dummy ip in tunnel range", append(ok, "--dummy-if-ip=169.254.31.7"), "--dummy-if-ip", "169.254.31.0/24"},
		{"unknown filter to disable", append(ok, "--disabled-resource-filters=masterservice,nosuchfilter"), "--disabled-resource-filters", "unknown filter; the filters are servicetopology"},
		{"dummy ip is calico gateway", append(ok, "--dummy-if-ip=169.254.1.1"), "--dummy-if-ip", "169.254.1.1"},
		{"dummy ip not an ip", append(ok, "--dummy-if-ip=nope"), "--dummy-if-ip", "not an IP address"},
		{"dummy if name too long", append(ok, "--dummy-if-name=a-very-long-interface-name"), "--dummy-if-name", "not a valid interface name"},
		{"port zero", append(ok, "--proxy-port=0"), "--proxy-port", "out of range"},
		{"port too big", append(ok, "--serve-port=70000"), "--serve-port", "out of range"},
		{"ports clash", append(ok, "--proxy-secure-port=10261"), "--proxy-secure-port", "clashes with --proxy-port"},
		{"serve port clashes on same address", append(ok, "--serve-port=10261"), "--proxy-port", "clashes with --serve-port"},
		{"bind address not an ip", append(ok, "--bind-address=localhost"), "--bind-address", "not an IP address"},
		{"root-dir is a file", append(ok, "--root-dir="+aFile), "--root-dir", "is not a directory"},
		{"unreadable bootstrap file", append(ok, "--bootstrap-file="+filepath.Join(dir, "missing")), "--bootstrap-file", "cannot be read"},
		{"kubeletcertificate without ca", append(ok, "--bootstrap-mode=kubeletcertificate", "--kubelet-ca-file="+filepath.Join(dir, "no-ca"), "--kubelet-client-certificate="+aFile), "--kubelet-ca-file", "cannot be read"},
		{"kubeletcertificate without cert", append(ok, "--bootstrap-mode=kubeletcertificate", "--kubelet-ca-file="+aFile, "--kubelet-client-certificate="+dir), "--kubelet-client-certificate", "is a directory"},
		{"bad ca hash", append(ok, "--discovery-token-ca-cert-hash=md5:abc"), "--discovery-token-ca-cert-hash", "sha256:"},
		{"join token without a pin", append(ok, "--join-token=abcdef.0123456789abcdef"), "--join-token", "needs --discovery-token-ca-cert-hash"},
		{"malformed join token", append(ok, "--join-token=not-a-token", "--discovery-token-unsafe-skip-ca-verification"), "--join-token", "not a bootstrap token"},
		{"ca hash not hex", append(ok, "--discovery-token-ca-cert-hash=sha256:"+strings.Repeat("zz", 32)), "--discovery-token-ca-cert-hash", "64 hex digits"},
		{"local working mode", append(ok, "--working-mode=local"), "--working-mode", "local mode"},
		{"node ip not an ip", append(ok, "--node-ip=node-1"), "--node-ip", "not an IP address"},
		{"multiplexer port out of range", append(ok, "--multiplexer-port=0"), "--multiplexer-port", "out of range"},
		{"bad namespace", append(ok, "--namespace=Kube_System"), "--namespace", "not a valid namespace"},
		{"zero heartbeat interval", append(ok, "--heartbeat-interval-seconds=0"), "--heartbeat-interval-seconds", "greater than zero"},
		{"negative in-flight", append(ok, "--max-requests-in-flight=-1"), "--max-requests-in-flight", "greater than zero"},
		{"unknown flag", append(ok, "--no-such-flag"), "-no-such-flag", "not defined"},
		{"not a number", append(ok, "--proxy-port=abc"), "proxy-port", "invalid value"},
		{"stray argument", append(ok, "extra"), "extra", "takes only flags"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(tc.args...)
			if code != ExitUsage {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("want a one-line error, got %d lines:\n%s", len(lines), stderr)
			}
			if !strings.HasPrefix(lines[0], "yurthub: ") || !strings.Contains(lines[0], tc.flag) || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("error %q must start with 'yurthub: ', name %s and say %q", lines[0], tc.flag, tc.want)
			}
		})
	}
}

// parseFlags runs the daemon's command line up to the validated Config.
func parseFlags(args ...string) (*config.Config, error) {
	var got *config.Config
	app := yurthubApp(&bytes.Buffer{}, &bytes.Buffer{})
	app.Action = func(c *cliContext) error {
		cfg, err := configFromFlags(c)
		got = cfg
		return err
	}
	err := app.Run(append([]string{"yurthub"}, args...))
	return got, err
}

// TestYurtadmCommandLine: the flags OpenYurt's yurthub YurtStaticSet template (what
// yurtadm join installs) passes are accepted, the bootstrap file is kept for use, and
// the only inert one set to a non-default value is reported as such.
func TestYurtadmCommandLine(t *testing.T) {
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap-hub.conf")
	if err := os.WriteFile(bootstrap, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := parseFlags("--v=2", "--bind-address=127.0.0.1", "--server-addr=https://10.0.0.1:6443",
		"--node-name=edge-1", "--bootstrap-file="+bootstrap, "--working-mode=edge", "--namespace=kube-system",
		"--hub-cert-organizations=org-a", "--nodepool-name=pool-a", "--root-dir="+dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.BootstrapFile != bootstrap || got.Namespace != "kube-system" || strings.Join(got.HubCertOrganizations, ",") != "org-a" {
		t.Fatalf("config = %+v", got)
	}
	if in := got.Inert(); len(in) != 0 {
		t.Fatalf("inert settings = %+v, want none (--nodepool-name is live since the filters)", in)
	}
}

// TestInertFlagsListed: every flag whose feature is not built, set to a non-default
// value, is listed by Config.Inert (the daemon logs a WARN line for each), and its
// --help line says so.
func TestInertFlagsListed(t *testing.T) {
	args := []string{"--cert-mgr-mode=kubelet", "--access-server-through-hub=false",
		"--multiplexer-port=10270", "--host-control-plane-address=10.0.0.9:6443"}
	got, err := parseFlags(append([]string{"--server-addr=https://10.0.0.1:6443", "--node-name=edge-1", "--root-dir=" + t.TempDir()}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	inert := map[string]bool{}
	for _, in := range got.Inert() {
		inert[in.Flag] = true
	}
	_, help, _ := run("--help")
	for _, a := range args {
		flag := strings.SplitN(strings.TrimPrefix(a, "--"), "=", 2)[0]
		if !inert[flag] {
			t.Errorf("--%s set to a non-default value is not listed as inert", flag)
		}
		line := regexp.MustCompile(`(?m)^\s+--` + regexp.QuoteMeta(flag) + `\b.*$`).FindString(help)
		if !strings.Contains(line, "accepted; no effect yet") {
			t.Errorf("--help line of --%s does not say it has no effect yet: %q", flag, line)
		}
	}
	if len(inert) != len(args) {
		t.Errorf("inert = %v, want exactly the %d flags set", inert, len(args))
	}
}

func TestValidFlagsGiveConfig(t *testing.T) {
	dir := t.TempDir()
	var got *configSnapshot
	app := yurthubApp(&bytes.Buffer{}, &bytes.Buffer{})
	app.Action = func(c *cliContext) error {
		cfg, err := configFromFlags(c)
		if err != nil {
			return err
		}
		got = snapshot(cfg)
		return nil
	}
	err := app.Run([]string{"yurthub",
		"--server-addr=https://10.0.0.1:6443, https://10.0.0.2:6443",
		"--node-name=edge-1", "--root-dir", dir, "--lb-mode=priority",
		"--hub-cert-organizations=a,b", "--hub-cert-organizations=c",
		"--enable-dummy-if=false", "--heartbeat-interval-seconds", "5", "-v=4",
		"--discovery-token-ca-cert-hash=sha256:" + strings.Repeat("ab", 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &configSnapshot{
		servers: "https://10.0.0.1:6443,https://10.0.0.2:6443", node: "edge-1", lb: "priority",
		orgs: "a,b,c", dummy: false, interval: "5s", verbosity: 4, cache: filepath.Join(dir, "cache.db"),
	}
	if *got != *want {
		t.Fatalf("config = %+v\nwant     %+v", *got, *want)
	}
}

// With only the required flags, the command line gives exactly config.Default():
// the flags take their defaults from it, and nothing is lost or added on the way.
func TestNoFlagsGiveDefault(t *testing.T) {
	got, err := parseFlags("--server-addr=https://10.0.0.1:6443", "--node-name=edge-1")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.ServerAddrs, want.NodeName = got.ServerAddrs, "edge-1"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config from no flags:\n%+v\nconfig.Default():\n%+v", *got, *want)
	}
}
