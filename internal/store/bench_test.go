package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Benchmarks of the cache against openyurtLayout, a one-file-per-object fsync'd
// directory like OpenYurt's disk cache, on the same workloads in the same run:
//
//	ReplaceList10k     replace a list of 10k pods (~2 KiB each)
//	ApplyEvents100k    100k MODIFIED events from 8 concurrent watch streams
//	ReadList10kEncode  read a 10k-pod list back and encode it as a PodList
//	GetObject          get one pod
//
// Metrics: objects/s, and bytes-on-disk/object (allocated blocks / objects stored).
// Run with make bench, or: go test -run '^$' -bench . ./internal/store

const benchPods = 10000

var benchPageSize, _ = strconv.Atoi(os.Getenv("YURTHUB_BENCH_PAGE_SIZE"))

var benchPodCache struct {
	once sync.Once
	objs []Object
}

// benchPodList is 10k pods of ~2 KiB JSON each, in 8 namespaces.
func benchPodList() []Object {
	benchPodCache.once.Do(func() {
		benchPodCache.objs = make([]Object, benchPods)
		for i := range benchPods {
			ns := fmt.Sprintf("ns-%d", i%8)
			name := fmt.Sprintf("app-%05d-7d9f8b6c5-x%04d", i, i)
			var b bytes.Buffer
			fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":%q,"uid":"0d1f2a3b-%04d-4c5d-8e9f-0a1b2c3d4e5f","resourceVersion":"%d","creationTimestamp":"2026-11-01T10:00:00Z","labels":{"app":"app-%05d","pod-template-hash":"7d9f8b6c5"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"app-%05d-7d9f8b6c5","uid":"1e2f3a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b","controller":true,"blockOwnerDeletion":true}]},`,
				name, ns, i%10000, i+1, i, i)
			fmt.Fprintf(&b, `"spec":{"nodeName":"edge-node-1","serviceAccountName":"default","containers":[{"name":"main","image":"registry.example/app:v1.2.3","ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"}},"env":[{"name":"MODE","value":"edge"}],"volumeMounts":[{"name":"kube-api-access","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}],"volumes":[{"name":"kube-api-access","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}]}}]},`)
			fmt.Fprintf(&b, `"status":{"phase":"Running","podIP":"10.244.%d.%d","hostIP":"192.168.10.21","startTime":"2026-11-01T10:00:05Z","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-01T10:00:09Z"}],"containerStatuses":[{"name":"main","ready":true,"restartCount":0,"image":"registry.example/app:v1.2.3","imageID":"registry.example/app@sha256:%064d","containerID":"containerd://%064d","started":true}]},`, i/250, i%250, i, i)
			pad := 2048 - b.Len() - len(`"x":""}`)
			if pad < 0 {
				pad = 0
			}
			fmt.Fprintf(&b, `"x":%q}`, bytes.Repeat([]byte("p"), pad))
			benchPodCache.objs[i] = Object{Namespace: ns, Name: name, ResourceVersion: uint64(i + 1), Encoding: EncodingJSON, Data: b.Bytes()}
		}
	})
	return benchPodCache.objs
}

// openyurtLayout is the comparison: OpenYurt's disk cache layout,
// <root>/<component>/<resource>.<version>.<group>/<namespace>/<name>, one JSON file
// per object, each written to a tmp_ file, fsync'd and renamed; a list replace
// writes a tmp_ directory, then swaps it in (OpenYurt's ReplaceComponentList).
type openyurtLayout struct{ root string }

func (l openyurtLayout) resDir(component string, r Resource) string {
	g := r.Group
	if g == "" {
		g = "core"
	}
	return filepath.Join(l.root, component, r.Resource+"."+r.Version+"."+g)
}

