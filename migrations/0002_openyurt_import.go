package migrations

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// ImportedReason is the reason recorded on list views created by the OpenYurt import:
// OpenYurt records no list resourceVersion, so the highest object resourceVersion is used.
const ImportedReason = "imported from OpenYurt (list RV = highest object RV)"

// importOpenYurt (version 2) imports an existing OpenYurt YurtHub disk cache
// (--disk-cache-path) once, so a node that swaps OpenYurt's hub for ours stays
// offline-ready. Layout read:
//
//	<dir>/<component>/<resource>.<version>.<group>/<namespace>/<name>   namespaced
//	<dir>/<component>/<resource>.<version>.<group>/<name>               cluster-scoped
//	<dir>/<component>/<resource>/...                                    older caches: the
//	                                                                    group/version come
//	                                                                    from the object's apiVersion
//
// One JSON object per file. Skipped, and counted in meta/openyurt-import: leftover
// tmp_* files of interrupted writes, empty or truncated files, files that are not a
// JSON object with a name, and directories starting with '_' (OpenYurt's internal
// state). Every imported resource gets a list view (namespace "", selector "") holding
// all its objects, at the highest object resourceVersion, with Reason ImportedReason.
// The source directory is left untouched. A missing directory imports nothing.
func importOpenYurt(tx *bolt.Tx, env Env) error {
	meta := tx.Bucket(schema.BucketMeta)
	comps := tx.Bucket(schema.BucketComponents)
	if meta == nil || comps == nil {
		return errors.New("schema not initialised")
	}
	dir := env.OpenYurtCacheDir
	note := func(s string) error { return meta.Put(schema.KeyOpenYurtInput, []byte(s)) }
	if dir == "" {
		return note("no OpenYurt disk cache configured")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return note(fmt.Sprintf("no OpenYurt disk cache at %s", dir))
	}
	st := importStats{}
	compDirs, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read OpenYurt disk cache %s: %w", dir, err)
	}
	for _, cd := range compDirs {
		if !cd.IsDir() || strings.HasPrefix(cd.Name(), "_") || strings.HasPrefix(cd.Name(), ".") {
			continue
		}
		resDirs, err := os.ReadDir(filepath.Join(dir, cd.Name()))
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, cd.Name()), err)
		}
		for _, rd := range resDirs {
			if !rd.IsDir() || strings.HasPrefix(rd.Name(), "_") || strings.HasPrefix(rd.Name(), ".") {
				continue
			}
			if err := importResource(tx, comps, cd.Name(), filepath.Join(dir, cd.Name(), rd.Name()), rd.Name(), &st, env); err != nil {
				return err
			}
		}
	}
	summary := fmt.Sprintf("imported %d objects (%d resources) from OpenYurt disk cache %s at %s; skipped %d tmp_* files, %d unreadable or invalid files",
		st.objects, st.resources, dir, env.Now().UTC().Format("2006-01-02T15:04:05Z"), st.tmp, st.bad)
	env.Log.Info("OpenYurt disk cache imported", slog.String("dir", dir), slog.Int("objects", st.objects),
		slog.Int("resources", st.resources), slog.Int("tmp_skipped", st.tmp), slog.Int("invalid_skipped", st.bad))
	return note(summary)
}

type importStats struct{ objects, resources, tmp, bad int }

type importedObject struct {
	ns, name string
	rv       uint64
	data     []byte
}

type gvr struct{ group, version, resource string }

// parseResourceDir reads "<resource>.<version>.<group>" ("core" = the core group);
// a bare "<resource>" (older caches) gives an empty version.
func parseResourceDir(name string) gvr {
	parts := strings.SplitN(name, ".", 3)
	r := gvr{resource: parts[0]}
	if len(parts) > 1 {
		r.version = parts[1]
	}
	if len(parts) > 2 && parts[2] != "core" {
		r.group = parts[2]
	}
	return r
}

