package network

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/testenv"
)

// guestArgs: the namespace tests, minus the one that needs setpriv (not in busybox).
var guestArgs = "-test.v -test.count=1 -test.timeout=10m -test.run ^TestNetns -test.skip ^TestNetnsNoPermission$"

// guestMustPass are the tests the guest must report passing.
var guestMustPass = []string{
	"TestNetnsEnsureCreatesLinkAndRules",
	"TestNetnsTCPThroughRules",
	"TestNetnsReconcileRestores",
	"TestNetnsRemoveIsExact",
	"TestNetnsAddressOnAnotherInterface",
	"TestNetnsLinkNameTaken",
	"TestNetnsNoDriverReachesLog",
	"TestNetnsIPv6",
	"TestNetnsIPTablesLockContention",
}

// TestQEMURealDummy proves the real dummy path: it boots Debian's cloud kernel
// (which has the dummy driver as a module) under qemu-system-x86_64 with software
// emulation, with an initramfs holding busybox, the dummy/veth/netfilter modules,
// iptables-nft and this package's test binary (static, CGO_ENABLED=0). The guest's
// /init loads the modules and runs every TestNetns* test with link kind dummy, each
// in its own namespace as on the host; the test fails unless the guest reports exit 0,
// every expected test passing, and a dummy link actually created.
//
// testdata/qemu/build.sh fetches the kernel .deb (apt-get download, not installed)
// and builds the base initramfs once, cached under
// ${XDG_CACHE_HOME:-$HOME/.cache}/yurthub-qemu/<kernel-version>/.
func TestQEMURealDummy(t *testing.T) {
	if os.Getenv(envNetns) == "1" {
		return // inside a namespace child: nothing to boot from here
	}
	qemu := testenv.LookPath(t, "qemu-system-x86_64")
	for _, c := range []string{"apt-get", "dpkg-deb", "busybox", "cpio", "xtables-nft-multi"} {
		testenv.LookPath(t, c)
	}
	root := testenv.RepoRoot(t)

	var stderr bytes.Buffer
	build := exec.Command(filepath.Join(root, "testdata", "qemu", "build.sh"))
	build.Stderr = &stderr
	out, err := build.Output()
	if err != nil {
		t.Fatalf("testdata/qemu/build.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cache := lines[len(lines)-1]
	t.Logf("kernel and base initramfs: %s", cache)

	// The test binary, static, plus its arguments, as a second cpio archive.
	stage := t.TempDir()
	gobin := testenv.LookPath(t, "go") // go test puts its own GOROOT/bin first in PATH
	tc := exec.Command(gobin, "test", "-c", "-o", filepath.Join(stage, "network.test"), ".")
	tc.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := tc.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, b)
	}
	if err := os.WriteFile(filepath.Join(stage, "network.args"), []byte(guestArgs+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	arch := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	arch.Dir = stage
	arch.Stdin = strings.NewReader("network.test\nnetwork.args\n")
	extra, err := arch.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	base, err := os.ReadFile(filepath.Join(cache, "base.cpio.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var initrd bytes.Buffer
	initrd.Write(base) // the kernel unpacks concatenated archives in order
	zw, _ := gzip.NewWriterLevel(&initrd, gzip.BestSpeed)
	zw.Write(extra)
	zw.Close()
	initrdPath := filepath.Join(stage, "initrd.gz")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// About 10-40 s on an idle machine; software emulation slows down a lot when the
	// host's cores are busy, hence the margin.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nographic", "-no-reboot",
		"-monitor", "none", "-nic", "none",
		"-kernel", filepath.Join(cache, "vmlinuz"), "-initrd", initrdPath,
		"-append", "console=ttyS0 panic=-1 quiet"}
	start := time.Now()
	vm := exec.CommandContext(ctx, qemu, args...)
	console, err := vm.CombinedOutput()
	took := time.Since(start)
	text := strings.ReplaceAll(string(console), "\r", "")
	// The guest's own lines only (the firmware paints the screen first).
	if i := strings.Index(text, "YURTHUB-GUEST: kernel"); i >= 0 {
		text = text[i:]
	}
	t.Logf("qemu ran %s:\n%s", took.Round(100*time.Millisecond), text)
	if ctx.Err() != nil {
		t.Fatalf("qemu did not finish in 12 minutes")
	}
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}

	res := regexp.MustCompile(`(?m)^YURTHUB-GUEST-RESULT: exit=(\d+)`).FindStringSubmatch(text)
	switch {
	case res == nil:
		t.Fatal("the guest printed no YURTHUB-GUEST-RESULT line: it did not run the tests")
	case res[1] != "0":
		t.Fatalf("the tests failed in the guest (exit %s)", res[1])
	}
	if m := regexp.MustCompile(`YURTHUB-GUEST: modprobe \S+ failed`).FindString(text); m != "" {
		t.Errorf("the guest could not load a module: %s", m)
	}
	if !strings.Contains(text, "YURTHUB-GUEST-DUMMY: created") {
		t.Error("the guest did not report a real dummy link")
	}
	for _, name := range guestMustPass {
		if !strings.Contains(text, "--- PASS: "+name+" ") {
			t.Errorf("the guest did not report --- PASS: %s", name)
		}
	}
	if strings.Contains(text, "--- FAIL") || strings.Contains(text, "--- SKIP") {
		t.Error("the guest reported a failed or skipped test")
	}
}