func writeFileSync(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "tmp_"+filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (l openyurtLayout) replace(component string, r Resource, objs []Object) error {
	dir := l.resDir(component, r)
	tmp := filepath.Join(filepath.Dir(dir), "tmp_"+filepath.Base(dir))
	_ = os.RemoveAll(tmp)
	made := map[string]bool{}
	for _, o := range objs {
		nsDir := filepath.Join(tmp, o.Namespace)
		if !made[nsDir] {
			if err := os.MkdirAll(nsDir, 0o700); err != nil {
				return err
			}
			made[nsDir] = true
		}
		if err := writeFileSync(filepath.Join(nsDir, o.Name), o.Data); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func (l openyurtLayout) update(component string, r Resource, o Object) error {
	dir := filepath.Join(l.resDir(component, r), o.Namespace)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, o.Name), o.Data)
}

func (l openyurtLayout) list(component string, r Resource, fn func(data []byte) error) error {
	dir := l.resDir(component, r)
	nss, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, ns := range nss {
		files, err := os.ReadDir(filepath.Join(dir, ns.Name()))
		if err != nil {
			return err
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(dir, ns.Name(), f.Name()))
			if err != nil {
				return err
			}
			if err := fn(data); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l openyurtLayout) get(component string, r Resource, ns, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(l.resDir(component, r), ns, name))
}

// diskBytes sums the blocks allocated under root (files and directories).
func diskBytes(b *testing.B, root string) int64 {
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "cache.db"), Options{PageSize: benchPageSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		checkFile(b, s.Path())
	})
	return s
}

var benchKey = ListKey{Component: "kubelet", Resource: pods}

func replaceStreaming(b *testing.B, s *Store, k ListKey, rv uint64, objs []Object) {
	w, err := s.BeginList(context.Background(), k)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range objs {
		if err := w.Add(o); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(rv); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkReplaceList10k(b *testing.B) {
	objs := benchPodList()
	b.Run("bbolt", func(b *testing.B) {
		s := openBench(b)
		rv := uint64(benchPods)
		fresh := make([]Object, len(objs))
		b.ResetTimer()
		for range b.N {
			// Every object changed since the last list: all 10k are rewritten, as
			// openyurtLayout always does.
			for i, o := range objs {
				rv++
				o.ResourceVersion = rv
				fresh[i] = o
			}
			replaceStreaming(b, s, benchKey, rv, fresh)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchPods)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, s.Path()))/benchPods, "bytes-on-disk/object")
	})
	b.Run("openyurtLayout", func(b *testing.B) {
		l := openyurtLayout{root: b.TempDir()}
		b.ResetTimer()
		for range b.N {
			if err := l.replace("kubelet", pods, objs); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchPods)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, l.root))/benchPods, "bytes-on-disk/object")
	})
}

const (
	benchEvents  = 100000
	benchStreams = 8
)

// BenchmarkApplyEvents100k: 8 watch streams (one per namespace view), 12.5k MODIFIED
// events each. Each stream's events arrive on a channel; its writer passes whatever
// has arrived while its previous ApplyEvents call was in flight (the pattern the
// package doc recommends), so group commit sees many events per transaction.
func BenchmarkApplyEvents100k(b *testing.B) {
	objs := benchPodList()
	byNS := make([][]Object, benchStreams)
	for _, o := range objs {
		i, _ := strconv.Atoi(o.Namespace[len("ns-"):])
		byNS[i] = append(byNS[i], o)
	}
	b.Run("bbolt", func(b *testing.B) {
		s := openBench(b)
		rvs := make([]uint64, benchStreams)
		for st := range benchStreams {
			k := benchKey
			k.Namespace = fmt.Sprintf("ns-%d", st)
			if err := s.ReplaceList(context.Background(), k, uint64(benchPods), byNS[st]); err != nil {
				b.Fatal(err)
			}
			rvs[st] = uint64(benchPods)
		}
		b.ResetTimer()
		for range b.N {
			var wg sync.WaitGroup
			for st := range benchStreams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := benchKey
					k.Namespace = fmt.Sprintf("ns-%d", st)
					ch := make(chan Event, 1024)
					go func() {
						for i := range benchEvents / benchStreams {
							rvs[st]++
							o := byNS[st][i%len(byNS[st])]
							o.ResourceVersion = rvs[st]
							ch <- Event{Type: Modified, Object: o}
						}
						close(ch)
					}()
					batch := make([]Event, 0, 1024)
					for ev := range ch {
						batch = append(batch[:0], ev)
					drain:
						for len(batch) < cap(batch) {
							select {
							case e, ok := <-ch:
								if !ok {
									break drain
								}
								batch = append(batch, e)
							default:
								break drain
							}
						}
						if err := s.ApplyEvents(context.Background(), k, batch); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, s.Path()))/benchPods, "bytes-on-disk/object")
	})
	b.Run("openyurtLayout", func(b *testing.B) {
		l := openyurtLayout{root: b.TempDir()}
		if err := l.replace("kubelet", pods, objs); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			var wg sync.WaitGroup
			for st := range benchStreams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range benchEvents / benchStreams {
						if err := l.update("kubelet", pods, byNS[st][i%len(byNS[st])]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, l.root))/benchPods, "bytes-on-disk/object")
	})
}