type objectHead struct {
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

func importResource(tx *bolt.Tx, comps *bolt.Bucket, component, path, dirName string, st *importStats, env Env) error {
	want := parseResourceDir(dirName)
	byGVR := map[gvr][]importedObject{}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			st.bad++
			env.Log.Warn("OpenYurt import: cannot read", slog.String("path", p), slog.Any("err", err))
			return nil
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(path, p)
			if depth := len(strings.Split(rel, string(filepath.Separator))); rel != "." && depth > 1 {
				return fs.SkipDir // deeper than <namespace>/: not OpenYurt's layout
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), "tmp_") {
			st.tmp++
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		var head objectHead
		if err == nil {
			err = json.Unmarshal(data, &head)
		}
		if err == nil && head.Metadata.Name == "" {
			err = errors.New("no metadata.name")
		}
		if err != nil {
			st.bad++
			env.Log.Warn("OpenYurt import: skipping unreadable or invalid file", slog.String("path", p), slog.Any("err", err))
			return nil
		}
		rv, _ := strconv.ParseUint(head.Metadata.ResourceVersion, 10, 64)
		key := want
		if key.version == "" { // older layout: take group/version from the object
			g, v, ok := strings.Cut(head.APIVersion, "/")
			if !ok {
				g, v = "", head.APIVersion
			}
			if v == "" {
				st.bad++
				env.Log.Warn("OpenYurt import: no apiVersion in an old-layout file", slog.String("path", p))
				return nil
			}
			key.group, key.version = g, v
		}
		byGVR[key] = append(byGVR[key], importedObject{ns: head.Metadata.Namespace, name: head.Metadata.Name, rv: rv, data: data})
		return nil
	})
	if err != nil {
		return err
	}
	keys := make([]gvr, 0, len(byGVR))
	for k := range byGVR {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		if err := writeImported(comps, component, k, byGVR[k], env); err != nil {
			return err
		}
		st.resources++
		st.objects += len(byGVR[k])
	}
	return nil
}

func writeImported(comps *bolt.Bucket, component string, r gvr, objs []importedObject, env Env) error {
	cb, err := comps.CreateBucketIfNotExists([]byte(component))
	if err != nil {
		return err
	}
	rk := schema.ResourceKey(r.group, r.version, r.resource)
	ob, err := bucketChain(cb, schema.BucketObjects, rk)
	if err != nil {
		return err
	}
	vb, err := bucketChain(cb, schema.BucketLists, rk, schema.ViewKey("", ""))
	if err != nil {
		return err
	}
	members, err := vb.CreateBucketIfNotExists(schema.BucketMembers)
	if err != nil {
		return err
	}
	var maxRV uint64
	count := 0
	for _, o := range objs {
		key := schema.ObjectKey(o.ns, o.name)
		if old := ob.Get(key); old != nil {
			if _, rv, _, err := schema.DecodeObject(old); err == nil && rv >= o.rv {
				continue
			}
		}
		if err := ob.Put(key, schema.EncodeObject(schema.EncodingJSON, o.rv, o.data)); err != nil {
			return err
		}
		if members.Get(key) == nil {
			count++
			if err := members.Put(key, []byte{1}); err != nil {
				return err
			}
		}
		if o.rv > maxRV {
			maxRV = o.rv
		}
	}
	info := schema.ListInfo{ResourceVersion: maxRV, SyncedAt: env.Now().UTC(), Count: count, Complete: true, Reason: ImportedReason}
	if old := vb.Get(schema.KeyInfo); old != nil {
		if li, err := schema.DecodeListInfo(old); err == nil {
			info.Count += li.Count
			if li.ResourceVersion > info.ResourceVersion {
				info.ResourceVersion = li.ResourceVersion
			}
		}
	}
	return vb.Put(schema.KeyInfo, schema.EncodeListInfo(info))
}

func bucketChain(b *bolt.Bucket, names ...[]byte) (*bolt.Bucket, error) {
	for _, n := range names {
		var err error
		if b, err = b.CreateBucketIfNotExists(n); err != nil {
			return nil, fmt.Errorf("create bucket %q: %w", n, err)
		}
	}
	return b, nil
}