// encodeList writes a PodList the way the offline proxy answers a list: items
// copied straight from the cache into the response.
type listEncoder struct {
	w *bufio.Writer
	n int
}

func (e *listEncoder) start(rv uint64) {
	fmt.Fprintf(e.w, `{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"%d"},"items":[`, rv)
}

func (e *listEncoder) item(data []byte) error {
	if e.n > 0 {
		e.w.WriteByte(',')
	}
	e.n++
	_, err := e.w.Write(data)
	return err
}

func (e *listEncoder) end() error {
	e.w.WriteString("]}")
	return e.w.Flush()
}

func BenchmarkReadList10kEncode(b *testing.B) {
	objs := benchPodList()
	b.Run("bbolt", func(b *testing.B) { benchReadBolt(b, objs, false) })
	b.Run("bbolt-pages-dropped", func(b *testing.B) { benchReadBolt(b, objs, true) })
	b.Run("openyurtLayout", func(b *testing.B) {
		l := openyurtLayout{root: b.TempDir()}
		if err := l.replace("kubelet", pods, objs); err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(io.Discard, 64<<10)
		b.ResetTimer()
		for range b.N {
			enc := &listEncoder{w: bw}
			enc.start(0) // OpenYurt records no list resourceVersion
			if err := l.list("kubelet", pods, enc.item); err != nil {
				b.Fatal(err)
			}
			if err := enc.end(); err != nil || enc.n != benchPods {
				b.Fatalf("encoded %d items: %v", enc.n, err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchPods)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, l.root))/benchPods, "bytes-on-disk/object")
	})
}

func BenchmarkGetObject(b *testing.B) {
	objs := benchPodList()
	b.Run("bbolt", func(b *testing.B) {
		s := openBench(b)
		replaceStreaming(b, s, benchKey, benchPods, objs)
		r := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for range b.N {
			o := objs[r.IntN(len(objs))]
			got, err := s.GetObject(context.Background(), ObjectKey{Component: "kubelet", Resource: pods, Namespace: o.Namespace, Name: o.Name})
			if err != nil || len(got.Data) != len(o.Data) {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, s.Path()))/benchPods, "bytes-on-disk/object")
	})
	b.Run("openyurtLayout", func(b *testing.B) {
		l := openyurtLayout{root: b.TempDir()}
		if err := l.replace("kubelet", pods, objs); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for range b.N {
			o := objs[r.IntN(len(objs))]
			data, err := l.get("kubelet", pods, o.Namespace, o.Name)
			if err != nil || len(data) != len(o.Data) {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(diskBytes(b, l.root))/benchPods, "bytes-on-disk/object")
	})
}

// benchReadBolt reads the 10k-pod view and encodes it as a list, optionally after
// dropping the map's pages each time (the idle drop's cost on the next list).
func benchReadBolt(b *testing.B, objs []Object, dropPages bool) {
	s := openBench(b)
	replaceStreaming(b, s, benchKey, benchPods, objs)
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	b.ResetTimer()
	for range b.N {
		if dropPages {
			// The idle drop (mapdrop.go) before every read: the list's pages
			// come back from the page cache by minor faults.
			b.StopTimer()
			if err := s.dropMappedPages(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		enc := &listEncoder{w: bw}
		info, err := s.GetListInfo(context.Background(), benchKey)
		if err != nil {
			b.Fatal(err)
		}
		enc.start(info.ResourceVersion)
		if _, err := s.List(context.Background(), benchKey, func(o Object) error { return enc.item(o.Data) }); err != nil {
			b.Fatal(err)
		}
		if err := enc.end(); err != nil || enc.n != benchPods {
			b.Fatalf("encoded %d items: %v", enc.n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchPods)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(diskBytes(b, s.Path()))/benchPods, "bytes-on-disk/object")
}
